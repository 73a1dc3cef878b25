//! Background jobs: `JobStore` on PostgreSQL, through the statements in `crate::jobs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::store::{JobStore, StoreResult};

use super::PgStore;
use crate::jobs;

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
        jobs::insert_job(&mut self.pool(), job, now).await
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
        max_deliveries: u32,
    ) -> StoreResult<Vec<Job>> {
        jobs::claim_jobs(
            &mut self.pool(),
            worker,
            limit,
            lease_until,
            now,
            max_deliveries,
        )
        .await
    }

    async fn complete_job(
        &self,
        id: i64,
        worker: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        jobs::complete_job(&mut self.pool(), id, worker, next, now).await
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        jobs::fail_job(&mut self.pool(), id, worker, error, retry_at, now)
            .await
            .map(drop)
    }

    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        jobs::jobs(&mut self.pool(), status, limit).await
    }

    async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        jobs::retry_job(&mut self.pool(), id, now).await
    }

    async fn prune_done_jobs(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        jobs::prune_done_jobs(&mut self.pool(), before, limit).await
    }
}
