//! Sandbox-only test controls under `/khalti/_sandbox/` (not part of Khalti's API;
//! no authentication). Errors are `{"error": "…"}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};

use super::store::TransitionError;
use super::{widget_request, KhaltiSettings, TEST_KHALTI_IDS};
use crate::Sandbox;

/// How many payments `GET /khalti/_sandbox/payments` lists.
const RECENT: usize = 20;

/// `GET /khalti/_sandbox/settings`
pub(super) async fn get_settings(State(sandbox): State<Sandbox>) -> Json<KhaltiSettings> {
    Json(sandbox.khalti().settings())
}

/// `PUT /khalti/_sandbox/settings`: a full or **partial** JSON object; the keys given
/// replace the current values, the others are kept. Unknown keys and wrong types are
/// rejected with 400 and change nothing. Answers with the resulting settings.
pub(super) async fn put_settings(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let changes: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let Some(changes) = changes.as_object() else {
        return error(StatusCode::BAD_REQUEST, "expected a JSON object".to_owned());
    };
    let control = sandbox.khalti();
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
    let settings: KhaltiSettings = match serde_json::from_value(Value::Object(merged)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid settings: {e}")),
    };
    if settings.secret_key.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "secret_key may not be empty".to_owned(),
        );
    }
    if settings.public_key.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "public_key may not be empty".to_owned(),
        );
    }
    tracing::info!(?settings, "khalti sandbox: settings changed");
    state.settings = settings.clone();
    Json(settings).into_response()
}

/// `GET /khalti/_sandbox/payments`: the most recent payments, newest first.
pub(super) async fn list_payments(State(sandbox): State<Sandbox>) -> Json<Vec<Value>> {
    Json(sandbox.khalti().recent_payments(RECENT))
}

/// `GET /khalti/_sandbox/payments/{pidx}`
pub(super) async fn get_payment(
    State(sandbox): State<Sandbox>,
    Path(pidx): Path<String>,
) -> Response {
    match sandbox.khalti().payment(&pidx) {
        Some(record) => Json(record).into_response(),
        None => unknown(&pidx),
    }
}

/// `POST /khalti/_sandbox/payments/{pidx}/{complete|cancel|expire}`: answers with the
/// payment's record (including `redirect_url`, where the checkout would have sent the
/// browser); 404 for an unknown pidx or action, 409 when the payment's state does not
/// allow it.
pub(super) async fn payment_action(
    State(sandbox): State<Sandbox>,
    Path((pidx, action)): Path<(String, String)>,
) -> Response {
    let control = sandbox.khalti();
    let now = Utc::now();
    let mut state = control.lock();
    let result = match action.as_str() {
        "complete" => state.complete(&pidx, TEST_KHALTI_IDS[1], now),
        "cancel" => state.cancel(&pidx, now),
        "expire" => state.expire(&pidx, now),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}` (use complete, cancel or expire)"),
            )
        }
    };
    match result {
        Ok(payment) => {
            tracing::info!(pidx = %payment.pidx, status = %payment.status, action, "khalti sandbox: control");
            Json(payment.record(control.public_url())).into_response()
        }
        Err(TransitionError::NotFound) => unknown(&pidx),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `POST /khalti/_sandbox/payments/{pidx}/refund`: a refund made in Khalti's merchant
/// dashboard rather than through the API (khalti.md §6). Body: nothing, or
/// `{"amount": <paisa>}` for part of it. Answers with the record; 404 unknown pidx,
/// 409 when the payment cannot be refunded (or not that much).
pub(super) async fn dashboard_refund(
    State(sandbox): State<Sandbox>,
    Path(pidx): Path<String>,
    body: Bytes,
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
                            "amount must be a whole number of paisa, at least 1".to_owned(),
                        )
                    }
                },
            },
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
        }
    };
    let control = sandbox.khalti();
    let mut state = control.lock();
    match state.dashboard_refund(&pidx, amount, Utc::now()) {
        Ok(payment) => {
            tracing::info!(pidx = %payment.pidx, status = %payment.status, "khalti sandbox: dashboard refund");
            Json(payment.record(control.public_url())).into_response()
        }
        Err(super::store::RefundError::NotFound) => unknown(&pidx),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `POST /khalti/_sandbox/widget/tokens`: JSON `{amount, mobile?, product_identity?,
/// product_name?}` (amount in paisa, ≥ 1000; mobile a test Khalti ID, default
/// 9800000001). Creates a legacy widget transaction that is already `Confirmed`, as if
/// the customer had finished the widget, and answers 201 `{token, idx, amount,
/// mobile}`: the merchant can verify the token now. Unknown keys or wrong types → 400.
pub(super) async fn mint_widget_token(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let Some(obj) = body.as_object() else {
        return error(StatusCode::BAD_REQUEST, "expected a JSON object".to_owned());
    };
    const KEYS: [&str; 4] = ["amount", "mobile", "product_identity", "product_name"];
    if let Some(key) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown key `{key}` (use {})", KEYS.join(", ")),
        );
    }
    let Some(amount) = obj.get("amount").and_then(Value::as_i64) else {
        return error(
            StatusCode::BAD_REQUEST,
            "amount (integer paisa) is required".to_owned(),
        );
    };
    let text = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(format!("{key} must be a string")),
    };
    let (mobile, product_identity, product_name) = match (
        text("mobile"),
        text("product_identity"),
        text("product_name"),
    ) {
        (Ok(m), Ok(i), Ok(n)) => (m, i, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return error(StatusCode::BAD_REQUEST, e)
        }
    };
    let request = widget_request(amount, mobile, product_identity, product_name);
    match sandbox.khalti().mint_widget(request) {
        Ok(record) => (
            StatusCode::CREATED,
            Json(json!({
                "token": record["token"],
                "idx": record["idx"],
                "amount": record["amount"],
                "mobile": record["mobile"],
            })),
        )
            .into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// `GET /khalti/_sandbox/widget/tokens`: the most recent widget transactions, newest
/// first.
pub(super) async fn list_widget_tokens(State(sandbox): State<Sandbox>) -> Json<Vec<Value>> {
    Json(sandbox.khalti().recent_widget_transactions(RECENT))
}

/// `GET /khalti/_sandbox/widget/tokens/{token}` (a token or an idx).
pub(super) async fn get_widget_token(
    State(sandbox): State<Sandbox>,
    Path(token): Path<String>,
) -> Response {
    match sandbox.khalti().widget_transaction(&token) {
        Some(record) => Json(record).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no widget transaction with token or idx `{token}`"),
        ),
    }
}

fn unknown(pidx: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no payment with pidx `{pidx}`"),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
