//! The Store port. SQL lives behind it (crate `tijori-store`); nothing else touches
//! the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::{Email, PasswordHashString, Session, TokenHash, User, Username};
use crate::back_office::{
    CustomerLine, DeliveryOfPayment, Listed, Listing, OrderLine, PaymentLine, RevenueDay,
    ShopCounts, SubscriptionLine,
};
use crate::events::{
    DeliveryAttempt, EndpointSecrets, Event, FinishedDelivery, Wanted, WebhookEndpoint,
};
use crate::gateway::{GatewayKind, RawAnswer};
use crate::id::{
    EventId, OrderId, PaymentId, PlanId, ProductId, RefundId, UserId, WebhookEndpointId,
};
use crate::idempotency::{Attempt, Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse};
use crate::jobs::{Job, JobStatus, NewJob};
use crate::mail::{DueNotice, OutboxMail};
use crate::money::Money;
use crate::payment::{Payment, Transition};
use crate::shop::{NewOrder, NewProduct, Order, OrderCaps, OrderRequest, Product, ReserveError};
use crate::subscription::{NewPlan, PaidPeriod, Plan, Subscription};

/// Why a store call failed. The service turns `Conflict` and `NotFound` into answers
/// the caller can act on; `Database` is an internal error.
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

/// What every `Store` method returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// An account to create, checked and hashed by the service (`Tijori::create_user`)
/// before it gets here.
pub struct NewUser {
    /// Unique, as is `email`: a taken one is `StoreError::Conflict`.
    pub username: Username,
    /// Unique; a second account with it is refused (`Conflict`).
    pub email: Email,
    /// The argon2 hash (`Password::hash`), never the password itself.
    pub password_hash: PasswordHashString,
    /// An operator: allowed the admin API and pages (refunds, operator events).
    pub is_admin: bool,
}

/// Where a gateway answer came from, for the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// The answer to opening a checkout (kept by `record_checkout` or `fail_initiation`).
    Initiate,
    /// The answer to asking the gateway what became of a payment; `settle` notes the
    /// payment as checked.
    Lookup,
    /// The browser's return redirect: a signal, recorded but never trusted.
    ReturnSignal,
    /// A gateway's server-to-server notice (Chapa's callback), also only a signal.
    Callback,
    /// The gateway's answer to a refund we asked for.
    Refund,
}

impl AnswerKind {
    /// Its stored name: the `kind` of a `GatewayAnswerRecord`.
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

/// One entry of a payment's audit trail, as `answers` reads it back.
#[derive(Clone, Debug)]
pub struct GatewayAnswerRecord {
    /// How it was had, by its stored name (`AnswerKind::as_str`).
    pub kind: String,
    /// The gateway's HTTP status; 0 where there was none (a signal, or a record
    /// tijori wrote itself).
    pub http_status: u16,
    /// The body as received, or a signal's query string.
    pub body: String,
    /// When tijori received it (the service's clock).
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
    /// The webhook delivery this answer verified, with the outcome to note on it if
    /// the payment moves: noted in the settle's own transaction, one durable write
    /// less than noting it after. `None`: nothing to note here.
    pub webhook: Option<WebhookNote>,
}

/// A webhook delivery's outcome, noted by the settle that acts on it
/// (`Settlement::webhook`). Only an outcome the move itself decides goes here; one an
/// operator must look at is noted after, with its detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookNote {
    /// The delivery, as `record_webhook` numbered it.
    pub delivery: i64,
    /// Its outcome's stored name (`WebhookResult::as_str`).
    pub outcome: &'static str,
}

/// The result of applying a settlement.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The payment after the settlement (changed or not).
    pub payment: Payment,
    /// Whether this call changed the payment's status. Of concurrent settles of one
    /// payment, exactly one sees `true` for a given transition.
    pub changed: bool,
    /// How many deliveries of outgoing events the change queued: when any, this
    /// process's worker is woken to send them now rather than at its next poll.
    pub deliveries: u64,
    /// Whether `Settlement::webhook`'s outcome was noted: only when the payment moved,
    /// since only then is the outcome the one the move decided.
    pub webhook_noted: bool,
}

