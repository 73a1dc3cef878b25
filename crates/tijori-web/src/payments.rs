//! /api/payments/: a payment's status, and looking it up at the gateway on request.

use crate::layers::{limit, spend, Limit};
use axum::extract::State;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::id::PaymentId;
use tijori_core::service::PaymentKey;
use tijori_core::service::RefundOrder;
use tijori_core::store::RefundStatus;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::{Caller, Json, PathId};
use crate::openapi::{AdminWrite, CrossSite, Gateway, Internal, JsonBody, SignedIn};
use crate::views::PaymentView;
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/payments/{id}/", get(show))
        .route(
            "/api/payments/{id}/refresh/",
            post(refresh).route_layer(from_fn_with_state(limit(state, Limit::Refresh), spend)),
        )
        .route("/api/payments/{id}/refund/", post(refund))
}

#[derive(Deserialize, ToSchema)]
struct RefundBody {
    /// Major units, e.g. "100.00"; everything not refunded yet when left out.
    #[schema(nullable = false)]
    amount: Option<String>,
    #[schema(nullable = false)]
    reason: Option<String>,
    /// Put an order's items back on the shelf.
    #[serde(default)]
    restock: bool,
    /// The operator checked that the earlier refunds whose outcome is unknown did not
    /// happen: they are resolved as failed, with this request's reason.
    #[serde(default)]
    force: bool,
    /// The reference of a refund already made in the gateway's merchant portal:
    /// recorded as done, the gateway is not asked. Required for eSewa, which has no
    /// refund API (400 `refund_made_outside_required` without it).
    #[schema(nullable = false, max_length = 100)]
    made_outside: Option<String>,
}

/// A refund as the operator sees it (the refund answer, the admin API and page).
#[derive(Serialize, ToSchema)]
#[schema(as = Refund)]
pub(crate) struct RefundView {
    #[schema(examples("rfd_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    pub id: String,
    pub payment_id: String,
    #[schema(examples("100.00"))]
    pub amount: String,
    #[schema(schema_with = crate::openapi::currency)]
    pub currency: &'static str,
    #[schema(schema_with = crate::openapi::refund_status)]
    pub status: RefundStatus,
    pub reason: Option<String>,
    /// What the gateway said, or how the outcome became known (a look-up, an
    /// operator).
    pub detail: Option<String>,
    /// The operator asked for the order's items to go back on the shelf.
    pub restock: bool,
    /// The operator (user id) who settled it by hand.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why the operator settled it so.
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&tijori_core::store::Refund> for RefundView {
    fn from(r: &tijori_core::store::Refund) -> Self {
        RefundView {
            id: r.id.to_string(),
            payment_id: r.payment_id.to_string(),
            amount: r.amount.to_major_string(),
            currency: r.amount.currency().code(),
            status: r.status,
            reason: r.reason.clone(),
            detail: r.detail.clone(),
            restock: r.restock,
            resolved_by: r.resolved_by.as_ref().map(|u| u.to_string()),
            resolved_at: r.resolved_at,
            resolution: r.resolution.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct RefundedView {
    payment: PaymentView,
    refund: RefundView,
    /// The order's items went back on the shelf.
    restocked: bool,
}

/// An operator refunds (part of) a payment through its gateway.
#[utoipa::path(
    post, path = "/api/payments/{id}/refund/", tag = "admin",
    summary = "Refund a payment (admin)", operation_id = "refund_payment",
    description = "Asks the payment's gateway (Khalti's or Chapa's refund API) to refund it, \
        in full (the default: everything not refunded yet) or `amount` of it. One refund of a \
        payment is in flight at a time. A full refund revokes what the payment bought (the \
        subscription's unused period; an order becomes refunded, and with `restock` its \
        items go back on the shelf). A refund whose outcome is unknown (no answer from the \
        gateway: 502, 503 or 504) is recorded with a background look-up (`check_refund` \
        job) that settles it from the gateway's answer, and put before the operator \
        (`GET /api/admin/refunds/`, re-check, resolve). Asking again meanwhile is 409 \
        `refund_outcome_unknown`; with `force` the unknown refunds are recorded as failed by \
        the operator (in the audit trail) and the new refund goes ahead.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The payment's id (`pay_…`).")),
    request_body = inline(RefundBody),
    responses(
        (status = 200, description = "Refunded.", body = inline(RefundedView)),
        (status = 400, description = "A bad amount (`invalid_refund_amount`, more than is \
            left), no `made_outside` for eSewa (`refund_made_outside_required`), malformed \
            JSON (`invalid_json`, `validation_error`), or the gateway refused \
            (`gateway_rejected`).", body = ErrorBody),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such payment (`not_found`).", body = ErrorBody),
        JsonBody,
        (status = 409, description = "Not refundable in its status (`not_refundable`), \
            another refund in flight (`refund_in_progress`), or an earlier refund's outcome \
            is unknown (`refund_outcome_unknown`).", body = ErrorBody),
        Internal,
        (status = 502, description = "The gateway answered garbage or refused our \
            credentials (`gateway_bad_answer`, `gateway_misconfigured`): the refund's \
            outcome is unknown.", body = ErrorBody),
        (status = 503, description = "The gateway could not be reached \
            (`gateway_unreachable`, `gateway_unavailable`): the refund's outcome is \
            unknown.", body = ErrorBody),
        (status = 504, description = "The gateway did not answer in time \
            (`gateway_timeout`): the refund's outcome is unknown.", body = ErrorBody),
    )
)]
async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentId>,
    Json(body): Json<RefundBody>,
) -> Result<Json<RefundedView>, ApiError> {
    crate::admin::admin(&caller)?;
    let done = state
        .tijori
        .refund(
            &caller.user,
            &id,
            &RefundOrder {
                amount: body.amount,
                reason: body.reason.filter(|r| !r.trim().is_empty()),
                restock: body.restock,
                force: body.force,
                made_outside: body.made_outside,
            },
        )
        .await?;
    Ok(Json(RefundedView {
        payment: (&done.payment).into(),
        refund: (&done.refund).into(),
        restocked: done.restocked,
    }))
}

