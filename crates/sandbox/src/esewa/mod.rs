//! eSewa ePay v2 simulator (the signed form, the hosted login/pay page, the signed
//! success redirect and the failure redirect, the status check API), following
//! `esewa.md` (the team's research notes on eSewa's public contract, with sources).
//!
//! Routes, relative to the sandbox root. eSewa's own paths sit under `/esewa`, and the
//! form and the status API share the one listener (esewa.md §11 q2), so a client's
//! form host and status host are both `{public_url}esewa/`:
//!
//! | Route | What |
//! |---|---|
//! | `POST /esewa/api/epay/main/v2/form` | the payment form (esewa.md §3): 302 to the hosted page, or 400 |
//! | `GET /esewa/api/epay/transaction/status/?product_code=…&total_amount=…&transaction_uuid=…` | the status check (§5) |
//! | `GET /esewa/checkout/{transaction_uuid}` | hosted login/pay page (the `rc-epay.esewa.com.np` page stand-in, §4.1) |
//! | `POST /esewa/checkout/{transaction_uuid}` | the page's form: eSewa ID, password, token, `action=pay\|cancel` |
//! | `GET`/`PUT /esewa/_sandbox/settings` | sandbox-only: read / change [`EsewaSettings`] |
//! | `GET /esewa/_sandbox/payments` | sandbox-only: the 20 most recent payments |
//! | `GET /esewa/_sandbox/payments/{transaction_uuid}` | sandbox-only: a payment's simulated record |
//! | `POST /esewa/_sandbox/payments/{transaction_uuid}/{action}` | sandbox-only: `complete`, `pending`, `ambiguous`, `cancel`, `expire`, `refund`, `partial_refund` |
//!
//! The status path also answers without its trailing slash (esewa.md §1.1 leaves
//! open whether eSewa does; accepting both is the forgiving choice, as the Khalti
//! simulator does). The `_sandbox` routes are not part of eSewa and need no
//! authentication.
//!
//! Latency and faults ([`EsewaSettings::latency_ms`], [`EsewaSettings::fault`]) apply
//! to the status API only: the form and the page are the browser's, and a merchant's
//! server never sees their failures except as a missing redirect.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::Sandbox;

mod checkout;
mod control;
mod form;
mod sign;
mod status;
mod store;

pub(crate) use sign::rupees;
use store::Action;
pub(crate) use store::{checkout_url, EsewaState};

/// eSewa's UAT merchant code (esewa.md §1.2), the one the form accepts unless
/// configured otherwise.
pub const DEFAULT_ESEWA_PRODUCT_CODE: &str = "EPAYTEST";

/// eSewa's published UAT secret key (esewa.md §1.2): 15 characters, no trailing `(`.
pub const DEFAULT_ESEWA_SECRET_KEY: &str = "8gBm/:&EnhH.1/q";

/// The test eSewa IDs the hosted page accepts (esewa.md §1.3).
pub const TEST_ESEWA_IDS: [&str; 5] = [
    "9806800001",
    "9806800002",
    "9806800003",
    "9806800004",
    "9806800005",
];
/// The test eSewa password (esewa.md §1.3).
pub const TEST_ESEWA_PASSWORD: &str = "Nepal@123";
/// The test token, the 6-digit OTP eSewa sends after login (esewa.md §1.3).
pub const TEST_ESEWA_TOKEN: &str = "123456";

