//! The simulated Chapa REST API (v1): initialize, verify, refund.
//!
//! Every call goes through [`prelude`]: latency, then the injected fault, then bearer
//! authentication (chapa.md §1, §2.3). Every answer uses Chapa's envelope
//! `{"message", "status", "data"}`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::notify::{self, Notifications};
use super::store::{checkout_url, empty_object, money_string, NewPayment, RefundError, Status};
use super::ChapaControl;
use crate::khalti::Fault;
use crate::Sandbox;

/// How long the `timeout` fault holds a request before giving up.
const TIMEOUT_HOLD: Duration = Duration::from_secs(60);

/// chapa.md §2.3: the newer error page's maximum amount, 9,999,999.99.
const MAX_AMOUNT: i64 = 999_999_999;

/// `POST /chapa/v1/transaction/initialize` (chapa.md §2).
pub(super) async fn initialize(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.chapa();
    if let Err(response) = prelude(&control, &headers).await {
        return response;
    }
    let input = match parse_body(&headers, &body) {
        Ok(input) => input,
        Err(response) => return *response,
    };
    let request = match validate_initialize(&input) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let mut state = control.lock();
    if state.contains(&request.tx_ref) {
        // chapa.md §2.3 / §11.3.
        return failed(
            StatusCode::BAD_REQUEST,
            "Transaction reference has been used before",
        );
    }
    let payment = state.create(request, Utc::now());
    tracing::info!(tx_ref = %payment.req.tx_ref, amount = payment.req.amount, "chapa sandbox: transaction initialized");
    Json(json!({
        "message": "Hosted Link",
        "status": "success",
        "data": { "checkout_url": checkout_url(control.public_url(), &payment.checkout_id) },
    }))
    .into_response()
}

/// `GET /chapa/v1/transaction/verify/{tx_ref}` (chapa.md §4).
pub(super) async fn verify(
    State(sandbox): State<Sandbox>,
    Path(tx_ref): Path<String>,
    headers: HeaderMap,
) -> Response {
    let control = sandbox.chapa();
    if let Err(response) = prelude(&control, &headers).await {
        return response;
    }
    let mut state = control.lock();
    if state.settings.auto_complete
        && state
            .get(&tx_ref)
            .is_some_and(|p| p.status == Status::Pending)
    {
        let _ = state.apply(&tx_ref, super::Action::Pay, chrono::Utc::now());
    }
    let Some(payment) = state.get(&tx_ref) else {
        return failed(
            StatusCode::NOT_FOUND,
            "Invalid transaction or Transaction not found",
        );
    };
    // chapa.md §4.2 / §14 q4: never paid → the documented 404 with `status: null`
    // (JSON null, not the string), unless switched to 200 + `data.status: "pending"`.
    // After a failed attempt or a cancel the answer is 200 with `data.status:
    // "failed"` (§14 q5: the top-level `status` says the lookup succeeded, so clients
    // must check `data.status`, chapa.md §11.2). A failed attempt may still be
    // followed by a successful retry (§3.3).
    if payment.status == Status::Pending && !state.settings.verify_pending_as_200 {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Payment not paid yet", "status": null, "data": null})),
        )
            .into_response();
    }
    Json(json!({
        "message": "Payment details",
        "status": "success",
        "data": payment.verify_data(),
    }))
    .into_response()
}

