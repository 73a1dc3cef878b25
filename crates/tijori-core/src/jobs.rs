//! Background jobs: work that must happen even when no request asks for it (looking up
//! payments whose outcome never arrived, expiring unpaid orders). Jobs live in the
//! database, so they survive restarts and several workers can share them; a claimed
//! job carries a lease, and a job whose worker died is claimed again when the lease
//! runs out. Every job is idempotent: running one twice does no harm.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::Serialize;

use crate::id::{EventId, PaymentId, RefundId, WebhookEndpointId};

/// What a job does. The payload says to what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Recurring: find payments whose outcome never arrived and queue a lookup each.
    ReconcileSweep,
    /// Look one payment up at its gateway and settle on the answer.
    ReconcilePayment,
    /// Recurring: expire unpaid orders past their time, returning their stock.
    ExpireOrders,
    /// Recurring: write the renewal reminders and expiry notices that are due.
    SubscriptionNotices,
    /// Deliver one mail from the outbox.
    DeliverMail,
    /// Look a payment up to learn what became of one of its refunds whose answer
    /// was lost (payload: the refund's id). Queued with the unknown refund, in the
    /// same transaction.
    CheckRefund,
    /// Recurring: look up one recently paid payment, to find refunds made outside
    /// tijori (in the gateway's dashboard).
    RefundAudit,
    /// Recurring: delete API tokens and sessions that have expired (they no longer
    /// sign anyone in, but would otherwise stay in the database for ever).
    PruneCredentials,
    /// Deliver one outgoing event to one of the merchant's webhook endpoints
    /// (payload: the event's id and the endpoint's). Queued with the event, in the
    /// transaction of the change that caused it.
    DeliverEvent,
    /// Recurring: delete outgoing events, their delivery attempts and finished jobs
    /// older than the retention (`BackgroundSettings::history_retention`), which would
    /// otherwise grow with every payment for ever.
    PruneHistory,
}

impl JobKind {
    /// Every kind, for reading a stored name back (`FromStr`).
    pub const ALL: [JobKind; 10] = [
        JobKind::ReconcileSweep,
        JobKind::ReconcilePayment,
        JobKind::ExpireOrders,
        JobKind::SubscriptionNotices,
        JobKind::DeliverMail,
        JobKind::CheckRefund,
        JobKind::RefundAudit,
        JobKind::PruneCredentials,
        JobKind::DeliverEvent,
        JobKind::PruneHistory,
    ];

    /// The name in the jobs table's `kind` column and in logs; also the unique key of a
    /// recurring sweep's job.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ReconcileSweep => "reconcile_sweep",
            JobKind::ReconcilePayment => "reconcile_payment",
            JobKind::ExpireOrders => "expire_orders",
            JobKind::SubscriptionNotices => "subscription_notices",
            JobKind::DeliverMail => "deliver_mail",
            JobKind::CheckRefund => "check_refund",
            JobKind::RefundAudit => "refund_audit",
            JobKind::PruneCredentials => "prune_credentials",
            JobKind::DeliverEvent => "deliver_event",
            JobKind::PruneHistory => "prune_history",
        }
    }

    /// How many times a job is tried before it is dead (an operator's to retry).
    pub fn max_attempts(self) -> u32 {
        match self {
            // Recurring sweeps must never stop; a failure is retried with backoff.
            JobKind::ReconcileSweep
            | JobKind::ExpireOrders
            | JobKind::SubscriptionNotices
            | JobKind::RefundAudit
            | JobKind::PruneCredentials
            | JobKind::PruneHistory => u32::MAX,
            JobKind::ReconcilePayment | JobKind::DeliverMail | JobKind::CheckRefund => 8,
            // About three days of tries (`events::RETRY_AFTER_SECS`).
            JobKind::DeliverEvent => crate::events::MAX_ATTEMPTS,
        }
    }

    /// When a job of this kind is tried again after its `attempts`th try failed;
    /// `None` when it has no tries left (it is dead).
    pub fn retry_at(
        self,
        attempts: u32,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            // The schedule receivers of Standard Webhooks expect.
            JobKind::DeliverEvent => {
                crate::events::jittered_retry_at(attempts, now).filter(|_| attempts < max_attempts)
            }
            _ => (attempts < max_attempts).then(|| backoff(attempts, now)),
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job kind {s:?}"))
    }
}

