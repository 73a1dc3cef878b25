//! The Store port. SQL lives behind it (crate `tijori-store`); nothing else touches
//! the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::{Email, PasswordHashString, Session, TokenHash, User, Username};
use crate::gateway::{GatewayKind, RawAnswer};
use crate::id::{OrderId, PaymentId, PlanId, ProductId, RefundId, UserId};
use crate::idempotency::{Attempt, Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse};
use crate::jobs::{Job, JobStatus, NewJob};
use crate::mail::{DueNotice, OutboxMail};
use crate::money::Money;
use crate::payment::{Payment, Transition};
use crate::shop::{NewOrder, NewProduct, Order, OrderCaps, OrderRequest, Product, ReserveError};
use crate::subscription::{NewPlan, PaidPeriod, Plan, Subscription};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (a taken username, a reused pidx).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The row the write refers to is not there.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database failed or could not be reached. The cause is kept for the log.
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password_hash: PasswordHashString,
    pub is_admin: bool,
}

/// Where a gateway answer came from, for the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    Initiate,
    Lookup,
    /// The browser's return redirect: a signal, recorded but never trusted.
    ReturnSignal,
    /// A gateway's server-to-server notice (Chapa's callback), also only a signal.
    Callback,
    /// The gateway's answer to a refund we asked for.
    Refund,
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Initiate => "initiate",
            AnswerKind::Lookup => "lookup",
            AnswerKind::ReturnSignal => "return_signal",
            AnswerKind::Callback => "callback",
            AnswerKind::Refund => "refund",
        }
    }
}

#[derive(Clone, Debug)]
pub struct GatewayAnswerRecord {
    pub kind: String,
    pub http_status: u16,
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// What `Store::settle` applies: a gateway's answer about a payment and what `decide`
/// made of it, as one value.
#[derive(Clone, Debug)]
pub struct Settlement {
    /// The payment the answer is about.
    pub payment: PaymentId,
    /// What `decide` made of the answer; `None` records the answer and changes
    /// nothing.
    pub transition: Option<Transition>,
    /// The gateway's own transaction id, kept when the payment moves.
    pub provider_txn_id: Option<String>,
    /// How the answer was had (a lookup, a return signal, …), kept with it.
    pub kind: AnswerKind,
    /// The answer as received, kept for audit whatever it decided.
    pub raw: RawAnswer,
    /// When it was received.
    pub now: DateTime<Utc>,
}

/// The result of applying a settlement.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The payment after the settlement (changed or not).
    pub payment: Payment,
    /// Whether this call changed the payment's status. Of concurrent settles of one
    /// payment, exactly one sees `true` for a given transition.
    pub changed: bool,
}

/// A webhook delivery as received, after its signature was checked.
#[derive(Clone, Debug)]
pub struct NewWebhookDelivery {
    pub gateway: GatewayKind,
    /// SHA-256 of the raw body: a redelivery of the same notice has the same one.
    pub body_sha256: String,
    pub event: Option<String>,
    pub reference: Option<String>,
    pub status: Option<String>,
    pub body: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedDelivery {
    pub id: i64,
    /// An identical body was delivered before.
    pub duplicate: bool,
}

#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    pub id: i64,
    pub gateway: String,
    pub event: Option<String>,
    pub reference: Option<String>,
    pub status: Option<String>,
    pub duplicate: bool,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub payment_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// What an operator event is about. Stored as its name (`as_str`), which the admin
/// page shows and the API returns; one list, so that what raises an event and what
/// resolves or counts it cannot disagree on a spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperatorEventKind {
    /// Money held for review: paid differently from what was asked, or for an order
    /// that can no longer take it.
    NeedsReview,
    /// Khalti's legacy widget: a verification whose answer could not be placed.
    WidgetUnclear,
    /// A refund whose answer was lost: it is being looked up.
    RefundUnknown,
    /// A refund still unknown when its look-ups gave up: an operator decides.
    RefundStillUnknown,
    /// A refund made outside tijori (in a gateway's dashboard), found and applied.
    RefundFound,
    /// An unknown refund an operator resolved by hand.
    RefundResolved,
    /// A background job that gave up.
    JobDead,
    /// An authentic webhook whose body could not be read.
    WebhookUnreadable,
    /// A webhook naming no payment of ours.
    WebhookUnmatched,
    /// A webhook that could not be processed (the database failed).
    WebhookUnprocessed,
    /// A webhook whose payment the gateway could not be asked about.
    WebhookUnverified,
    /// A webhook saying paid, which the gateway's own answer contradicts.
    WebhookContradicted,
}

