//! The embedded default: one SQLite file in WAL mode, through rusqlite.
//!
//! The statements are the store's one set (the area modules at the crate's root,
//! written over `crate::db::Conn`), with no row locks: SQLite has one writer, and
//! every write here runs on it (see `engine`), in a savepoint of its batch's
//! transaction. Each area's file maps its part of the Store port onto those
//! statements: reads run in place (`read_with`), writes on the writer (`write_with`).
//!
//! Why not sqlx, as for PostgreSQL: sqlx runs each SQLite connection on a thread of
//! its own and hands every statement across and back. Under load that was most of the
//! server's CPU, and the one write connection spent a checkout's dozen statements in
//! handoffs while every other write waited (BENCHMARKS.md). sqlx still applies the
//! migrations, so databases made by earlier versions carry on as they are.

use std::str::FromStr;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::Connection as _;

use tijori_core::store::{Store, StoreResult};

use crate::db::{run_now, Sqlite};

mod accounts;
mod back_office;
mod engine;
mod events;
mod idempotency;
mod jobs;
mod mail;
mod operator;
mod payments;
mod receipts;
mod refunds;
mod shop;

use engine::Engine;
pub use engine::Synchronous;
pub(crate) use engine::{parse_ts, ts};

/// The store on SQLite: one writer thread with group commit, reads in place.
pub struct SqliteStore {
    db: Engine,
    url: String,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file a `sqlite://path` URL names.
    pub async fn connect(url: &str, synchronous: Synchronous) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite database URL {url:?}"))?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            anyhow::bail!(
                "{url:?}: tijori needs a SQLite file (it reads and writes on several \
                 connections); use sqlite://path/to/tijori.db"
            );
        }
        let path = options.get_filename().to_owned();
        let db = tokio::task::spawn_blocking(move || Engine::open(&path, synchronous))
            .await
            .context("the SQLite opener panicked")??;
        Ok(SqliteStore {
            db,
            url: url.to_owned(),
        })
    }

    /// Runs the migrations (the schema; `Database::migrate` then lays out the data a
    /// migration needs laid out by the core's rules).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let options = SqliteConnectOptions::from_str(&self.url)
            .with_context(|| format!("invalid SQLite database URL {:?}", self.url))?
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("failed to open {:?} to migrate it", self.url))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .context("failed to run SQLite migrations")?;
        conn.close()
            .await
            .context("failed to close the migration connection")?;
        Ok(())
    }

    /// Lets the writer finish what is queued, then stops it.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Runs a write written over `Conn` (see `crate::db`) on the writer, in its
    /// transaction.
    async fn write_with<T: Send + 'static>(
        &self,
        op: impl AsyncFnOnce(&mut Sqlite<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.db.write(move |c| run_now(op(&mut Sqlite(c)))).await
    }

    /// Runs a read written over `Conn` on a read connection, here and now.
    fn read_with<T>(
        &self,
        op: impl AsyncFnOnce(&mut Sqlite<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.db.read(|c| run_now(op(&mut Sqlite(c))))
    }
}

/// The SQLite schema's migrations, built into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read_with(async |c| crate::db::ping(c).await)
    }

    async fn migrated(&self) -> StoreResult<bool> {
        let known = crate::db::latest(&MIGRATOR);
        self.read_with(async |c| crate::db::migrated(c, known).await)
    }
}