/// Where a job is in its life, as the `status` column stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for `run_at`: new, retrying after backoff, or recurring between runs.
    Queued,
    /// Claimed by a worker, which holds it until `locked_until` (its lease).
    Running,
    /// Finished for good; a recurring job is normally queued again instead.
    Done,
    /// Out of attempts: stays until an operator retries it.
    Dead,
}

impl JobStatus {
    /// The name in the `status` column; the admin's job list filters by it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Done,
            JobStatus::Dead,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

/// A job to queue. `unique_key` makes queueing idempotent: while a job of the same
/// kind and key is queued or running, queueing another does nothing.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// What to do; its `max_attempts` is copied onto the job when it is queued.
    pub kind: JobKind,
    /// What to do it to: a payment, refund or mail id; empty for the recurring sweeps.
    pub payload: String,
    /// `None` never conflicts: the job is queued whatever else is waiting.
    pub unique_key: Option<String>,
    /// No worker claims it before this.
    pub run_at: DateTime<Utc>,
}

impl NewJob {
    /// How long after a refund's answer was lost it is first looked up: long enough
    /// for a gateway that just failed to have recovered, short enough that the
    /// payment is not blocked for long.
    pub const REFUND_CHECK_DELAY_SECS: i64 = 30;

    /// A job of `P`'s kind carrying `payload`, due at `run_at`.
    pub fn of<P: JobPayload>(payload: &P, run_at: DateTime<Utc>) -> NewJob {
        NewJob {
            kind: P::KIND,
            payload: payload.encode(),
            unique_key: payload.unique_key(),
            run_at,
        }
    }

    /// A recurring sweep (a kind that carries nothing): one of each kind is queued or
    /// running at a time, which its unique key (the kind's name) keeps so.
    pub fn recurring(kind: JobKind, run_at: DateTime<Utc>) -> NewJob {
        NewJob {
            kind,
            payload: String::new(),
            unique_key: Some(kind.as_str().to_owned()),
            run_at,
        }
    }

    /// The look-up of a refund whose outcome is unknown. The store queues it in the
    /// same transaction that records the refund as unknown.
    pub fn check_refund(refund: &RefundId, now: DateTime<Utc>) -> NewJob {
        NewJob::of(
            &CheckRefund {
                refund: refund.clone(),
            },
            now + Duration::seconds(Self::REFUND_CHECK_DELAY_SECS),
        )
    }
}

/// A job's payload, typed: one type per kind that carries one (`KIND` names it), as
/// crates.io's background jobs are, so what a job is about is written and read in
/// one place and a job of one kind cannot be read as another's.
///
/// The stored text is the id the job is about, not JSON: that is what jobs queued by
/// earlier versions carry, so they run unchanged after an upgrade, and the admin's
/// job list shows the id as it is.
pub trait JobPayload: Sized {
    /// The kind whose payload this is.
    const KIND: JobKind;

    /// The text stored in the `payload` column.
    fn encode(&self) -> String;

    /// Reads the stored text back; a malformed one is `JobError::BadPayload`.
    fn decode(text: &str) -> Result<Self, JobError>;

    /// While a job of this kind with this key is queued or running, queueing another
    /// does nothing: by default, one job per thing it is about.
    fn unique_key(&self) -> Option<String> {
        Some(self.encode())
    }
}

/// `JobKind::ReconcilePayment`: look one payment up at its gateway and settle on the
/// answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcilePayment {
    /// The payment whose outcome never arrived.
    pub payment: PaymentId,
}

/// `JobKind::CheckRefund`: look a payment up to learn what became of a refund of it
/// whose answer was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRefund {
    /// The refund whose outcome is unknown.
    pub refund: RefundId,
}

