//! Chapa sandbox simulator (API v1, hosted checkout, callback and webhooks), following
//! `chapa.md`.
//!
//! Routes, relative to the sandbox root:
//!
//! | Route | What |
//! |---|---|
//! | `POST /chapa/v1/transaction/initialize` | Chapa initialize (§2) |
//! | `GET /chapa/v1/transaction/verify/{tx_ref}` | Chapa verify (§4) |
//! | `POST /chapa/v1/refund/{reference}` | Chapa refund, full or partial (§6) |
//! | `GET /chapa/checkout/{id}` | hosted checkout page (the `checkout.chapa.co` stand-in) |
//! | `POST /chapa/checkout/{id}` | checkout form: `action=pay\|fail\|cancel` |
//! | `GET`/`PUT /chapa/_sandbox/settings` | sandbox-only: read / change [`ChapaSettings`] |
//! | `GET /chapa/_sandbox/payments` | sandbox-only: the 20 most recent payments |
//! | `GET /chapa/_sandbox/payments/{tx_ref}` | sandbox-only: a payment's simulated record |
//! | `POST /chapa/_sandbox/payments/{tx_ref}/{pay\|fail\|cancel}` | sandbox-only: act as the customer would |
//! | `POST /chapa/_sandbox/payments/{tx_ref}/refund` | sandbox-only: refund as from the merchant dashboard (`{"amount": cents}` or all; sends `charge.refunded`) |
//!
//! After a payment's outcome (checkout page or control), the sandbox sends, in
//! background tasks: `GET callback_url?trx_ref=…&ref_id=…&status=…` (§3.2) and the
//! signed webhook `POST` to [`ChapaSettings::webhook_url`] (§5), redelivered on any
//! answer other than 200 following [`ChapaSettings::webhook_retry_ms`].
//!
//! Latency and faults ([`ChapaSettings::latency_ms`], [`ChapaSettings::fault`]) apply
//! to the API routes only (initialize, verify, refund), never to the pages or controls.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::khalti::Fault;
use crate::Sandbox;

mod api;
mod checkout;
mod control;
mod notify;
mod store;

pub(crate) use store::{checkout_url, money_string, ChapaState};

/// The only secret key the simulated API accepts unless configured otherwise. It has
/// the test-key shape `CHASECK_TEST-<32 chars>` (chapa.md §1).
pub const DEFAULT_CHAPA_SECRET_KEY: &str = "CHASECK_TEST-tijoriSandboxChapaSecretKey00000";

/// The default webhook "secret hash" (chapa.md §5.1), the key of both webhook
/// signatures.
pub const DEFAULT_CHAPA_WEBHOOK_SECRET: &str = "tijori_sandbox_chapa_webhook_secret";

