//! The Store port. SQL lives behind it (crate `tijori-store`); nothing else touches
//! the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::{Email, PasswordHashString, Session, TokenHash, User, Username};
use crate::gateway::{GatewayKind, RawAnswer};
use crate::id::{PaymentId, PlanId, UserId};
use crate::payment::{Payment, Transition};
use crate::subscription::{NewPlan, Plan, Subscription};

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
}

impl AnswerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Initiate => "initiate",
            AnswerKind::Lookup => "lookup",
            AnswerKind::ReturnSignal => "return_signal",
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

/// The result of applying a settlement.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The payment after the settlement (changed or not).
    pub payment: Payment,
    /// Whether this call changed the payment's status. Of concurrent settles of one
    /// payment, exactly one sees `true` for a given transition.
    pub changed: bool,
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

    // Plans ----------------------------------------------------------------------

    async fn create_plan(&self, plan: NewPlan, now: DateTime<Utc>) -> StoreResult<Plan>;
    async fn plans(&self) -> StoreResult<Vec<Plan>>;
    async fn plan(&self, id: &PlanId) -> StoreResult<Option<Plan>>;

    // Payments -------------------------------------------------------------------

    /// Stores a new payment (status `initiated`) before any gateway is called.
    async fn insert_payment(&self, payment: &Payment) -> StoreResult<()>;
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
    /// whatever happens around this call.
    async fn settle(
        &self,
        id: &PaymentId,
        transition: Option<&Transition>,
        provider_txn_id: Option<&str>,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<Settled>;

    // Subscriptions --------------------------------------------------------------

    async fn subscription(&self, user: &UserId) -> StoreResult<Option<Subscription>>;
}
