//! The hosted login/pay page (the sandbox's stand-in for eSewa's page, esewa.md §4.1).
//!
//! `GET /esewa/checkout/{uuid}` shows the payment and a form: eSewa ID, password and
//! token (eSewa asks for the token on a second screen; one form is enough here), with
//! Pay and Cancel. `POST /esewa/checkout/{uuid}` takes it. Pay with good credentials
//! applies the `outcome` switch and answers `303 See Other` to the merchant: the
//! signed `success_url?data=…` for `COMPLETE`, `failure_url` unchanged for anything
//! else (esewa.md §4.3). Cancel makes the payment `CANCELED` and goes to
//! `failure_url` (§11 q11). Wrong credentials re-render the form with an error and
//! change nothing. The error texts are ours: eSewa's are not documented.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;
use serde::Deserialize;

use super::sign::rupees;
use super::store::{Action, Payment, Status};
use super::{TEST_ESEWA_IDS, TEST_ESEWA_PASSWORD, TEST_ESEWA_TOKEN};
use crate::time::human;
use crate::Sandbox;

const TEMPLATE: &str = "esewa/pay.html";
const BAD_CREDENTIALS: &str = "Invalid eSewa ID or password.";
const BAD_TOKEN: &str = "Invalid token. Please enter the 6-digit token sent to you.";

#[derive(Debug, Default, Deserialize)]
struct PayForm {
    esewa_id: Option<String>,
    password: Option<String>,
    token: Option<String>,
    action: Option<String>,
}

/// `GET /esewa/checkout/{uuid}`
pub(super) async fn page(State(sandbox): State<Sandbox>, Path(uuid): Path<String>) -> Response {
    let control = sandbox.esewa();
    let state = control.lock();
    match state.get(&uuid) {
        Some(payment) => render(&sandbox, StatusCode::OK, Some(payment), None, ""),
        None => render(&sandbox, StatusCode::NOT_FOUND, None, None, ""),
    }
}

/// `POST /esewa/checkout/{uuid}` (form-urlencoded `esewa_id`, `password`, `token`,
/// `action=pay|cancel`; anything but `cancel` is Pay, what pressing Enter does).
pub(super) async fn submit(
    State(sandbox): State<Sandbox>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> Response {
    let form: PayForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let esewa_id = form.esewa_id.as_deref().unwrap_or_default().trim();
    let control = sandbox.esewa();
    let now = Utc::now();
    let mut state = control.lock();
    let Some(payment) = state.get(&uuid) else {
        return render(&sandbox, StatusCode::NOT_FOUND, None, None, "");
    };
    if !payment.payable() {
        // Already paid, cancelled or in process: show why, change nothing.
        return render(&sandbox, StatusCode::CONFLICT, Some(payment), None, "");
    }

    if form.action.as_deref() == Some("cancel") {
        return match state.apply(&uuid, Action::Cancel, None, None, now) {
            Ok(payment) => {
                tracing::info!(transaction_uuid = %uuid, "esewa sandbox: payer canceled");
                see_other(payment)
            }
            Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
        };
    }

    let password = form.password.as_deref().unwrap_or_default();
    let token = form.token.as_deref().unwrap_or_default().trim();
    let error = if !TEST_ESEWA_IDS.contains(&esewa_id) || password != TEST_ESEWA_PASSWORD {
        Some(BAD_CREDENTIALS)
    } else if token != TEST_ESEWA_TOKEN {
        Some(BAD_TOKEN)
    } else {
        None
    };
    if let Some(error) = error {
        return render(
            &sandbox,
            StatusCode::OK,
            Some(payment),
            Some(error),
            esewa_id,
        );
    }
    let outcome = state.take_outcome();
    let settle_after = Some(state.settings.complete_after_checks).filter(|n| *n > 0);
    let esewa_id = esewa_id.to_owned();
    match state.apply(
        &uuid,
        Action::of_outcome(outcome),
        Some(&esewa_id),
        settle_after,
        now,
    ) {
        Ok(payment) => {
            tracing::info!(transaction_uuid = %uuid, status = payment.status.as_str(), "esewa sandbox: payer paid");
            see_other(payment)
        }
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

/// 303 to where the payment sent the browser.
fn see_other(payment: &Payment) -> Response {
    let location = payment.redirect_url.as_deref().unwrap_or_default();
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the redirect cannot be sent as a Location header",
        )
            .into_response(),
    }
}

fn render(
    sandbox: &Sandbox,
    status: StatusCode,
    payment: Option<&Payment>,
    error: Option<&str>,
    esewa_id: &str,
) -> Response {
    let action = payment.map(|p| {
        format!(
            "{}esewa/checkout/{}",
            sandbox.base_path(),
            p.req.transaction_uuid
        )
    });
    let payment = payment.map(|p| {
        let message = match p.status {
            Status::Pending if p.payable() => None,
            Status::Pending => Some("This payment is being processed."),
            Status::Complete | Status::FullRefund | Status::PartialRefund => {
                Some("This payment has already been completed.")
            }
            Status::Ambiguous => Some("This payment is on hold. Please contact eSewa."),
            Status::NotFound => Some("Your session has expired."),
            Status::Canceled => Some("This payment was canceled."),
        };
        context! {
            transaction_uuid => p.req.transaction_uuid,
            product_code => p.req.product_code,
            amount => rupees(p.req.total_paisa),
            parts => [
                ("Amount", p.req.amount.clone()),
                ("Tax", p.req.tax_amount.clone()),
                ("Service charge", p.req.product_service_charge.clone()),
                ("Delivery charge", p.req.product_delivery_charge.clone()),
            ],
            status => p.status.as_str(),
            payable => p.payable(),
            message => message,
            redirect_url => p.redirect_url,
            created_at => human(p.created_at),
        }
    });
    let ctx = context! {
        title => "eSewa sandbox",
        action => action,
        home => sandbox.home_path(),
        payment => payment,
        error => error,
        esewa_id => esewa_id,
        test_ids => TEST_ESEWA_IDS,
        test_password => TEST_ESEWA_PASSWORD,
        test_token => TEST_ESEWA_TOKEN,
    };
    sandbox.render(status, TEMPLATE, ctx)
}
