//! A payment's page in the operator's area: the payment, its whole audit trail (every
//! gateway answer and signal, webhook delivery, refund and operator event), and the
//! refund button: a form, a confirmation showing what will happen, then the refund,
//! made through the core's refund service once per form (see `Tijori::refund_once`).

use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};
use tijori_core::id::{PaymentId, RefundId};
use tijori_core::idempotency::IdempotencyKey;
use tijori_core::money::Money;
use tijori_core::payment::{PaymentStatus, Purpose};
use tijori_core::service::{PaymentAudit, RefundOnce, RefundOrder};
use tijori_core::store::RefundStatus;

use super::{Admin, Page, PageResult};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, parse_id, Form};
use crate::i18n::tr;
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/payments/{id}", get(page))
        .route("/admin/payments/{id}/refund/review", post(review))
        .route("/admin/payments/{id}/refund", post(refund))
}

fn here(id: &PaymentId) -> String {
    format!("/admin/payments/{id}")
}

/// What the page says after a refund (from its redirect's query).
#[derive(Deserialize)]
struct Shown {
    #[serde(default)]
    refund: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> PageResult {
    let id: PaymentId = parse_id(&id)?;
    let audit = state.tijori.payment_audit(&s.user, &id).await?;
    let notice = match shown.refund.as_deref() {
        Some("made") => Some(tr("The refund went through.")),
        Some("already") => Some(tr("That refund was already made; it was not made again.")),
        _ => None,
    };
    Ok(Page::new(
        "admin_payment.html",
        context! { p => view(&audit), notice },
    ))
}

/// The payment's page, as the template reads it.
#[derive(Serialize)]
struct PaymentPage {
    id: String,
    status: &'static str,
    status_reason: Option<String>,
    gateway: &'static str,
    amount: String,
    currency: &'static str,
    provider_ref: Option<String>,
    provider_txn_id: Option<String>,
    order_id: Option<String>,
    plan_id: Option<String>,
    created_at: String,
    updated_at: String,
    customer: Option<(String, String)>,
    refunded: String,
    left: String,
    refundable: bool,
    held_for_review: bool,
    needs_made_outside: bool,
    answers: Vec<serde_json::Value>,
    refunds: Vec<serde_json::Value>,
    deliveries: Vec<serde_json::Value>,
    events: Vec<serde_json::Value>,
}

fn view(a: &PaymentAudit) -> PaymentPage {
    let p = &a.payment;
    let currency = p.amount.currency();
    let refunded: i64 = a
        .refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .map(|r| r.amount.minor())
        .sum();
    let left = (p.amount.minor() - refunded).max(0);
    let money = |minor: i64| {
        Money::from_minor(minor, currency)
            .map(Money::to_major_string)
            .unwrap_or_default()
    };
    let (order_id, plan_id) = match &p.purpose {
        Purpose::Order { order_id } => (Some(order_id.to_string()), None),
        Purpose::Subscription { plan_id, .. } => (None, Some(plan_id.to_string())),
    };
    let t = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    PaymentPage {
        id: p.id.to_string(),
        status: p.status.as_str(),
        status_reason: p.status_reason.clone(),
        gateway: p.gateway.as_str(),
        amount: p.amount.to_major_string(),
        currency: currency.code(),
        provider_ref: p.provider_ref.clone(),
        provider_txn_id: p.provider_txn_id.clone(),
        order_id,
        plan_id,
        created_at: t(p.created_at),
        updated_at: t(p.updated_at),
        customer: a
            .customer
            .as_ref()
            .map(|u| (u.username.as_str().to_owned(), u.email.as_str().to_owned())),
        refunded: money(refunded),
        left: money(left),
        // The statuses the core's refund takes; it checks again, with what is left.
        refundable: matches!(
            p.status,
            PaymentStatus::Completed
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::NeedsReview
        ) && left > 0,
        held_for_review: p.status == PaymentStatus::NeedsReview,
        needs_made_outside: p.gateway == tijori_core::gateway::GatewayKind::Esewa,
        answers: a
            .answers
            .iter()
            .map(|r| {
                serde_json::json!({
                    "kind": r.kind, "http_status": r.http_status, "body": r.body,
                    "received_at": t(r.received_at),
                })
            })
            .collect(),
        refunds: a
            .refunds
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id.to_string(), "amount": r.amount.to_major_string(),
                    "status": r.status.as_str(), "reason": r.reason, "detail": r.detail,
                    "restock": r.restock, "resolution": r.resolution,
                    "created_at": t(r.created_at), "updated_at": t(r.updated_at),
                })
            })
            .collect(),
        deliveries: a
            .deliveries
            .iter()
            .map(|d| {
                serde_json::json!({
                    "id": d.id, "event": d.event, "status": d.status, "duplicate": d.duplicate,
                    "outcome": d.outcome, "detail": d.detail, "body": d.body,
                    "received_at": t(d.received_at),
                })
            })
            .collect(),
        events: a
            .events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id, "kind": e.kind.as_str(), "detail": e.detail,
                    "created_at": t(e.created_at), "resolved_at": e.resolved_at.map(t),
                    "resolved_by": e.resolved_by, "resolution": e.resolution,
                })
            })
            .collect(),
    }
}

