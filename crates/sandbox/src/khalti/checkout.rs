//! The hosted checkout page (the sandbox's `test-pay.khalti.com`, khalti.md §4).
//!
//! `GET /khalti/pay/?pidx=…` shows the payment and a form (Khalti ID, MPIN, OTP) with
//! Pay and Cancel buttons; `POST /khalti/pay/` takes the form. A correct payment or a
//! cancel answers `303 See Other` to the merchant's `return_url` with the §4.2
//! parameters; wrong credentials re-render the form with an error and change nothing.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;
use serde::Deserialize;

use super::store::{Payment, Status};
use super::{TEST_KHALTI_IDS, TEST_MPIN, TEST_OTP};
use crate::time::human;
use crate::Sandbox;

/// Legacy KPG-1 wallet error (khalti.md §9.1).
const BAD_CREDENTIALS: &str = "Mobile or pin invalid.";
/// Legacy KPG-1 confirm error (khalti.md §9.1), used for a wrong OTP.
const BAD_OTP: &str = "Confirmation code or transaction pin does not match.";

const TEMPLATE: &str = "khalti/pay.html";

#[derive(Debug, Default, Deserialize)]
struct PayForm {
    pidx: Option<String>,
    khalti_id: Option<String>,
    mpin: Option<String>,
    otp: Option<String>,
    action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct PayQuery {
    pidx: Option<String>,
}

/// `GET /khalti/pay/?pidx=…`
pub(super) async fn page(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let query: PayQuery = query
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default();
    let pidx = query.pidx.unwrap_or_default();
    let control = sandbox.khalti();
    let mut state = control.lock();
    match state.get(pidx.trim(), Utc::now()) {
        Some(payment) => render(&sandbox, StatusCode::OK, Some(payment), None, ""),
        None => render(&sandbox, StatusCode::NOT_FOUND, None, None, ""),
    }
}

/// `POST /khalti/pay/` (form-urlencoded: `pidx`, `khalti_id`, `mpin`, `otp`,
/// `action=pay|cancel`).
pub(super) async fn submit(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let form: PayForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let pidx = form.pidx.as_deref().unwrap_or_default().trim().to_owned();
    let khalti_id = form.khalti_id.as_deref().unwrap_or_default().trim();
    let now = Utc::now();
    let control = sandbox.khalti();
    let mut state = control.lock();
    let Some(payment) = state.get(&pidx, now) else {
        return render(&sandbox, StatusCode::NOT_FOUND, None, None, "");
    };
    if payment.status != Status::Initiated {
        // Expired or already finished: show why, change nothing (khalti.md §5.3).
        return render(&sandbox, StatusCode::CONFLICT, Some(payment), None, "");
    }

    if form.action.as_deref() == Some("cancel") {
        let result = state.cancel(&pidx, now);
        return match result {
            Ok(payment) => {
                tracing::info!(pidx = %payment.pidx, "khalti sandbox: user canceled");
                redirect(payment)
            }
            Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
        };
    }

    // Anything else is "pay" (pressing Enter submits the first button, Pay).
    let mpin = form.mpin.as_deref().unwrap_or_default().trim();
    let otp = form.otp.as_deref().unwrap_or_default().trim();
    let error = if !TEST_KHALTI_IDS.contains(&khalti_id) || mpin != TEST_MPIN {
        Some(BAD_CREDENTIALS)
    } else if otp != TEST_OTP {
        Some(BAD_OTP)
    } else {
        None
    };
    if let Some(error) = error {
        return render(
            &sandbox,
            StatusCode::OK,
            Some(payment),
            Some(error),
            khalti_id,
        );
    }
    let khalti_id = khalti_id.to_owned();
    match state.pay(&pidx, &khalti_id, now) {
        Ok(payment) => {
            tracing::info!(pidx = %payment.pidx, status = %payment.status, "khalti sandbox: user paid");
            redirect(payment)
        }
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

/// 303 to the stored return redirect.
fn redirect(payment: &Payment) -> Response {
    let location = payment.redirect_url.as_deref().unwrap_or_default();
    match HeaderValue::from_bytes(location.as_bytes()) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "return_url cannot be sent as a Location header",
        )
            .into_response(),
    }
}

fn render(
    sandbox: &Sandbox,
    status: StatusCode,
    payment: Option<&Payment>,
    error: Option<&str>,
    khalti_id: &str,
) -> Response {
    let payment = payment.map(|p| {
        let message = match p.status {
            Status::Initiated => None,
            Status::Expired => Some("This payment link has expired."),
            Status::UserCanceled => Some("This payment was cancelled."),
            Status::Pending => Some("This payment has been made and is being processed."),
            Status::Completed | Status::Refunded | Status::PartiallyRefunded => {
                Some("This payment has already been completed.")
            }
        };
        context! {
            pidx => p.pidx,
            purchase_order_name => p.req.purchase_order_name,
            purchase_order_id => p.req.purchase_order_id,
            amount => rupees(p.req.amount),
            merchant => merchant_name(&p.req.website_url),
            website_url => p.req.website_url,
            expires_at => human(p.expires_at),
            status => p.status.as_str(),
            payable => p.status == Status::Initiated,
            message => message,
        }
    });
    let ctx = context! {
        title => "Khalti sandbox checkout",
        action => format!("{}khalti/pay/", sandbox.base_path()),
        home => sandbox.home_path(),
        payment => payment,
        error => error,
        khalti_id => khalti_id,
        test_ids => TEST_KHALTI_IDS,
        test_mpin => TEST_MPIN,
        test_otp => TEST_OTP,
    };
    sandbox.render(status, TEMPLATE, ctx)
}

/// The merchant as shown on the page: the host of `website_url`.
fn merchant_name(website_url: &str) -> String {
    url::Url::parse(website_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| website_url.to_owned())
}

/// `Rs. 1,300.00` from paisa.
pub(crate) fn rupees(paisa: i64) -> String {
    let sign = if paisa < 0 { "-" } else { "" };
    let abs = paisa.unsigned_abs();
    let whole = (abs / 100).to_string();
    let mut reversed = String::new();
    for (i, c) in whole.chars().rev().enumerate() {
        if i > 0 && i % 3 == 0 {
            reversed.push(',');
        }
        reversed.push(c);
    }
    let grouped: String = reversed.chars().rev().collect();
    format!("Rs. {sign}{grouped}.{:02}", abs % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rupees() {
        assert_eq!(super::rupees(1000), "Rs. 10.00");
        assert_eq!(super::rupees(130_050), "Rs. 1,300.50");
        assert_eq!(super::rupees(123_456_789), "Rs. 1,234,567.89");
        assert_eq!(super::rupees(-5), "Rs. -0.05");
    }
}