/// A webhook delivery as received, after its signature was checked.
#[derive(Clone, Debug)]
pub struct NewWebhookDelivery {
    /// The gateway whose signature it carried.
    pub gateway: GatewayKind,
    /// SHA-256 of the raw body: a redelivery of the same notice has the same one.
    pub body_sha256: String,
    /// The notice's event (Chapa's `charge.success`, …); `None` when the body could not
    /// be read.
    pub event: Option<String>,
    /// Our payment reference it names (Chapa's tx_ref); `None` when it names none or
    /// could not be read.
    pub reference: Option<String>,
    /// The payment status it claims (a signal only); `None` if it gives none or could
    /// not be read.
    pub status: Option<String>,
    /// The raw body (lossily made UTF-8), kept for audit.
    pub body: String,
    /// When it arrived (the service's clock).
    pub received_at: DateTime<Utc>,
}

/// What `record_webhook` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedDelivery {
    /// The delivery's row; its outcome is noted on it by the settle it led to
    /// (`Settlement::webhook`) or by `finish_webhook`.
    pub id: i64,
    /// An identical body was delivered before.
    pub duplicate: bool,
}

/// A stored webhook delivery as the admin list shows it (its body is not read
/// back).
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    /// Increases with arrival; the list is newest first by it.
    pub id: i64,
    /// The gateway's name (`GatewayKind::as_str`).
    pub gateway: String,
    /// The notice's event; `None` when its body could not be read.
    pub event: Option<String>,
    /// Our payment reference it named (Chapa's tx_ref); `None` when it named none or
    /// could not be read.
    pub reference: Option<String>,
    /// The payment status it claimed (a signal only).
    pub status: Option<String>,
    /// An identical body was delivered before.
    pub duplicate: bool,
    /// What handling it came to (`WebhookResult::as_str`); `None` until the settle
    /// it led to (`Settlement::webhook`) or `finish_webhook` noted it.
    pub outcome: Option<String>,
    /// What an operator should know, when the outcome needs one.
    pub detail: Option<String>,
    /// The payment of ours it named, if any.
    pub payment_id: Option<String>,
    /// When it arrived.
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
    /// A signed return redirect (eSewa's `data`) for one of our payments that does
    /// not verify, or that names another amount: nothing was granted on it.
    ReturnSuspect,
    /// A webhook endpoint of the merchant's that failed every delivery for three
    /// days, disabled by tijori: its events wait until an operator enables it and
    /// redelivers them.
    WebhookEndpointDisabled,
}

impl OperatorEventKind {
    /// Every kind, for parsing a stored name.
    pub const ALL: [OperatorEventKind; 14] = [
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
        OperatorEventKind::ReturnSuspect,
        OperatorEventKind::WebhookEndpointDisabled,
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
            OperatorEventKind::ReturnSuspect => "return_suspect",
            OperatorEventKind::WebhookEndpointDisabled => "webhook_endpoint_disabled",
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
    /// What `resolve_operator_event` takes.
    pub id: i64,
    /// What it is about.
    pub kind: OperatorEventKind,
    /// The payment concerned; `None` when there is none (a webhook naming no payment
    /// of ours).
    pub payment_id: Option<PaymentId>,
    /// Free text for the operator: what happened and what to do about it.
    pub detail: String,
    /// When it was raised.
    pub created_at: DateTime<Utc>,
    /// When it was marked resolved (by an operator, or by the code that settled its
    /// cause); `None` while it is on the operator's list.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The username of the operator who resolved it; `None` while open, or when the
    /// code that settled its cause resolved it.
    pub resolved_by: Option<String>,
    /// The operator's note on how it was handled.
    pub resolution: Option<String>,
}

/// An operator's resolving of an event: who, and what they did about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventResolution {
    /// The operator.
    pub by: UserId,
    /// What they did or found, in their words (may be empty).
    pub note: String,
}

