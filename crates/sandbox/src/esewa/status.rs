//! `GET /esewa/api/epay/transaction/status/`: the status check (esewa.md §5).
//!
//! Every call waits out the latency, then meets the injected fault, and only then
//! reads its query. The answer is unsigned and always HTTP 200 for the seven statuses
//! (esewa.md §11 q13). Choices on what eSewa leaves undocumented:
//!
//! - a missing or empty parameter, or a `total_amount` that is not a number: 400 with
//!   Spring Boot's default error body (§11 q15, q16);
//! - an unknown `product_code`: the form's 400 "Unable to fetch merchant key" (§11 q6);
//! - an unknown uuid, or an amount other than the payment's: 200 `NOT_FOUND`, echoing
//!   the query, `ref_id: null` (§11 q14); amounts compare as numbers (`100` finds
//!   `100.0`);
//! - `ref_id` is `null` while `PENDING` and for `NOT_FOUND`, as in the docs' samples.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::form::FormError;
use super::sign;
use super::store::Status;
use super::EsewaFault;
use crate::Sandbox;

/// How long the `timeout` fault holds a request before giving up.
const TIMEOUT_HOLD: Duration = Duration::from_secs(60);

/// The path eSewa's error bodies name (not the sandbox's mount point).
const PATH: &str = "/api/epay/transaction/status/";

/// The status answer, keys in the docs' order (esewa.md §5.2).
#[derive(Serialize)]
struct StatusBody<'a> {
    product_code: &'a str,
    transaction_uuid: &'a str,
    total_amount: f64,
    status: &'a str,
    ref_id: Option<&'a str>,
}

/// `GET /esewa/api/epay/transaction/status/?product_code=…&total_amount=…&transaction_uuid=…`
pub(super) async fn status(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let control = sandbox.esewa();
    let (latency_ms, fault, outage_status) = {
        let mut state = control.lock();
        let fault = state.take_fault();
        (
            state.settings.latency_ms,
            fault,
            state.settings.outage_status,
        )
    };
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    if let Some(response) = fault_response(fault, outage_status).await {
        return response;
    }

    let pairs: Vec<(String, String)> = query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (Some(product_code), Some(total_text), Some(uuid)) = (
        param("product_code"),
        param("total_amount"),
        param("transaction_uuid"),
    ) else {
        return spring_error(StatusCode::BAD_REQUEST);
    };
    let Ok(total) = sign::query_amount(total_text) else {
        return spring_error(StatusCode::BAD_REQUEST);
    };

    let mut state = control.lock();
    if product_code != state.settings.product_code {
        return FormError::UnknownMerchant.into_response();
    }
    let found = total.and_then(|t| state.check(uuid, t, Utc::now()));
    let body = match found {
        Some(p) => StatusBody {
            product_code: &p.req.product_code,
            transaction_uuid: &p.req.transaction_uuid,
            total_amount: sign::status_amount(p.req.total_paisa),
            status: p.status.as_str(),
            ref_id: match p.status {
                Status::Pending | Status::NotFound => None,
                _ => p.ref_id.as_deref(),
            },
        },
        None => StatusBody {
            product_code,
            transaction_uuid: uuid,
            // Echo the query's number; the query_amount check above made it parse.
            total_amount: total_text.parse().unwrap_or_default(),
            status: Status::NotFound.as_str(),
            ref_id: None,
        },
    };
    tracing::info!(
        transaction_uuid = uuid,
        status = body.status,
        "esewa sandbox: status check"
    );
    Json(body).into_response()
}

async fn fault_response(fault: EsewaFault, outage_status: u16) -> Option<Response> {
    match fault {
        EsewaFault::None => None,
        EsewaFault::Timeout => {
            tracing::info!("esewa sandbox: injected timeout, holding the request");
            tokio::time::sleep(TIMEOUT_HOLD).await;
            Some(
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    Html(
                        "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n\
                         <center><h1>504 Gateway Time-out</h1></center>\r\n\
                         <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                    ),
                )
                    .into_response(),
            )
        }
        EsewaFault::ServerError => {
            tracing::info!("esewa sandbox: injected server error");
            Some(spring_error(StatusCode::INTERNAL_SERVER_ERROR))
        }
        EsewaFault::Garbage => {
            tracing::info!("esewa sandbox: injected garbage body");
            Some(
                Html(
                    "<!DOCTYPE html>\n<html><head><title>eSewa</title></head>\
                     <body><h1>Under maintenance</h1>\
                     <p>eSewa will be back shortly.</p></body></html>\n",
                )
                .into_response(),
            )
        }
        EsewaFault::Outage => {
            tracing::info!("esewa sandbox: injected outage answer");
            let status = StatusCode::from_u16(outage_status).unwrap_or(StatusCode::OK);
            Some(
                (
                    status,
                    Json(json!({"code": 0, "error_message": "Service is currently unavailable"})),
                )
                    .into_response(),
            )
        }
    }
}

/// Spring Boot's default error JSON (esewa.md §11 q16, q20), whose `status` is a
/// number: the shape a client reading `body["status"]` blindly must not take for a
/// payment status.
fn spring_error(status: StatusCode) -> Response {
    #[derive(Serialize)]
    struct SpringError<'a> {
        timestamp: String,
        status: u16,
        error: &'a str,
        path: &'a str,
    }
    let body = SpringError {
        timestamp: Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
        status: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error"),
        path: PATH,
    };
    (status, Json(body)).into_response()
}