impl OperatorEventKind {
    /// Every kind, for parsing a stored name.
    pub const ALL: [OperatorEventKind; 12] = [
        OperatorEventKind::NeedsReview,
        OperatorEventKind::WidgetUnclear,
        OperatorEventKind::RefundUnknown,
        OperatorEventKind::RefundStillUnknown,
        OperatorEventKind::RefundFound,
        OperatorEventKind::RefundResolved,
        OperatorEventKind::JobDead,
        OperatorEventKind::WebhookUnreadable,
        OperatorEventKind::WebhookUnmatched,
        OperatorEventKind::WebhookUnprocessed,
        OperatorEventKind::WebhookUnverified,
        OperatorEventKind::WebhookContradicted,
    ];

    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorEventKind::NeedsReview => "needs_review",
            OperatorEventKind::WidgetUnclear => "widget_unclear",
            OperatorEventKind::RefundUnknown => "refund_unknown",
            OperatorEventKind::RefundStillUnknown => "refund_still_unknown",
            OperatorEventKind::RefundFound => "refund_found",
            OperatorEventKind::RefundResolved => "refund_resolved",
            OperatorEventKind::JobDead => "job_dead",
            OperatorEventKind::WebhookUnreadable => "webhook_unreadable",
            OperatorEventKind::WebhookUnmatched => "webhook_unmatched",
            OperatorEventKind::WebhookUnprocessed => "webhook_unprocessed",
            OperatorEventKind::WebhookUnverified => "webhook_unverified",
            OperatorEventKind::WebhookContradicted => "webhook_contradicted",
        }
    }

    /// Reads a stored name; `None` for anything else.
    pub fn parse(s: &str) -> Option<OperatorEventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for OperatorEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something an operator must look at: money that arrived where it cannot be
/// fulfilled, a webhook that verification contradicts, a payment held for review.
#[derive(Clone, Debug)]
pub struct OperatorEvent {
    pub id: i64,
    pub kind: OperatorEventKind,
    pub payment_id: Option<PaymentId>,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A refund an operator asked a gateway for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub amount: Money,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub detail: Option<String>,
    pub requested_by: UserId,
    /// The operator asked for a refunded order's items to go back on the shelf; a
    /// refund settled later (its answer lost) restocks then.
    pub restock: bool,
    /// Who settled an unknown refund by hand, when and why (the audit trail).
    pub resolved_by: Option<UserId>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An operator's settling of an unknown refund by hand: who, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundResolution {
    pub by: UserId,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// The gateway is being asked.
    Requested,
    Succeeded,
    Failed,
    /// No answer came: it may have happened. Check with the gateway before asking again.
    Unknown,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "requested",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            RefundStatus::Requested,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
            RefundStatus::Unknown,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database does (for /healthz).
    async fn ping(&self) -> StoreResult<()>;

