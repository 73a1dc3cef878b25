//! `GET /`: what the sandbox is and how to point an app at it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use minijinja::context;

use crate::khalti::{rupees, Status, TEST_KHALTI_IDS, TEST_MPIN, TEST_OTP};
use crate::time::human;
use crate::Sandbox;

/// How many payments the index lists.
const RECENT: usize = 20;

pub(crate) async fn index(State(sandbox): State<Sandbox>) -> Response {
    let public_url = sandbox.public_url().to_string();
    let control = sandbox.khalti();
    let (settings, payments) = {
        let mut state = control.lock();
        let settings = state.settings.clone();
        let payments: Vec<_> = state
            .recent(RECENT, Utc::now())
            .into_iter()
            .map(|p| {
                context! {
                    pidx => p.pidx,
                    purchase_order_id => p.req.purchase_order_id,
                    purchase_order_name => p.req.purchase_order_name,
                    amount => rupees(p.req.amount),
                    status => p.status.as_str(),
                    created_at => human(p.created_at),
                    payment_url => (p.status == Status::Initiated).then(|| control.payment_url(&p.pidx)),
                }
            })
            .collect();
        (settings, payments)
    };
    let ctx = context! {
        title => "Payment sandbox",
        public_url => public_url,
        khalti_api => format!("{public_url}khalti/api/v2/"),
        khalti_refund => format!("{public_url}khalti/api/merchant-transaction/{{transaction_id}}/refund/"),
        khalti_controls => format!("{public_url}khalti/_sandbox/"),
        secret_key => settings.secret_key,
        expires_in => settings.expires_in_secs,
        pending_lookups => settings.pending_lookups,
        latency_ms => settings.latency_ms,
        fault => settings.fault.as_str(),
        fault_count => settings.fault_count,
        test_ids => TEST_KHALTI_IDS,
        test_mpin => TEST_MPIN,
        test_otp => TEST_OTP,
        payments => payments,
    };
    sandbox.render(StatusCode::OK, "index.html", ctx)
}
