//! What tijori counts for its operator, through the `metrics` facade: every series'
//! name, labels and help written once, here, and recorded where the thing happens.
//! Recording is a map lookup and an atomic add; with no recorder installed (the core
//! used without the web crate) it does nothing. The web crate's `AppState` installs
//! the process's Prometheus recorder the first time one is made and serves it at
//! `/metrics` (see docs/operations.md for the series and alert rules).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::gateway::{
    Checkout, CheckoutForm, CheckoutRequest, Gateway, GatewayAnswer, GatewayError, GatewayKind,
    RawAnswer, RefundRequest, SignedReturn, WebhookError, WebhookNotice,
};
use crate::money::{Currency, Money};
use crate::payment::Payment;

/// Payments that reached a status other than open, by gateway, purpose and status.
pub const PAYMENT_OUTCOMES: &str = "tijori_payment_outcomes_total";
/// Settlements by the path that learned the outcome and whether it changed anything.
pub const SETTLEMENTS: &str = "tijori_settlements_total";
/// Calls to the gateways' APIs by gateway, operation and outcome.
pub const GATEWAY_REQUESTS: &str = "tijori_gateway_requests_total";
/// How long the gateways took to answer, by gateway and operation.
pub const GATEWAY_DURATION: &str = "tijori_gateway_request_duration_seconds";
/// Incoming gateway webhooks by gateway and outcome.
pub const WEBHOOKS_RECEIVED: &str = "tijori_webhooks_received_total";
/// Background jobs run, by kind and outcome (done, retry, dead).
pub const JOBS_RUN: &str = "tijori_jobs_run_total";
/// Jobs waiting to run, by class (deliveries of outgoing events, the rest).
pub const JOBS_QUEUED: &str = "tijori_jobs_queued";
/// Jobs out of tries, by class (deliveries of outgoing events, other).
pub const JOBS_DEAD: &str = "tijori_jobs_dead";
/// Whether the last scrape's database counts were read (1) or not (0: the database
/// did not answer in time; its gauges show the last counts).
pub const DATABASE_GAUGES_UP: &str = "tijori_database_gauges_up";
/// Payments whose outcome has not arrived yet.
pub const PAYMENTS_OPEN: &str = "tijori_payments_open";
/// Open payments the reconciler has not looked at for twice the reconcile age.
pub const PAYMENTS_OVERDUE: &str = "tijori_payments_overdue";
/// Paid payments held for an operator's review.
pub const PAYMENTS_HELD: &str = "tijori_payments_held_for_review";
/// Live-status streams (SSE and WebSocket) open now.
pub const LIVE_SUBSCRIBERS: &str = "tijori_live_subscribers";
/// Seconds since this process's worker last went round its loop (absent without one).
pub const WORKER_HEARTBEAT_AGE: &str = "tijori_worker_heartbeat_age_seconds";
/// HTTP requests answered, by route template, method and status class.
pub const HTTP_REQUESTS: &str = "tijori_http_requests_total";
/// How long requests took to answer, by route template and method.
pub const HTTP_DURATION: &str = "tijori_http_request_duration_seconds";
/// How many write transactions the SQLite writer committed at once.
pub const SQLITE_BATCH: &str = "tijori_sqlite_write_batch_size";
/// How long the SQLite writer's commits took.
pub const SQLITE_COMMIT: &str = "tijori_sqlite_commit_duration_seconds";