    // Accounts -------------------------------------------------------------------

    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn user_credentials(
        &self,
        username: &Username,
    ) -> StoreResult<Option<(User, PasswordHashString)>>;
    async fn set_password(&self, id: &UserId, hash: &PasswordHashString) -> StoreResult<()>;
    async fn create_api_token(
        &self,
        user: &UserId,
        token: &TokenHash,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user a token belongs to, if the token exists and has not expired by `now`.
    async fn user_by_api_token(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    async fn delete_api_token(&self, token: &TokenHash) -> StoreResult<()>;
    async fn create_session(
        &self,
        user: &UserId,
        token: &TokenHash,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The live session with this token, if it has not expired by `now`.
    async fn session(&self, token: &TokenHash, now: DateTime<Utc>) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, token: &TokenHash) -> StoreResult<()>;
    /// Deletes up to `limit` API tokens and up to `limit` sessions that expired by
    /// `now`; returns how many of each went.
    async fn prune_expired_credentials(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<(u64, u64)>;

    // Plans ----------------------------------------------------------------------

    async fn create_plan(&self, plan: NewPlan, now: DateTime<Utc>) -> StoreResult<Plan>;
    async fn plans(&self) -> StoreResult<Vec<Plan>>;
    async fn plan(&self, id: &PlanId) -> StoreResult<Option<Plan>>;

    // Payments -------------------------------------------------------------------

    /// Stores a new payment (status `initiated`) before any gateway is called.
    async fn insert_payment(&self, payment: &Payment) -> StoreResult<()> {
        self.insert_payment_for(payment, None).await
    }
    /// `insert_payment`, noting the payment on the idempotency key of the request
    /// making it (if its holder still holds it) in the same transaction, so a
    /// request that takes the key over finds it.
    async fn insert_payment_for(
        &self,
        payment: &Payment,
        attempt: Option<&Attempt>,
    ) -> StoreResult<()>;
    /// Records the opened checkout on an `initiated` payment, with the gateway's answer.
    async fn record_checkout(
        &self,
        id: &PaymentId,
        provider_ref: &str,
        payment_url: &str,
        expires_at: Option<DateTime<Utc>>,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment>;
    /// Marks an `initiated` payment whose checkout could not be opened as failed.
    async fn fail_initiation(
        &self,
        id: &PaymentId,
        reason: &str,
        raw: Option<&RawAnswer>,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment>;
    async fn payment(&self, id: &PaymentId) -> StoreResult<Option<Payment>>;
    async fn payment_by_provider_ref(
        &self,
        gateway: GatewayKind,
        provider_ref: &str,
    ) -> StoreResult<Option<Payment>>;
    async fn payments_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Payment>>;
    /// Appends a gateway answer (or a return signal) to the payment's audit trail.
    async fn record_answer(
        &self,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn answers(&self, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>>;

    /// The atomic half of `settle`: in one transaction, records the gateway's answer,
    /// moves the payment to `transition.to` only if its status is in
    /// `transition.from` (compare-and-set), and applies the transition's effect
    /// (grant or revoke the subscription) only if the status changed. A fulfilment
    /// is unique per payment in the database, so a payment is granted at most once
    /// whatever happens around this call. A `Lookup` answer also notes the payment
    /// as checked now (see `mark_checked`).
    async fn settle(&self, settlement: Settlement) -> StoreResult<Settled>;

    // Subscriptions --------------------------------------------------------------

    /// The `subscriptions` row: the user's latest run of paid time, as the last change
    /// laid it out (what notices read). `paid_periods` is the truth behind it.
    async fn subscription(&self, user: &UserId) -> StoreResult<Option<Subscription>>;
    /// The user's paid periods (their fulfilled subscription payments): the whole
    /// layout, for what needs all of it (switching plan now, `project`).
    async fn paid_periods(&self, user: &UserId) -> StoreResult<Vec<PaidPeriod>>;
    /// The segments of the user's periods a reader needs at `now`
    /// (`subscription::needed_at`): what runs now and what is queued, kept by every
    /// change to the periods so that reading them costs the segments ahead, not
    /// every period ever paid.
    async fn segments(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Subscription>>;
    /// Takes back the days a further partial refund of a payment paid for, under the
    /// user's lock. `settle` does this for the first refund; its compare-and-set
    /// moves a payment to `partially_refunded` only once, so the next ones come here.
    async fn take_back(&self, payment: &PaymentId, now: DateTime<Utc>) -> StoreResult<()>;

    // Shop -----------------------------------------------------------------------

    async fn create_product(&self, product: NewProduct, now: DateTime<Utc>)
        -> StoreResult<Product>;
    /// Products for sale, cheapest first.
    async fn products(&self) -> StoreResult<Vec<Product>>;
    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>>;
    /// Creates an order and reserves its stock in one transaction, at the products'
    /// current prices. Nothing is reserved unless everything is: stock never goes
    /// below zero, whatever runs concurrently.
    async fn create_order(
        &self,
        id: &OrderId,
        user: &UserId,
        request: &OrderRequest,
        caps: &OrderCaps,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Order, ReserveError>> {
        let order = NewOrder {
            id: id.clone(),
            user: user.clone(),
            request: request.clone(),
            caps: *caps,
            expires_at,
        };
        self.create_order_for(&order, now, None).await
    }
    /// `create_order`, noting the order on the idempotency key of the request making
    /// it in the same transaction (see `insert_payment_for`): stock reserved by a
    /// request whose process died is the retry's, not a second reservation.
    async fn create_order_for(
        &self,
        order: &NewOrder,
        now: DateTime<Utc>,
        attempt: Option<&Attempt>,
    ) -> StoreResult<Result<Order, ReserveError>>;
    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>>;
    async fn orders_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Order>>;
    /// The order's payment on `gateway` that is still waiting for the customer, if any.
    async fn open_payment_for_order(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>>;

    // Webhooks and the operator's attention ---------------------------------------

    /// Records a delivery (every one, duplicates included).
    async fn record_webhook(&self, delivery: &NewWebhookDelivery) -> StoreResult<RecordedDelivery>;
    /// Notes what handling a delivery came to.
    async fn finish_webhook(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()>;
    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Newest first; only those not yet resolved unless `include_resolved`.
    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>>;
    async fn resolve_operator_event(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()>;

    // Idempotency keys ---------------------------------------------------------------

    /// Claims `key` for a request with this fingerprint, held by `claimant` until its
    /// lease ends, or says what became of the request that claimed it first: an
    /// unanswered key whose holder is gone or whose lease ran out
    /// (`idempotency::may_take_over`) is taken over, with what its holder left.
    /// Also notes the claimant's process as alive now.
    async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim>;
    /// Keeps the answer to replay for the key, if `holder` still holds it (a request
    /// whose key was taken over does not overwrite its successor's answer).
    async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
        response: &StoredResponse,
    ) -> StoreResult<()>;
    /// Notes that the process `instance` is alive at `now` (and forgets processes
    /// not heard from for a day).
    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Forgets a process that is stopping: the keys it still holds are free at once.
    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()>;
    // Background jobs and the work they find ------------------------------------------

    /// Queues a job; `false` if an equal one (same kind and unique key) is already
    /// queued or running.
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Claims up to `limit` due jobs for `worker` until `lease_until`: queued ones whose
    /// time has come, and running ones whose worker's lease ran out. Two workers never
    /// claim the same job at once.
    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Job>>;
    /// Marks a job done, if `worker` still holds it. `next` queues it again then
    /// (a recurring job).
    async fn complete_job(
        &self,
        id: i64,
        worker: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records a failed attempt: queued again at `retry_at`, or dead when `None`.
    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Jobs in `status` (all when `None`), newest first.
    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>>;
    /// Queues a dead job again with fresh attempts (an operator's retry).
    async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()>;
    /// Payments still worth looking up at `now` (`Payment::worth_looking_up`: open,
    /// or a failed attempt on a gateway that takes another while its checkout
    /// lives) that nobody has looked at since `checked_before` (created before
    /// then), oldest first.
    async fn stale_payments(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>>;
    /// Notes that the payment was just looked up, so the next sweep leaves it a while.
    async fn mark_checked(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Notes the payment as checked `now` if nothing checked it after `not_after`,
    /// and says whether it did: of any number of concurrent callers, one may go on
    /// to look it up (the return page's one lookup every few seconds).
    async fn claim_lookup(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Expires up to `limit` pending orders past their time, each in one transaction
    /// with its stock returned. Returns the orders expired.
    async fn expire_orders(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OrderId>>;

    // Refunds ------------------------------------------------------------------------

    /// Records a refund about to be asked for (status `requested`). `Conflict` while
    /// another refund of the payment is in flight.
    async fn begin_refund(&self, refund: &Refund) -> StoreResult<()>;
    /// Records how the gateway answered. A refund left `unknown` (here, or by
    /// `begin_refund` closing a stale `requested` one) gets its look-up job
    /// (`NewJob::check_refund`) queued in the same transaction, so it cannot be
    /// forgotten.
    async fn finish_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn refunds_of(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>>;
    async fn refund(&self, id: &RefundId) -> StoreResult<Option<Refund>>;
    /// Settles an `unknown` refund as `succeeded` or `failed` (a compare-and-set:
    /// `false` if it was not unknown any more, e.g. settled by a concurrent look-up).
    /// `resolution` records an operator who decided it by hand.
    async fn settle_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: &str,
        resolution: Option<&RefundResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Refunds whose outcome is still unknown, oldest first (the operator's list).
    async fn unknown_refunds(&self, limit: u32) -> StoreResult<Vec<Refund>>;
    /// Paid payments (completed or partially refunded) last changed at or after
    /// `paid_since` and not looked up since `checked_before`, least recently looked
    /// up first: what the refund audit asks the gateways about.
    async fn payments_to_audit(
        &self,
        paid_since: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>>;
    /// Puts a refunded order's items back on the shelf, once. `false` if the order is
    /// not refunded or was restocked before.
    async fn restock_order(&self, order: &OrderId, now: DateTime<Utc>) -> StoreResult<bool>;

    // Notices and the outbox ----------------------------------------------------------

    /// Subscriptions due a notice: a reminder when they end within `remind_within`,
    /// an expiry notice when they ended (in the last week), each only if not sent for
    /// that period yet.
    async fn due_notices(
        &self,
        now: DateTime<Utc>,
        remind_within: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<DueNotice>>;
    /// Records the notice, its mail in the outbox, and the job that delivers it, in one
    /// transaction; `false` (and nothing written) if the notice was recorded before.
    async fn record_notice(
        &self,
        notice: &DueNotice,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn outbox_mail(&self, id: &str) -> StoreResult<Option<OutboxMail>>;
    /// Marks a queued mail `sent` or `kept`, with the error of a failed try.
    async fn mark_mail(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The newest mails first.
    async fn outbox(&self, limit: u32) -> StoreResult<Vec<OutboxMail>>;
    /// Sets the user's time zone (an IANA name), for dates in mail.
    async fn set_time_zone(&self, user: &UserId, zone: &str) -> StoreResult<()>;

    /// Forgets a claim whose request did not complete, so a retry runs again (if
    /// `holder` still holds it).
    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()>;
}
