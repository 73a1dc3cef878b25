// The Store on PostgreSQL, with sqlx (included by `postgres.rs`; `super::Db` names the
// backend). The SQLite store (`sqlite/`) runs the same statements through rusqlite;
// the rows both read, and their conversions, live in `crate::rows`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder};

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{OrderId, PaymentId, PlanId, ProductId, RefundId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::mail::{DueNotice, OutboxMail};
use tijori_core::payment::{Effect, Payment, PaymentStatus, Purpose};
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{
    AccountStore, AnswerKind, GatewayAnswerRecord, JobStore, MailStore, NewUser, OperatorEventKind,
    PaymentStore, Refund, RefundResolution, RefundStatus, RefundStore, Settled, Settlement,
    ShopStore, Store, StoreError, StoreResult,
};
use tijori_core::subscription::{
    self, NewPlan, PaidPeriod, Plan, PlanChange, Refunded, Subscription, Tail,
};

use super::{Db, DbStore, BEGIN_WRITE, LOCK_ROW, SKIP_LOCKED};
use crate::paid_periods::{self, changes, Writes};
use crate::rows::{
    PaymentRow, PeriodRow, PlanRow, SubscriptionRow, UserRow, PAYMENT_COLUMNS, PERIOD_COLUMNS,
    PLAN_COLUMNS, USER_COLUMNS,
};

type Tx = sqlx::Transaction<'static, Db>;

// Parts of the same store, split by subject.
mod jobs;
mod notices;

/// Maps a unique-constraint failure to `Conflict`, and anything else to a database
/// error with the context of what we were doing.
fn db_err(what: &'static str, conflict: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(conflict),
        _ => StoreError::Database(anyhow::Error::new(e).context(what)),
    }
}

fn ctx(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database(anyhow::Error::new(e).context(what))
}

impl DbStore {
    async fn begin_write(&self) -> StoreResult<Tx> {
        self.writer
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(ctx("failed to begin a write transaction"))
    }
}

#[async_trait]
impl Store for DbStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(ctx("database did not answer"))?;
        Ok(())
    }
}

#[async_trait]
impl JobStore for DbStore {
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
        self.enqueue_job_impl(job, now).await
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Job>> {
        self.claim_jobs_impl(worker, limit, lease_until, now).await
    }

    async fn complete_job(
        &self,
        id: i64,
        worker: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.complete_job_impl(id, worker, next, now).await
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.fail_job_impl(id, worker, error, retry_at, now).await
    }

    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        self.jobs_impl(status, limit).await
    }

    async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.retry_job_impl(id, now).await
    }
}

#[async_trait]
impl MailStore for DbStore {
    async fn due_notices(
        &self,
        now: DateTime<Utc>,
        remind_within: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<DueNotice>> {
        self.due_notices_impl(now, remind_within, limit).await
    }

    async fn record_notice(
        &self,
        notice: &DueNotice,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.record_notice_impl(notice, mail, now).await
    }

    async fn outbox_mail(&self, id: &str) -> StoreResult<Option<OutboxMail>> {
        self.outbox_mail_impl(id).await
    }

    async fn mark_mail(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.mark_mail_impl(id, status, error, now).await
    }

    async fn outbox(&self, limit: u32) -> StoreResult<Vec<OutboxMail>> {
        self.outbox_impl(limit).await
    }
}
