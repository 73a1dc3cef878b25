//! `GET /`: what the sandbox is and how to point an app at it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use minijinja::context;

use crate::khalti::{rupees, Status, TEST_KHALTI_IDS, TEST_MPIN, TEST_OTP};
use crate::time::{human, human_utc};
use crate::Sandbox;

/// How many payments the index lists.
const RECENT: usize = 20;

pub(crate) async fn index(State(sandbox): State<Sandbox>) -> Response {
    let public_url = sandbox.public_url().to_string();
    let control = sandbox.khalti();
    let (settings, payments, widget) = {
        let mut state = control.lock();
        let settings = state.settings.clone();
        let widget: Vec<_> = state
            .widget
            .recent(RECENT)
            .into_iter()
            .map(|t| {
                context! {
                    token => t.token,
                    idx => t.idx,
                    product_name => t.req.product_name,
                    product_identity => t.req.product_identity,
                    amount => rupees(t.req.amount),
                    state => t.state.as_str(),
                    created_at => human(t.created_at),
                }
            })
            .collect();
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
        (settings, payments, widget)
    };
    let chapa = sandbox.chapa();
    let (chapa_settings, chapa_payments) = {
        let state = chapa.lock();
        let payments: Vec<_> = state
            .recent(RECENT)
            .into_iter()
            .map(|p| {
                context! {
                    tx_ref => p.req.tx_ref,
                    reference => p.reference,
                    amount => format!("{} {}", crate::chapa::money_string(p.req.amount), p.req.currency),
                    status => p.status.as_str(),
                    created_at => human_utc(p.created_at),
                    checkout_url => p.payable().then(|| crate::chapa::checkout_url(sandbox.public_url(), &p.checkout_id)),
                }
            })
            .collect();
        (state.settings.clone(), payments)
    };
    let chapa_ctx = context! {
        api => format!("{public_url}chapa/v1/"),
        controls => format!("{public_url}chapa/_sandbox/"),
        secret_key => chapa_settings.secret_key,
        webhook_secret => chapa_settings.webhook_secret,
        webhook_url => chapa_settings.webhook_url,
        retry_ms => chapa_settings.webhook_retry_ms,
        twice => chapa_settings.webhook_twice,
        delay_ms => chapa_settings.webhook_delay_ms,
        out_of_order => chapa_settings.webhook_out_of_order,
        bad_signature => chapa_settings.webhook_bad_signature,
        pending_as_200 => chapa_settings.verify_pending_as_200,
        latency_ms => chapa_settings.latency_ms,
        fault => chapa_settings.fault.as_str(),
        fault_count => chapa_settings.fault_count,
        payments => chapa_payments,
    };
    let esewa = sandbox.esewa();
    let esewa_ctx = {
        let state = esewa.lock();
        let settings = &state.settings;
        let payments: Vec<_> = state
            .recent(RECENT)
            .into_iter()
            .map(|p| {
                context! {
                    transaction_uuid => p.req.transaction_uuid,
                    ref_id => p.ref_id,
                    amount => crate::esewa::rupees(p.req.total_paisa),
                    status => p.status.as_str(),
                    created_at => human(p.created_at),
                    checkout_url => p.payable().then(|| crate::esewa::checkout_url(sandbox.public_url(), &p.req.transaction_uuid)),
                }
            })
            .collect();
        context! {
            base => format!("{public_url}esewa/"),
            form => format!("{public_url}esewa/api/epay/main/v2/form"),
            status => format!("{public_url}esewa/api/epay/transaction/status/"),
            controls => format!("{public_url}esewa/_sandbox/"),
            product_code => settings.product_code,
            secret_key => settings.secret_key,
            auto_complete => settings.auto_complete,
            outcome => settings.outcome.as_str(),
            outcome_count => settings.outcome_count,
            complete_after_checks => settings.complete_after_checks,
            group_thousands => settings.group_thousands,
            latency_ms => settings.latency_ms,
            fault => settings.fault.as_str(),
            fault_count => settings.fault_count,
            test_ids => crate::esewa::TEST_ESEWA_IDS,
            test_password => crate::esewa::TEST_ESEWA_PASSWORD,
            test_token => crate::esewa::TEST_ESEWA_TOKEN,
            payments => payments,
        }
    };
    let ctx = context! {
        chapa => chapa_ctx,
        esewa => esewa_ctx,
        title => "Payment sandbox",
        public_url => public_url,
        khalti_api => format!("{public_url}khalti/api/v2/"),
        khalti_refund => format!("{public_url}khalti/api/merchant-transaction/{{transaction_id}}/refund/"),
        khalti_controls => format!("{public_url}khalti/_sandbox/"),
        secret_key => settings.secret_key,
        public_key => settings.public_key,
        khalti_legacy => format!("{public_url}khalti/api/v2/payment/"),
        expires_in => settings.expires_in_secs,
        pending_lookups => settings.pending_lookups,
        latency_ms => settings.latency_ms,
        fault => settings.fault.as_str(),
        fault_count => settings.fault_count,
        test_ids => TEST_KHALTI_IDS,
        test_mpin => TEST_MPIN,
        test_otp => TEST_OTP,
        payments => payments,
        widget_transactions => widget,
    };
    sandbox.render(StatusCode::OK, "index.html", ctx)
}
