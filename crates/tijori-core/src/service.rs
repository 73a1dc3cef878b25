//! The use-cases. The web layer, the CLI and background work all go through here, so a
//! payment's outcome is decided in one place whichever path learned it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::clock::Clock;
use crate::error::Result;
use crate::gateway::{GatewayKind, Gateways};
use crate::id::{PaymentId, PlanId};
use crate::idempotency::InstanceId;
use crate::payment::Payment;
use crate::shop::Order;
use crate::store::Store;
use crate::subscription::{ChangePreview, Plan, Subscription};

mod account_basics;
mod accounts;
use accounts::Hasher;
mod admin;
mod background;
mod checkout;
mod events;
mod idempotency;
mod notices;
mod receipts;
mod refunds;
mod returns;
mod settlement;
mod shop;
mod webhooks;
mod widget;

pub use account_basics::{PASSWORD_RESET_MINUTES, PASSWORD_RESET_PATH};
pub use admin::{PaymentAudit, RefundOnce, MAX_RESOLUTION_NOTE, REVENUE_WINDOWS};
pub use background::{BackgroundSettings, ReconcileReport, Reconciled, Worker};
pub use events::{NewEndpoint, Redeliver, REDELIVER_BATCH};
pub use receipts::ReceiptDetails;
pub use refunds::{RefundOrder, RefundState, Refunded, Resolution};
pub use returns::{
    kept_return_query, return_lookup_cutoff, return_lookup_due, Returned, MAX_RETURN_QUERY_BYTES,
    RETURN_LOOKUP_EVERY_SECS,
};
pub use webhooks::WebhookOutcome;
pub use widget::WidgetTarget;

/// How long a browser session lasts.
pub const SESSION_LIFETIME_DAYS: i64 = 14;

/// How long an API token works; a client signs in again after that.
pub const API_TOKEN_LIFETIME_DAYS: i64 = 30;

/// The longest plan, in days (a century): keeps the date arithmetic of every renewal
/// far from overflow.
pub const MAX_PLAN_DAYS: u32 = 36_500;

/// How a deployment tunes the use-cases: start from [`Settings::new`] and override the
/// fields it sets.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where customers reach this tijori (no trailing slash); return URLs hang off it.
    pub public_url: String,
    /// How long an unpaid order holds its stock.
    pub order_ttl: Duration,
    /// How much one customer may hold unpaid.
    pub order_caps: crate::shop::OrderCaps,
    /// How many password hashes (sign-in, sign-up) may wait for a core; beyond that
    /// an attempt is refused at once. `None`: 8 a core.
    pub hashes_waiting: Option<usize>,
    /// Who issues the receipts (their name and address are printed on each).
    pub merchant: crate::receipt::Merchant,
}

impl Settings {
    /// The default `order_ttl`: how long, in minutes, an unpaid order holds its stock.
    pub const DEFAULT_ORDER_TTL_MINUTES: i64 = 30;

    /// Settings for a tijori reached at `public_url` (no trailing slash), every other
    /// field at its default.
    pub fn new(public_url: impl Into<String>) -> Self {
        Settings {
            public_url: public_url.into(),
            order_ttl: Duration::minutes(Self::DEFAULT_ORDER_TTL_MINUTES),
            order_caps: crate::shop::OrderCaps::default(),
            hashes_waiting: None,
            merchant: crate::receipt::Merchant::default(),
        }
    }
}

/// What a user holds: the plan running now (or the last one that ran, ended) and
/// the plans queued after it, each with its dates.
#[derive(Clone, Debug)]
pub struct Holding {
    /// The subscription running now (else the last that ended, else the first to come),
    /// with its plan.
    pub current: (Subscription, Plan),
    /// The subscriptions that follow it, in order, each with its plan.
    pub queued: Vec<(Subscription, Plan)>,
}

/// What buying a plan would do: by default, and with "switch now" when that is a
/// different thing (the customer holds another plan).
#[derive(Clone, Debug)]
pub struct PlanChoice {
    /// What paying would do with the default choice ([`PlanChange::Queue`]): start now,
    /// extend, or start when the paid time ends.
    pub default: ChangePreview,
    /// What "switch now" would do; `None` when there is nothing to switch from (no
    /// other plan ahead, or it was paid in another currency).
    pub switch_now: Option<ChangePreview>,
}

/// How a caller names the payment to verify.
#[derive(Clone, Debug)]
pub enum PaymentKey {
    /// Our payment id, as the API and the status pages name it.
    Id(PaymentId),
    /// The gateway's own reference on that gateway (Khalti's pidx, Chapa's tx_ref), as
    /// a return redirect carries it.
    ProviderRef(GatewayKind, String),
}

/// A verify's outcome: the payment as it now stands and, once it is paid, what it
/// bought (the subscription, or the order).
#[derive(Clone, Debug)]
pub struct Verification {
    /// As it stands after the lookup, if one was made.
    pub payment: Payment,
    /// What the customer holds now; only for a completed subscription payment, and
    /// `None` if they hold nothing.
    pub subscription: Option<Holding>,
    /// The order it pays for, whatever the payment's status; `None` for a subscription.
    pub order: Option<Order>,
}

