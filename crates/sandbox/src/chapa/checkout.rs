//! The hosted checkout page (the sandbox's `checkout.chapa.co`).
//!
//! `GET /chapa/checkout/{id}` shows the transaction with Pay, Fail and Cancel
//! buttons; `POST /chapa/checkout/{id}` (form `action=pay|fail|cancel`) applies it and
//! sends the callback and webhook. Pay and Cancel then answer `303 See Other` to the
//! merchant's `return_url` (chapa.md §3.1) — unchanged: the reference documents no
//! parameters on it — or show the outcome when there is none. Fail shows the
//! failure and lets the customer retry (chapa.md §3.3, up to 10 attempts).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::store::{money_string, Payment, Status, MAX_ATTEMPTS};
use super::Action;
use crate::time::human_utc;
use crate::Sandbox;

const TEMPLATE: &str = "chapa/checkout.html";

#[derive(Debug, Default, Deserialize)]
struct CheckoutForm {
    action: Option<String>,
}

/// `GET /chapa/checkout/{id}`
pub(super) async fn page(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    let control = sandbox.chapa();
    let state = control.lock();
    match state.by_checkout(&id) {
        Some(payment) => render(&sandbox, StatusCode::OK, Some(payment), &id),
        None => render(&sandbox, StatusCode::NOT_FOUND, None, &id),
    }
}

/// `POST /chapa/checkout/{id}` (form-urlencoded `action=pay|fail|cancel`; anything
/// else is `pay`, what pressing Enter does).
pub(super) async fn submit(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: CheckoutForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let action = form
        .action
        .as_deref()
        .and_then(Action::parse)
        .unwrap_or(Action::Pay);
    let control = sandbox.chapa();
    let tx_ref = {
        let state = control.lock();
        match state.by_checkout(&id) {
            None => return render(&sandbox, StatusCode::NOT_FOUND, None, &id),
            Some(p) if !p.payable() => {
                return render(&sandbox, StatusCode::CONFLICT, Some(p), &id);
            }
            Some(p) => p.req.tx_ref.clone(),
        }
    };
    if let Err(e) = control.act(&tx_ref, action) {
        return (StatusCode::CONFLICT, e).into_response();
    }
    let state = control.lock();
    let Some(payment) = state.get(&tx_ref) else {
        return render(&sandbox, StatusCode::NOT_FOUND, None, &id);
    };
    match (action, &payment.req.return_url) {
        (Action::Pay | Action::Cancel, Some(url)) => redirect(url),
        _ => render(&sandbox, StatusCode::OK, Some(payment), &id),
    }
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "return_url cannot be sent as a Location header",
        )
            .into_response(),
    }
}

fn render(sandbox: &Sandbox, status: StatusCode, payment: Option<&Payment>, id: &str) -> Response {
    let payment = payment.map(|p| {
        let message = match p.status {
            Status::Pending => None,
            Status::Failed if p.payable() => Some(format!(
                "Payment failed (attempt {} of {MAX_ATTEMPTS}). You can try again.",
                p.attempts
            )),
            Status::Failed => Some("Payment failed too many times.".to_owned()),
            Status::Cancelled => Some("This payment was cancelled.".to_owned()),
            Status::Success | Status::Refunded => {
                Some("This payment has been completed.".to_owned())
            }
        };
        context! {
            tx_ref => p.req.tx_ref,
            reference => p.reference,
            amount => format!("{} {}", money_string(p.req.amount), p.req.currency),
            title => p.req.customization.get("title").and_then(|v| v.as_str()),
            description => p.req.customization.get("description").and_then(|v| v.as_str()),
            email => p.req.email,
            status => p.status.as_str(),
            payable => p.payable(),
            message => message,
            return_url => p.req.return_url,
            created_at => human_utc(p.created_at),
        }
    });
    let ctx = context! {
        title => "Chapa sandbox checkout",
        action => format!("{}chapa/checkout/{id}", sandbox.base_path()),
        home => sandbox.home_path(),
        payment => payment,
    };
    sandbox.render(status, TEMPLATE, ctx)
}
