//! Sandbox-only test controls under `/esewa/_sandbox/` (not part of eSewa's API; no
//! authentication). Errors are `{"error": "…"}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::store::Action;
use super::EsewaSettings;
use crate::Sandbox;

/// How many payments `GET /esewa/_sandbox/payments` lists.
const RECENT: usize = 20;

/// `GET /esewa/_sandbox/settings`
pub(super) async fn get_settings(State(sandbox): State<Sandbox>) -> Json<EsewaSettings> {
    Json(sandbox.esewa().settings())
}

/// `PUT /esewa/_sandbox/settings`: a full or **partial** JSON object; the keys given
/// replace the current values, the others are kept. Unknown keys, wrong types, an
/// empty product code or secret and an `outage_status` that is not an HTTP status are
/// rejected with 400 and change nothing. Answers with the resulting settings.
pub(super) async fn put_settings(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let changes: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let Some(changes) = changes.as_object() else {
        return error(StatusCode::BAD_REQUEST, "expected a JSON object".to_owned());
    };
    let control = sandbox.esewa();
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
    let settings: EsewaSettings = match serde_json::from_value(Value::Object(merged)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid settings: {e}")),
    };
    if settings.product_code.trim().is_empty() || settings.secret_key.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "product_code and secret_key may not be empty".to_owned(),
        );
    }
    if !(100..=599).contains(&settings.outage_status) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "outage_status {} is not an HTTP status",
                settings.outage_status
            ),
        );
    }
    tracing::info!(
        product_code = %settings.product_code,
        auto_complete = settings.auto_complete,
        outcome = settings.outcome.as_str(),
        fault = settings.fault.as_str(),
        "esewa sandbox: settings changed"
    );
    state.settings = settings.clone();
    Json(settings).into_response()
}

/// `GET /esewa/_sandbox/payments`: the most recent payments, newest first.
pub(super) async fn list_payments(State(sandbox): State<Sandbox>) -> Json<Vec<Value>> {
    Json(sandbox.esewa().recent_payments(RECENT))
}

/// `GET /esewa/_sandbox/payments/{transaction_uuid}`
pub(super) async fn get_payment(
    State(sandbox): State<Sandbox>,
    Path(uuid): Path<String>,
) -> Response {
    match sandbox.esewa().payment(&uuid) {
        Some(record) => Json(record).into_response(),
        None => unknown(&uuid),
    }
}

/// `POST /esewa/_sandbox/payments/{transaction_uuid}/{action}` with `complete`,
/// `pending`, `ambiguous`, `cancel`, `expire`, `refund` or `partial_refund` (esewa.md
/// §13): answers with the record (with `redirect_url`, where the browser would be
/// sent); 404 for an unknown uuid or action, 409 when the payment's status does not
/// allow it.
pub(super) async fn payment_action(
    State(sandbox): State<Sandbox>,
    Path((uuid, action)): Path<(String, String)>,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown action `{action}` (use complete, pending, ambiguous, cancel, expire, refund or partial_refund)"
            ),
        );
    };
    let control = sandbox.esewa();
    if control.payment(&uuid).is_none() {
        return unknown(&uuid);
    }
    match control.act(&uuid, action) {
        Ok(record) => Json(record).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

fn unknown(uuid: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no payment with transaction_uuid `{uuid}`"),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
