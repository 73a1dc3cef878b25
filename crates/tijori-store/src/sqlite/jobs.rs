//! Background jobs: `JobStore` on SQLite, through the statements in `crate::jobs`;
//! and the queries that find their work (stale payments, expired orders).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use tijori_core::id::{OrderId, PaymentId};
use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::payment::{Payment, CHECKOUT_LIFETIME_HOURS};
use tijori_core::store::{JobStore, StoreResult};

use super::{all, all_with, exec, ts, SqliteStore};
use crate::jobs;
use crate::rows::{stale_payments_sql, PaymentRow};

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
        let job = job.clone();
        self.write_with(async move |c| jobs::insert_job(c, &job, now).await)
            .await
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Job>> {
        let worker = worker.to_owned();
        self.write_with(async move |c| jobs::claim_jobs(c, &worker, limit, lease_until, now).await)
            .await
    }

    async fn complete_job(
        &self,
        id: i64,
        worker: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let worker = worker.to_owned();
        self.write_with(async move |c| jobs::complete_job(c, id, &worker, next, now).await)
            .await
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (worker, error) = (worker.to_owned(), error.to_owned());
        self.write_with(async move |c| jobs::fail_job(c, id, &worker, &error, retry_at, now).await)
            .await
    }

    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        self.read_with(async |c| jobs::jobs(c, status, limit).await)
    }

    async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.write_with(async move |c| jobs::retry_job(c, id, now).await)
            .await
    }
}

// Still called by refunds (`shop.rs`), not yet written over `Conn`; the statement's
// one copy is `crate::jobs::insert_job`, which replaces this when they are.
pub(super) fn enqueue_job(c: &Connection, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
    let done = exec(
        c,
        "INSERT INTO jobs (kind, payload, unique_key, status, attempts, max_attempts, run_at, \
         created_at, updated_at) VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?5, ?6, ?6) \
         ON CONFLICT (kind, unique_key) \
         WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING",
        params![
            job.kind.as_str(),
            job.payload,
            job.unique_key,
            i64::from(job.kind.max_attempts()),
            ts(job.run_at),
            ts(now)
        ],
        "failed to queue a job",
    )?;
    Ok(done == 1)
}

pub(super) fn stale_payments(
    c: &Connection,
    checked_before: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Payment>> {
    all::<PaymentRow>(
        c,
        &stale_payments_sql("?"),
        params![
            ts(checked_before),
            i64::from(limit),
            ts(now - chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS)),
            ts(now)
        ],
        "failed to find stale payments",
    )?
    .into_iter()
    .map(Payment::try_from)
    .collect()
}

pub(super) fn mark_checked(c: &Connection, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
    exec(
        c,
        "UPDATE payments SET checked_at = ?2 WHERE id = ?1",
        params![id.as_str(), ts(now)],
        "failed to note a payment's check",
    )?;
    Ok(())
}

pub(super) fn claim_lookup(
    c: &Connection,
    id: &PaymentId,
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> StoreResult<bool> {
    Ok(exec(
        c,
        "UPDATE payments SET checked_at = ?2 \
         WHERE id = ?1 AND (checked_at IS NULL OR checked_at <= ?3)",
        params![id.as_str(), ts(now), ts(not_after)],
        "failed to claim a payment's lookup",
    )? == 1)
}

pub(super) fn orders_due_to_expire(
    c: &Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<OrderId>> {
    all_with(
        c,
        "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= ?1 \
         ORDER BY expires_at, id LIMIT ?2",
        params![ts(now), i64::from(limit)],
        |r| Ok(OrderId::from_trusted(r.get(0)?)),
        "failed to find expired orders",
    )
}

/// Expires one order and gives its stock back; `false` if a payment paid it first.
pub(super) fn expire_order(c: &Connection, id: &OrderId, now: DateTime<Utc>) -> StoreResult<bool> {
    // Re-checked in the write: a payment may have just paid it.
    let moved = exec(
        c,
        "UPDATE orders SET status = 'expired', updated_at = ?2 \
         WHERE id = ?1 AND status = 'pending' AND expires_at <= ?2",
        params![id.as_str(), ts(now)],
        "failed to expire an order",
    )? == 1;
    if !moved {
        return Ok(false);
    }
    let items = all_with(
        c,
        "SELECT product_id, quantity FROM order_items WHERE order_id = ?1 ORDER BY product_id",
        [id.as_str()],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i32>(1)?)),
        "failed to load an expired order's items",
    )?;
    for (product, quantity) in items {
        exec(
            c,
            "UPDATE products SET stock = stock + ?2, updated_at = ?3 WHERE id = ?1",
            params![product, quantity, ts(now)],
            "failed to return stock",
        )?;
    }
    Ok(true)
}
