//! /api/subscriptions/: plans, initiate, verify, me.

use crate::layers::{self, limit, spend, Limit};
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
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::{Caller, Json};
use crate::openapi::{
    BadToken, CrossSite, Gateway, IdempotencyKey, Internal, JsonBody, KeyReused, SignedIn,
};
use tijori_core::subscription::PlanChange;

use crate::views::{ChangeView, PlanView, SubscriptionView, VerifyView};
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/subscriptions/plans/", get(plans))
        .route(
            "/api/subscriptions/initiate/",
            layers::idempotent_and_limited(post(initiate), state, Checkout::Initiate),
        )
        .route(
            "/api/subscriptions/verify/",
            post(verify).route_layer(from_fn_with_state(limit(state, Limit::Verify), spend)),
        )
        .route("/api/subscriptions/me/", get(me))
}

#[utoipa::path(
    get, path = "/api/subscriptions/plans/", tag = "subscriptions", summary = "Plans on offer",
    operation_id = "plans",
    responses(
        (status = 200, description = "The active plans, cheapest first.", body = Vec<PlanView>),
        BadToken,
        Internal,
    )
)]
async fn plans(State(state): State<AppState>) -> Result<Json<Vec<PlanView>>, ApiError> {
    let plans = state.tijori.plans().await?;
    Ok(Json(plans.iter().map(PlanView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
struct InitiateBody {
    plan_id: String,
    #[schema(schema_with = initiate_gateway)]
    gateway: Option<String>,
    #[schema(schema_with = initiate_change)]
    change: Option<String>,
}

/// (`schema_with` takes no doc comment: the field's words are here.)
fn initiate_gateway() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::gateway()
        .description(Some("The gateway to pay through."))
        .default(Some("khalti".into()))
}

fn initiate_change() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::plan_change().description(Some(
        "What to do with the plan held now when this is another plan. Ignored when nothing \
         paid is ahead, or it is the same plan (that extends it).",
    ))
}

/// A checkout opened for a plan.
#[derive(Serialize, ToSchema)]
#[schema(as = Initiated)]
pub(crate) struct InitiatedView {
    payment_id: String,
    /// Send the customer's browser here.
    #[schema(format = Uri)]
    payment_url: String,
    /// When the gateway says the link expires (Khalti).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    expires_at: Option<DateTime<Utc>>,
    /// Khalti only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pidx: Option<String>,
    /// Chapa only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    tx_ref: Option<String>,
    /// eSewa only: the payment at eSewa.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    transaction_uuid: Option<String>,
    /// eSewa only: its signed form, for a client that posts it itself (`payment_url`
    /// is a page that posts it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, inline)]
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

#[utoipa::path(
    post, path = "/api/subscriptions/initiate/", tag = "subscriptions",
    summary = "Start paying for a plan", operation_id = "initiate_subscription",
    description = "Creates the payment, opens the gateway's hosted checkout, and returns the \
        URL to send the customer to. If the customer holds another plan, the new one is \
        queued to start when the paid time ends (`change: \"queue\"`, the default), or \
        starts now with the unused value of the old plan turned into extra days, pro rata by \
        price (`change: \"switch_now\"`). The answer's `change` says what paying will do, \
        before the customer pays; the choice is kept with the payment and applied when it \
        is paid.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(IdempotencyKey),
    request_body = inline(InitiateBody),
    responses(
        (status = 200, description = "Checkout opened.", body = InitiatedView),
        (status = 400, description = "Bad request: malformed body or an unknown gateway or \
            change (`validation_error`, `invalid_json`), a gateway that cannot take the \
            plan's currency (`unsupported`), a malformed `Idempotency-Key` \
            (`invalid_idempotency_key`), or the gateway rejected the request \
            (`gateway_rejected`, with its reason).", body = ErrorBody),
        SignedIn,
        CrossSite,
        (status = 404, description = "No such plan (`not_found`).", body = ErrorBody),
        JsonBody,
        (status = 409, description = "A request with this `Idempotency-Key` is still being \
            handled (`idempotency_in_progress`): retry shortly.", body = ErrorBody),
        KeyReused,
        (status = 429, description = "Too many checkouts opened by this user this minute \
            (`TIJORI_CHECKOUT_LIMIT`, `rate_limited`); see `Retry-After`.", body = ErrorBody),
        Internal,
        Gateway,
    )
)]
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

/// Exactly one of the four.
#[derive(Deserialize, ToSchema)]
struct VerifyBody {
    /// Khalti's reference.
    #[schema(nullable = false)]
    pidx: Option<String>,
    /// Chapa's reference.
    #[schema(nullable = false)]
    tx_ref: Option<String>,
    /// eSewa's reference.
    #[schema(nullable = false)]
    transaction_uuid: Option<String>,
    /// tijori's id of the payment.
    #[schema(nullable = false)]
    payment_id: Option<String>,
}

#[utoipa::path(
    post, path = "/api/subscriptions/verify/", tag = "subscriptions",
    summary = "Verify a payment at its gateway", operation_id = "verify_payment",
    description = "Looks the payment up at the gateway (if it is still open, or is a failed \
        Chapa attempt whose checkout still lives: Chapa lets the customer try again on the \
        same checkout, so a later success is found) and settles it. Send exactly one of \
        `pidx`, `tx_ref`, `transaction_uuid`, `payment_id`.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    request_body = inline(VerifyBody),
    responses(
        (status = 200, description = "Paid; what it bought is granted (once).", body = VerifyView),
        (status = 202, description = "Not settled yet (initiated or pending, or its checkout \
            is still being opened); check again later.", body = VerifyView),
        (status = 400, description = "Canceled, expired, failed or refunded (`status: failed` \
            with `payment_status`), or a malformed request (the error envelope: \
            `validation_error`, `invalid_json`).", body = VerifyView),
        SignedIn,
        CrossSite,
        (status = 404, description = "Unknown payment, or not the caller's (`not_found`).",
            body = ErrorBody),
        JsonBody,
        (status = 409, description = "The gateway reports a different amount than was \
            charged: held for review, not granted (`status: failed`, `payment_status: \
            needs_review`).", body = VerifyView),
        (status = 429, description = "Too many verifications by this user this minute \
            (`rate_limited`); see `Retry-After`.", body = ErrorBody),
        Internal,
        Gateway,
    )
)]
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

#[utoipa::path(
    get, path = "/api/subscriptions/me/", tag = "subscriptions",
    summary = "The caller's subscription", operation_id = "my_subscription",
    description = "What the customer's paid periods add up to now: the current plan and \
        what is queued after it.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The subscription.", body = SubscriptionView),
        SignedIn,
        (status = 404, description = "No subscription (`not_found`).", body = ErrorBody),
        Internal,
    )
)]
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
