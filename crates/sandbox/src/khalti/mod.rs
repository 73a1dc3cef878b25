//! Khalti sandbox simulator (ePayment / "KPG-2", and the legacy widget API "KPG-1"),
//! following `khalti.md`.
//!
//! Routes, relative to the sandbox root:
//!
//! | Route | What |
//! |---|---|
//! | `POST /khalti/api/v2/epayment/initiate/` | Khalti initiate (§3) |
//! | `POST /khalti/api/v2/epayment/lookup/` | Khalti lookup (§5) |
//! | `POST /khalti/api/merchant-transaction/{transaction_id}/refund/` | Khalti refund (§6) |
//! | `GET /khalti/pay/?pidx=…` | hosted checkout page (the `test-pay.khalti.com` stand-in, §4) |
//! | `POST /khalti/pay/` | checkout form submission: pay or cancel, then 303 to `return_url` |
//! | `POST /khalti/api/v2/payment/initiate/` | legacy KPG-1 DIY wallet initiate, public key in the body (§9.2) |
//! | `POST /khalti/api/v2/payment/confirm/` | legacy KPG-1 confirm with the OTP (§9.2) |
//! | `POST /khalti/api/v2/payment/verify/` | legacy KPG-1 verify, the capture step (§9.3) |
//! | `GET /khalti/api/v2/payment/status/?token=…&amount=…` | legacy KPG-1 status (§9.4) |
//! | `GET`/`PUT /khalti/_sandbox/settings` | sandbox-only: read / change [`KhaltiSettings`] |
//! | `GET /khalti/_sandbox/payments` | sandbox-only: the 20 most recent payments |
//! | `GET /khalti/_sandbox/payments/{pidx}` | sandbox-only: a payment's simulated record |
//! | `POST /khalti/_sandbox/payments/{pidx}/complete` | sandbox-only: pay it with wallet 9800000001 |
//! | `POST /khalti/_sandbox/payments/{pidx}/cancel` | sandbox-only: cancel it as the user would |
//! | `POST /khalti/_sandbox/payments/{pidx}/expire` | sandbox-only: move its expiry into the past |
//! | `POST /khalti/_sandbox/payments/{pidx}/refund` | sandbox-only: refund it as from the merchant dashboard (`{"amount": paisa}` or all) |
//! | `POST /khalti/_sandbox/widget/tokens` | sandbox-only: mint a confirmed widget token, ready to verify |
//! | `GET /khalti/_sandbox/widget/tokens` | sandbox-only: the 20 most recent widget transactions |
//! | `GET /khalti/_sandbox/widget/tokens/{token}` | sandbox-only: a widget transaction's record (token or idx) |
//!
//! The API routes also answer without the trailing slash (khalti.md §8 item 14 / §12
//! q10 leave it open; accepting both is the forgiving choice). The `_sandbox` routes
//! are not part of Khalti; they need no authentication.
//!
//! Latency and faults ([`KhaltiSettings::latency_ms`], [`KhaltiSettings::fault`]) apply
//! to the API routes only (initiate, lookup, refund and the four legacy `payment/`
//! routes), never to the pages or controls.
//!
//! The legacy transactions (khalti.md §9) live next to the ePayment payments: a
//! `Completed` one can be refunded by its `idx` through the refund route (§9.5 puts
//! legacy transactions under the same `merchant-transaction/` resource).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Sandbox;

mod api;
mod checkout;
mod control;
mod drf;
mod store;
mod validate;
mod widget;
mod widget_api;

pub(crate) use checkout::rupees;
pub(crate) use store::{KhaltiState, Status};

/// The only secret key the simulated API accepts unless configured otherwise.
pub const DEFAULT_KHALTI_SECRET_KEY: &str = "test_secret_key_tijori_sandbox";

/// The only public key the legacy widget calls (`payment/initiate/`,
/// `payment/confirm/`, khalti.md §9.2) accept unless configured otherwise.
pub const DEFAULT_KHALTI_PUBLIC_KEY: &str = "test_public_key_tijori_sandbox";

