//! The durable queue of background jobs. Every statement once, for both backends
//! (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::jobs::NewJob;
use tijori_core::store::StoreResult;

use crate::db::{ctx, query, Conn};

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
