//! The operator's area. `/admin/`: the overview: the shop's counts and what needs
//! attention (operator events, payments held for review, dead jobs, refunds whose
//! outcome is unknown), the latest webhook deliveries and the mail outbox. Beside it:
//! the lists of payments, orders, customers and subscriptions (`lists`), a payment's
//! page with its audit trail and refund button (`payment`), the operator's events
//! (`events`), the revenue (`revenue`) and the webhook endpoints (`webhooks`). Every
//! page carries the same navigation (`admin_nav.html`).

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::Deserialize;
use tijori_core::id::RefundId;
use tijori_core::service::PaymentKey;
use tijori_core::store::OperatorEventKind;

use super::{Admin, CsrfForm, Page, PageResult};
use crate::admin::{DeliveryView, EventView};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, parse_id, Form};
use crate::views::PaymentView;
use crate::AppState;

mod events;
mod listing;
mod lists;
mod payment;
mod revenue;
mod webhooks;

pub(super) const TEMPLATES: &[(&str, &str)] = &[
    ("admin.html", include_str!("admin.html")),
    ("admin_webhooks.html", include_str!("admin_webhooks.html")),
    ("admin_nav.html", include_str!("admin_nav.html")),
    ("admin_style.html", include_str!("admin_style.html")),
    ("admin_counts.html", include_str!("admin_counts.html")),
    ("admin_list.html", include_str!("admin_list.html")),
    ("admin_payments.html", include_str!("admin_payments.html")),
    ("admin_orders.html", include_str!("admin_orders.html")),
    ("admin_customers.html", include_str!("admin_customers.html")),
    (
        "admin_subscriptions.html",
        include_str!("admin_subscriptions.html"),
    ),
    ("admin_payment.html", include_str!("admin_payment.html")),
    (
        "admin_refund_confirm.html",
        include_str!("admin_refund_confirm.html"),
    ),
    ("admin_events.html", include_str!("admin_events.html")),
    ("admin_revenue.html", include_str!("admin_revenue.html")),
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(HERE, get(admin_page))
        .route("/admin/jobs/{id}/retry", post(admin_retry_job))
        .route("/admin/refunds/{id}/recheck", post(admin_recheck_refund))
        .route("/admin/refunds/{id}/resolve", post(admin_resolve_refund))
        .merge(webhooks::router())
        .merge(lists::router())
        .merge(payment::router())
        .merge(events::router())
        .merge(revenue::router())
}

const HERE: &str = "/admin/";

/// Where a form of the operator's area sends the operator back to: the page it was
/// on, if that is one of this area's pages (never another site), else `default`.
fn back_in_admin(back: Option<&str>, default: &str) -> String {
    match back {
        Some(b)
            if b.starts_with("/admin/")
                && !b.contains("//")
                && !b.contains('\\')
                && b.bytes().all(|c| (0x21..=0x7e).contains(&c)) =>
        {
            b.to_owned()
        }
        _ => default.to_owned(),
    }
}

/// How many webhook deliveries the admin page lists.
const ADMIN_DELIVERIES: usize = 50;