/// The test wallets (Khalti IDs) the checkout page accepts (khalti.md §1.3).
pub const TEST_KHALTI_IDS: [&str; 6] = [
    "9800000000",
    "9800000001",
    "9800000002",
    "9800000003",
    "9800000004",
    "9800000005",
];
/// The test MPIN (khalti.md §1.3).
pub const TEST_MPIN: &str = "1111";
/// The test OTP (khalti.md §1.3).
pub const TEST_OTP: &str = "987654";

/// Behaviour of the simulated Khalti. Also the JSON body of
/// `GET`/`PUT /khalti/_sandbox/settings`. Missing fields deserialize to their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct KhaltiSettings {
    /// The only key initiate, lookup, refund and the legacy verify and status accept
    /// (default [`DEFAULT_KHALTI_SECRET_KEY`]).
    pub secret_key: String,
    /// The only public key the legacy widget calls accept in their body
    /// (default [`DEFAULT_KHALTI_PUBLIC_KEY`]).
    pub public_key: String,
    /// Payment link lifetime in seconds; default 1800, the sandbox value (khalti.md §3.2).
    pub expires_in_secs: u64,
    /// "Answer Pending first": a paid payment answers `Pending` to this many lookups
    /// before `Completed`, and the return redirect says `status=Pending`. Default 0.
    pub pending_lookups: u32,
    /// Benchmarks: every payment still `Initiated` is paid (with wallet
    /// 9800000001) when it is looked up, so a load test needs no browser. Default off.
    pub auto_complete: bool,
    /// Fixed delay, in milliseconds, added to every API answer. Default 0.
    pub latency_ms: u64,
    /// Fault injected into API answers. Default [`Fault::None`].
    pub fault: Fault,
    /// Apply the fault to the next N API calls; 0 = until changed. While counting down
    /// this field shows how many faulty calls remain; after the last one the settings
    /// go back to `fault: none, fault_count: 0`.
    pub fault_count: u32,
}

impl Default for KhaltiSettings {
    fn default() -> Self {
        KhaltiSettings {
            secret_key: DEFAULT_KHALTI_SECRET_KEY.to_owned(),
            public_key: DEFAULT_KHALTI_PUBLIC_KEY.to_owned(),
            expires_in_secs: 1800,
            pending_lookups: 0,
            auto_complete: false,
            latency_ms: 0,
            fault: Fault::None,
            fault_count: 0,
        }
    }
}

/// A transport-level fault, as a proxy in front of Khalti would produce it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Hold the request about 60 s without answering (then 504 with an HTML body).
    /// The request is not processed.
    Timeout,
    /// 500 with an HTML body like a proxy's error page. The request is not processed.
    ServerError,
    /// 200 with a body that is not JSON. The request is not processed.
    Garbage,
}

impl Fault {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Timeout => "timeout",
            Fault::ServerError => "server_error",
            Fault::Garbage => "garbage",
        }
    }
}

/// Programmatic control of the Khalti simulator, for tests. Cheap to clone; shares
/// state with the [`Sandbox`] it came from.
#[derive(Clone)]
pub struct KhaltiControl {
    shared: Arc<Shared>,
}

struct Shared {
    public_url: Url,
    state: Mutex<KhaltiState>,
}