/// `POST /chapa/v1/refund/{reference}` (chapa.md §6): body (form or JSON) `reason`,
/// `amount` (omitted: everything left), `meta`, `reference`. chapa.md §14 q8: the path
/// takes the Chapa reference, and also the `tx_ref`. Refund errors are not documented;
/// the messages below are the sandbox's, in Chapa's envelope.
pub(super) async fn refund(
    State(sandbox): State<Sandbox>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let control = sandbox.chapa();
    if let Err(response) = prelude(&control, &headers).await {
        return response;
    }
    let input = match parse_body(&headers, &body) {
        Ok(input) => input,
        Err(response) => return *response,
    };
    let mut errors = Map::new();
    let amount = match input.get("amount") {
        None | Some(Value::Null) => None,
        Some(v) => match amount_cents(v) {
            Ok(cents) => Some(cents),
            Err(rule) => {
                errors.insert("amount".into(), json!([rule]));
                None
            }
        },
    };
    let reason = optional_string(&input, "reason", &mut errors);
    let merchant_reference = optional_string(&input, "reference", &mut errors);
    let meta = match input.get("meta") {
        None | Some(Value::Null) => empty_object(),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            errors.insert("meta".into(), json!(["validation.array"]));
            Value::Null
        }
    };
    if !errors.is_empty() {
        return validation_failed(errors);
    }
    let (response, notifications) = {
        let mut state = control.lock();
        let webhook_url = state.settings.webhook_url.clone();
        let result = state.refund(
            &reference,
            amount,
            reason,
            merchant_reference,
            meta,
            Utc::now(),
        );
        match result {
            Ok((payment, refund)) => {
                tracing::info!(tx_ref = %payment.req.tx_ref, amount = refund.amount, "chapa sandbox: refund");
                let body = json!({
                    "message": "Refund initiated successfully. Processing time: 1-3 business days",
                    "status": "success",
                    "data": refund.body_for(payment),
                });
                // chapa.md §5.2: refunds are signalled by `charge.refunded`; the
                // sandbox sends one per refund, at once.
                (
                    Json(body).into_response(),
                    Some(Notifications::refunded(payment, webhook_url)),
                )
            }
            Err(e) => (refund_error(e), None),
        }
    };
    if let Some(notifications) = notifications {
        notify::dispatch(control.clone(), notifications);
    }
    response
}

fn refund_error(e: RefundError) -> Response {
    match e {
        RefundError::NotFound => failed(
            StatusCode::NOT_FOUND,
            "Invalid transaction or Transaction not found",
        ),
        RefundError::NotRefundable(Status::Refunded) => failed(
            StatusCode::BAD_REQUEST,
            "Transaction has already been refunded",
        ),
        RefundError::NotRefundable(_) => failed(
            StatusCode::BAD_REQUEST,
            "Only successful transactions can be refunded",
        ),
        RefundError::AmountTooLarge { refundable } => failed(
            StatusCode::BAD_REQUEST,
            &format!(
                "The refund amount must not exceed the refundable amount ({})",
                money_string(refundable)
            ),
        ),
        RefundError::DuplicateReference => failed(
            StatusCode::BAD_REQUEST,
            "Refund reference has been used before",
        ),
    }
}

/// Latency, fault, then authentication.
async fn prelude(control: &ChapaControl, headers: &HeaderMap) -> Result<(), Response> {
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
    authenticate(headers, &secret).map_err(|message| failed(StatusCode::UNAUTHORIZED, message))
}

/// chapa.md §2.3: no `Authorization` header → `Authorization required`; anything but
/// `Bearer <the key>` → `Invalid API Key or User doesn't exist`. chapa.md §1 notes a
/// trailing TAB in some docs samples; the sandbox sends the messages without it.
fn authenticate(headers: &HeaderMap, secret: &str) -> Result<(), &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err("Authorization required");
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let mut parts = value.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None)
            if scheme.eq_ignore_ascii_case("bearer") && token == secret =>
        {
            Ok(())
        }
        (None, _, _) => Err("Authorization required"),
        _ => Err("Invalid API Key or User doesn't exist"),
    }
}

async fn fault_response(fault: Fault) -> Option<Response> {
    match fault {
        Fault::None => None,
        Fault::Timeout => {
            tracing::info!("chapa sandbox: injected timeout, holding the request");
            tokio::time::sleep(TIMEOUT_HOLD).await;
            Some(error_page(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Time-out",
            ))
        }
        Fault::ServerError => {
            tracing::info!("chapa sandbox: injected server error");
            Some(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            ))
        }
        Fault::Garbage => {
            tracing::info!("chapa sandbox: injected garbage body");
            Some(
                Html(
                    "<!DOCTYPE html>\n<html><head><title>Chapa</title></head>\
                     <body><h1>Service Unavailable</h1>\
                     <p>Chapa is down for maintenance.</p></body></html>\n",
                )
                .into_response(),
            )
        }
    }
}

fn error_page(status: StatusCode, title: &str) -> Response {
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

/// `{"message": message, "status": "failed", "data": null}`.
fn failed(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"message": message, "status": "failed", "data": null})),
    )
        .into_response()
}

/// chapa.md §1.1: `{"message": {field: ["validation.<rule>"]}, "status": "failed",
/// "data": null}`, 400.
fn validation_failed(errors: Map<String, Value>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"message": errors, "status": "failed", "data": null})),
    )
        .into_response()
}

