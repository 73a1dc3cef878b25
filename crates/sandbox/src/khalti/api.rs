//! The simulated Khalti REST API: initiate, lookup, refund. The legacy KPG-1 routes
//! are in `widget_api` and use the helpers here.
//!
//! Every call goes through [`prelude`]: latency, then the injected fault, then DRF-style
//! authentication (khalti.md §2), then body parsing. Only then the endpoint runs.
//! ([`public_prelude`] is the same without authentication, for the legacy calls that
//! carry the public key in the body.)

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::store::{RefundError, Status};
use super::validate::{self, FieldErrors};
use super::{drf, Fault, KhaltiControl};
use crate::time::khalti_timestamp;
use crate::Sandbox;

/// How long the `timeout` fault holds a request before giving up.
const TIMEOUT_HOLD: Duration = Duration::from_secs(60);

/// `POST /khalti/api/v2/epayment/initiate/` (khalti.md §3).
pub(super) async fn initiate(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.khalti();
    let data = match prelude(&control, &headers, &body).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let request = match validate::initiate(&data) {
        Ok(request) => request,
        Err(errors) => return validation_error(errors),
    };
    let mut state = control.lock();
    let payment = state.create(request, Utc::now());
    tracing::info!(
        pidx = %payment.pidx,
        amount = payment.req.amount,
        purchase_order_id = %payment.req.purchase_order_id,
        "khalti sandbox: payment initiated"
    );
    Json(json!({
        "pidx": payment.pidx,
        "payment_url": control.payment_url(&payment.pidx),
        "expires_at": khalti_timestamp(payment.expires_at),
        "expires_in": payment.expires_in,
    }))
    .into_response()
}

/// `POST /khalti/api/v2/epayment/lookup/` (khalti.md §5).
pub(super) async fn lookup(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.khalti();
    let data = match prelude(&control, &headers, &body).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let Some(obj) = data.as_object() else {
        return validation_error(validate::not_an_object(&data));
    };
    let pidx = match drf::char_field(obj.get("pidx"), true) {
        Ok(Some(pidx)) => pidx,
        Ok(None) => unreachable!("required field"),
        Err(msg) => return field_error("pidx", msg),
    };
    let mut state = control.lock();
    let Some(payment) = state.lookup(&pidx, Utc::now()) else {
        return not_found();
    };
    // khalti.md §5.2: Expired and User canceled answer 400 with the normal body.
    let code = match payment.status {
        Status::Expired | Status::UserCanceled => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    (code, Json(payment.lookup_body())).into_response()
}

/// `POST /khalti/api/merchant-transaction/{transaction_id}/refund/` (khalti.md §6).
///
/// Body `{}` refunds what is left; `{"amount": <paisa>}` refunds part of it (an
/// integer, or anything DRF's IntegerField takes, e.g. the docs' `50.00`). `mobile`
/// (bank payments) is accepted and ignored: every simulated payment is a wallet
/// payment. khalti.md §12 q8 documents only the success body; the error bodies here
/// are ours, in Khalti's usual envelopes.
pub(super) async fn refund(
    State(sandbox): State<Sandbox>,
    Path(transaction_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.khalti();
    let data = match prelude(&control, &headers, &body).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let Some(obj) = data.as_object() else {
        return validation_error(validate::not_an_object(&data));
    };
    let amount = match drf::integer_field(obj.get("amount"), false) {
        Ok(Some(a)) if a < 1 => {
            return field_error("amount", "Ensure this value is greater than or equal to 1.")
        }
        Ok(a) => a,
        Err(msg) => return field_error("amount", msg),
    };
    let mut state = control.lock();
    // A legacy widget transaction is refunded by its idx through this same route
    // (khalti.md §9.5: legacy transactions live under `merchant-transaction/<idx>/`).
    if state.widget.has_idx(&transaction_id) {
        return match state.widget_refund(&transaction_id, amount) {
            Ok(txn) => {
                tracing::info!(token = %txn.token, state = %txn.state, "khalti sandbox: widget refund");
                Json(json!({"detail": "Transaction refund successful."})).into_response()
            }
            Err(e) => refund_error(e),
        };
    }
    match state.refund(&transaction_id, amount, Utc::now()) {
        Ok(payment) => {
            tracing::info!(pidx = %payment.pidx, status = %payment.status, "khalti sandbox: refund");
            Json(json!({"detail": "Transaction refund successful."})).into_response()
        }
        Err(e) => refund_error(e),
    }
}

fn refund_error(error: RefundError) -> Response {
    match error {
        RefundError::NotFound => not_found(),
        RefundError::AlreadyRefunded => detail_error("Transaction already refunded."),
        RefundError::NotRefundable(status) => detail_error(&format!(
            "Transaction with status {status} cannot be refunded."
        )),
        RefundError::AmountTooLarge { refundable } => field_error(
            "amount",
            &format!(
                "Refund amount cannot be greater than the refundable amount ({refundable} paisa)."
            ),
        ),
    }
}

/// Any other method on an API route. DRF authenticates before it checks the method,
/// so an unauthenticated GET gets the 401, an authenticated one the 405.
pub(super) async fn method_not_allowed(
    State(sandbox): State<Sandbox>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let control = sandbox.khalti();
    if let Err(response) = prelude(&control, &headers, &Bytes::new()).await {
        return response;
    }
    not_allowed(&method, "POST, OPTIONS")
}

/// 405 in DRF's shape, with `Allow: <allow>`.
pub(super) fn not_allowed(method: &Method, allow: &'static str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, allow)],
        Json(json!({"detail": format!("Method \"{method}\" not allowed.")})),
    )
        .into_response()
}

/// Latency, fault, authentication and body parsing, in that order.
pub(super) async fn prelude(
    control: &KhaltiControl,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Response> {
    let secret = latency_and_fault(control).await?;
    authenticate(headers, &secret).map_err(unauthorized)?;
    parse_body(headers, body).map_err(|(status, detail)| detail_only(status, &detail))
}

/// [`prelude`] without authentication, for the legacy KPG-1 calls that carry the
/// public key in the body (khalti.md §9.2). The `Authorization` header is ignored.
pub(super) async fn public_prelude(
    control: &KhaltiControl,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Response> {
    latency_and_fault(control).await?;
    parse_body(headers, body).map_err(|(status, detail)| detail_only(status, &detail))
}

/// Waits out the latency and answers the injected fault, if any; returns the secret
/// key as it was when the request arrived.
async fn latency_and_fault(control: &KhaltiControl) -> Result<String, Response> {
    let (latency_ms, fault, secret) = {
        let mut state = control.lock();
        let fault = state.take_fault();
        (
            state.settings.latency_ms,
            fault,
            state.settings.secret_key.clone(),
        )
    };
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    if let Some(response) = fault_response(fault).await {
        return Err(response);
    }
    Ok(secret)
}

async fn fault_response(fault: Fault) -> Option<Response> {
    match fault {
        Fault::None => None,
        Fault::Timeout => {
            tracing::info!("khalti sandbox: injected timeout, holding the request");
            tokio::time::sleep(TIMEOUT_HOLD).await;
            Some(nginx_page(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Time-out",
            ))
        }
        Fault::ServerError => {
            tracing::info!("khalti sandbox: injected server error");
            Some(nginx_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            ))
        }
        Fault::Garbage => {
            tracing::info!("khalti sandbox: injected garbage body");
            Some(
                Html(
                    "<!DOCTYPE html>\n<html><head><title>Khalti</title></head>\
                     <body><h1>We'll be back soon!</h1>\
                     <p>Khalti is undergoing scheduled maintenance.</p></body></html>\n",
                )
                .into_response(),
            )
        }
    }
}

/// An error page like the one nginx serves in front of an application.
fn nginx_page(status: StatusCode, title: &str) -> Response {
    (
        status,
        Html(format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n\
             <center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n\
             </body>\r\n</html>\r\n"
        )),
    )
        .into_response()
}

/// DRF `TokenAuthentication` with keyword `Key` (khalti.md §2).
/// Returns the 401 `detail` on failure.
fn authenticate(headers: &HeaderMap, secret: &str) -> Result<(), &'static str> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    // Python's bytes.split(): runs of ASCII whitespace.
    let parts: Vec<&[u8]> = raw
        .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
        .filter(|part| !part.is_empty())
        .collect();
    match parts.as_slice() {
        [keyword, ..] if keyword.eq_ignore_ascii_case(b"key") => {}
        _ => return Err("Authentication credentials were not provided."),
    }
    let token = match parts.as_slice() {
        [_] => return Err("Invalid token header. No credentials provided."),
        [_, token] => *token,
        _ => return Err("Invalid token header. Token string should not contain spaces."),
    };
    let Ok(token) = std::str::from_utf8(token) else {
        return Err("Invalid token header. Token string should not contain invalid characters.");
    };
    if token != secret {
        return Err("Invalid token.");
    }
    Ok(())
}