/// Behaviour of the simulated eSewa. Also the JSON body of
/// `GET`/`PUT /esewa/_sandbox/settings`. Missing fields deserialize to their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct EsewaSettings {
    /// The only merchant code the form and the status API know (default
    /// [`DEFAULT_ESEWA_PRODUCT_CODE`]); any other gets eSewa's "Unable to fetch
    /// merchant key" answer (esewa.md §3.3).
    pub product_code: String,
    /// That merchant's secret: it checks the form's signature and signs the success
    /// redirect (default [`DEFAULT_ESEWA_SECRET_KEY`]).
    pub secret_key: String,
    /// Load tests: a valid form is paid at once by test ID 9806800001, and the form
    /// answers 302 straight to the redirect (signed `success_url?data=…` under the
    /// default outcome), so no browser or page is needed. [`EsewaSettings::outcome`]
    /// still applies. Default off.
    pub auto_complete: bool,
    /// What Pay on the hosted page (and auto-complete) leads to. Default
    /// [`EsewaOutcome::Complete`].
    pub outcome: EsewaOutcome,
    /// Apply [`EsewaSettings::outcome`] to the next N payments only, then go back to
    /// `complete`; 0 = until changed. Counts down like
    /// [`EsewaSettings::fault_count`].
    pub outcome_count: u32,
    /// A payment left `PENDING` or `AMBIGUOUS` by the outcome turns `COMPLETE` after
    /// this many status checks (it answers its status N times, then `COMPLETE`), as a
    /// payment stuck between systems eventually settles. 0 (default): it stays until
    /// a control moves it.
    pub complete_after_checks: u32,
    /// Show the success redirect's `total_amount` with thousands separators
    /// (`"2,700.0"`) while signing the plain text, as one real UAT callback did
    /// (esewa.md §11 q7). Default off.
    pub group_thousands: bool,
    /// HTTP status of the `outage` fault's body. esewa.md §5.4 / §11 q13: not
    /// documented; pay-np says eSewa sends it with 200, the default.
    pub outage_status: u16,
    /// Fixed delay, in milliseconds, added to every status API answer. Default 0.
    pub latency_ms: u64,
    /// Fault injected into status API answers. Default [`EsewaFault::None`].
    pub fault: EsewaFault,
    /// Apply the fault to the next N status calls; 0 = until changed. While counting
    /// down this field shows how many faulty calls remain; after the last one the
    /// settings go back to `fault: none, fault_count: 0`.
    pub fault_count: u32,
}

impl Default for EsewaSettings {
    fn default() -> Self {
        EsewaSettings {
            product_code: DEFAULT_ESEWA_PRODUCT_CODE.to_owned(),
            secret_key: DEFAULT_ESEWA_SECRET_KEY.to_owned(),
            auto_complete: false,
            outcome: EsewaOutcome::Complete,
            outcome_count: 0,
            complete_after_checks: 0,
            group_thousands: false,
            outage_status: 200,
            latency_ms: 0,
            fault: EsewaFault::None,
            fault_count: 0,
        }
    }
}

/// What the payer's Pay leads to: the switch that forces a status for the next
/// payments.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EsewaOutcome {
    /// `COMPLETE` and the signed success redirect.
    #[default]
    Complete,
    /// Stays `PENDING` (in process); the browser goes to `failure_url` (esewa.md §4.3:
    /// "after FAILURE or PENDING transaction").
    Pending,
    /// `AMBIGUOUS` ("at halt state"); the browser goes to `failure_url` (esewa.md
    /// §11 q12).
    Ambiguous,
    /// `CANCELED` (reversed by eSewa); the browser goes to `failure_url`.
    Canceled,
    /// `NOT_FOUND`: the session expired before the payment went through; the payer
    /// is sent to `failure_url` (esewa.md §4.1: any failure goes back to it).
    NotFound,
}

impl EsewaOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EsewaOutcome::Complete => "complete",
            EsewaOutcome::Pending => "pending",
            EsewaOutcome::Ambiguous => "ambiguous",
            EsewaOutcome::Canceled => "canceled",
            EsewaOutcome::NotFound => "not_found",
        }
    }
}

/// A fault of the status API, as eSewa or a proxy in front of it would produce it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EsewaFault {
    /// Answer normally.
    #[default]
    None,
    /// Hold the request about 60 s without answering (then 504 with an HTML body).
    Timeout,
    /// 500 with Spring Boot's default error JSON, whose `status` is a number
    /// (esewa.md §11 q20, §5.4).
    ServerError,
    /// 200 with a body that is not JSON (an HTML maintenance page).
    Garbage,
    /// eSewa's documented outage answer `{"code": 0, "error_message": "Service is
    /// currently unavailable"}` (esewa.md §5.4), with
    /// [`EsewaSettings::outage_status`].
    Outage,
}

impl EsewaFault {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EsewaFault::None => "none",
            EsewaFault::Timeout => "timeout",
            EsewaFault::ServerError => "server_error",
            EsewaFault::Garbage => "garbage",
            EsewaFault::Outage => "outage",
        }
    }
}

