//! What gateways tell us on their own: Chapa's signed webhook and its callback, and the
//! Khalti widget's token. All of them are signals; each payment is settled on the
//! gateway's verify answer.

use crate::layers::{limit, spend, Limit};
use crate::limits::Checkout;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tijori_core::gateway::{GatewayKind, WebhookError};
use tijori_core::service::WidgetTarget;

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::views::VerifyView;
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/payments/chapa/webhook/", post(chapa_webhook))
        .route(
            "/api/payments/chapa/callback/",
            get(chapa_callback)
                .route_layer(from_fn_with_state(limit(state, Limit::Callback), spend)),
        )
        .route(
            "/api/payments/khalti/widget/verify/",
            post(widget_verify).route_layer(from_fn_with_state(
                limit(state, Limit::Checkout(Checkout::WidgetVerify)),
                spend,
            )),
        )
}

#[derive(Serialize)]
struct WebhookAnswer {
    received: bool,
    outcome: &'static str,
    duplicate: bool,
}

/// Public and hostile: the signature is checked over the raw bytes before anything
/// is parsed or stored.
async fn chapa_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    match state
        .tijori
        .handle_webhook(GatewayKind::Chapa, &headers, &body)
        .await
    {
        Ok(outcome) => Ok(Json(WebhookAnswer {
            received: true,
            outcome: outcome.outcome.as_str(),
            duplicate: outcome.duplicate,
        })
        .into_response()),
        Err(WebhookError::Unauthenticated(reason)) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            reason,
        )),
        Err(e @ WebhookError::Unsupported(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            e.to_string(),
        )),
        Err(e @ WebhookError::Unavailable(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )),
        Err(e @ WebhookError::Malformed(_)) => {
            Err(ApiError::bad_request("invalid_webhook", e.to_string()))
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    // Chapa's callback spells it trx_ref (chapa.md §3.2); accept our spelling too.
    trx_ref: Option<String>,
    tx_ref: Option<String>,
}

/// Says only that the signal was taken: a caller of this public route learns nothing
/// about the payment.
#[derive(Serialize)]
struct CallbackAnswer {
    received: bool,
}

/// Chapa's server-to-server GET after a payment: a signal to verify now.
///
/// Anyone can call it, so its route spends an allowance per client address (never
/// per `trx_ref`, which the caller makes up), and its answer is the same whether the reference names
/// a payment or not, and whatever Chapa then said: a gateway that could not answer
/// leaves the payment to the reconciler.
async fn chapa_callback(
    State(state): State<AppState>,
    Query(q): Query<CallbackQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CallbackAnswer>, ApiError> {
    let reference = q
        .trx_ref
        .or(q.tx_ref)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("validation_error", "trx_ref is required"))?;
    let query = raw.as_deref().unwrap_or("");
    match state
        .tijori
        .handle_callback(GatewayKind::Chapa, &reference, query)
        .await
    {
        Ok(_) | Err(tijori_core::Error::NotFound(_)) => {}
        Err(tijori_core::Error::Gateway(e)) => {
            tracing::warn!(error = %e, "Chapa callback: the lookup failed; the reconciler will retry");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Json(CallbackAnswer { received: true }))
}

#[derive(Deserialize)]
struct WidgetBody {
    token: String,
    /// Paisa, as the widget reports it.
    amount: i64,
    plan_id: Option<String>,
    order_id: Option<String>,
}

/// Khalti's legacy widget: the browser's token is verified (and the money captured)
/// by the server with the secret key, after the amount is checked against the price.
async fn widget_verify(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<WidgetBody>,
) -> Result<Response, ApiError> {
    let target = match (body.plan_id, body.order_id) {
        (Some(plan), None) => WidgetTarget::Plan(plan),
        (None, Some(order)) => WidgetTarget::Order(order),
        _ => {
            return Err(ApiError::bad_request(
                "validation_error",
                "send exactly one of plan_id or order_id",
            ))
        }
    };
    let verification = state
        .tijori
        .verify_widget(&caller.user, &body.token, body.amount, &target)
        .await?;
    let (status, view) = VerifyView::from_verification(&verification, state.tijori.now());
    Ok((status, Json(view)).into_response())
}