#[utoipa::path(
    get, path = "/api/payments/{id}/", tag = "payments", summary = "A payment",
    operation_id = "payment",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The payment's id (`pay_…`).")),
    responses(
        (status = 200, description = "The payment.", body = PaymentView),
        SignedIn,
        (status = 404, description = "Unknown payment, or not the caller's (admins see all) \
            (`not_found`).", body = ErrorBody),
        Internal,
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentId>,
) -> Result<Json<PaymentView>, ApiError> {
    let payment = state
        .tijori
        .payment_for(&caller.user, &PaymentKey::Id(id))
        .await?;
    Ok(Json((&payment).into()))
}

/// "Check payment status" for a customer who closed the gateway's tab: asks the
/// gateway now and settles on its answer.
#[utoipa::path(
    post, path = "/api/payments/{id}/refresh/", tag = "payments",
    summary = "Check a payment's status at the gateway now", operation_id = "refresh_payment",
    description = "For a customer who closed the gateway's tab, and to learn of a refund made \
        at the gateway: looks the payment up whatever its status and settles it. A payment \
        whose checkout never opened is returned as it stands. A completed payment refunded \
        outside tijori (in the gateway's dashboard) becomes refunded (revoking what it \
        bought) or partially refunded, and the operator is told (a `refund_found` event); a \
        refund of ours whose outcome was unknown is settled from the same answer.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The payment's id (`pay_…`).")),
    responses(
        (status = 200, description = "The payment after the check.", body = PaymentView),
        SignedIn,
        CrossSite,
        (status = 404, description = "Unknown payment, or not the caller's (`not_found`).",
            body = ErrorBody),
        (status = 429, description = "Too many status checks by this user this minute \
            (`rate_limited`); see `Retry-After`.", body = ErrorBody),
        Internal,
        Gateway,
    )
)]
async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentId>,
) -> Result<Json<PaymentView>, ApiError> {
    let key = PaymentKey::Id(id);
    let verification = state.tijori.refresh(&caller.user, &key).await?;
    Ok(Json((&verification.payment).into()))
}