/// Says what each series is, for the exposition's `# HELP` lines. Called once by
/// whoever installs the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        PAYMENT_OUTCOMES,
        "Payments that reached a status other than open, by gateway, purpose and status."
    );
    describe_counter!(
        SETTLEMENTS,
        "Settlements by the path that learned the outcome (return, verify, refresh, webhook, callback, reconciler, ...) and whether it changed the payment."
    );
    describe_counter!(
        GATEWAY_REQUESTS,
        "Calls to the gateways' APIs by gateway, operation and outcome (ok or the kind of failure)."
    );
    describe_histogram!(
        GATEWAY_DURATION,
        Unit::Seconds,
        "How long the gateways took to answer, by gateway and operation."
    );
    describe_counter!(
        WEBHOOKS_RECEIVED,
        "Incoming gateway webhooks by gateway and outcome (verified, duplicate, bad_signature, unverifiable, ...)."
    );
    describe_counter!(
        JOBS_RUN,
        "Background jobs run, by kind and outcome (done, retry, dead)."
    );
    describe_gauge!(
        JOBS_QUEUED,
        "Jobs waiting to run, by class (deliveries of outgoing events, other)."
    );
    describe_gauge!(
        JOBS_DEAD,
        "Jobs out of tries, by class: other jobs wait for an operator's retry; dead deliveries are redelivered per endpoint."
    );
    describe_gauge!(
        DATABASE_GAUGES_UP,
        "1 when this scrape read the database's counts, 0 when the database did not answer in time (its gauges then show the last counts)."
    );
    describe_gauge!(PAYMENTS_OPEN, "Payments whose outcome has not arrived yet.");
    describe_gauge!(
        PAYMENTS_OVERDUE,
        "Open payments the reconciler has not looked at for twice TIJORI_RECONCILE_AFTER_MINUTES: it is stopped or not keeping up."
    );
    describe_gauge!(
        PAYMENTS_HELD,
        "Paid payments held for an operator's review."
    );
    describe_gauge!(
        LIVE_SUBSCRIBERS,
        "Live-status streams (SSE and WebSocket) open in this process."
    );
    describe_gauge!(
        WORKER_HEARTBEAT_AGE,
        Unit::Seconds,
        "Seconds since this process's background worker last went round its loop."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status class."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "How long HTTP requests took to answer, by route template and method."
    );
    describe_histogram!(
        SQLITE_BATCH,
        "Write transactions the SQLite writer committed in one commit."
    );
    describe_histogram!(
        SQLITE_COMMIT,
        Unit::Seconds,
        "How long the SQLite writer's commits took."
    );
}

/// The histograms' buckets, in seconds or counts: Prometheus histograms (not
/// summaries), so that they aggregate across processes.
pub fn buckets(name: &str) -> &'static [f64] {
    match name {
        SQLITE_BATCH => &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
        SQLITE_COMMIT => &[
            0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
        ],
        _ => &[
            0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    }
}

/// Which path learned a payment's outcome: the label of [`SETTLEMENTS`], so an
/// operator sees whether webhooks arrive, returns verify, or the reconciler does the
/// work the others missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettledVia {
    /// The customer's browser came back to the return page.
    Return,
    /// The API's verify (the merchant's page asking).
    Verify,
    /// "Check payment status": the customer asked again.
    Refresh,
    /// A gateway's webhook.
    Webhook,
    /// Chapa's callback.
    Callback,
    /// The reconciler's sweep of payments whose outcome never arrived.
    Reconciler,
    /// Khalti's widget token captured.
    Widget,
    /// An order's checkout reopened after its link expired.
    Checkout,
    /// A refund's answer.
    Refund,
    /// A look-up for a refund whose answer was lost (background or an operator).
    RefundCheck,
    /// The audit that finds refunds made in the gateway's dashboard.
    RefundAudit,
}

impl SettledVia {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SettledVia::Return => "return",
            SettledVia::Verify => "verify",
            SettledVia::Refresh => "refresh",
            SettledVia::Webhook => "webhook",
            SettledVia::Callback => "callback",
            SettledVia::Reconciler => "reconciler",
            SettledVia::Widget => "widget",
            SettledVia::Checkout => "checkout",
            SettledVia::Refund => "refund",
            SettledVia::RefundCheck => "refund_check",
            SettledVia::RefundAudit => "refund_audit",
        }
    }
}

/// Counts a settlement, and the payment's new status when it moved out of open.
pub fn settled(via: SettledVia, changed: bool, payment: &Payment) {
    metrics::counter!(
        SETTLEMENTS,
        "path" => via.as_str(),
        "changed" => if changed { "true" } else { "false" },
    )
    .increment(1);
    if changed {
        outcome_of(payment);
    }
}

/// Counts the status a payment just moved to, when it is not open: by a settlement,
/// or by a checkout that never opened (`fail_initiation`).
pub fn outcome_of(payment: &Payment) {
    if !payment.status.is_open() {
        metrics::counter!(
            PAYMENT_OUTCOMES,
            "gateway" => payment.gateway.as_str(),
            "purpose" => payment.purpose.as_str(),
            "status" => payment.status.as_str(),
        )
        .increment(1);
    }
}

