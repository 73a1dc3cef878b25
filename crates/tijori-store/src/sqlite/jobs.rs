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
