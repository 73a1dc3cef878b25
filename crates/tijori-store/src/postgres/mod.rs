//! The scale path: several tijori processes on one PostgreSQL.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tijori_core::store::{Store, StoreError, StoreResult};

use crate::db::{PgPoolConn, PgTx};

const BEGIN_WRITE: &str = "BEGIN";

mod accounts;
mod back_office;
mod events;
mod idempotency;
mod jobs;
mod mail;
mod operator;
mod payments;
mod receipts;
mod refunds;
mod shop;

/// The store on PostgreSQL, through sqlx.
pub struct PgStore {
    /// One pool for reads and writes: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
}

impl PgStore {
    /// A pool of at most `max_connections` to the database `url` names.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .context("failed to connect to PostgreSQL")?;
        Ok(PgStore { writer: pool })
    }

    /// Calls `on_change` with the id of every payment any tijori process on this
    /// database settles, for as long as the returned task runs. A lost connection is
    /// re-established; changes during the gap are missed (listeners re-read on their
    /// own schedule, so a page falls back to polling rather than hanging).
    pub fn listen_for_changes(
        &self,
        on_change: impl Fn(tijori_core::id::PaymentId) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.writer.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for payment changes; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen("tijori_payment_changes").await {
                    tracing::warn!(error = %e, "cannot listen for payment changes; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
                loop {
                    match listener.recv().await {
                        Ok(n) => on_change(tijori_core::id::PaymentId::from_trusted(
                            n.payload().to_owned(),
                        )),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the payment-change listener; reconnecting");
                            break;
                        }
                    }
                }
            }
        })
    }

    /// Runs the migrations (the schema; `Database::migrate` then lays out the data a
    /// migration needs laid out by the core's rules).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .context("failed to run PostgreSQL migrations")?;
        Ok(())
    }

    /// The pool, for statements that need no transaction of their own.
    fn pool(&self) -> PgPoolConn<'_> {
        PgPoolConn(&self.writer)
    }

    /// Runs `op` in a write transaction and commits it. `op` takes a transaction of
    /// any lifetime (see `PgTx`): one for the pool's `'static` alone fails the check
    /// that a store method's future is `Send`.
    async fn write_with<T>(
        &self,
        op: impl for<'t> AsyncFnOnce(&mut PgTx<'t>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await.map_err(|e| {
            StoreError::Database(
                anyhow::Error::new(e).context("failed to begin a write transaction"),
            )
        })?;
        let answer = op(&mut tx).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::Database(anyhow::Error::new(e).context("failed to commit")))?;
        Ok(answer)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.writer.close().await;
    }
}

/// The PostgreSQL schema's migrations, built into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        crate::db::ping(&mut self.pool()).await
    }

    async fn migrated(&self) -> StoreResult<bool> {
        crate::db::migrated(&mut self.pool(), crate::db::latest(&MIGRATOR)).await
    }
}