/// Programmatic control of the eSewa simulator, for tests. Cheap to clone; shares
/// state with the [`Sandbox`] it came from.
///
/// The actions return the payment's record (the JSON of
/// `GET /esewa/_sandbox/payments/{uuid}`, with `redirect_url`, where the browser
/// would be sent) or why the payment's state does not allow them.
#[derive(Clone)]
pub struct EsewaControl {
    shared: Arc<Shared>,
}

struct Shared {
    public_url: Url,
    state: Mutex<EsewaState>,
}

impl EsewaControl {
    pub(crate) fn new(public_url: Url, settings: EsewaSettings) -> Self {
        EsewaControl {
            shared: Arc::new(Shared {
                public_url,
                state: Mutex::new(EsewaState::new(settings)),
            }),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> EsewaSettings {
        self.lock().settings.clone()
    }

    /// Replaces the settings. Takes effect for the next request (a request already
    /// waiting out its latency or timeout is not affected).
    pub fn set_settings(&self, settings: EsewaSettings) {
        self.lock().settings = settings;
    }

    /// Pays a `PENDING` payment (or settles an `AMBIGUOUS` one): `COMPLETE`, and
    /// `redirect_url` is the signed success redirect.
    pub fn complete(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::Complete)
    }

    /// Leaves a `PENDING` payment in process (the browser goes to `failure_url`, the
    /// status stays `PENDING`) until another action moves it.
    pub fn pending(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::Pending)
    }

    /// Halts a `PENDING` payment: `AMBIGUOUS`, failure redirect.
    pub fn ambiguous(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::Ambiguous)
    }

    /// Cancels a `PENDING` or `AMBIGUOUS` payment: `CANCELED`, failure redirect.
    pub fn cancel(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::Cancel)
    }

    /// Ends a `PENDING` payment's session: `NOT_FOUND`, no redirect.
    pub fn expire(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::Expire)
    }

    /// A full refund made by eSewa, outside any API (esewa.md §9): `FULL_REFUND`.
    pub fn refund(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::Refund)
    }

    /// A partial refund made by eSewa, outside any API (esewa.md §9):
    /// `PARTIAL_REFUND`.
    pub fn partial_refund(&self, transaction_uuid: &str) -> Result<Value, String> {
        self.act(transaction_uuid, Action::PartialRefund)
    }

    /// The simulated record of a payment, or `None` for an unknown uuid (or one
    /// forgotten past the store's bound).
    pub fn payment(&self, transaction_uuid: &str) -> Option<Value> {
        self.lock()
            .get(transaction_uuid)
            .map(|p| p.record(&self.shared.public_url))
    }

    /// The records of the `limit` most recent payments, newest first.
    pub fn recent_payments(&self, limit: usize) -> Vec<Value> {
        self.lock()
            .recent(limit)
            .into_iter()
            .map(|p| p.record(&self.shared.public_url))
            .collect()
    }

    pub(crate) fn act(&self, transaction_uuid: &str, action: Action) -> Result<Value, String> {
        let mut state = self.lock();
        let payment = state
            .apply(transaction_uuid, action, None, None, chrono::Utc::now())
            .map_err(|e| e.to_string())?;
        tracing::info!(
            transaction_uuid,
            action = action.as_str(),
            status = payment.status.as_str(),
            "esewa sandbox: control"
        );
        Ok(payment.record(&self.shared.public_url))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, EsewaState> {
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
}

/// Routes under `/esewa`.
pub(crate) fn routes() -> Router<Sandbox> {
    let status = get(status::status);
    Router::new()
        .route("/api/epay/main/v2/form", post(form::submit))
        .route("/api/epay/transaction/status/", status.clone())
        .route("/api/epay/transaction/status", status)
        .route(
            "/checkout/{transaction_uuid}",
            get(checkout::page).post(checkout::submit),
        )
        .route(
            "/_sandbox/settings",
            get(control::get_settings).put(control::put_settings),
        )
        .route("/_sandbox/payments", get(control::list_payments))
        .route(
            "/_sandbox/payments/{transaction_uuid}",
            get(control::get_payment),
        )
        .route(
            "/_sandbox/payments/{transaction_uuid}/{action}",
            post(control::payment_action),
        )
}
