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

use crate::error::ApiError;
use crate::extract::{Caller, Json, PathId};
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

#[derive(Deserialize)]
struct RefundBody {
    /// Major units ("100.00"); everything left when absent.
    amount: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    restock: bool,
    #[serde(default)]
    force: bool,
    /// The reference of a refund already made in the gateway's merchant portal
    /// (required for eSewa, which has no refund API).
    made_outside: Option<String>,
}

/// A refund as the operator sees it (the refund answer, the admin API and page).
#[derive(Serialize)]
pub(crate) struct RefundView {
    pub id: String,
    pub payment_id: String,
    pub amount: String,
    pub currency: &'static str,
    pub status: RefundStatus,
    pub reason: Option<String>,
    /// What the gateway said, or how the outcome became known.
    pub detail: Option<String>,
    pub restock: bool,
    /// Who settled it by hand, when and why.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
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

#[derive(Serialize)]
struct RefundedView {
    payment: PaymentView,
    refund: RefundView,
    restocked: bool,
}

/// An operator refunds (part of) a payment through its gateway.
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
async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentId>,
) -> Result<Json<PaymentView>, ApiError> {
    let key = PaymentKey::Id(id);
    let verification = state.tijori.refresh(&caller.user, &key).await?;
    Ok(Json((&verification.payment).into()))
}
