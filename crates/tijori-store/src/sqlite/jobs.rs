//! Background jobs: `JobStore` on SQLite, through the statements in `crate::jobs`;
//! and the queries that find their work (stale payments, expired orders).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::store::{JobStore, StoreResult};

use super::SqliteStore;
use crate::jobs;

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
        max_deliveries: u32,
    ) -> StoreResult<Vec<Job>> {
        let worker = worker.to_owned();
        self.write_with(async move |c| {
            jobs::claim_jobs(c, &worker, limit, lease_until, now, max_deliveries).await
        })
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
            .map(drop)
    }

    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        self.read_with(async |c| jobs::jobs(c, status, limit).await)
    }

    async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.write_with(async move |c| jobs::retry_job(c, id, now).await)
            .await
    }

    async fn prune_done_jobs(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        self.write_with(async move |c| jobs::prune_done_jobs(c, before, limit).await)
            .await
    }
}
