// The Store on PostgreSQL, with sqlx (included by `postgres.rs`; `super::Db` names the
// backend). The SQLite store (`sqlite/`) runs the same statements through rusqlite;
// the rows both read, and their conversions, live in `crate::rows`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder};

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{OrderId, PaymentId, PlanId, ProductId, RefundId, UserId};
use tijori_core::idempotency::{
    Attempt, Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse,
};
use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::mail::{DueNotice, OutboxMail};
use tijori_core::payment::{Effect, Payment, PaymentStatus, Purpose};
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{
    AccountStore, AnswerKind, GatewayAnswerRecord, IdempotencyStore, JobStore, MailStore, NewUser,
    NewWebhookDelivery, OperatorEvent, OperatorEventKind, OperatorLog, PaymentStore,
    RecordedDelivery, Refund, RefundResolution, RefundStatus, RefundStore, Settled, Settlement,
    ShopStore, Store, StoreError, StoreResult, WebhookDelivery,
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
mod shop;

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

#[async_trait]
impl IdempotencyStore for DbStore {
    async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        self.claim_idempotency_key_impl(user, key, fingerprint, claimant, now)
            .await
    }

    async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        self.complete_idempotency_key_impl(user, key, holder, response)
            .await
    }

    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
        self.heartbeat_impl(instance, now).await
    }

    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()> {
        self.retire_instance_impl(instance).await
    }

    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()> {
        self.release_idempotency_key_impl(user, key, holder).await
    }
}

#[async_trait]
impl OperatorLog for DbStore {
    async fn record_webhook(&self, delivery: &NewWebhookDelivery) -> StoreResult<RecordedDelivery> {
        self.record_webhook_impl(delivery).await
    }

    async fn finish_webhook(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        self.finish_webhook_impl(id, payment, outcome, detail).await
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.webhook_deliveries_impl(limit).await
    }

    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        Self::insert_operator_event(&self.writer, kind, payment, detail, now).await
    }

    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>> {
        self.operator_events_impl(include_resolved, limit).await
    }

    async fn resolve_operator_event(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.resolve_operator_event_impl(id, now).await
    }

    async fn resolve_operator_events_naming(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        named: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE operator_events SET resolved_at = $4 WHERE resolved_at IS NULL \
             AND kind = $1 AND payment_id = $2 AND strpos(detail, $3) > 0",
        )
        .bind(kind.as_str())
        .bind(payment.as_str())
        .bind(named)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to resolve operator events"))?;
        Ok(())
    }
}