impl KhaltiControl {
    pub(crate) fn new(public_url: Url, settings: KhaltiSettings) -> Self {
        KhaltiControl {
            shared: Arc::new(Shared {
                public_url,
                state: Mutex::new(KhaltiState::new(settings)),
            }),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> KhaltiSettings {
        self.lock().settings.clone()
    }

    /// Replaces the settings. Takes effect for the next request (a request already
    /// waiting out its latency or timeout is not affected).
    pub fn set_settings(&self, settings: KhaltiSettings) {
        self.lock().settings = settings;
    }

    /// Pays the payment as if the user had paid with test wallet 9800000001 on the
    /// checkout page: `Completed`, or `Pending` when `pending_lookups > 0`. On a
    /// payment that is already `Pending` it forces `Completed`.
    pub fn complete(&self, pidx: &str) -> Result<(), String> {
        self.lock()
            .complete(pidx, TEST_KHALTI_IDS[1], chrono::Utc::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Cancels the payment as if the user had pressed Cancel (`User canceled`).
    pub fn cancel(&self, pidx: &str) -> Result<(), String> {
        self.lock()
            .cancel(pidx, chrono::Utc::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Moves an `Initiated` payment's expiry into the past, so it is `Expired`.
    pub fn expire(&self, pidx: &str) -> Result<(), String> {
        self.lock()
            .expire(pidx, chrono::Utc::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Refunds `amount` paisa of a paid payment (everything left when `None`) as the
    /// merchant would in Khalti's dashboard, outside the merchant's own app: its
    /// lookup then reads `Refunded` or `Partially Refunded`.
    pub fn dashboard_refund(&self, pidx: &str, amount: Option<i64>) -> Result<(), String> {
        self.lock()
            .dashboard_refund(pidx, amount, chrono::Utc::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The simulated record of a payment (the JSON of
    /// `GET /khalti/_sandbox/payments/{pidx}`), or `None` for an unknown `pidx`.
    pub fn payment(&self, pidx: &str) -> Option<serde_json::Value> {
        let now = chrono::Utc::now();
        let mut state = self.lock();
        let payment = state.get(pidx, now)?;
        Some(payment.record(&self.shared.public_url))
    }

    /// The records of the `limit` most recent payments, newest first.
    pub fn recent_payments(&self, limit: usize) -> Vec<serde_json::Value> {
        let now = chrono::Utc::now();
        let mut state = self.lock();
        state
            .recent(limit, now)
            .into_iter()
            .map(|p| p.record(&self.shared.public_url))
            .collect()
    }

    /// Legacy KPG-1: creates a widget transaction of `amount_paisa` that is already
    /// `Confirmed`, as if the customer had paid in the widget with test wallet
    /// 9800000001 and the OTP, and returns its token, ready for
    /// `POST /khalti/api/v2/payment/verify/`. Fails below 1000 paisa (khalti.md §9.1).
    pub fn mint_widget_token(&self, amount_paisa: u64) -> Result<String, String> {
        let amount = i64::try_from(amount_paisa)
            .map_err(|_| format!("amount {amount_paisa} paisa is too large"))?;
        self.mint_widget(widget_request(amount, None, None, None))
            .map(|record| record["token"].as_str().unwrap_or_default().to_owned())
    }

    /// The simulated record of a legacy widget transaction, by token or idx (the JSON
    /// of `GET /khalti/_sandbox/widget/tokens/{token}`: `token`, `idx`, `state`,
    /// `amount`, `mobile`, …), or `None` when there is none.
    pub fn widget_transaction(&self, token: &str) -> Option<serde_json::Value> {
        self.lock().widget.find(token).map(|txn| txn.record())
    }

    /// The records of the `limit` most recent legacy widget transactions, newest first.
    pub fn recent_widget_transactions(&self, limit: usize) -> Vec<serde_json::Value> {
        self.lock()
            .widget
            .recent(limit)
            .into_iter()
            .map(|txn| txn.record())
            .collect()
    }

    /// Mints a `Confirmed` widget transaction after checking the amount (≥ 1000 paisa)
    /// and the wallet (a test Khalti ID); returns its record.
    pub(crate) fn mint_widget(
        &self,
        req: widget::NewWidgetTxn,
    ) -> Result<serde_json::Value, String> {
        if req.amount < validate::MIN_AMOUNT {
            return Err(format!(
                "amount must be at least {} paisa (khalti.md §9.1), got {}",
                validate::MIN_AMOUNT,
                req.amount
            ));
        }
        if !TEST_KHALTI_IDS.contains(&req.mobile.as_str()) {
            return Err(format!(
                "mobile must be a test Khalti ID ({}), got `{}`",
                TEST_KHALTI_IDS.join(", "),
                req.mobile
            ));
        }
        let mut state = self.lock();
        let txn = state.widget_mint(req, chrono::Utc::now());
        tracing::info!(token = %txn.token, amount = txn.req.amount, "khalti sandbox: widget token minted");
        Ok(txn.record())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, KhaltiState> {
        // A panic while holding the lock leaves the state consistent enough for a
        // simulator; keep serving.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn public_url(&self) -> &Url {
        &self.shared.public_url
    }

    /// `{public_url}khalti/pay/?pidx=<pidx>`
    pub(crate) fn payment_url(&self, pidx: &str) -> String {
        store::payment_url(&self.shared.public_url, pidx)
    }
}

/// A minted widget transaction's request: wallet 9800000001 unless given, and
/// sandbox product names unless given.
pub(crate) fn widget_request(
    amount: i64,
    mobile: Option<String>,
    product_identity: Option<String>,
    product_name: Option<String>,
) -> widget::NewWidgetTxn {
    widget::NewWidgetTxn {
        mobile: mobile.unwrap_or_else(|| TEST_KHALTI_IDS[1].to_owned()),
        amount,
        product_identity: product_identity.unwrap_or_else(|| "sandbox-widget".to_owned()),
        product_name: product_name.unwrap_or_else(|| "Sandbox widget payment".to_owned()),
        product_url: None,
        merchant_extra: serde_json::Map::new(),
    }
}

/// Routes under `/khalti`.
pub(crate) fn routes() -> Router<Sandbox> {
    let initiate = post(api::initiate).fallback(api::method_not_allowed);
    let lookup = post(api::lookup).fallback(api::method_not_allowed);
    let refund = post(api::refund).fallback(api::method_not_allowed);
    let pay = get(checkout::page).post(checkout::submit);
    let widget_initiate =
        post(widget_api::initiate).fallback(widget_api::public_method_not_allowed);
    let widget_confirm = post(widget_api::confirm).fallback(widget_api::public_method_not_allowed);
    let widget_verify = post(widget_api::verify).fallback(api::method_not_allowed);
    let widget_status = get(widget_api::status).fallback(widget_api::status_method_not_allowed);
    let widget_tokens = get(control::list_widget_tokens).post(control::mint_widget_token);
    let widget_token = get(control::get_widget_token);
    Router::new()
        .route("/api/v2/epayment/initiate/", initiate.clone())
        .route("/api/v2/epayment/initiate", initiate)
        .route("/api/v2/epayment/lookup/", lookup.clone())
        .route("/api/v2/epayment/lookup", lookup)
        // khalti.md §6: no `/v2/` in the refund path.
        .route(
            "/api/merchant-transaction/{transaction_id}/refund/",
            refund.clone(),
        )
        .route("/api/merchant-transaction/{transaction_id}/refund", refund)
        .route("/pay/", pay.clone())
        .route("/pay", pay)
        // Legacy KPG-1 (khalti.md §9).
        .route("/api/v2/payment/initiate/", widget_initiate.clone())
        .route("/api/v2/payment/initiate", widget_initiate)
        .route("/api/v2/payment/confirm/", widget_confirm.clone())
        .route("/api/v2/payment/confirm", widget_confirm)
        .route("/api/v2/payment/verify/", widget_verify.clone())
        .route("/api/v2/payment/verify", widget_verify)
        .route("/api/v2/payment/status/", widget_status.clone())
        .route("/api/v2/payment/status", widget_status)
        .route(
            "/_sandbox/settings",
            get(control::get_settings).put(control::put_settings),
        )
        .route("/_sandbox/payments", get(control::list_payments))
        .route("/_sandbox/payments/{pidx}", get(control::get_payment))
        .route(
            "/_sandbox/payments/{pidx}/refund",
            post(control::dashboard_refund),
        )
        .route(
            "/_sandbox/payments/{pidx}/{action}",
            post(control::payment_action),
        )
        .route("/_sandbox/widget/tokens", widget_tokens.clone())
        .route("/_sandbox/widget/tokens/", widget_tokens)
        .route("/_sandbox/widget/tokens/{token}", widget_token.clone())
        .route("/_sandbox/widget/tokens/{token}/", widget_token)
}