/// JSON or form-encoded (bracket keys) bodies, chapa.md §1. An empty body is `{}`.
/// A JSON body that does not parse (or is not an object) reads as `{}` like Laravel's
/// request input, so it ends in `validation.required` errors. chapa.md §2.3 leaves open
/// when `Incorrect header settings…` is sent; the sandbox sends it for a non-empty body
/// whose content type is neither JSON nor form-encoded.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    match media_type {
        "application/json" => Ok(match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }),
        "application/x-www-form-urlencoded" => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).unwrap_or_default();
            Ok(nest_form(pairs))
        }
        _ => Err(Box::new(failed(
            StatusCode::BAD_REQUEST,
            "Incorrect header settings Please check if content-type is present and set to application/json",
        ))),
    }
}

/// `customization[title]=x&meta[invoices][0][key]=y` → nested objects, like PHP.
/// `a[]` appends to an array. The last value of a repeated key wins.
fn nest_form(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in pairs {
        let (head, rest) = match key.find('[') {
            Some(i) if key.ends_with(']') => (&key[..i], &key[i + 1..key.len() - 1]),
            _ => (key.as_str(), ""),
        };
        let segments: Vec<&str> = if key.contains('[') && key.ends_with(']') {
            rest.split("][").collect()
        } else {
            Vec::new()
        };
        let mut slot = root.entry(head.to_owned()).or_insert(Value::Null);
        for segment in segments {
            if segment.is_empty() {
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let array = slot.as_array_mut().expect("just made an array");
                array.push(Value::Null);
                slot = array.last_mut().expect("just pushed");
            } else {
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                slot = slot
                    .as_object_mut()
                    .expect("just made an object")
                    .entry(segment.to_owned())
                    .or_insert(Value::Null);
            }
        }
        *slot = Value::String(value);
    }
    root
}

/// chapa.md §2.1 / §2.3 validation. Field rules use Laravel's message keys; which
/// keys Chapa uses for rules other than `required` and `email` is our guess.
fn validate_initialize(input: &Map<String, Value>) -> Result<NewPayment, Box<Response>> {
    let mut errors = Map::new();
    let mut fail = |field: &str, rule: &str| {
        errors.insert(field.to_owned(), json!([rule]));
    };
    let present = |field: &str| match input.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => Some(v),
    };

    let amount = match present("amount") {
        None => {
            fail("amount", "validation.required");
            0
        }
        Some(v) => amount_cents(v).unwrap_or_else(|rule| {
            fail("amount", rule);
            0
        }),
    };
    let currency = match present("currency") {
        None => {
            fail("currency", "validation.required");
            String::new()
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            fail("currency", "validation.string");
            String::new()
        }
    };
    // chapa.md §14 q7: no charset rule is documented; the sandbox only limits the
    // length (255, a Laravel string column).
    let tx_ref = match present("tx_ref") {
        None => {
            fail("tx_ref", "validation.required");
            String::new()
        }
        Some(Value::String(s)) if s.chars().count() > 255 => {
            fail("tx_ref", "validation.max.string");
            String::new()
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            fail("tx_ref", "validation.string");
            String::new()
        }
    };
    // chapa.md §11.9: an empty email is `validation.email` too.
    let email = match input.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_email(s) => Some(s.clone()),
        Some(_) => {
            fail("email", "validation.email");
            None
        }
    };
    // chapa.md §2.1: `^0[79]\d{8}$` when present.
    let phone_number = match present("phone_number") {
        None => None,
        Some(Value::String(s)) if is_phone(s) => Some(s.clone()),
        Some(_) => {
            fail("phone_number", "validation.regex");
            None
        }
    };
    let mut strings = |field: &str| match present(field) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.insert(field.to_owned(), json!(["validation.string"]));
            None
        }
    };
    let first_name = strings("first_name");
    let last_name = strings("last_name");
    let mut urls = |field: &str| match present(field) {
        None => None,
        Some(Value::String(s)) if is_http_url(s) => Some(s.clone()),
        Some(_) => {
            errors.insert(field.to_owned(), json!(["validation.url"]));
            None
        }
    };
    let callback_url = urls("callback_url");
    let return_url = urls("return_url");
    let customization = match input.get("customization") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            errors.insert("customization".into(), json!(["validation.array"]));
            Map::new()
        }
    };
    let meta = match input.get("meta") {
        None | Some(Value::Null) => Value::Null,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            errors.insert("meta".into(), json!(["validation.array"]));
            Value::Null
        }
    };
    if !errors.is_empty() {
        return Err(Box::new(validation_failed(errors)));
    }
    // chapa.md §2.3: checked after the field rules. Case-sensitive: Chapa's samples
    // always send upper case, and a strict check catches sloppy clients.
    if currency != "ETB" && currency != "USD" {
        return Err(Box::new(failed(
            StatusCode::BAD_REQUEST,
            &format!("Invalid currency, {currency} is not supported"),
        )));
    }
    let customization = json!({
        "title": customization.get("title").cloned().unwrap_or(Value::Null),
        "description": customization.get("description").cloned().unwrap_or(Value::Null),
        "logo": customization.get("logo").cloned().unwrap_or(Value::Null),
    });
    Ok(NewPayment {
        tx_ref,
        amount,
        currency,
        email,
        first_name,
        last_name,
        phone_number,
        callback_url,
        return_url,
        customization,
        meta,
    })
}