/// `JobKind::DeliverMail`: deliver one mail from the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverMail {
    /// The outbox mail's id.
    pub mail: String,
}

fn bad_payload(kind: JobKind, text: &str, why: &str) -> JobError {
    JobError::BadPayload {
        kind,
        payload: text.chars().take(100).collect(),
        why: why.to_owned(),
    }
}

impl JobPayload for ReconcilePayment {
    const KIND: JobKind = JobKind::ReconcilePayment;

    fn encode(&self) -> String {
        self.payment.to_string()
    }

    fn decode(text: &str) -> Result<Self, JobError> {
        PaymentId::parse(text)
            .map(|payment| ReconcilePayment { payment })
            .ok_or_else(|| bad_payload(Self::KIND, text, "not a payment id"))
    }
}

impl JobPayload for CheckRefund {
    const KIND: JobKind = JobKind::CheckRefund;

    fn encode(&self) -> String {
        self.refund.to_string()
    }

    fn decode(text: &str) -> Result<Self, JobError> {
        RefundId::parse(text)
            .map(|refund| CheckRefund { refund })
            .ok_or_else(|| bad_payload(Self::KIND, text, "not a refund id"))
    }
}

impl JobPayload for DeliverMail {
    const KIND: JobKind = JobKind::DeliverMail;

    fn encode(&self) -> String {
        self.mail.clone()
    }

    fn decode(text: &str) -> Result<Self, JobError> {
        if text.is_empty() || text.len() > 100 {
            return Err(bad_payload(Self::KIND, text, "not an outbox mail's id"));
        }
        Ok(DeliverMail {
            mail: text.to_owned(),
        })
    }
}

/// `JobKind::DeliverEvent`: deliver one event to one webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverEvent {
    /// The event to send.
    pub event: EventId,
    /// Where to.
    pub endpoint: WebhookEndpointId,
}

impl JobPayload for DeliverEvent {
    const KIND: JobKind = JobKind::DeliverEvent;

    // "evt_… we_…": the store's SQL builds the same text when it queues an event's
    // deliveries to every endpoint at once (`events::emit`).
    fn encode(&self) -> String {
        format!("{} {}", self.event, self.endpoint)
    }

    fn decode(text: &str) -> Result<Self, JobError> {
        let (event, endpoint) = text
            .split_once(' ')
            .ok_or_else(|| bad_payload(Self::KIND, text, "not an event id and an endpoint id"))?;
        match (EventId::parse(event), WebhookEndpointId::parse(endpoint)) {
            (Some(event), Some(endpoint)) => Ok(DeliverEvent { event, endpoint }),
            _ => Err(bad_payload(
                Self::KIND,
                text,
                "not an event id and an endpoint id",
            )),
        }
    }
}

/// Why a job's attempt failed, with its cause: recorded on the job (its
/// `last_error`, with the whole chain of causes) and, once the job is dead, on the
/// operator's list.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The stored payload is not what its kind carries: a bug, or a row edited by
    /// hand.
    #[error("the payload {payload:?} of a {kind} job is {why}")]
    BadPayload {
        /// The job's kind.
        kind: JobKind,
        /// The stored text (its first 100 characters).
        payload: String,
        /// What it should have been.
        why: String,
    },
    /// The work itself failed (a store or gateway error, a mail server's refusal).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl JobError {
    /// A failure of the work, keeping `cause` and its chain.
    pub fn failed(cause: impl Into<anyhow::Error>) -> JobError {
        JobError::Failed(cause.into())
    }
}

