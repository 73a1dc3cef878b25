// Background jobs, and the queries that find their work (stale payments, expired
// orders), on PostgreSQL: a child of `queries.rs`.

use chrono::{DateTime, Utc};

use tijori_core::id::{OrderId, PaymentId};
use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::payment::{Payment, CHECKOUT_LIFETIME_HOURS};
use tijori_core::store::{StoreError, StoreResult};

use super::{ctx, db_err, DbStore, SKIP_LOCKED};
use crate::rows::{stale_payments_sql, JobRow, PaymentRow, JOB_COLUMNS};

impl DbStore {
    pub(super) async fn enqueue_job_impl(
        &self,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Self::insert_job(&self.writer, job, now).await
    }

    /// Queues `job` unless an equal one is queued or running, on the pool or inside a
    /// caller's transaction (a job that must come with the change that causes it).
    pub(super) async fn insert_job<'e>(
        executor: impl sqlx::Executor<'e, Database = super::Db>,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO jobs (kind, payload, unique_key, status, attempts, max_attempts, run_at, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $6) \
             ON CONFLICT (kind, unique_key) \
             WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING",
        )
        .bind(job.kind.as_str())
        .bind(&job.payload)
        .bind(&job.unique_key)
        .bind(i64::from(job.kind.max_attempts()))
        .bind(job.run_at)
        .bind(now)
        .execute(executor)
        .await
        .map_err(ctx("failed to queue a job"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn claim_jobs_impl(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Job>> {
        // A running job whose lease ran out belongs to a worker that died (or hangs):
        // it is claimed again like a queued one, and the attempt counts.
        sqlx::query_as::<_, JobRow>(&format!(
            "UPDATE jobs SET status = 'running', locked_by = $1, locked_until = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs \
                 WHERE (status = 'queued' AND run_at <= $3) \
                    OR (status = 'running' AND locked_until <= $3) \
                 ORDER BY run_at, id LIMIT $4{SKIP_LOCKED}) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(ctx("failed to claim jobs"))?
        .into_iter()
        .map(Job::try_from)
        .collect()
    }

    pub(super) async fn complete_job_impl(
        &self,
        id: i64,
        worker: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = match next {
            None => sqlx::query(
                "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, \
                 last_error = NULL, updated_at = $3 \
                 WHERE id = $1 AND locked_by = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(worker)
            .bind(now),
            Some(next) => sqlx::query(
                "UPDATE jobs SET status = 'queued', run_at = $4, attempts = 0, locked_by = NULL, \
                 locked_until = NULL, last_error = NULL, updated_at = $3 \
                 WHERE id = $1 AND locked_by = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(worker)
            .bind(now)
            .bind(next),
        }
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to complete a job"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn fail_job_impl(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        match retry_at {
            Some(at) => sqlx::query(
                "UPDATE jobs SET status = 'queued', run_at = $4, last_error = $3, locked_by = NULL, \
                 locked_until = NULL, updated_at = $5 WHERE id = $1 AND locked_by = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(error)
            .bind(at)
            .bind(now),
            None => sqlx::query(
                "UPDATE jobs SET status = 'dead', last_error = $3, locked_by = NULL, \
                 locked_until = NULL, updated_at = $4 WHERE id = $1 AND locked_by = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(error)
            .bind(now),
        }
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to record a failed job"))?;
        Ok(())
    }

    pub(super) async fn jobs_impl(
        &self,
        status: Option<JobStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Job>> {
        sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($2 IS NULL OR status = $2) \
             ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .bind(status.map(JobStatus::as_str))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list jobs"))?
        .into_iter()
        .map(Job::try_from)
        .collect()
    }

    pub(super) async fn retry_job_impl(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $2, updated_at = $2 \
             WHERE id = $1 AND status = 'dead'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(db_err("failed to retry a job", "an equal job waiting"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("dead job"));
        }
        Ok(())
    }

    pub(super) async fn stale_payments_impl(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&stale_payments_sql("$"))
            .bind(checked_before)
            .bind(i64::from(limit))
            .bind(now - chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS))
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(ctx("failed to find stale payments"))?
            .into_iter()
            .map(Payment::try_from)
            .collect()
    }

    pub(super) async fn mark_checked_impl(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE payments SET checked_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(ctx("failed to note a payment's check"))?;
        Ok(())
    }

    pub(super) async fn claim_lookup_impl(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE payments SET checked_at = $2 \
             WHERE id = $1 AND (checked_at IS NULL OR checked_at <= $3)",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(not_after)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to claim a payment's lookup"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn expire_orders_impl(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OrderId>> {
        let due: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to find expired orders"))?;
        let mut expired = Vec::with_capacity(due.len());
        for (id,) in due {
            let mut tx = self.begin_write().await?;
            // Re-checked under the write lock: a payment may have just paid it.
            let moved = sqlx::query(
                "UPDATE orders SET status = 'expired', updated_at = $2 \
                 WHERE id = $1 AND status = 'pending' AND expires_at <= $2",
            )
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(ctx("failed to expire an order"))?
            .rows_affected()
                == 1;
            if !moved {
                continue;
            }
            let items: Vec<(String, i32)> = sqlx::query_as(
                "SELECT product_id, quantity FROM order_items WHERE order_id = $1 \
                 ORDER BY product_id",
            )
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .map_err(ctx("failed to load an expired order's items"))?;
            for (product, quantity) in items {
                sqlx::query(
                    "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1",
                )
                .bind(&product)
                .bind(quantity)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(ctx("failed to return stock"))?;
            }
            tx.commit()
                .await
                .map_err(ctx("failed to commit an order's expiry"))?;
            expired.push(OrderId::from_trusted(id));
        }
        Ok(expired)
    }
}
