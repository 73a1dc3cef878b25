//! /api/payments/: a payment's status, and looking it up at the gateway on request.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use tijori_core::id::PaymentId;
use tijori_core::service::PaymentKey;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::views::PaymentView;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{id}/", get(show))
        .route("/api/payments/{id}/refresh/", post(refresh))
}

fn key(id: &str) -> Result<PaymentKey, ApiError> {
    PaymentId::parse(id)
        .map(PaymentKey::Id)
        .ok_or_else(|| ApiError::not_found("payment"))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let payment = state.tijori.payment_for(&caller.user, &key(&id)?).await?;
    Ok(Json((&payment).into()))
}

/// "Check payment status" for a customer who closed the gateway's tab: asks the
/// gateway now and settles on its answer.
async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let key = key(&id)?;
    if let Err(wait) = state.refreshes.check(caller.user.id.as_str()) {
        let seconds = wait.as_secs() + 1;
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many status checks; try again in {seconds} s"),
        )
        .retry_after(seconds));
    }
    let verification = state.tijori.refresh(&caller.user, &key).await?;
    Ok(Json((&verification.payment).into()))
}
