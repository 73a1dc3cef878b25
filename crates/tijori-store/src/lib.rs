//! tijori's Store on SQLite (the embedded default, through rusqlite) and PostgreSQL
//! (through sqlx). All SQL lives in this crate; both backends run the same statements
//! and read the same rows (`rows.rs`).

#![warn(missing_docs)]

use std::sync::Arc;

use anyhow::Context as _;

use tijori_core::store::Store;

mod account_basics;
mod accounts;
mod back_office;
mod backup;
mod db;
mod events;
mod idempotency;
mod jobs;
mod mail;
mod operator;
mod paid_periods;
mod payments;
mod postgres;
mod receipts;
mod refunds;
mod rows;
mod shop;
mod sqlite;

pub use backup::{backup, with_suffix, BackupError, BackupReport};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, Synchronous};

/// An open database of either kind.
pub enum Database {
    /// The embedded default: one file, one process.
    Sqlite(Arc<SqliteStore>),
    /// For several tijori processes, or a database on its own machine.
    Postgres(Arc<PgStore>),
}

impl Database {
    /// Opens the database a `TIJORI_DATABASE_URL` names: `sqlite://path` (the file
    /// is created if missing) or `postgres://…`. Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, Synchronous::Full).await
    }

    /// `connect`, saying when a SQLite commit counts as durable (PostgreSQL has its own
    /// settings for that).
    pub async fn connect_with(url: &str, synchronous: Synchronous) -> anyhow::Result<Self> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Database::Sqlite(Arc::new(
                SqliteStore::connect(url, synchronous).await?,
            ))),
            Some("postgres" | "postgresql") => Ok(Database::Postgres(Arc::new(
                PgStore::connect(url, 16).await?,
            ))),
            _ => anyhow::bail!(
                "unsupported database URL {:?}: it must start with sqlite:// or postgres://",
                redact(url)
            ),
        }
    }

    /// Brings the schema up to date (and, once, the data a migration needs laid out
    /// by the core's rules: see each store's `migrate`).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        let kept = match self {
            Database::Sqlite(s) => {
                s.migrate().await?;
                s.keep_segments(now).await
            }
            Database::Postgres(p) => {
                p.migrate().await?;
                p.keep_segments(now).await
            }
        }
        .context("failed to keep the segments of periods paid before they were kept")?;
        if kept > 0 {
            tracing::info!(
                users = kept,
                "laid out the paid periods of users paid before segments were kept"
            );
        }
        Ok(())
    }

    /// The `Store` port the service runs on.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(s) => s.clone(),
            Database::Postgres(p) => p.clone(),
        }
    }

    /// Forwards payment changes made by other processes on this database to
    /// `on_change` (PostgreSQL's LISTEN/NOTIFY). On SQLite, which one process serves,
    /// there are none to forward and no task is started.
    pub fn listen_for_changes(
        &self,
        on_change: impl Fn(tijori_core::id::PaymentId) + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            Database::Sqlite(_) => None,
            Database::Postgres(p) => Some(p.listen_for_changes(on_change)),
        }
    }

    /// "sqlite" or "postgres", for logs and `/metrics`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Waits for writes in flight and closes the connections (at shutdown).
    pub async fn close(&self) {
        match self {
            Database::Sqlite(s) => s.close().await,
            Database::Postgres(p) => p.close().await,
        }
    }
}

/// A database URL fit for logs: any password replaced.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
