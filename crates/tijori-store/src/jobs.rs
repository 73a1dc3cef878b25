//! The durable queue of background jobs. Every statement once, for both backends
//! (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::jobs::{Job, JobKind, JobStatus, NewJob};
use tijori_core::store::{StoreError, StoreResult};

use crate::db::{ctx, db_err, query, Conn};
use crate::rows::{JobRow, JOB_COLUMNS};

/// Queues `job` unless an equal one is queued or running; in the caller's
/// transaction when the job must come with the change that causes it.
pub(crate) async fn insert_job(
    c: &mut impl Conn,
    job: &NewJob,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = query(
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
    .execute(c)
    .await
    .map_err(ctx("failed to queue a job"))?;
    Ok(done == 1)
}

/// Claims due jobs for `worker` until `lease_until`.
///
/// Safe with several workers at once on both backends: on PostgreSQL each claim
/// skips the rows another is taking (`SKIP_LOCKED`); on SQLite one writer runs one
/// write at a time, so the UPDATE that picks its rows with a subquery is atomic: two
/// workers never claim one job.
pub(crate) async fn claim_jobs<C: Conn>(
    c: &mut C,
    worker: &str,
    limit: u32,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    max_deliveries: u32,
) -> StoreResult<Vec<Job>> {
    // A running job whose lease ran out belongs to a worker that died (or hangs): it
    // is claimed again like a queued one, and the attempt counts.
    //
    // Three parts, each read from its own index in order and cut at its limit, then
    // merged: the deliveries due (at most `max_deliveries`), the other jobs due, and
    // the lapsed leases. A single `WHERE queued OR lapsed ORDER BY` sorted every due
    // job to claim a few, and one that left deliveries out skipped past all of them:
    // with a burst of outgoing events (tens of thousands due at once) either cost the
    // writer milliseconds per claim. The kind is written out, not bound, so that it
    // matches the partial indexes' own conditions (migration 0014).
    let delivery = JobKind::DeliverEvent.as_str();
    let skip_locked = C::SKIP_LOCKED;
    let queued = |kind: &str, limit: &str| {
        format!(
            "SELECT id, run_at FROM (SELECT id, run_at FROM jobs \
             WHERE status = 'queued' AND kind {kind} AND run_at <= $3 \
             ORDER BY run_at, id LIMIT {limit}{skip_locked})"
        )
    };
    query(&format!(
        "UPDATE jobs SET status = 'running', locked_by = $1, locked_until = $2, \
         attempts = attempts + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM ( \
             {} AS deliveries \
             UNION ALL {} AS others \
             UNION ALL SELECT id, run_at FROM (SELECT id, run_at FROM jobs \
                 WHERE status = 'running' AND locked_until <= $3 \
                 ORDER BY locked_until, id LIMIT $4{skip_locked}) AS lapsed \
             ) AS due ORDER BY run_at, id LIMIT $4) \
         RETURNING {JOB_COLUMNS}",
        queued(&format!("= '{delivery}'"), "$5"),
        queued(&format!("<> '{delivery}'"), "$4"),
    ))
    .bind(worker)
    .bind(lease_until)
    .bind(now)
    .bind(i64::from(limit))
    .bind(i64::from(max_deliveries.min(limit)))
    .fetch_all::<JobRow>(c)
    .await
    .map_err(ctx("failed to claim jobs"))?
    .into_iter()
    .map(Job::try_from)
    .collect()
}

pub(crate) async fn complete_job(
    c: &mut impl Conn,
    id: i64,
    worker: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = match next {
        None => query(
            "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, \
             last_error = NULL, updated_at = $3 \
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now),
        Some(next) => query(
            "UPDATE jobs SET status = 'queued', run_at = $4, attempts = 0, locked_by = NULL, \
             locked_until = NULL, last_error = NULL, updated_at = $3 \
             WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(next),
    }
    .execute(c)
    .await
    .map_err(ctx("failed to complete a job"))?;
    Ok(done == 1)
}

pub(crate) async fn fail_job(
    c: &mut impl Conn,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    match retry_at {
        Some(at) => query(
            "UPDATE jobs SET status = 'queued', run_at = $4, last_error = $3, locked_by = NULL, \
             locked_until = NULL, updated_at = $5 WHERE id = $1 AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(at)
        .bind(now),
        None => query(
            "UPDATE jobs SET status = 'dead', last_error = $3, locked_by = NULL, \
             locked_until = NULL, updated_at = $4 WHERE id = $1 AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(now),
    }
    .execute(c)
    .await
    .map_err(ctx("failed to record a failed job"))
    .map(|failed| failed == 1)
}

pub(crate) async fn jobs(
    c: &mut impl Conn,
    status: Option<JobStatus>,
    limit: u32,
) -> StoreResult<Vec<Job>> {
    query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($2 IS NULL OR status = $2) \
         ORDER BY id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .bind(status.map(JobStatus::as_str))
    .fetch_all::<JobRow>(c)
    .await
    .map_err(ctx("failed to list jobs"))?
    .into_iter()
    .map(Job::try_from)
    .collect()
}

pub(crate) async fn retry_job(c: &mut impl Conn, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    let done = query(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $2, updated_at = $2 \
         WHERE id = $1 AND status = 'dead'",
    )
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map_err(db_err("failed to retry a job", "an equal job waiting"))?;
    if done == 0 {
        return Err(StoreError::NotFound("dead job"));
    }
    Ok(())
}

/// Deletes up to `limit` jobs finished (`done`) before `before`; returns how many.
/// Dead jobs stay for an operator.
pub(crate) async fn prune_done_jobs(
    c: &mut impl Conn,
    before: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u64> {
    query(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
         WHERE status = 'done' AND updated_at < $1 ORDER BY updated_at LIMIT $2)",
    )
    .bind(before)
    .bind(i64::from(limit))
    .execute(c)
    .await
    .map_err(ctx("failed to prune finished jobs"))
}
