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
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::{Caller, Json};
use crate::openapi::{BadToken, CrossSite, Gateway, Internal, JsonBody, SignedIn, SlowBody};
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

#[derive(Serialize, ToSchema)]
struct WebhookAnswer {
    received: bool,
    /// What tijori made of it.
    #[schema(examples(
        "verified",
        "already_settled",
        "duplicate",
        "ignored",
        "webhook_contradicted"
    ))]
    outcome: &'static str,
    /// An identical body was delivered before.
    duplicate: bool,
}

/// Public and hostile: the signature is checked over the raw bytes before anything
/// is parsed or stored.
#[utoipa::path(
    post, path = "/api/payments/chapa/webhook/", tag = "payments", summary = "Chapa's webhook",
    description = "Public. `x-chapa-signature` must be the hex HMAC-SHA256 of the raw body \
        with the webhook secret (`CHAPA_WEBHOOK_SECRET`); it is checked before the body is \
        parsed, and the constant `chapa-signature` alone is refused. Every authentic delivery \
        is recorded (repeats marked duplicate); the payment is then looked up with Chapa's \
        verify and settled on that answer only. When verify disagrees or fails, the answer \
        is still 200 and an operator event is recorded. A `charge.refunded` notice (a refund \
        made through tijori or in Chapa's dashboard) is looked up the same way: the payment \
        becomes refunded, a refund of ours whose outcome was unknown is settled, and a \
        refund made elsewhere is put before the operator (`refund_found`).",
    request_body(content = Object, description = "Chapa's event (chapa.md §5.2).",
        content_type = "application/json"),
    responses(
        (status = 200, description = "Received.", body = inline(WebhookAnswer)),
        (status = 400, description = "Authentic, but not a body tijori can read \
            (`invalid_webhook`).", body = ErrorBody),
        (status = 401, description = "Missing or wrong signature (`invalid_signature`); \
            nothing is stored. Also: an `Authorization: Token …` or `Bearer …` header whose \
            token is unknown, expired or revoked (`unauthenticated`): on every endpoint, \
            public ones included.", body = ErrorBody),
        (status = 403, description = "Sent by a browser from another site \
            (`cross_origin_refused`).", body = ErrorBody),
        (status = 404, description = "Chapa is not configured (`not_found`).", body = ErrorBody),
        SlowBody,
        (status = 413, description = "The body is larger than 16 KiB (`payload_too_large`).",
            body = ErrorBody),
        (status = 503, description = "Authentic, but it could not be recorded now \
            (`unavailable`); deliver again.", body = ErrorBody),
    )
)]
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
#[derive(Serialize, ToSchema)]
struct CallbackAnswer {
    received: bool,
}

/// Chapa's server-to-server GET after a payment: a signal to verify now.
///
/// Anyone can call it, so its route spends an allowance per client address (never
/// per `trx_ref`, which the caller makes up), and its answer is the same whether the reference names
/// a payment or not, and whatever Chapa then said: a gateway that could not answer
/// leaves the payment to the reconciler.
#[utoipa::path(
    get, path = "/api/payments/chapa/callback/", tag = "payments", summary = "Chapa's callback",
    description = "A signal only: the payment named by `trx_ref` is verified with Chapa and \
        settled on that answer. The answer is the same whether the reference names a payment \
        or not, and whatever Chapa then says (a lookup that failed is left to the \
        reconciler). Limited per client address (`TIJORI_CALLBACK_LIMIT` a minute), never \
        per reference.",
    params(
        ("trx_ref" = String, Query, description = "Chapa's name for the payment's `tx_ref` \
            (`tx_ref` is accepted too)."),
        ("ref_id" = Option<String>, Query, nullable = false),
        ("status" = Option<String>, Query, nullable = false,
            description = "Ignored: Chapa's verify decides."),
    ),
    responses(
        (status = 200, description = "Taken. Says nothing about the payment.",
            body = inline(CallbackAnswer)),
        (status = 400, description = "No trx_ref (`validation_error`).", body = ErrorBody),
        BadToken,
        (status = 429, description = "Too many callbacks from this client address this minute \
            (`rate_limited`); see `Retry-After`.", body = ErrorBody),
        Internal,
    )
)]
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

/// Exactly one of `plan_id` and `order_id`.
#[derive(Deserialize, ToSchema)]
struct WidgetBody {
    token: String,
    /// Paisa, as the widget reports it.
    amount: i64,
    #[schema(nullable = false)]
    plan_id: Option<String>,
    #[schema(nullable = false)]
    order_id: Option<String>,
}

/// Khalti's legacy widget: the browser's token is verified (and the money captured)
/// by the server with the secret key, after the amount is checked against the price.
#[utoipa::path(
    post, path = "/api/payments/khalti/widget/verify/", tag = "payments",
    summary = "Verify a Khalti widget (KPG-1) payment",
    description = "The browser sends the widget's token and amount (paisa) and what it paid \
        for. The amount must be the plan's or order's price, else nothing is captured (400 \
        `amount_mismatch`). The server then calls Khalti's `payment/verify/` with the secret \
        key and settles on its answer. A token pays for one payment only; verifying it again \
        answers that payment.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    request_body = inline(WidgetBody),
    responses(
        (status = 200, description = "Paid: as verify.", body = VerifyView),
        (status = 202, description = "Khalti has not completed it.", body = VerifyView),
        (status = 400, description = "Malformed (`validation_error`, `invalid_json`); \
            `amount_mismatch`; the item's currency is not NPR (`unsupported`); or Khalti \
            refused the token (`gateway_rejected`).", body = ErrorBody),
        SignedIn,
        CrossSite,
        (status = 404, description = "No such plan or order (or not the caller's) \
            (`not_found`).", body = ErrorBody),
        JsonBody,
        (status = 409, description = "The token was used by someone else (`token_used`), the \
            order cannot be paid (`order_not_pending`), or the payment is held for review.",
            body = ErrorBody),
        (status = 429, description = "Too many widget payments by this user this minute \
            (`TIJORI_CHECKOUT_LIMIT`, `rate_limited`); see `Retry-After`.", body = ErrorBody),
        Gateway,
    )
)]
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
