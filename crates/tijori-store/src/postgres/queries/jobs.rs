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
}
