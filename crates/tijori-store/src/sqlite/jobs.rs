//! Background jobs, and the queries that find their work (stale payments, expired
//! orders).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use tijori_core::id::{OrderId, PaymentId};
use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::payment::{Payment, CHECKOUT_LIFETIME_HOURS};
use tijori_core::store::{StoreError, StoreResult};

use super::{all, all_with, db_err, exec, exec_or, ts};
use crate::rows::{stale_payments_sql, JobRow, PaymentRow, JOB_COLUMNS};

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

/// Claims due jobs. One writer runs one write at a time, so the UPDATE that picks
/// its rows with a subquery is atomic: two workers never claim one job.
pub(super) fn claim_jobs(
    c: &Connection,
    worker: &str,
    limit: u32,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Job>> {
    // A running job whose lease ran out belongs to a worker that died (or hangs): it
    // is claimed again like a queued one, and the attempt counts.
    all::<JobRow>(
        c,
        &format!(
            "UPDATE jobs SET status = 'running', locked_by = ?1, locked_until = ?2, \
             attempts = attempts + 1, updated_at = ?3 \
             WHERE id IN (SELECT id FROM jobs \
                 WHERE (status = 'queued' AND run_at <= ?3) \
                    OR (status = 'running' AND locked_until <= ?3) \
                 ORDER BY run_at, id LIMIT ?4) \
             RETURNING {JOB_COLUMNS}"
        ),
        params![worker, ts(lease_until), ts(now), i64::from(limit)],
        "failed to claim jobs",
    )?
    .into_iter()
    .map(Job::try_from)
    .collect()
}

pub(super) fn complete_job(
    c: &Connection,
    id: i64,
    worker: &str,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = match next {
        None => exec(
            c,
            "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, \
             last_error = NULL, updated_at = ?3 \
             WHERE id = ?1 AND locked_by = ?2 AND status = 'running'",
            params![id, worker, ts(now)],
            "failed to complete a job",
        )?,
        Some(next) => exec(
            c,
            "UPDATE jobs SET status = 'queued', run_at = ?4, attempts = 0, locked_by = NULL, \
             locked_until = NULL, last_error = NULL, updated_at = ?3 \
             WHERE id = ?1 AND locked_by = ?2 AND status = 'running'",
            params![id, worker, ts(now), ts(next)],
            "failed to complete a job",
        )?,
    };
    Ok(done == 1)
}

pub(super) fn fail_job(
    c: &Connection,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    match retry_at {
        Some(at) => exec(
            c,
            "UPDATE jobs SET status = 'queued', run_at = ?4, last_error = ?3, locked_by = NULL, \
             locked_until = NULL, updated_at = ?5 WHERE id = ?1 AND locked_by = ?2",
            params![id, worker, error, ts(at), ts(now)],
            "failed to record a failed job",
        )?,
        None => exec(
            c,
            "UPDATE jobs SET status = 'dead', last_error = ?3, locked_by = NULL, \
             locked_until = NULL, updated_at = ?4 WHERE id = ?1 AND locked_by = ?2",
            params![id, worker, error, ts(now)],
            "failed to record a failed job",
        )?,
    };
    Ok(())
}

pub(super) fn jobs(c: &Connection, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
    all::<JobRow>(
        c,
        &format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?2 IS NULL OR status = ?2) \
             ORDER BY id DESC LIMIT ?1"
        ),
        params![i64::from(limit), status.map(JobStatus::as_str)],
        "failed to list jobs",
    )?
    .into_iter()
    .map(Job::try_from)
    .collect()
}

pub(super) fn retry_job(c: &Connection, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    let done = exec_or(
        c,
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = ?2, updated_at = ?2 \
         WHERE id = ?1 AND status = 'dead'",
        params![id, ts(now)],
        db_err("failed to retry a job", "an equal job waiting"),
    )?;
    if done == 0 {
        return Err(StoreError::NotFound("dead job"));
    }
    Ok(())
}
