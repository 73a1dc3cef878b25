//! Paying: the Subscribe button, eSewa's self-posting form, and the return page the
//! gateways send the browser back to, which looks the payment up before it says
//! anything about it.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::Deserialize;
use tijori_core::gateway::GatewayKind;
use tijori_core::id::PaymentId;
use tijori_core::payment::{CustomerOutcome, PaymentStatus, Purpose};
use tijori_core::service::PaymentKey;

use super::page::sign_in_redirect;
use super::{LoginNotice, Page, PageError, PageResult, SignedIn, Visitor};
use crate::extract::{check_csrf_field, parse_id, Form};
use crate::i18n::tr;
use crate::subscriptions::{parse_change, parse_gateway, start_subscription};
use crate::views::{OrderView, PaymentView, SubscriptionView};
use crate::words;
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[
    ("payment_success.html", include_str!("payment_success.html")),
    ("esewa_form.html", include_str!("esewa_form.html")),
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/subscribe", post(subscribe))
        .route("/payment-success/", get(payment_success))
        .route("/payments/{id}/esewa/", get(esewa_form))
}

#[derive(Deserialize)]
struct SubscribeForm {
    plan_id: String,
    gateway: Option<String>,
    /// "switch_now" when the customer ticked it; absent queues.
    change: Option<String>,
    csrf_token: String,
}

/// The Subscribe button: opens the checkout and sends the browser to the gateway.
async fn subscribe(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Form(form): Form<SubscribeForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let gateway = parse_gateway(form.gateway.as_deref())?;
    let change = parse_change(form.change.as_deref())?;
    state
        .limits
        .checkout(crate::limits::Checkout::Initiate, &s.user)?;
    let view = start_subscription(&state, &s.user, &form.plan_id, gateway, change, None).await?;
    Ok(Redirect::to(view.payment_url()))
}

/// The payment a return redirect names: Khalti's `pidx`, or Chapa's `tx_ref` (our
/// Chapa adapter puts it on the return URL) or `trx_ref` (what Chapa itself may
/// add). Read by hand, first value wins: a gateway that appends a parameter the URL
/// already has must not make the page fail.
fn return_key(raw_query: Option<&str>) -> Option<PaymentKey> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let first = |name: &str| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    if let Some(pidx) = first("pidx") {
        return Some(PaymentKey::ProviderRef(GatewayKind::Khalti, pidx));
    }
    if let Some(uuid) = first("transaction_uuid") {
        // eSewa's failure redirect: the reference is ours, put in its failure_url.
        return Some(PaymentKey::ProviderRef(GatewayKind::Esewa, uuid));
    }
    first("tx_ref")
        .or_else(|| first("trx_ref"))
        .map(|tx_ref| PaymentKey::ProviderRef(GatewayKind::Chapa, tx_ref))
}

/// eSewa's checkout opens when the browser posts its signed form: this page (the
/// payment's `payment_url`) posts it, so a client that only redirects works as with the
/// other gateways. Public, as a gateway's hosted page is to whoever holds its link: the
/// form is signed, not secret, and only an open eSewa payment has one.
async fn esewa_form(
    State(state): State<AppState>,
    _: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let form = match parse_id::<PaymentId>(&id) {
        Ok(id) => state.tijori.checkout_form_of(&id).await?,
        Err(_) => None,
    };
    let form = form.ok_or(PageError::Explained {
        status: StatusCode::NOT_FOUND,
        title: tr("No eSewa payment to open"),
        message: tr("This link opens an eSewa payment that is still waiting to be paid. See your payments on the account page."),
    })?;
    Ok(Page::new(
        "esewa_form.html",
        context! { action => form.action, fields => form.fields },
    ))
}

