//! /api/subscriptions/: plans, initiate, verify, me.

use crate::idempotency::idempotent;
use crate::layers::{limit, spend, Limit};
use crate::limits::Checkout;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::gateway::GatewayKind;
use tijori_core::id::PaymentId;
use tijori_core::service::PaymentKey;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use tijori_core::subscription::PlanChange;

use crate::views::{ChangeView, PlanView, SubscriptionView, VerifyView};
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/subscriptions/plans/", get(plans))
        .route(
            "/api/subscriptions/initiate/",
            post(initiate)
                .route_layer(from_fn_with_state(
                    limit(state, Limit::Checkout(Checkout::Initiate)),
                    spend,
                ))
                .route_layer(from_fn_with_state(state.clone(), idempotent)),
        )
        .route(
            "/api/subscriptions/verify/",
            post(verify).route_layer(from_fn_with_state(limit(state, Limit::Verify), spend)),
        )
        .route("/api/subscriptions/me/", get(me))
}

async fn plans(State(state): State<AppState>) -> Result<Json<Vec<PlanView>>, ApiError> {
    let plans = state.tijori.plans().await?;
    Ok(Json(plans.iter().map(PlanView::from).collect()))
}

#[derive(Deserialize)]
struct InitiateBody {
    plan_id: String,
    gateway: Option<String>,
    /// What to do with the plan held now if this is another: "queue" (the default)
    /// or "switch_now".
    change: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct InitiatedView {
    payment_id: String,
    payment_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pidx: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_ref: Option<String>,
    /// eSewa's reference for the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_uuid: Option<String>,
    /// eSewa's signed form, for a client that posts it itself (`payment_url` is a page
    /// that posts it).
    #[serde(skip_serializing_if = "Option::is_none")]
    form: Option<crate::views::FormView>,
    /// What paying will do to the customer's paid time.
    change: ChangeView,
}

pub(crate) fn parse_gateway(gateway: Option<&str>) -> Result<GatewayKind, ApiError> {
    gateway
        .unwrap_or("khalti")
        .parse()
        .map_err(|e: String| ApiError::bad_request("validation_error", format!("gateway: {e}")))
}

/// Reads the customer's choice for the plan they hold: "queue" when absent.
pub(crate) fn parse_change(change: Option<&str>) -> Result<PlanChange, ApiError> {
    match change {
        None | Some("") => Ok(PlanChange::Queue),
        Some(text) => PlanChange::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "validation_error",
                "change: must be \"queue\" or \"switch_now\"",
            )
        }),
    }
}

pub(crate) async fn start_subscription(
    state: &AppState,
    user: &tijori_core::account::User,
    plan_id: &str,
    gateway: GatewayKind,
    change: PlanChange,
    attempt: Option<&tijori_core::idempotency::Attempt>,
) -> Result<InitiatedView, ApiError> {
    let (payment, preview) = state
        .tijori
        .initiate_subscription(user, plan_id, gateway, change, attempt)
        .await?;
    let provider_ref = payment.provider_ref.clone();
    Ok(InitiatedView {
        payment_id: payment.id.to_string(),
        payment_url: payment.payment_url.clone().unwrap_or_default(),
        expires_at: payment.expires_at,
        pidx: provider_ref
            .clone()
            .filter(|_| gateway == GatewayKind::Khalti),
        tx_ref: provider_ref
            .clone()
            .filter(|_| gateway == GatewayKind::Chapa),
        transaction_uuid: provider_ref.filter(|_| gateway == GatewayKind::Esewa),
        form: state.tijori.checkout_form(&payment).map(Into::into),
        change: ChangeView::from(&preview),
    })
}

impl InitiatedView {
    pub(crate) fn payment_url(&self) -> &str {
        &self.payment_url
    }
}

async fn initiate(
    State(state): State<AppState>,
    caller: Caller,
    attempt: Option<axum::Extension<tijori_core::idempotency::Attempt>>,
    Json(body): Json<InitiateBody>,
) -> Result<Json<InitiatedView>, ApiError> {
    let gateway = parse_gateway(body.gateway.as_deref())?;
    let change = parse_change(body.change.as_deref())?;
    let attempt = crate::idempotency::attempt_of(&attempt);
    Ok(Json(
        start_subscription(
            &state,
            &caller.user,
            &body.plan_id,
            gateway,
            change,
            attempt,
        )
        .await?,
    ))
}

#[derive(Deserialize)]
struct VerifyBody {
    pidx: Option<String>,
    tx_ref: Option<String>,
    transaction_uuid: Option<String>,
    payment_id: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<VerifyBody>,
) -> Result<Response, ApiError> {
    let key = match (
        body.pidx,
        body.tx_ref,
        body.transaction_uuid,
        body.payment_id,
    ) {
        (Some(pidx), None, None, None) => PaymentKey::ProviderRef(GatewayKind::Khalti, pidx),
        (None, Some(tx_ref), None, None) => PaymentKey::ProviderRef(GatewayKind::Chapa, tx_ref),
        (None, None, Some(uuid), None) => PaymentKey::ProviderRef(GatewayKind::Esewa, uuid),
        (None, None, None, Some(id)) => {
            PaymentKey::Id(PaymentId::parse(&id).ok_or_else(|| ApiError::not_found("payment"))?)
        }
        _ => {
            return Err(ApiError::bad_request(
                "validation_error",
                "send exactly one of pidx, tx_ref, transaction_uuid or payment_id",
            ))
        }
    };
    let verification = state.tijori.verify(&caller.user, &key).await?;
    let (status, view) = VerifyView::from_verification(&verification, state.tijori.now());
    Ok((status, Json(view)).into_response())
}

async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    match state.tijori.my_holding(&caller.user.id).await? {
        Some(holding) => {
            Ok(Json(SubscriptionView::new(&holding, state.tijori.now())).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "you have no subscription",
        )),
    }
}