/// A job as stored, with its progress: what a worker claims and the admin's job
/// list shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The row's id: how its worker completes it and an operator retries it.
    pub id: i64,
    /// Decides what a worker does with it (see `JobKind`).
    pub kind: JobKind,
    /// As queued (see `NewJob::payload`): a payment, refund or mail id, or empty.
    pub payload: String,
    /// As queued: no other job of the same kind and key is queued or running beside it.
    pub unique_key: Option<String>,
    /// Where it is in its life; a `Dead` one waits for an operator's retry.
    pub status: JobStatus,
    /// Attempts started so far (this one included, once claimed).
    pub attempts: u32,
    /// Copied from `JobKind::max_attempts` when queued: a failure on this attempt makes
    /// the job dead.
    pub max_attempts: u32,
    /// Not claimed before this: the time it was queued for, a retry's backoff, or a
    /// recurring job's next run.
    pub run_at: DateTime<Utc>,
    /// The worker running it (host, process and a random part); `None` unless running.
    pub locked_by: Option<String>,
    /// When that worker's lease ends: a job still running then is claimed again, and the
    /// attempt counts.
    pub locked_until: Option<DateTime<Utc>>,
    /// Why the last failed attempt failed; cleared when the job completes.
    pub last_error: Option<String>,
    /// When it was first queued (a recurring job keeps its row from run to run).
    pub created_at: DateTime<Utc>,
    /// When it last changed (claimed, completed, failed or retried).
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// The job's payload as `P`, which must be its kind's.
    pub fn payload_as<P: JobPayload>(&self) -> Result<P, JobError> {
        if self.kind != P::KIND {
            return Err(bad_payload(self.kind, &self.payload, P::KIND.as_str()));
        }
        P::decode(&self.payload)
    }
}

/// When to try a failed job again: exponential from 10 seconds, capped at an hour,
/// with ±25 % jitter so jobs that failed together (a gateway outage) do not all come
/// back at the same instant.
pub fn backoff(attempts: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    let base = 10i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(20));
    let capped = base.min(3_600) as f64;
    let jittered = capped * rand::thread_rng().gen_range(0.75..=1.25);
    now + Duration::milliseconds((jittered * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let now = Utc::now();
        let secs = |a| (backoff(a, now) - now).num_milliseconds() as f64 / 1000.0;
        for _ in 0..100 {
            let first = secs(1);
            assert!((7.5..=12.5).contains(&first), "{first}");
            let third = secs(3);
            assert!((30.0..=50.0).contains(&third), "{third}");
            let late = secs(40);
            assert!((2_700.0..=4_500.0).contains(&late), "{late}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>(), Ok(k));
        }
    }

    fn stored(job: &NewJob) -> Job {
        Job {
            id: 1,
            kind: job.kind,
            payload: job.payload.clone(),
            unique_key: job.unique_key.clone(),
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts: job.kind.max_attempts(),
            run_at: job.run_at,
            locked_by: None,
            locked_until: None,
            last_error: None,
            created_at: job.run_at,
            updated_at: job.run_at,
        }
    }

    #[test]
    fn a_payload_is_read_back_only_as_its_own_kind() {
        let now = Utc::now();
        let payment = PaymentId::generate();
        let job = stored(&NewJob::of(
            &ReconcilePayment {
                payment: payment.clone(),
            },
            now,
        ));
        // As earlier versions stored it: the bare id, one job per payment.
        assert_eq!(job.payload, payment.as_str());
        assert_eq!(job.unique_key.as_deref(), Some(payment.as_str()));
        assert_eq!(
            job.payload_as::<ReconcilePayment>().unwrap().payment,
            payment
        );
        assert!(matches!(
            job.payload_as::<CheckRefund>(),
            Err(JobError::BadPayload { .. })
        ));
        let refund = stored(&NewJob::check_refund(&RefundId::generate(), now));
        assert!(refund.payload_as::<CheckRefund>().is_ok());
        assert!(
            refund.run_at > now,
            "a lost refund is looked up a little later"
        );
        let mut bad = job.clone();
        bad.payload = "pay_123".into();
        let e = bad.payload_as::<ReconcilePayment>().unwrap_err();
        assert!(e.to_string().contains("not a payment id"), "{e}");
        let sweep = NewJob::recurring(JobKind::ExpireOrders, now);
        assert_eq!(sweep.unique_key.as_deref(), Some("expire_orders"));
    }
}
