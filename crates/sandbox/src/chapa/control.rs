//! Sandbox-only test controls under `/chapa/_sandbox/` (not part of Chapa's API; no
//! authentication). Errors are `{"error": "…"}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{Action, ChapaSettings};
use crate::Sandbox;

/// How many payments `GET /chapa/_sandbox/payments` lists.
const RECENT: usize = 20;

/// `GET /chapa/_sandbox/settings`
pub(super) async fn get_settings(State(sandbox): State<Sandbox>) -> Json<ChapaSettings> {
    Json(sandbox.chapa().settings())
}

/// `PUT /chapa/_sandbox/settings`: a full or **partial** JSON object; the keys given
/// replace the current values, the others are kept. Unknown keys, wrong types, an
/// empty secret and a `webhook_url` that is not an http(s) URL are rejected with 400
/// and change nothing. Answers with the resulting settings.
pub(super) async fn put_settings(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let changes: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let Some(changes) = changes.as_object() else {
        return error(StatusCode::BAD_REQUEST, "expected a JSON object".to_owned());
    };
    let control = sandbox.chapa();
    let mut state = control.lock();
    let Ok(Value::Object(mut merged)) = serde_json::to_value(&state.settings) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "settings do not serialize".to_owned(),
        );
    };
    for (key, value) in changes {
        if !merged.contains_key(key) {
            return error(StatusCode::BAD_REQUEST, format!("unknown setting `{key}`"));
        }
        merged.insert(key.clone(), value.clone());
    }
    let settings: ChapaSettings = match serde_json::from_value(Value::Object(merged)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid settings: {e}")),
    };
    if settings.secret_key.trim().is_empty() || settings.webhook_secret.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "secret_key and webhook_secret may not be empty".to_owned(),
        );
    }
    if let Some(url) = &settings.webhook_url {
        let ok = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return error(
                StatusCode::BAD_REQUEST,
                format!("webhook_url `{url}` is not an http(s) URL"),
            );
        }
    }
    tracing::info!(?settings, "chapa sandbox: settings changed");
    state.settings = settings.clone();
    Json(settings).into_response()
}

/// `GET /chapa/_sandbox/payments`: the most recent payments, newest first.
pub(super) async fn list_payments(State(sandbox): State<Sandbox>) -> Json<Vec<Value>> {
    Json(sandbox.chapa().recent_payments(RECENT))
}

/// `GET /chapa/_sandbox/payments/{tx_ref}`: the record, including the callback and
/// webhook delivery logs.
pub(super) async fn get_payment(
    State(sandbox): State<Sandbox>,
    Path(tx_ref): Path<String>,
) -> Response {
    match sandbox.chapa().payment(&tx_ref) {
        Some(record) => Json(record).into_response(),
        None => unknown(&tx_ref),
    }
}

/// `POST /chapa/_sandbox/payments/{tx_ref}/{pay|fail|cancel}`: as the customer on the
/// checkout page (callback and webhook included); answers with the record. 404 for an
/// unknown tx_ref or action, 409 when the payment can no longer change.
pub(super) async fn payment_action(
    State(sandbox): State<Sandbox>,
    Path((tx_ref, action)): Path<(String, String)>,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown action `{action}` (use pay, fail or cancel)"),
        );
    };
    let control = sandbox.chapa();
    if control.payment(&tx_ref).is_none() {
        return unknown(&tx_ref);
    }
    match control.act(&tx_ref, action) {
        Ok(record) => Json(record).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

/// `POST /chapa/_sandbox/payments/{tx_ref}/refund`: a refund made in Chapa's
/// dashboard rather than through the API. Body: nothing, or `{"amount": <cents>}`.
/// Sends `charge.refunded`; answers with the record. 404 unknown tx_ref, 409 when the
/// payment cannot be refunded (or not that much).
pub(super) async fn dashboard_refund(
    State(sandbox): State<Sandbox>,
    Path(tx_ref): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let amount = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match v.get("amount") {
                None | Some(Value::Null) => None,
                Some(a) => match a.as_i64().filter(|a| *a >= 1) {
                    Some(a) => Some(a),
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "amount must be a whole number of cents, at least 1".to_owned(),
                        )
                    }
                },
            },
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
        }
    };
    let control = sandbox.chapa();
    if control.payment(&tx_ref).is_none() {
        return unknown(&tx_ref);
    }
    match control.dashboard_refund(&tx_ref, amount) {
        Ok(record) => Json(record).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

fn unknown(tx_ref: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no payment with tx_ref `{tx_ref}`"),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