async fn admin_page(State(state): State<AppState>, Admin(s): Admin) -> PageResult {
    let events = state.tijori.operator_events(false).await?;
    let deliveries = state.tijori.webhook_deliveries().await?;
    // The payments held for review, as they stand now.
    let mut review = Vec::new();
    let mut seen = HashSet::new();
    for event in events
        .iter()
        .filter(|e| e.kind == OperatorEventKind::NeedsReview)
    {
        let Some(id) = &event.payment_id else {
            continue;
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        match state
            .tijori
            .payment_for(&s.user, &PaymentKey::Id(id.clone()))
            .await
        {
            Ok(p) => review.push(PaymentView::from(&p)),
            Err(tijori_core::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let dead = state
        .tijori
        .jobs(Some(tijori_core::jobs::JobStatus::Dead))
        .await?;
    let outbox = state.tijori.outbox(50).await?;
    let counts = state.tijori.shop_counts().await?;
    let unknown = state.tijori.unknown_refunds().await?;
    let events: Vec<EventView> = events.iter().map(EventView::from).collect();
    let deliveries: Vec<DeliveryView> = deliveries
        .iter()
        .take(ADMIN_DELIVERIES)
        .map(DeliveryView::from)
        .collect();
    Ok(Page::new(
        "admin.html",
        context! {
            events, deliveries, review,
            counts => context! {
                active_subscriptions => counts.active_subscriptions,
                renewals_due => counts.renewals_due,
                payments_open => counts.payments_open,
                payments_held => counts.payments_held,
            },
            dead_jobs => dead.iter().map(crate::admin::JobView::from).collect::<Vec<_>>(),
            outbox,
            unknown_refunds => unknown.iter().map(crate::payments::RefundView::from).collect::<Vec<_>>(),
        },
    ))
}

async fn admin_retry_job(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let id = id.parse::<i64>().map_err(|_| ApiError::not_found("job"))?;
    state.tijori.retry_job(id).await?;
    Ok(Redirect::to(HERE))
}

/// The admin page's "Re-check" of a refund whose outcome is unknown.
async fn admin_recheck_refund(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let id: RefundId = parse_id(&id)?;
    state.tijori.recheck_refund(&s.user, &id).await?;
    Ok(Redirect::to(HERE))
}

#[derive(Deserialize)]
struct ResolveRefundForm {
    csrf_token: String,
    status: String,
    reason: String,
}

/// The admin page's "Resolve" of a refund whose outcome is unknown, with a reason.
async fn admin_resolve_refund(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(form): Form<ResolveRefundForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let resolution = crate::admin::parse_resolution(&form.status)?;
    let id: RefundId = parse_id(&id)?;
    state
        .tijori
        .resolve_refund(&s.user, &id, resolution, &form.reason)
        .await?;
    Ok(Redirect::to(HERE))
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::super::tests::{render, viewer};

    #[test]
    fn the_admin_page_lists_events_reviews_and_deliveries() {
        let html = render(
            "admin.html",
            context! {
                viewer => viewer(true),
                events => vec![context! { id => 7, kind => "needs_review", payment_id => "pay_1", detail => "amount <differs>", created_at => "2030-01-01T00:00:00Z" }],
                review => vec![context! { id => "pay_1", purpose => "order", order_id => "ord_1", currency => "ETB", amount => "850.00", gateway => "chapa", provider_ref => "pay_1", status => "needs_review" }],
                deliveries => vec![context! { id => 1, gateway => "chapa", event => "charge.success", reference => "pay_1", status => "success", duplicate => true, outcome => "settled", received_at => "2030-01-01T00:00:00Z" }],
            },
        );
        assert!(
            html.contains("action=\"/admin/events/7/resolve\""),
            "{html}"
        );
        assert!(html.contains("amount &lt;differs&gt;"), "{html}");
        assert!(
            html.contains("charge.success") && html.contains(">yes<"),
            "{html}"
        );
        let empty = render(
            "admin.html",
            context! { viewer => viewer(true), events => Vec::<()>::new(), review => Vec::<()>::new(), deliveries => Vec::<()>::new() },
        );
        assert!(empty.contains("Nothing needs attention"), "{empty}");
    }

    fn paging() -> minijinja::Value {
        context! { total => 1, page => 1, pages => 1, export => "status=completed", export_capped => true, export_cap => 10000 }
    }

    #[test]
    fn every_list_renders_its_rows_filter_and_export() {
        let query = context! { q => "hari", status => "completed" };
        let lists = [
            (
                "admin_payments.html",
                "payments",
                context! { id => "pay_1", created_at => "2030-01-01T00:00:00Z", status => "completed", gateway => "khalti", amount => "500.00", currency => "NPR", username => "hari", email => "h@example.com", provider_ref => "pidx1", provider_txn_id => "", purpose => "plan plan_1" },
            ),
            (
                "admin_orders.html",
                "orders",
                context! { id => "ord_1", created_at => "2030-01-01T00:00:00Z", status => "paid", total => "850.00", currency => "ETB", units => 1, username => "hari", email => "h@example.com", paid_payment_id => "pay_1" },
            ),
            (
                "admin_customers.html",
                "customers",
                context! { id => "usr_1", username => "hari", email => "h@example.com", operator => false, joined => "2030-01-01T00:00:00Z", payments => 2, paid => 1, orders => 0, subscribed_until => "" },
            ),
            (
                "admin_subscriptions.html",
                "subscriptions",
                context! { user_id => "usr_1", username => "hari", email => "h@example.com", plan => "Basic", start_at => "2030-01-01T00:00:00Z", end_at => "2030-01-31T00:00:00Z", running => true },
            ),
        ];
        for (template, section, row) in lists {
            let html = render(
                template,
                context! { viewer => viewer(true), section, query => query.clone(), paging => paging(), rows => vec![row], statuses => vec!["completed", "pending"], gateways => vec!["khalti", "chapa"] },
            );
            assert!(
                html.contains(&format!("href=\"/admin/{section}.csv?status=completed\"")),
                "{html}"
            );
            assert!(html.contains("id=\"export-capped\""), "{html}");
            assert!(html.contains("aria-current=\"page\""), "{html}");
            assert!(html.contains("value=\"completed\" selected"), "{html}");
        }
    }
}