/// Behaviour of the simulated Chapa. Also the JSON body of
/// `GET`/`PUT /chapa/_sandbox/settings`. Missing fields deserialize to their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ChapaSettings {
    /// The only key initialize, verify and refund accept, as
    /// `Authorization: Bearer <key>` (default [`DEFAULT_CHAPA_SECRET_KEY`]).
    pub secret_key: String,
    /// The webhook secret hash (default [`DEFAULT_CHAPA_WEBHOOK_SECRET`]).
    /// chapa.md §14 q1: the signatures use this dashboard secret, not the API key.
    pub webhook_secret: String,
    /// Where webhooks are POSTed; `None` (the default) sends none.
    pub webhook_url: Option<String>,
    /// Delays in milliseconds before each redelivery of a webhook that was not
    /// answered with 200; its length is the number of retries. chapa.md §5.1 / §14 q9:
    /// Chapa says "every 10 minutes for up to 10 attempts"; the default keeps the 10
    /// attempts (1 + 9 retries) but waits 10 s instead of 10 min.
    pub webhook_retry_ms: Vec<u64>,
    /// Deliver every webhook twice (chapa.md §5.1: "duplicates happen").
    pub webhook_twice: bool,
    /// Wait this long (ms) before the first delivery of each webhook. Default 0.
    pub webhook_delay_ms: u64,
    /// Out of order: each webhook is held back until the next one is due, then the
    /// two are delivered newest first. A held webhook with no successor is delivered
    /// after [`ChapaSettings::webhook_hold_ms`].
    pub webhook_out_of_order: bool,
    /// See [`ChapaSettings::webhook_out_of_order`]. Default 5000.
    pub webhook_hold_ms: u64,
    /// Sign webhooks with a wrong secret (both headers are then invalid).
    pub webhook_bad_signature: bool,
    /// Benchmarks: a transaction nobody has paid yet is paid when it is verified
    /// (no callback or webhook is sent for it). Default off.
    pub auto_complete: bool,
    /// Call the payment's `callback_url` after an outcome (default true). Off, only
    /// the webhook (if any) tells the merchant: for testing each channel alone.
    pub send_callbacks: bool,
    /// chapa.md §4.2 / §14 q4: verify of an unpaid transaction answers the documented
    /// 404 `Payment not paid yet` (false, default) or 200 with `data.status: "pending"`.
    pub verify_pending_as_200: bool,
    /// Chapa's fee in basis points of the amount (default 350 = 3.5 %, as in the
    /// verify sample of chapa.md §4.1: amount 100, charge 3.5).
    pub charge_basis_points: u32,
    /// Fixed delay, in milliseconds, added to every API answer. Default 0.
    pub latency_ms: u64,
    /// Fault injected into API answers. Default [`Fault::None`].
    pub fault: Fault,
    /// Apply the fault to the next N API calls; 0 = until changed. Counts down like
    /// [`crate::KhaltiSettings::fault_count`].
    pub fault_count: u32,
}

impl Default for ChapaSettings {
    fn default() -> Self {
        ChapaSettings {
            secret_key: DEFAULT_CHAPA_SECRET_KEY.to_owned(),
            webhook_secret: DEFAULT_CHAPA_WEBHOOK_SECRET.to_owned(),
            webhook_url: None,
            webhook_retry_ms: vec![10_000; 9],
            webhook_twice: false,
            webhook_delay_ms: 0,
            webhook_out_of_order: false,
            webhook_hold_ms: 5_000,
            webhook_bad_signature: false,
            send_callbacks: true,
            auto_complete: false,
            verify_pending_as_200: false,
            charge_basis_points: 350,
            latency_ms: 0,
            fault: Fault::None,
            fault_count: 0,
        }
    }
}

/// What the customer does on the checkout page (or a control does for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Pay,
    Fail,
    Cancel,
}

impl Action {
    pub(crate) fn parse(s: &str) -> Option<Action> {
        match s {
            "pay" => Some(Action::Pay),
            "fail" => Some(Action::Fail),
            "cancel" => Some(Action::Cancel),
            _ => None,
        }
    }
}

/// Programmatic control of the Chapa simulator, for tests. Cheap to clone; shares
/// state with the [`Sandbox`] it came from.
///
/// [`pay`](ChapaControl::pay), [`fail`](ChapaControl::fail) and
/// [`cancel`](ChapaControl::cancel) send the callback and webhook in background
/// tokio tasks, so call them inside a tokio runtime (outside one, nothing is sent).
#[derive(Clone)]
pub struct ChapaControl {
    shared: Arc<Shared>,
}

struct Shared {
    public_url: Url,
    state: Mutex<ChapaState>,
    http: reqwest::Client,
    /// The webhook held back by `webhook_out_of_order`, with its hold number.
    held: Mutex<Option<(u64, notify::Webhook)>>,
}