/// An amount (JSON number or decimal string, chapa.md §2.1) in cents. Errors are
/// Laravel rule keys: not a number → `validation.numeric`; more than 2 decimals →
/// `validation.decimal`; ≤ 0 → `validation.gt.numeric`; above 9,999,999.99 →
/// `validation.max.numeric`.
fn amount_cents(value: &Value) -> Result<i64, &'static str> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err("validation.numeric"),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(if text.starts_with('-') {
            "validation.gt.numeric"
        } else {
            "validation.numeric"
        });
    }
    if fraction.trim_end_matches('0').len() > 2 {
        return Err("validation.decimal");
    }
    let whole: i64 = match whole.trim_start_matches('0') {
        "" => 0,
        w if w.len() > 12 => return Err("validation.max.numeric"),
        w => w.parse().map_err(|_| "validation.numeric")?,
    };
    let fraction = fraction.trim_end_matches('0');
    let cents = whole * 100
        + match fraction.len() {
            0 => 0,
            1 => fraction.parse::<i64>().unwrap_or(0) * 10,
            _ => fraction.parse::<i64>().unwrap_or(0),
        };
    if cents <= 0 {
        return Err("validation.gt.numeric");
    }
    if cents > MAX_AMOUNT {
        return Err("validation.max.numeric");
    }
    Ok(cents)
}

fn optional_string(
    input: &Map<String, Value>,
    field: &str,
    errors: &mut Map<String, Value>,
) -> Option<String> {
    match input.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.insert(field.to_owned(), json!(["validation.string"]));
            None
        }
    }
}

/// A plain `local@domain.tld` check (Laravel's default `email` rule is RFC-based; this
/// is close enough for a simulator).
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

fn is_phone(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[0] == b'0'
        && (b[1] == b'7' || b[1] == b'9')
        && b.iter().all(u8::is_ascii_digit)
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(amount_cents(&json!("10")), Ok(1000));
        assert_eq!(amount_cents(&json!("1311.00")), Ok(131_100));
        assert_eq!(amount_cents(&json!(12.5)), Ok(1250));
        assert_eq!(amount_cents(&json!(1000)), Ok(100_000));
        assert_eq!(amount_cents(&json!("0.05")), Ok(5));
        assert_eq!(amount_cents(&json!("abc")), Err("validation.numeric"));
        assert_eq!(amount_cents(&json!("1.234")), Err("validation.decimal"));
        assert_eq!(amount_cents(&json!("0")), Err("validation.gt.numeric"));
        assert_eq!(amount_cents(&json!("-5")), Err("validation.gt.numeric"));
        assert_eq!(
            amount_cents(&json!("10000000")),
            Err("validation.max.numeric")
        );
        assert_eq!(amount_cents(&json!(true)), Err("validation.numeric"));
    }

    #[test]
    fn nests_bracket_keys() {
        let map = nest_form(vec![
            ("amount".into(), "10".into()),
            ("customization[title]".into(), "T".into()),
            ("meta[a][b]".into(), "x".into()),
            ("meta[list][]".into(), "1".into()),
            ("meta[list][]".into(), "2".into()),
        ]);
        assert_eq!(
            Value::Object(map),
            json!({"amount": "10", "customization": {"title": "T"}, "meta": {"a": {"b": "x"}, "list": ["1", "2"]}})
        );
    }

    #[test]
    fn phones_and_emails() {
        assert!(is_phone("0912345678"));
        assert!(is_phone("0712345678"));
        assert!(!is_phone("+251912345678"));
        assert!(!is_phone("0812345678"));
        assert!(is_email("abebech_bekele@gmail.com"));
        assert!(!is_email("not-an-email"));
        assert!(!is_email(""));
    }
}
