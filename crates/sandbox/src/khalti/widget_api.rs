//! The legacy KPG-1 ("widget") API (khalti.md §9): the client-side DIY-wallet calls
//! `payment/initiate/` and `payment/confirm/` (public key in the body, §9.2), and the
//! merchant's `payment/verify/` (§9.3) and `payment/status/` (§9.4) with
//! `Authorization: Key <secret>`.
//!
//! Like the ePayment routes, every call goes through latency, then the injected fault,
//! then (verify and status only) authentication, then body parsing (JSON or
//! form-encoded), see `api::prelude`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::api::{self, detail_error, field_error, validation_error};
use super::drf;
use super::validate::{self, FieldErrors, AMOUNT_TOO_SMALL, MIN_AMOUNT};
use super::widget::{NewWidgetTxn, WidgetError};
use super::{TEST_KHALTI_IDS, TEST_MPIN, TEST_OTP};
use crate::Sandbox;

/// khalti.md §9.1: wrong wallet or MPIN on initiate.
const BAD_WALLET: &str = "Mobile or pin invalid.";
/// khalti.md §9.1: wrong OTP or MPIN on confirm.
const BAD_CONFIRMATION: &str = "Confirmation code or transaction pin does not match.";
/// khalti.md §9.3: the documented verify error, also used for an unknown token on
/// confirm.
const INVALID_TOKEN: &str = "Invalid token.";
/// Ours: khalti.md does not document the error for a wrong public key.
const INVALID_PUBLIC_KEY: &str = "Invalid public key.";
/// Ours: khalti.md §9.3 / §12 q9 document no amount-mismatch error.
const AMOUNT_MISMATCH: &str = "Amount does not match the transaction amount.";

/// `POST /khalti/api/v2/payment/initiate/` (khalti.md §9.2): the customer's wallet
/// and MPIN, checked against the test wallets (§1.3). Answers `{"token": …}`.
pub(super) async fn initiate(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.khalti();
    let data = match api::public_prelude(&control, &headers, &body).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let (public_key, pin, request) = match initiate_request(&data) {
        Ok(parts) => parts,
        Err(errors) => return validation_error(errors),
    };
    let mut state = control.lock();
    if public_key != state.settings.public_key {
        // khalti.md does not document this error; a DRF field error, our choice.
        return field_error("public_key", INVALID_PUBLIC_KEY);
    }
    if !TEST_KHALTI_IDS.contains(&request.mobile.as_str()) || pin != TEST_MPIN {
        // khalti.md §9.1's body, `tries_remaining` included. The sandbox never locks
        // a test wallet, so the count stays at the documented "2".
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "detail": BAD_WALLET,
                "tries_remaining": "2",
                "error_key": "validation_error",
            })),
        )
            .into_response();
    }
    let txn = state.widget_initiate(request, Utc::now());
    tracing::info!(token = %txn.token, amount = txn.req.amount, "khalti sandbox: widget initiated");
    Json(json!({"token": txn.token})).into_response()
}

/// `POST /khalti/api/v2/payment/confirm/` (khalti.md §9.2): the OTP (`987654`) and the
/// MPIN again. `Initiated` → `Confirmed`.
pub(super) async fn confirm(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.khalti();
    let data = match api::public_prelude(&control, &headers, &body).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let Some(obj) = data.as_object() else {
        return validation_error(validate::not_an_object(&data));
    };
    let mut errors = FieldErrors::new();
    let mut required = |field: &str| {
        drf::char_field(obj.get(field), true)
            .map_err(|m| push(&mut errors, field, m))
            .ok()
            .flatten()
    };
    let (Some(public_key), Some(token), Some(code), Some(pin)) = (
        required("public_key"),
        required("token"),
        required("confirmation_code"),
        required("transaction_pin"),
    ) else {
        return validation_error(errors);
    };
    let mut state = control.lock();
    if public_key != state.settings.public_key {
        return field_error("public_key", INVALID_PUBLIC_KEY);
    }
    if state.widget.get(&token).is_none() {
        return field_error("token", INVALID_TOKEN);
    }
    if code != TEST_OTP || pin != TEST_MPIN {
        return detail_error(BAD_CONFIRMATION);
    }
    match state.widget_confirm(&token, Utc::now()) {
        Ok(txn) => {
            tracing::info!(token = %txn.token, "khalti sandbox: widget confirmed");
            Json(txn.confirm_body()).into_response()
        }
        // Confirming twice: undocumented (khalti.md §9.2); refused like a refund of the
        // wrong status, in the `{detail, error_key}` envelope.
        Err(WidgetError::WrongState(current)) => detail_error(&format!(
            "Transaction with state {current} cannot be confirmed."
        )),
        Err(_) => field_error("token", INVALID_TOKEN),
    }
}