impl ChapaControl {
    pub(crate) fn new(public_url: Url, settings: ChapaSettings) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        ChapaControl {
            shared: Arc::new(Shared {
                public_url,
                state: Mutex::new(ChapaState::new(settings)),
                http,
                held: Mutex::new(None),
            }),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> ChapaSettings {
        self.lock().settings.clone()
    }

    /// Replaces the settings. Takes effect for the next request or webhook.
    pub fn set_settings(&self, settings: ChapaSettings) {
        self.lock().settings = settings;
    }

    /// Pays the transaction as the customer would on the checkout page; sends the
    /// callback and the `charge.success` webhook. Returns the payment's record.
    pub fn pay(&self, tx_ref: &str) -> Result<Value, String> {
        self.act(tx_ref, Action::Pay)
    }

    /// A failed payment attempt (the customer may retry, chapa.md §3.3); sends the
    /// callback and the `charge.failed/cancelled` webhook.
    pub fn fail(&self, tx_ref: &str) -> Result<Value, String> {
        self.act(tx_ref, Action::Fail)
    }

    /// The customer cancels; the checkout link stops working. Sends the callback and
    /// the `charge.failed/cancelled` webhook.
    pub fn cancel(&self, tx_ref: &str) -> Result<Value, String> {
        self.act(tx_ref, Action::Cancel)
    }

    /// Refunds `amount` cents of a successful payment (everything left when `None`) as
    /// the merchant would in Chapa's dashboard, outside the merchant's own app; sends
    /// the `charge.refunded` webhook like any refund (chapa.md §5.2, §6). Returns the
    /// payment's record.
    pub fn dashboard_refund(&self, tx_ref: &str, amount: Option<i64>) -> Result<Value, String> {
        let (record, notifications) = {
            let mut state = self.lock();
            let webhook_url = state.settings.webhook_url.clone();
            let (payment, refund) = state
                .refund(
                    tx_ref,
                    amount,
                    Some("refunded in the dashboard".into()),
                    None,
                    store::empty_object(),
                    chrono::Utc::now(),
                )
                .map_err(|e| format!("{e:?}"))?;
            tracing::info!(
                tx_ref,
                amount = refund.amount,
                "chapa sandbox: dashboard refund"
            );
            (
                payment.record(&self.shared.public_url),
                notify::Notifications::refunded(payment, webhook_url),
            )
        };
        notify::dispatch(self.clone(), notifications);
        Ok(record)
    }

    /// The simulated record of a payment (the JSON of
    /// `GET /chapa/_sandbox/payments/{tx_ref}`), or `None` for an unknown `tx_ref`.
    pub fn payment(&self, tx_ref: &str) -> Option<Value> {
        let state = self.lock();
        state.get(tx_ref).map(|p| p.record(&self.shared.public_url))
    }

    /// The records of the `limit` most recent payments, newest first.
    pub fn recent_payments(&self, limit: usize) -> Vec<Value> {
        let state = self.lock();
        state
            .recent(limit)
            .into_iter()
            .map(|p| p.record(&self.shared.public_url))
            .collect()
    }

    /// Applies a customer action and dispatches the notifications.
    pub(crate) fn act(&self, tx_ref: &str, action: Action) -> Result<Value, String> {
        let now = chrono::Utc::now();
        let (record, notifications) = {
            let mut state = self.lock();
            let webhook_url = state.settings.webhook_url.clone();
            let send_callbacks = state.settings.send_callbacks;
            let payment = state
                .apply(tx_ref, action, now)
                .map_err(|e| e.to_string())?;
            tracing::info!(
                tx_ref,
                ?action,
                status = payment.status.as_str(),
                "chapa sandbox: customer action"
            );
            let mut notifications = notify::Notifications::after(payment, action, webhook_url);
            if !send_callbacks {
                notifications.callback = None;
            }
            (payment.record(&self.shared.public_url), notifications)
        };
        notify::dispatch(self.clone(), notifications);
        Ok(record)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ChapaState> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn public_url(&self) -> &Url {
        &self.shared.public_url
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.shared.http
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, Option<(u64, notify::Webhook)>> {
        self.shared
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Routes under `/chapa`.
pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/v1/transaction/initialize", post(api::initialize))
        .route("/v1/transaction/verify/{tx_ref}", get(api::verify))
        .route("/v1/refund/{reference}", post(api::refund))
        .route("/checkout/{id}", get(checkout::page).post(checkout::submit))
        .route(
            "/_sandbox/settings",
            get(control::get_settings).put(control::put_settings),
        )
        .route("/_sandbox/payments", get(control::list_payments))
        .route("/_sandbox/payments/{tx_ref}", get(control::get_payment))
        .route(
            "/_sandbox/payments/{tx_ref}/refund",
            post(control::dashboard_refund),
        )
        .route(
            "/_sandbox/payments/{tx_ref}/{action}",
            post(control::payment_action),
        )
}