/// A refund an operator asked a gateway for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    /// Ours; sent to the gateway where it keeps one (Chapa).
    pub id: RefundId,
    /// The paid payment it gives money back from.
    pub payment_id: PaymentId,
    /// In the payment's currency. `begin_refund` refuses more than is left once
    /// succeeded, unknown and requested refunds are counted.
    pub amount: Money,
    /// The operator's reason, passed on to the gateway.
    pub reason: Option<String>,
    /// `Requested` until the gateway answers; only `Succeeded` counts as money
    /// given back.
    pub status: RefundStatus,
    /// Why it failed or is unknown (the gateway's error), or how it was settled later;
    /// `None` while requested and for one that succeeded at once.
    pub detail: Option<String>,
    /// The operator who asked for it.
    pub requested_by: UserId,
    /// The operator asked for a refunded order's items to go back on the shelf; a
    /// refund settled later (its answer lost) restocks then.
    pub restock: bool,
    /// Who settled an unknown refund by hand, when and why (the audit trail).
    pub resolved_by: Option<UserId>,
    /// Set only when an operator settled it by hand, not by a look-up.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The operator's reason for settling it by hand.
    pub resolution: Option<String>,
    /// When the operator asked for it.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// An operator's settling of an unknown refund by hand: who, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundResolution {
    /// The operator who decided it.
    pub by: UserId,
    /// Why, in their words; kept as the refund's `resolution`.
    pub reason: String,
}

/// Where a refund stands, stored by name (`as_str`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// The gateway is being asked.
    Requested,
    /// The gateway took it (or a look-up or an operator found it went through).
    Succeeded,
    /// The gateway refused it, or it was found not to have happened: nothing went back.
    Failed,
    /// No answer came: it may have happened. Check with the gateway before asking again.
    Unknown,
}

impl RefundStatus {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "requested",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Unknown => "unknown",
        }
    }

    /// Reads a stored name; `None` for anything else.
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

/// Every read and write tijori makes to its database, implemented for SQLite and
/// PostgreSQL in `tijori-store`. Times come from the caller's `now` (the
/// service's `Clock`), never from the database's clock.
#[async_trait]
pub trait Store:
    AccountStore
    + PaymentStore
    + ShopStore
    + RefundStore
    + JobStore
    + MailStore
    + ReceiptStore
    + IdempotencyStore
    + OperatorLog
    + EventStore
    + BackOfficeStore
    + Send
    + Sync
    + 'static
{
    /// Answers when the database does (for /healthz).
    async fn ping(&self) -> StoreResult<()>;
    /// Whether the database holds every migration this build knows (for /readyz): a
    /// process on a schema behind its code fails its writes, so it is not ready.
    async fn migrated(&self) -> StoreResult<bool>;
}

/// Counts an operator watches (see `OperatorLog::gauges`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Payments whose outcome has not arrived (initiated or pending).
    pub payments_open: i64,
    /// Of those, the ones the reconciler should have looked at and has not: opened at
    /// the gateway before `overdue_before` and not looked at since.
    pub payments_overdue: i64,
    /// Paid payments held for an operator's review.
    pub payments_held: i64,
    /// Deliveries of outgoing events waiting to run.
    pub deliveries_queued: i64,
    /// Other jobs waiting to run.
    pub other_jobs_queued: i64,
    /// Deliveries of outgoing events out of tries (their endpoint is disabled after
    /// three days; the admin redelivers what it missed).
    pub deliveries_dead: i64,
    /// Other jobs out of tries: an operator's to retry.
    pub other_jobs_dead: i64,
}