/// The use-cases over one store and its gateways. Clones share the store, the change
/// feed and the caches: each request, worker and lookup task holds one.
#[derive(Clone)]
pub struct Tijori {
    store: Arc<dyn Store>,
    gateways: Gateways,
    clock: Arc<dyn Clock>,
    settings: Settings,
    background: BackgroundSettings,
    /// Payments whose status just changed (here, or, with PostgreSQL, in another
    /// tijori process), for the live status pages watching them.
    changes: Arc<crate::changes::ChangeFeed>,
    /// Delivers outbox mail; without one, mail stays in the outbox for the operator.
    mailer: Option<Arc<dyn crate::mail::Mailer>>,
    /// Makes and sends outgoing events' deliveries; without it they wait.
    events: Option<events::EventDelivery>,
    /// Wakes this process's worker when a change queued deliveries, so an event is
    /// sent at once rather than at the worker's next poll.
    jobs_queued: Arc<tokio::sync::Notify>,
    /// When this process's worker last went round its loop (Unix milliseconds on
    /// the service's clock; 0 when no worker runs here), for `/readyz`.
    worker_seen: Arc<std::sync::atomic::AtomicI64>,
    known_plans: Arc<KnownPlans>,
    /// This process, as the holder of the idempotency keys it handles.
    instance: InstanceId,
    hasher: Arc<Hasher>,
}

/// Plans read so far (see `Tijori::plan`), at most a few thousand.
#[derive(Default)]
struct KnownPlans(std::sync::RwLock<std::collections::HashMap<PlanId, Plan>>);

impl KnownPlans {
    const MOST: usize = 4_096;

    fn get(&self, id: &PlanId) -> Option<Plan> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn insert(&self, plan: Plan) {
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        if known.len() < Self::MOST {
            known.insert(plan.id.clone(), plan);
        }
    }
}

impl Tijori {
    /// A tijori with the default background pacing, no mailer (mail stays in the
    /// outbox), and a fresh instance id for the idempotency keys it holds.
    pub fn new(
        store: Arc<dyn Store>,
        gateways: Gateways,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        let hasher = Arc::new(Hasher::new(settings.hashes_waiting));
        Tijori {
            store,
            gateways,
            clock,
            settings,
            background: BackgroundSettings::default(),
            changes: crate::changes::ChangeFeed::new(),
            mailer: None,
            events: None,
            jobs_queued: Arc::default(),
            worker_seen: Arc::default(),
            known_plans: Arc::default(),
            instance: InstanceId::generate(),
            hasher,
        }
    }

    /// This process, as the holder of the idempotency keys it is handling.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// Notes that this process is alive (every `HEARTBEAT_EVERY_SECS`): while it
    /// does, the keys it holds are its own until their lease ends; once it stops,
    /// other processes take them over within `HOLDER_GONE_AFTER_SECS`.
    pub async fn heartbeat(&self) -> Result<()> {
        Ok(self.store.heartbeat(&self.instance, self.now()).await?)
    }

    /// Says this process is stopping: the keys it still holds are free at once.
    pub async fn retire(&self) -> Result<()> {
        Ok(self.store.retire_instance(&self.instance).await?)
    }

    /// Delivers outbox mail through `mailer`; without one, mail is kept for the
    /// operator.
    pub fn with_mailer(mut self, mailer: Arc<dyn crate::mail::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Watches one payment's status changes, as they happen. (The watcher is woken;
    /// it reads the payment itself.)
    pub fn watch_payment(&self, payment: &PaymentId) -> crate::changes::ChangeWatcher {
        self.changes.watch(payment)
    }

    /// What the operator's gauges show now (`/metrics`). "Overdue" is what the
    /// reconciler has not got to: open, and not looked at for twice the reconcile age
    /// (it looks at each open payment once per reconcile age, answer or not). An
    /// abandoned checkout, looked at and still open, is not overdue; a reconciler
    /// that stopped makes every open payment overdue.
    pub async fn gauges(&self) -> Result<crate::store::Gauges> {
        let overdue_before = self.now() - self.background.reconcile_after * 2;
        Ok(self.store.gauges(overdue_before).await?)
    }

    /// Marks a payment whose checkout never opened as failed, and counts it.
    async fn fail_initiation(
        &self,
        id: &PaymentId,
        reason: &str,
        raw: Option<&crate::gateway::RawAnswer>,
    ) -> crate::store::StoreResult<Payment> {
        let failed = self
            .store
            .fail_initiation(id, reason, raw, self.now())
            .await?;
        crate::telemetry::outcome_of(&failed);
        Ok(failed)
    }

    /// Live-status watchers open in this process now.
    pub fn live_watchers(&self) -> usize {
        self.changes.watchers()
    }

    /// Notes that this process's worker is going round its loop.
    pub fn note_worker_alive(&self) {
        self.worker_seen.store(
            self.now().timestamp_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// When this process's worker last went round its loop; `None` when no worker
    /// has run here.
    pub fn worker_last_seen(&self) -> Option<DateTime<Utc>> {
        match self.worker_seen.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }

    /// Announces a change (made here, or reported by another process).
    pub fn announce_change(&self, payment: &PaymentId) {
        self.changes.announce(payment);
    }

    /// Replaces the default pacing of background work.
    pub fn with_background(mut self, background: BackgroundSettings) -> Self {
        self.background = background;
        self
    }

    /// The store underneath, for what no use-case covers (the health check pings it); a
    /// payment's outcome still goes through [`Tijori::settle`].
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The time on the injected clock: use it, not `Utc::now()`, so tests can move
    /// time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The gateways configured here; a kind not among them is refused as unsupported.
    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }
}