/// The outcome label of a gateway call.
fn outcome<T>(result: &Result<T, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(GatewayError::Rejected { .. }) => "rejected",
        Err(GatewayError::Unauthorized { .. }) => "unauthorized",
        Err(GatewayError::NotFound { .. }) => "not_found",
        Err(GatewayError::Timeout { .. }) => "timeout",
        Err(GatewayError::Unreachable { .. }) => "unreachable",
        Err(GatewayError::Unavailable { .. }) => "unavailable",
        Err(GatewayError::BadAnswer { .. }) => "bad_answer",
    }
}

/// How a gateway's last call went, for `/readyz`: shown to the operator, never a
/// reason to take the server out of rotation (a gateway's outage is not ours).
#[derive(Clone, Debug)]
pub struct LastCall {
    /// Which API call.
    pub operation: &'static str,
    /// `ok`, or the kind of failure.
    pub outcome: &'static str,
    /// When it answered (or gave up).
    pub at: DateTime<Utc>,
    /// How long it took.
    pub took: Duration,
}

/// The last call to each gateway, shared by the measured gateways and `/readyz`.
#[derive(Clone, Default)]
pub struct GatewayHealth(Arc<Mutex<HashMap<GatewayKind, LastCall>>>);

impl GatewayHealth {
    /// Each gateway's last call, if it made one since start.
    pub fn last_calls(&self) -> HashMap<GatewayKind, LastCall> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn note(&self, gateway: GatewayKind, call: LastCall) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(gateway, call);
        }
    }
}

/// A gateway whose API calls are counted and timed ([`GATEWAY_REQUESTS`],
/// [`GATEWAY_DURATION`]) and noted in [`GatewayHealth`]. `Gateways::with` wraps
/// every gateway in one, so no call goes unmeasured.
pub struct Measured {
    inner: Arc<dyn Gateway>,
    health: GatewayHealth,
}

impl Measured {
    /// `inner`, measured, noting its calls in `health`.
    pub fn new(inner: Arc<dyn Gateway>, health: GatewayHealth) -> Self {
        Measured { inner, health }
    }

    async fn measure<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let started = Instant::now();
        let result = call.await;
        let took = started.elapsed();
        let gateway = self.inner.kind();
        let outcome = outcome(&result);
        metrics::counter!(
            GATEWAY_REQUESTS,
            "gateway" => gateway.as_str(),
            "operation" => operation,
            "outcome" => outcome,
        )
        .increment(1);
        metrics::histogram!(
            GATEWAY_DURATION,
            "gateway" => gateway.as_str(),
            "operation" => operation,
        )
        .record(took.as_secs_f64());
        self.health.note(
            gateway,
            LastCall {
                operation,
                outcome,
                at: Utc::now(),
                took,
            },
        );
        result
    }
}

#[async_trait]
impl Gateway for Measured {
    fn kind(&self) -> GatewayKind {
        self.inner.kind()
    }

    fn supports(&self, currency: Currency) -> bool {
        self.inner.supports(currency)
    }

    async fn initiate(&self, request: &CheckoutRequest) -> Result<Checkout, GatewayError> {
        self.measure("initiate", self.inner.initiate(request)).await
    }

    async fn lookup(
        &self,
        provider_ref: &str,
        amount: Money,
    ) -> Result<GatewayAnswer, GatewayError> {
        self.measure("lookup", self.inner.lookup(provider_ref, amount))
            .await
    }

    fn read_return(&self, query: &str) -> Option<SignedReturn> {
        self.inner.read_return(query)
    }

    fn checkout_form(&self, request: &CheckoutRequest) -> Option<CheckoutForm> {
        self.inner.checkout_form(request)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RawAnswer, GatewayError> {
        self.measure("refund", self.inner.refund(request)).await
    }

    fn has_refund_api(&self) -> bool {
        self.inner.has_refund_api()
    }

    fn refunds_show_at_once(&self) -> bool {
        self.inner.refunds_show_at_once()
    }

    async fn capture_token(
        &self,
        token: &str,
        amount: Money,
    ) -> Result<GatewayAnswer, GatewayError> {
        self.measure("capture_token", self.inner.capture_token(token, amount))
            .await
    }

    fn read_webhook(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<WebhookNotice, WebhookError> {
        self.inner.read_webhook(headers, body)
    }
}