/// Users, their credentials and sessions, and the plans they can buy. Part of `Store`.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores a new account with a fresh id; `Conflict` if its username or e-mail
    /// is taken.
    async fn create_user(&self, user: NewUser, now: DateTime<Utc>) -> StoreResult<User>;
    /// `None` for an unknown id.
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// The user and their stored password hash, by username: for signing in only.
    async fn user_credentials(
        &self,
        username: &Username,
    ) -> StoreResult<Option<(User, PasswordHashString)>>;
    /// Replaces the user's password hash; `NotFound` for an unknown user.
    async fn set_password(&self, id: &UserId, hash: &PasswordHashString) -> StoreResult<()>;
    /// Stores a token's hash (never the token), valid until `expires_at`, and
    /// forgets the user's tokens that expired by `now`.
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
    /// Revokes a token (an API client signing out); an unknown one is no error.
    async fn delete_api_token(&self, token: &TokenHash) -> StoreResult<()>;
    /// Stores a browser session by its token's hash, with the CSRF token bound to
    /// it, and forgets the user's sessions that expired by `now`.
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
    /// Ends a browser session (signing out); an unknown one is no error.
    async fn delete_session(&self, token: &TokenHash) -> StoreResult<()>;
    /// Deletes up to `limit` API tokens and up to `limit` sessions that expired by
    /// `now`; returns how many of each went.
    async fn prune_expired_credentials(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<(u64, u64)>;
    /// Sets the user's time zone (an IANA name), for dates in mail.
    async fn set_time_zone(&self, user: &UserId, zone: &str) -> StoreResult<()>;
    /// Stores a new plan with a fresh id, on offer (`active`) at once.
    async fn create_plan(&self, plan: NewPlan, now: DateTime<Utc>) -> StoreResult<Plan>;
    /// Plans on offer (`active`), cheapest first.
    async fn plans(&self) -> StoreResult<Vec<Plan>>;
    /// Any plan by id, on offer or not: a subscription still names the plan it paid for.
    async fn plan(&self, id: &PlanId) -> StoreResult<Option<Plan>>;
    /// The user with this e-mail address, for a password reset; `None` if nobody has it.
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    /// A password change, in one transaction: the new hash, and every API token and
    /// browser session of the user ends but `keep` (the session that asked). Whoever
    /// knew the old password is signed out everywhere. `NotFound` for an unknown user.
    async fn change_password(
        &self,
        id: &UserId,
        hash: &PasswordHashString,
        keep: Option<&TokenHash>,
    ) -> StoreResult<()>;
    /// Replaces the user's e-mail address; `Conflict` if another account has it.
    async fn set_email(&self, id: &UserId, email: &Email) -> StoreResult<()>;
    /// Opens a password reset link: stores its hash (never the secret), ends the
    /// user's earlier open links, and puts `mail` (which carries the link) in the
    /// outbox with its delivery job, in one transaction.
    async fn create_password_reset(
        &self,
        user: &UserId,
        token: &TokenHash,
        expires_at: DateTime<Utc>,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user an open reset link (unused, not expired by `now`) belongs to.
    async fn password_reset(
        &self,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    /// Uses an open reset link, once: in one transaction marks it used, sets the
    /// password and ends every session, API token and other reset link of its user.
    /// `None` (and nothing changed) for a link that is unknown, used or expired.
    async fn use_password_reset(
        &self,
        token: &TokenHash,
        hash: &PasswordHashString,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    /// Rewrites an outbox mail's body: a reset link's secret is blanked once SMTP
    /// has taken the mail.
    async fn set_mail_body(&self, id: &str, body: &str) -> StoreResult<()>;
}

/// Payments from their creation to their settlement, and the subscription periods they pay for. Part of `Store`.
#[async_trait]
pub trait PaymentStore: Send + Sync {
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
    /// Any payment by id; callers check who may see it.
    async fn payment(&self, id: &PaymentId) -> StoreResult<Option<Payment>>;
    /// The payment a gateway's reference (Khalti's pidx, Chapa's tx_ref) names: at
    /// most one per gateway. How return redirects and webhooks find ours.
    async fn payment_by_provider_ref(
        &self,
        gateway: GatewayKind,
        provider_ref: &str,
    ) -> StoreResult<Option<Payment>>;
    /// The user's latest payments, newest first.
    async fn payments_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Payment>>;
    /// Appends a gateway answer (or a return signal) to the payment's audit trail.
    async fn record_answer(
        &self,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The payment's audit trail, oldest first: every answer and signal recorded for it.
    async fn answers(&self, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>>;
    /// The atomic half of `settle`: in one transaction, records the gateway's answer,
    /// moves the payment to `transition.to` only if its status is in
    /// `transition.from` (compare-and-set), and applies the transition's effect
    /// (grant or revoke the subscription) only if the status changed. A fulfilment
    /// is unique per payment in the database, so a payment is granted at most once
    /// whatever happens around this call. A `Lookup` answer also notes the payment
    /// as checked now (see `mark_checked`). When the payment moves, the webhook
    /// delivery the answer was asked for (`Settlement::webhook`) has its outcome
    /// noted in the same transaction.
    async fn settle(&self, settlement: Settlement) -> StoreResult<Settled>;
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
}

/// Products, orders and the stock they reserve. Part of `Store`.
#[async_trait]
pub trait ShopStore: Send + Sync {
    /// Stores a new product with a fresh id, on sale (`active`) with its starting stock.
    async fn create_product(&self, product: NewProduct, now: DateTime<Utc>)
        -> StoreResult<Product>;
    /// Products for sale, cheapest first.
    async fn products(&self) -> StoreResult<Vec<Product>>;
    /// Any product by id, on sale or not (`products` lists only those on sale).
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
    /// An order with its items, whoever owns it; callers check the owner.
    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>>;
    /// The user's latest orders with their items, newest first.
    async fn orders_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Order>>;
    /// The order's payment on `gateway` that is still waiting for the customer, if any.
    async fn open_payment_for_order(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>>;
    /// Expires up to `limit` pending orders past their time, each in one transaction
    /// with its stock returned. Returns the orders expired.
    async fn expire_orders(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OrderId>>;
    /// Puts a refunded order's items back on the shelf, once. `false` if the order is
    /// not refunded or was restocked before.
    async fn restock_order(&self, order: &OrderId, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Cancels `user`'s order if it is still pending and unexpired at `now`, with its
    /// stock returned, in one transaction (the same compare-and-set on `pending` as
    /// expiry and payment, so the stock comes back once whichever runs first).
    /// `false`, and nothing changed, for any other order.
    async fn cancel_order(
        &self,
        order: &OrderId,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// Refunds asked of a gateway and what came of them. Part of `Store`.
#[async_trait]
pub trait RefundStore: Send + Sync {
    /// Records a refund about to be asked for (status `requested`). `Conflict` while
    /// another refund of the payment is in flight.
    async fn begin_refund(&self, refund: &Refund) -> StoreResult<()>;
    /// Records how the gateway answered. A refund left `unknown` (here, or by
    /// `begin_refund` closing a stale `requested` one) gets its look-up job
    /// (`NewJob::check_refund`) queued in the same transaction, so it cannot be
    /// forgotten. `false`, and nothing changed, if the refund was already decided (a
    /// look-up or an operator settled it while the call was stalled).
    async fn finish_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The payment's refunds, whatever their status, oldest first.
    async fn refunds_of(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>>;
    /// A refund by id, whatever its status.
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
}

/// The durable queue of background jobs. Part of `Store`.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Queues a job; `false` if an equal one (same kind and unique key) is already
    /// queued or running.
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Claims up to `limit` due jobs for `worker` until `lease_until`: queued ones whose
    /// time has come, and running ones whose worker's lease ran out; of the queued, at
    /// most `max_deliveries` deliveries of outgoing events (`JobKind::DeliverEvent`:
    /// a worker keeps slots free of them for everything else). Two workers never claim
    /// the same job at once.
    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        max_deliveries: u32,
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
    /// Deletes up to `limit` jobs that finished (`done`) before `before`; returns how
    /// many. Dead ones stay for an operator.
    async fn prune_done_jobs(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
}

/// Reminders due and the outbox of mail they make. Part of `Store`.
#[async_trait]
pub trait MailStore: Send + Sync {
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
    /// A mail by id: the `deliver_mail` job's payload names it.
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
}

/// Receipts: numbered once per paid payment, and mailed once. Part of `Store`.
#[async_trait]
pub trait ReceiptStore: Send + Sync {
    /// The payment's receipt, issuing it with the merchant's next number if it has
    /// none (the caller checks that the payment was paid).
    async fn issue_receipt(
        &self,
        payment: &PaymentId,
        now: DateTime<Utc>,
    ) -> StoreResult<crate::receipt::Receipt>;
    /// The payment's receipt, if one was issued.
    async fn receipt_of(&self, payment: &PaymentId)
        -> StoreResult<Option<crate::receipt::Receipt>>;
    /// Payments paid since `since` (refunded in part since, or not) whose receipt
    /// was not mailed yet, oldest first, at most `limit`.
    async fn receipts_to_mail(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PaymentId>>;
    /// Puts receipt `number`'s mail in the outbox with its delivery job, in one
    /// transaction; `false` (and nothing written) if it was mailed before.
    async fn record_receipt_mail(
        &self,
        number: i64,
        mail: &crate::mail::OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// Idempotency keys, and the heartbeats of the processes holding them. Part of `Store`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
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
    /// Lets a retry run again for a claim whose request did not complete (if `holder`
    /// still holds it): forgotten when nothing was made under it; else kept with its
    /// lease ended, so the retry takes it over and reuses what was made.
    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()>;
    /// Notes that the process `instance` is alive at `now` (and forgets processes
    /// not heard from for a day).
    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Forgets a process that is stopping: the keys it still holds are free at once.
    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()>;
}

/// What an operator reads and acts on: incoming webhook deliveries and operator events. Part of `Store`.
#[async_trait]
pub trait OperatorLog: Send + Sync {
    /// What the operator's gauges show now, counted by the database (indexed counts,
    /// read at each scrape of `/metrics`): open payments (and those not looked at
    /// since `overdue_before`), payments held for review, queued and dead jobs.
    async fn gauges(&self, overdue_before: DateTime<Utc>) -> StoreResult<Gauges>;
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
    /// The latest deliveries, newest first, for the admin pages.
    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>>;
    /// Puts something on the operator's list, where it stays until resolved.
    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// `record_operator_event` for `payment`, unless an event of this kind about it is
    /// still open: for what a stranger can set off again and again (a replayed
    /// return), which must not fill the list. `true` if it was recorded.
    async fn record_operator_event_once(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Newest first; only those not yet resolved unless `include_resolved`.
    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>>;
    /// Takes an event off the operator's list, noting who resolved it and their note
    /// (resolving it again keeps the first time, person and note); `NotFound` for an
    /// unknown id.
    async fn resolve_operator_event(
        &self,
        id: i64,
        resolution: Option<&EventResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Resolves every open event of `kind` about `payment` whose detail names `named`
    /// (a refund's id): the notice of a refund whose outcome was unknown, once the
    /// refund is settled, however long the operator's list has grown.
    async fn resolve_operator_events_naming(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        named: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// An operator's change to a webhook endpoint: each field given is set, the others
/// kept.
#[derive(Clone, Debug, Default)]
pub struct EndpointChange {
    /// A new URL, already checked (`http(s)`, not private unless allowed).
    pub url: Option<String>,
    /// A new choice of event types.
    pub wants: Option<Wanted>,
    /// A new description.
    pub description: Option<String>,
    /// Enables or disables it. Enabling clears why tijori disabled it and its run
    /// of failures.
    pub enabled: Option<bool>,
}

/// Outgoing events, the webhook endpoints they go to, and every try at delivering
/// them. Events themselves are written by the changes that cause them, in their
/// transactions (an outbox); their deliveries are `deliver_event` jobs. Part of
/// `Store`.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores a new endpoint with its secret.
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &str,
    ) -> StoreResult<()>;
    /// Every endpoint, oldest first (secrets are not read).
    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>>;
    /// One endpoint with its secrets (for signing); `None` for an unknown id.
    async fn webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<(WebhookEndpoint, EndpointSecrets)>>;
    /// Applies an operator's change; `None` for an unknown id.
    async fn update_webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
        change: &EndpointChange,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    /// Deletes an endpoint and its attempts; `false` for an unknown id.
    async fn delete_webhook_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<bool>;
    /// Makes `secret` the endpoint's; the old one signs too until `previous_until`.
    /// `false` for an unknown id.
    async fn rotate_webhook_secret(
        &self,
        id: &WebhookEndpointId,
        secret: &str,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Disables an endpoint tijori gave up on; `false` if it was not enabled.
    async fn disable_failing_endpoint(
        &self,
        id: &WebhookEndpointId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// An event by id.
    async fn event(&self, id: &EventId) -> StoreResult<Option<Event>>;
    /// Events from `since` on, newest first.
    async fn events_since(&self, since: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Event>>;
    /// Queues a delivery of `event` to `endpoint`, or to every enabled endpoint that
    /// wants it; returns how many were queued (one already queued is not queued
    /// twice).
    async fn queue_event_delivery(
        &self,
        event: &Event,
        endpoint: Option<&WebhookEndpointId>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Queues a delivery of every event from `since` on that an enabled endpoint
    /// (`endpoint`, or any) wants and has not received (failed, given up on, or never
    /// tried while it was disabled), at most `limit`; returns how many.
    async fn redeliver_undelivered(
        &self,
        since: DateTime<Utc>,
        endpoint: Option<&WebhookEndpointId>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Records a try; returns since when the endpoint has failed every delivery
    /// (`None` after one delivered, or if it is gone).
    async fn record_delivery_attempt(
        &self,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<Option<DateTime<Utc>>>;
    /// Records a try with its body, the endpoint's run of failures and its job's
    /// outcome, in one transaction. Returns since when the endpoint has failed every
    /// delivery (`None` after one delivered, or if it is gone), and whether `worker`
    /// still held the job (else another worker took it over when the lease ran out,
    /// and the job is left to that worker).
    async fn finish_delivery(
        &self,
        finished: &FinishedDelivery,
    ) -> StoreResult<(Option<DateTime<Utc>>, bool)>;
    /// Deletes up to `limit` events created before `before`, with their attempts;
    /// returns how many events went.
    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;
    /// The latest tries, newest first, at one endpoint, of one event, or all.
    async fn delivery_attempts(
        &self,
        endpoint: Option<&WebhookEndpointId>,
        event: Option<&EventId>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryAttempt>>;
}

/// What the operator's area reads to run a shop (`back_office`): lists with search,
/// filters and paging, each with its total counted by the database; a payment's
/// deliveries and events for its audit trail; the revenue and the overview's counts,
/// summed by the database. Part of `Store`.
#[async_trait]
pub trait BackOfficeStore: Send + Sync {
    /// Payments matching `listing`, newest first, with the total that match.
    async fn list_payments(&self, listing: &Listing) -> StoreResult<Listed<PaymentLine>>;
    /// Orders matching `listing` (its gateway: any payment of the order through it),
    /// newest first.
    async fn list_orders(&self, listing: &Listing) -> StoreResult<Listed<OrderLine>>;
    /// Customers matching `listing` (its status a `CustomerState` at `now`, its dates
    /// when they joined), newest first.
    async fn list_customers(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> StoreResult<Listed<CustomerLine>>;
    /// Customers' latest runs of paid time matching `listing` (its status a
    /// `SubscriptionState` at `now`, its dates when the run ends), soonest ending
    /// first.
    async fn list_subscriptions(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> StoreResult<Listed<SubscriptionLine>>;
    /// Money collected (payments made from `since`) and refunded (refunds that went
    /// through from `since`) per UTC day, gateway and currency, summed by the database.
    async fn revenue(&self, since: DateTime<Utc>) -> StoreResult<Vec<RevenueDay>>;
    /// The overview's counts at `now`; renewals due are runs ending before
    /// `renewals_before`.
    async fn shop_counts(
        &self,
        now: DateTime<Utc>,
        renewals_before: DateTime<Utc>,
    ) -> StoreResult<ShopCounts>;
    /// Every webhook delivery that named the payment (by our id, or by its gateway's
    /// reference), oldest first, with its body.
    async fn deliveries_of(
        &self,
        payment: &crate::payment::Payment,
    ) -> StoreResult<Vec<DeliveryOfPayment>>;
    /// Every operator event about the payment, resolved or not, oldest first.
    async fn operator_events_of(&self, payment: &PaymentId) -> StoreResult<Vec<OperatorEvent>>;
}