/// Where the gateways send the browser back. The query string is a signal only:
/// the payment is looked up at the gateway (unless a webhook or callback already
/// settled it, or the page was loaded a moment ago) before this page says anything
/// about it. A visitor whose session expired while paying is not turned away first:
/// the lookup is made all the same (only the gateway's answer settles anything), and
/// then they are asked to sign in to see how it went.
async fn payment_success(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    RawQuery(raw_query): RawQuery,
) -> PageResult<Response> {
    let query = raw_query.as_deref().unwrap_or("");
    // eSewa's success redirect names its payment only inside its signed `data`.
    let key = match return_key(raw_query.as_deref()) {
        Some(key) => Some(key),
        None => state.tijori.signed_return(query).await?,
    };
    let returned = match &key {
        Some(key) => {
            let viewer = session.as_ref().map(|s| &s.user);
            state.tijori.payment_returned(key, query, viewer).await
        }
        None => Ok(None),
    };
    if session.is_none() {
        if let Err(e) = &returned {
            tracing::warn!(error = %e, "return page: the signal of a signed-out visitor could not be handled");
        }
        // The same answer whether or not the reference is known: a stranger learns
        // nothing from it.
        let here = match &raw_query {
            Some(q) => format!("/payment-success/?{q}"),
            None => "/payment-success/".to_owned(),
        };
        return Ok(sign_in_redirect(&here, Some(LoginNotice::PaymentChecked)));
    }
    if key.is_none() {
        return Err(PageError::Explained {
            status: StatusCode::BAD_REQUEST,
            title: tr("Missing payment reference"),
            message: tr("This page needs the payment reference the gateway sends back (pidx or tx_ref). Open it from the gateway's redirect, or see your payments on the account page."),
        });
    }
    // Someone else's payment is "not found", as everywhere.
    let returned = returned?.ok_or(tijori_core::Error::NotFound("payment"))?;
    let gateway_problem = returned.gateway_problem.map(|e| e.to_string());
    let verification = state.tijori.verification(returned.payment).await?;
    let (payment, subscription, order) = (
        verification.payment,
        verification.subscription,
        verification.order,
    );
    let now = state.tijori.now();
    let order_status = order.as_ref().map(|o| o.status);
    let told = payment.customer_outcome(order_status);
    let outcome = match payment.status {
        PaymentStatus::Completed => "success",
        PaymentStatus::Initiated | PaymentStatus::Pending => "pending",
        PaymentStatus::NeedsReview => "review",
        _ => "failed",
    };
    // A canceled, expired or failed attempt leads back to paying: the same checkout
    // when the gateway takes another try on it, else a new one for the same plan, or
    // the order's page while the order is still held.
    let unpaid = matches!(
        told,
        CustomerOutcome::Canceled | CustomerOutcome::NotPaidInTime | CustomerOutcome::Failed
    );
    let retry_url = payment.retry_url(now).filter(|_| unpaid);
    let (again_plan, again_order) = match (&payment.purpose, &order) {
        _ if !unpaid || retry_url.is_some() => (None, None),
        (Purpose::Subscription { plan_id, .. }, _) => (Some(plan_id.to_string()), None),
        (Purpose::Order { .. }, Some(o)) if o.is_payable(now) => (None, Some(o.id.to_string())),
        _ => (None, None),
    };
    Ok(Page::new(
        "payment_success.html",
        context! {
            outcome,
            tone => words::payment_tone(told),
            headline => words::payment_headline(told),
            message => words::payment_message(&payment, order_status),
            gateway_problem,
            retry_url,
            again_plan,
            again_order,
            payment => PaymentView::from(&payment),
            subscription => subscription.map(|h| SubscriptionView::new(&h, now)),
            order => order.map(|o| OrderView::from(&o)),
        },
    )
    .into_response())
}

#[cfg(test)]
mod tests {
    use tijori_core::gateway::GatewayKind;
    use tijori_core::service::PaymentKey;

    use super::return_key;

    #[test]
    fn the_return_page_finds_the_reference_in_either_gateways_redirect() {
        let key = |q: &str| match return_key(Some(q)) {
            Some(PaymentKey::ProviderRef(g, r)) => Some((g, r)),
            _ => None,
        };
        assert_eq!(
            key("pidx=abc&status=Completed"),
            Some((GatewayKind::Khalti, "abc".into()))
        );
        assert_eq!(
            key("tx_ref=pay_1&tx_ref=pay_2&status=success"),
            Some((GatewayKind::Chapa, "pay_1".into())),
            "a repeated parameter is not an error"
        );
        assert_eq!(
            key("trx_ref=pay_3&ref_id=x"),
            Some((GatewayKind::Chapa, "pay_3".into()))
        );
        assert_eq!(
            key("tx_ref=&trx_ref=pay_4"),
            Some((GatewayKind::Chapa, "pay_4".into()))
        );
        assert_eq!(key("status=Completed"), None);
        assert_eq!(key(""), None);
        assert!(return_key(None).is_none());
    }
}
