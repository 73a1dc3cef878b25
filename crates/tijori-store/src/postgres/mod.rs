//! The scale path: several tijori processes on one PostgreSQL.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
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
    /// The backend pid of this process's own change listener (0 while it has none):
    /// a settle tells the other processes' listeners, and skips the `NOTIFY` when
    /// there are none (see `listen_for_changes`).
    own_listener: Arc<AtomicI32>,
}

/// How often a listener forgets the registrations of listeners that are gone.
const FORGET_GONE_LISTENERS: Duration = Duration::from_secs(60);

impl PgStore {
    /// A pool of at most `max_connections` to the database `url` names.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            // No ping before each statement: it was a round trip of its own for every
            // statement outside a transaction (7 of the 24 a Khalti flow made). A
            // connection the server dropped fails its next statement instead, and
            // sqlx closes it then.
            .test_before_acquire(false)
            .connect(url)
            .await
            .context("failed to connect to PostgreSQL")?;
        Ok(PgStore {
            writer: pool,
            own_listener: Arc::new(AtomicI32::new(0)),
        })
    }

    /// Calls `on_change` with the id of every payment the other tijori processes on
    /// this database settle, for as long as the returned task runs (this process
    /// announces its own settles itself; they come here too only when another
    /// process listens). A lost connection is re-established; changes during the gap
    /// are missed (listeners re-read on their own schedule, so a page falls back to
    /// polling rather than hanging).
    ///
    /// The listener registers its connection in `change_listeners`, and a settle
    /// sends its `NOTIFY` only when a listener of another process is registered:
    /// `NOTIFY` serialises the commits of every transaction that sends one (they
    /// queue for one lock held through the commit's flush), and one process alone
    /// needs none. A registration outlives a listener that died without saying so,
    /// which costs notifications nobody hears until the next listener's sweep
    /// (`FORGET_GONE_LISTENERS`) forgets it.
    pub fn listen_for_changes(
        &self,
        on_change: impl Fn(tijori_core::id::PaymentId) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.writer.clone();
        let own_listener = self.own_listener.clone();
        let sweep = {
            let pool = pool.clone();
            async move {
                let mut every = tokio::time::interval(FORGET_GONE_LISTENERS);
                loop {
                    every.tick().await;
                    if let Err(e) = forget_gone_listeners(&pool).await {
                        tracing::warn!(error = %e, "cannot forget gone payment-change listeners");
                    }
                }
            }
        };
        let listen = async move {
            // Stopped (the task aborted), the listener takes its registration back.
            let _registration = Registration {
                pool: pool.clone(),
                own_listener: own_listener.clone(),
            };
            'connect: loop {
                own_listener.store(0, Ordering::Relaxed);
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
                    // After LISTEN, on the listening connection itself.
                    match register_listener(&mut listener).await {
                        Ok(pid) => own_listener.store(pid, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot register the payment-change listener; retrying");
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            continue 'connect;
                        }
                    }
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) => on_change(tijori_core::id::PaymentId::from_trusted(
                                n.payload().to_owned(),
                            )),
                            // The connection was lost, and sqlx has connected and
                            // LISTENed again: the new connection registers.
                            Ok(None) => {
                                tracing::warn!("lost the payment-change listener; listening again");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the payment-change listener; reconnecting");
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                continue 'connect;
                            }
                        }
                    }
                }
            }
        };
        tokio::spawn(async move {
            // Neither ends: the task runs until it is aborted.
            tokio::join!(sweep, listen);
        })
    }

    /// See `own_listener`.
    fn own_listener(&self) -> i32 {
        self.own_listener.load(Ordering::Relaxed)
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

/// Takes this process's listener's registration back when dropped: a listener
/// whose task stops hands its connection back to the pool, alive, so that nothing
/// would forget it (sqlx's `PgListener` runs `UNLISTEN *` and returns it).
struct Registration {
    pool: PgPool,
    own_listener: Arc<AtomicI32>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let pid = self.own_listener.swap(0, Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if pid != 0 {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                let _ = sqlx::query("DELETE FROM change_listeners WHERE pid = $1")
                    .bind(pid)
                    .execute(&pool)
                    .await;
            });
        }
    }
}

/// Registers the listening connection `listener` in `change_listeners`; its backend
/// pid.
async fn register_listener(listener: &mut sqlx::postgres::PgListener) -> sqlx::Result<i32> {
    let (pid,): (i32,) = sqlx::query_as(
        "INSERT INTO change_listeners (pid, since) VALUES (pg_backend_pid(), now()) \
         ON CONFLICT (pid) DO UPDATE SET since = excluded.since RETURNING pid",
    )
    .fetch_one(&mut *listener)
    .await?;
    forget_gone_listeners(&mut *listener).await?;
    Ok(pid)
}

/// Forgets the registrations of listening connections that no longer exist.
async fn forget_gone_listeners<'e>(db: impl sqlx::PgExecutor<'e>) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM change_listeners WHERE pid NOT IN \
         (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)",
    )
    .execute(db)
    .await?;
    Ok(())
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
