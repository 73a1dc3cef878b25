//! Khalti sandbox simulator (ePayment / "KPG-2"), following `khalti.md`.
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
//! | `GET`/`PUT /khalti/_sandbox/settings` | sandbox-only: read / change [`KhaltiSettings`] |
//! | `GET /khalti/_sandbox/payments` | sandbox-only: the 20 most recent payments |
//! | `GET /khalti/_sandbox/payments/{pidx}` | sandbox-only: a payment's simulated record |
//! | `POST /khalti/_sandbox/payments/{pidx}/complete` | sandbox-only: pay it with wallet 9800000001 |
//! | `POST /khalti/_sandbox/payments/{pidx}/cancel` | sandbox-only: cancel it as the user would |
//! | `POST /khalti/_sandbox/payments/{pidx}/expire` | sandbox-only: move its expiry into the past |
//!
//! The API routes also answer without the trailing slash (khalti.md §8 item 14 / §12
//! q10 leave it open; accepting both is the forgiving choice). The `_sandbox` routes
//! are not part of Khalti; they need no authentication.
//!
//! Latency and faults ([`KhaltiSettings::latency_ms`], [`KhaltiSettings::fault`]) apply
//! to the API routes only (initiate, lookup, refund), never to the pages or controls.

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

pub(crate) use checkout::rupees;
pub(crate) use store::{KhaltiState, Status};

/// The only secret key the simulated API accepts unless configured otherwise.
pub const DEFAULT_KHALTI_SECRET_KEY: &str = "test_secret_key_tijori_sandbox";

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
    /// The only key initiate, lookup and refund accept
    /// (default [`DEFAULT_KHALTI_SECRET_KEY`]).
    pub secret_key: String,
    /// Payment link lifetime in seconds; default 1800, the sandbox value (khalti.md §3.2).
    pub expires_in_secs: u64,
    /// "Answer Pending first": a paid payment answers `Pending` to this many lookups
    /// before `Completed`, and the return redirect says `status=Pending`. Default 0.
    pub pending_lookups: u32,
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
            expires_in_secs: 1800,
            pending_lookups: 0,
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

/// Routes under `/khalti`.
pub(crate) fn routes() -> Router<Sandbox> {
    let initiate = post(api::initiate).fallback(api::method_not_allowed);
    let lookup = post(api::lookup).fallback(api::method_not_allowed);
    let refund = post(api::refund).fallback(api::method_not_allowed);
    let pay = get(checkout::page).post(checkout::submit);
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
        .route(
            "/_sandbox/settings",
            get(control::get_settings).put(control::put_settings),
        )
        .route("/_sandbox/payments", get(control::list_payments))
        .route("/_sandbox/payments/{pidx}", get(control::get_payment))
        .route(
            "/_sandbox/payments/{pidx}/{action}",
            post(control::payment_action),
        )
}