/// khalti.md §2: `{"detail": …, "status_code": 401}`. Whether Khalti adds
/// `status_code` to DRF's "Invalid token header…" messages is unconfirmed; we add it
/// to every 401 for a uniform envelope. DRF also sends `WWW-Authenticate: Key`.
fn unauthorized(detail: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Key")],
        Json(json!({"detail": detail, "status_code": 401})),
    )
        .into_response()
}

/// DRF's default parsers: JSON and form-encoded bodies; an empty body is `{}`. Returns
/// the error status and `detail` on failure.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, (StatusCode, String)> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|e| {
            // DRF: ParseError("JSON parse error - %s"), HTTP 400.
            (StatusCode::BAD_REQUEST, format!("JSON parse error - {e}"))
        }),
        "application/x-www-form-urlencoded" => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("Form parse error - {e}")))?;
            // Django's QueryDict: the last value of a repeated key wins.
            let obj: Map<String, Value> = pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            Ok(Value::Object(obj))
        }
        // DRF's UnsupportedMediaType (415). Multipart, which DRF would also parse, is
        // not supported by the sandbox.
        _ => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported media type \"{content_type}\" in request."),
        )),
    }
}

fn detail_only(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({"detail": detail}))).into_response()
}

/// khalti.md §2: unknown pidx. §12 q1: we answer 404 (DRF `NotFound`).
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": "Not found.", "error_key": "validation_error"})),
    )
        .into_response()
}

/// `{"detail": …, "error_key": "validation_error"}`, 400.
pub(super) fn detail_error(detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"detail": detail, "error_key": "validation_error"})),
    )
        .into_response()
}

pub(super) fn field_error(field: &str, msg: &str) -> Response {
    let mut errors = FieldErrors::new();
    errors.insert(field.to_owned(), json!([msg]));
    validation_error(errors)
}

/// `{field: [msg], …, "error_key": "validation_error"}`, 400 (khalti.md §3.3; §12 q1:
/// the code is assumed 400).
pub(super) fn validation_error(mut errors: FieldErrors) -> Response {
    errors.insert("error_key".to_owned(), json!("validation_error"));
    (StatusCode::BAD_REQUEST, Json(Value::Object(errors))).into_response()
}
