//! The embedded default: one SQLite file in WAL mode.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

type Db = Sqlite;
type DbStore = SqliteStore;

/// Taking the write lock up front means a write transaction never fails halfway when
/// it tries to upgrade from a read lock; waiting for the lock is left to busy_timeout.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// SQLite has no row locks; the write lock taken by BEGIN IMMEDIATE covers it.
const LOCK_ROW: &str = "";
/// One writer at a time: an UPDATE that picks its rows with a subquery is atomic.
const SKIP_LOCKED: &str = "";
/// SQLite serves one process: changes are announced in it directly.
const NOTIFY_CHANGE: &str = "";

// The same statements for both backends, compiled once for each: loading the file
// twice is the point.
#[allow(clippy::duplicate_mod)]
#[path = "queries.rs"]
mod queries;

/// Writes go through one connection, reads through several. SQLite admits one writer
/// at a time anyway; queueing writers in the pool instead of in busy_timeout spins is
/// what keeps "database is locked" away under concurrency.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite database URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a settle that answered 200 survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("failed to open SQLite database {url:?}"))?;
        // An in-memory database exists only on its one connection.
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_lazy_with(options.read_only(true))
        };
        Ok(SqliteStore { writer, reader })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await
            .context("failed to run SQLite migrations")
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