/// `POST /khalti/api/v2/payment/verify/` (khalti.md §9.3), the capture step: a
/// `Confirmed` token with the right amount becomes `Completed` and the answer is the
/// transaction record.
///
/// Error bodies: khalti.md §9.3 documents only `{"token": ["Invalid token."]}`, a DRF
/// field error without `error_key`, so every verify error here uses that envelope.
/// The others are ours (khalti.md §9.3 "Error bodies for amount mismatch or
/// already-verified: [UNCONFIRMED]", §12 q9), all 400:
///
/// - Amount mismatch: `{"amount": ["Amount does not match the transaction amount."]}`,
///   checked before the state.
/// - A token that is `Initiated` (the customer never confirmed with the OTP), or
///   refunded: `{"token": ["Transaction with state Initiated cannot be verified."]}`.
///   The same field and code as the documented invalid-token error, so a client that
///   handles that one treats this as "not paid" too, and a message that tells the
///   developer why.
/// - Already verified (`Completed`) with the same amount: **200 with the same record
///   again** (nothing changes). khalti.md §9.3 leaves "already-verified" open; we pick
///   idempotence so that a merchant whose server crashed between verify and recording
///   the payment can verify again without losing the money.
pub(super) async fn verify(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.khalti();
    let data = match api::prelude(&control, &headers, &body).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let Some(obj) = data.as_object() else {
        return plain_errors(validate::not_an_object(&data));
    };
    let mut errors = FieldErrors::new();
    let token = drf::char_field(obj.get("token"), true)
        .map_err(|m| push(&mut errors, "token", m))
        .ok()
        .flatten();
    let amount = drf::integer_field(obj.get("amount"), true)
        .map_err(|m| push(&mut errors, "amount", m))
        .ok()
        .flatten();
    let (Some(token), Some(amount)) = (token, amount) else {
        return plain_errors(errors);
    };
    let mut state = control.lock();
    match state.widget_verify(&token, amount, Utc::now()) {
        Ok(txn) => {
            tracing::info!(token = %txn.token, verifications = txn.verifications, "khalti sandbox: widget verified");
            Json(txn.verify_record()).into_response()
        }
        Err(WidgetError::NotFound) => plain_error("token", INVALID_TOKEN),
        Err(WidgetError::AmountMismatch) => plain_error("amount", AMOUNT_MISMATCH),
        Err(WidgetError::WrongState(current)) => plain_error(
            "token",
            &format!("Transaction with state {current} cannot be verified."),
        ),
    }
}