/// The refund form, as sent from the payment's page and again from its confirmation.
#[derive(Deserialize, Serialize)]
struct RefundForm {
    csrf_token: String,
    /// Major units; empty for everything that is left.
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    restock: Option<String>,
    /// eSewa has no refund API: the reference of the refund made in its portal.
    #[serde(default)]
    made_outside: String,
    /// Made when the confirmation was shown; the refund is made once per key.
    #[serde(default)]
    key: String,
}

impl RefundForm {
    fn order(&self) -> Result<RefundOrder, ApiError> {
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(ApiError::bad_request(
                "validation_error",
                "reason: say why the money goes back (up to 500 characters)",
            ));
        }
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(RefundOrder {
            amount: given(&self.amount),
            reason: Some(reason.to_owned()),
            restock: self.restock.is_some(),
            force: false,
            made_outside: given(&self.made_outside),
        })
    }
}

/// The confirmation: what will be refunded, from which payment, and whether the
/// items go back on the shelf, with a one-time key for the refund itself.
async fn review(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> PageResult {
    check_csrf_field(&s, &form.csrf_token)?;
    let id: PaymentId = parse_id(&id)?;
    let order = form.order()?;
    let audit = state.tijori.payment_audit(&s.user, &id).await?;
    let p = view(&audit);
    // Read now so that a typo is caught before the confirmation, and shown as the
    // gateway will take it; the refund checks it again against what is left then.
    let amount = match &order.amount {
        Some(text) => Money::parse_major(text, audit.payment.amount.currency())
            .map_err(|e| ApiError::bad_request("validation_error", format!("amount: {e}")))?
            .to_major_string(),
        None => p.left.clone(),
    };
    let key = RefundId::generate().to_string();
    Ok(Page::new(
        "admin_refund_confirm.html",
        context! {
            p,
            amount,
            full => order.amount.is_none(),
            reason => order.reason,
            restock => order.restock,
            made_outside => order.made_outside,
            key,
        },
    ))
}

/// Makes the refund confirmed, once per form; back to the payment's page.
async fn refund(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let id: PaymentId = parse_id(&id)?;
    let order = form.order()?;
    let key = IdempotencyKey::parse(&form.key).map_err(|_| {
        ApiError::bad_request(
            "validation_error",
            "key: confirm the refund from its confirmation page",
        )
    })?;
    let shown = match state.tijori.refund_once(&s.user, &id, &order, &key).await? {
        RefundOnce::Made(_) => "made",
        RefundOnce::AlreadyMade => "already",
    };
    Ok(Redirect::to(&format!("{}?refund={shown}", here(&id))))
}
