//! The embedded default: one SQLite file in WAL mode, through rusqlite.
//!
//! The statements are PostgreSQL's (`queries.rs` and its children) with `?N` for `$N`
//! and no row locks: SQLite has one writer, and every write here runs on it (see
//! `engine`). Each subject has its module of plain functions over a connection; this
//! file maps the Store port onto them, reads where they are asked for and writes
//! through the writer.
//!
//! Why not sqlx, as for PostgreSQL: sqlx runs each SQLite connection on a thread of
//! its own and hands every statement across and back. Under load that was most of the
//! server's CPU, and the one write connection spent a checkout's dozen statements in
//! handoffs while every other write waited (BENCHMARKS.md). sqlx still applies the
//! migrations, so databases made by earlier versions carry on as they are.

use std::str::FromStr;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::Connection as _;

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{OrderId, PaymentId, PlanId, ProductId, RefundId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::jobs::{Job, JobStatus, NewJob};
use tijori_core::mail::{DueNotice, OutboxMail};
use tijori_core::payment::Payment;
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{
    AccountStore, AnswerKind, GatewayAnswerRecord, JobStore, MailStore, NewUser, PaymentStore,
    Refund, RefundResolution, RefundStatus, RefundStore, Settled, Settlement, ShopStore, Store,
    StoreError, StoreResult,
};
use tijori_core::subscription::{NewPlan, PaidPeriod, Plan, Subscription};

use crate::db::{run_now, Sqlite};
use crate::rows::FromSqlite;

mod accounts;
mod engine;
mod idempotency;
mod jobs;
mod notices;
mod operator;
mod payments;
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

    /// Runs the migrations, then lays out the periods of users paid before segments
    /// were kept.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let options = SqliteConnectOptions::from_str(&self.url)
            .with_context(|| format!("invalid SQLite database URL {:?}", self.url))?
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("failed to open {:?} to migrate it", self.url))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .context("failed to run SQLite migrations")?;
        conn.close()
            .await
            .context("failed to close the migration connection")?;
        let kept = self
            .keep_segments(Utc::now())
            .await
            .context("failed to keep the segments of periods paid before they were kept")?;
        if kept > 0 {
            tracing::info!(
                users = kept,
                "laid out the paid periods of users paid before segments were kept"
            );
        }
        Ok(())
    }

    /// Lets the writer finish what is queued, then stops it.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Runs a write with owned arguments on the writer.
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.db.write(op).await
    }

    fn read<T>(&self, op: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.db.read(op)
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

// --- Helpers shared by the modules ---------------------------------------------------

fn ctx(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database(anyhow::Error::new(e).context(what))
}

/// A unique-constraint failure is `Conflict`; anything else a database error.
fn db_err(
    what: &'static str,
    conflict: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        if is_constraint(&e, &[UNIQUE, PRIMARY_KEY]) {
            StoreError::Conflict(conflict)
        } else {
            StoreError::Database(anyhow::Error::new(e).context(what))
        }
    }
}

const UNIQUE: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
const FOREIGN_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;

fn is_constraint(e: &rusqlite::Error, kinds: &[i32]) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if kinds.contains(&f.extended_code))
}

/// The row `sql` finds, if any.
fn one<T: FromSqlite>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    what: &'static str,
) -> StoreResult<Option<T>> {
    one_with(c, sql, params, T::from_sqlite, what)
}

fn one_with<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    what: &'static str,
) -> StoreResult<Option<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, row).optional())
        .map_err(ctx(what))
}

/// Every row `sql` finds.
fn all<T: FromSqlite>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    what: &'static str,
) -> StoreResult<Vec<T>> {
    all_with(c, sql, params, T::from_sqlite, what)
}

fn all_with<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    what: &'static str,
) -> StoreResult<Vec<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, row)?.collect())
        .map_err(ctx(what))
}

/// Runs a statement; the number of rows it changed.
fn exec(c: &Connection, sql: &str, params: impl Params, what: &'static str) -> StoreResult<usize> {
    exec_or(c, sql, params, ctx(what))
}

fn exec_or(
    c: &Connection,
    sql: &str,
    params: impl Params,
    err: impl FnOnce(rusqlite::Error) -> StoreError,
) -> StoreResult<usize> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(err)
}

/// An optional time, as stored.
fn opt_ts(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(ts)
}

// --- The port ----------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            one_with(
                c,
                "SELECT 1",
                [],
                |r| r.get::<_, i64>(0),
                "database did not answer",
            )
            .map(drop)
        })
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<bool> {
        let job = job.clone();
        self.write(move |c| jobs::enqueue_job(c, &job, now)).await
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Job>> {
        let worker = worker.to_owned();
        self.write(move |c| jobs::claim_jobs(c, &worker, limit, lease_until, now))
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
        self.write(move |c| jobs::complete_job(c, id, &worker, next, now))
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
        self.write(move |c| jobs::fail_job(c, id, &worker, &error, retry_at, now))
            .await
    }

    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        self.read(|c| jobs::jobs(c, status, limit))
    }

    async fn retry_job(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(move |c| jobs::retry_job(c, id, now)).await
    }
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn due_notices(
        &self,
        now: DateTime<Utc>,
        remind_within: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<DueNotice>> {
        self.read(|c| notices::due_notices(c, now, remind_within, limit))
    }

    async fn record_notice(
        &self,
        notice: &DueNotice,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (notice, mail) = (notice.clone(), mail.clone());
        self.write(move |c| notices::record_notice(c, &notice, &mail, now))
            .await
    }

    async fn outbox_mail(&self, id: &str) -> StoreResult<Option<OutboxMail>> {
        self.read(|c| notices::outbox_mail(c, id))
    }

    async fn mark_mail(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (id, status, error) = (id.to_owned(), status.to_owned(), error.map(str::to_owned));
        self.write(move |c| notices::mark_mail(c, &id, &status, error.as_deref(), now))
            .await
    }

    async fn outbox(&self, limit: u32) -> StoreResult<Vec<OutboxMail>> {
        self.read(|c| notices::outbox(c, limit))
    }
}