/// `GET /khalti/api/v2/payment/status/?token=<token|idx>&amount=<paisa>` (khalti.md
/// §9.4), with the documented bodies.
///
/// khalti.md §9.4 gives no HTTP codes; every body carries `status: true|false`, so we
/// answer 200 for all of them, "not found" included. A token whose amount differs is
/// "not found" (our choice: the lookup is by token and amount). Missing or non-integer
/// parameters answer 400 with DRF field errors, like verify.
pub(super) async fn status(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let control = sandbox.khalti();
    if let Err(response) = api::prelude(&control, &headers, &[]).await {
        return response;
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    // Django's QueryDict: the last value of a repeated key wins.
    let params: Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut errors = FieldErrors::new();
    let token = drf::char_field(params.get("token"), true)
        .map_err(|m| push(&mut errors, "token", m))
        .ok()
        .flatten();
    let amount = drf::integer_field(params.get("amount"), true)
        .map_err(|m| push(&mut errors, "amount", m))
        .ok()
        .flatten();
    let (Some(token), Some(amount)) = (token, amount) else {
        return plain_errors(errors);
    };
    let state = control.lock();
    let body = match state.widget.find(&token) {
        Some(txn) if txn.req.amount == amount => txn.status_body(),
        _ => json!({"status": false, "state": "Error", "detail": "Transaction not found"}),
    };
    Json(body).into_response()
}

/// Any other method on `payment/initiate/` or `payment/confirm/` (no authentication).
pub(super) async fn public_method_not_allowed(
    State(sandbox): State<Sandbox>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let control = sandbox.khalti();
    if let Err(response) = api::public_prelude(&control, &headers, &[]).await {
        return response;
    }
    api::not_allowed(&method, "POST, OPTIONS")
}

/// Any other method on `payment/status/`: authentication first, as in DRF.
pub(super) async fn status_method_not_allowed(
    State(sandbox): State<Sandbox>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let control = sandbox.khalti();
    if let Err(response) = api::prelude(&control, &headers, &[]).await {
        return response;
    }
    api::not_allowed(&method, "GET, HEAD, OPTIONS")
}

/// Validates an initiate body like a DRF serializer: every field checked, all errors
/// reported together. Returns the public key, the MPIN and the transaction.
fn initiate_request(data: &Value) -> Result<(String, String, NewWidgetTxn), FieldErrors> {
    let Some(obj) = data.as_object() else {
        return Err(validate::not_an_object(data));
    };
    let mut errors = FieldErrors::new();
    let mut char_field = |field: &str, required: bool| {
        drf::char_field(obj.get(field), required)
            .map_err(|m| push(&mut errors, field, m))
            .ok()
            .flatten()
    };
    let public_key = char_field("public_key", true);
    let mobile = char_field("mobile", true);
    let pin = char_field("transaction_pin", true);
    let product_identity = char_field("product_identity", true);
    let product_name = char_field("product_name", true);
    // khalti.md §9.2 does not say `product_url` is validated as a URL; stored as sent.
    let product_url = char_field("product_url", false);
    // khalti.md §9.1: amount in paisa, at least 1000, with Khalti's message (§1.4).
    let amount = match drf::integer_field(obj.get("amount"), true) {
        Ok(Some(a)) if a < MIN_AMOUNT => {
            push(&mut errors, "amount", AMOUNT_TOO_SMALL);
            None
        }
        Ok(a) => a,
        Err(m) => {
            push(&mut errors, "amount", m);
            None
        }
    };
    let (
        Some(public_key),
        Some(mobile),
        Some(pin),
        Some(amount),
        Some(product_identity),
        Some(product_name),
        true,
    ) = (
        public_key,
        mobile,
        pin,
        amount,
        product_identity,
        product_name,
        errors.is_empty(),
    )
    else {
        return Err(errors);
    };
    // khalti.md §9.2: `merchant_*` extras are accepted; kept like ePayment's.
    let merchant_extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.starts_with("merchant_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((
        public_key,
        pin,
        NewWidgetTxn {
            mobile,
            amount,
            product_identity,
            product_name,
            product_url,
            merchant_extra,
        },
    ))
}

fn push(errors: &mut FieldErrors, field: &str, msg: &str) {
    errors.insert(field.to_owned(), json!([msg]));
}

/// `{field: [msg]}`, 400, without `error_key` (khalti.md §9.3's documented shape).
fn plain_error(field: &str, msg: &str) -> Response {
    let mut errors = FieldErrors::new();
    push(&mut errors, field, msg);
    plain_errors(errors)
}

fn plain_errors(errors: FieldErrors) -> Response {
    (StatusCode::BAD_REQUEST, Json(Value::Object(errors))).into_response()
}
