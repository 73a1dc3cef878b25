//! The seam the store is written once over: a connection of either backend that runs
//! one statement.
//!
//! Every statement, and every write's orchestration, lives once in an area module
//! (`accounts.rs`, `payments.rs`, ...) as an `async fn` over `impl Conn`, and runs on
//! both backends. What truly differs between SQLite and PostgreSQL (row locks,
//! `SKIP LOCKED`, PostgreSQL's one-round-trip CTEs and arrays) is chosen by
//! `Conn::BACKEND` in the same function, side by side with the other variant.
//!
//! Statements are written in PostgreSQL's dialect with `$N` parameters. SQLite takes
//! `$N` as a named parameter; `Sqlite` binds each by the number in its name, so a
//! statement may use its parameters in any order, as PostgreSQL allows.
//!
//! Why one trait over a connection and not sqlx's `Any` driver: SQLite runs on
//! rusqlite, on its writer thread with group commit (see `sqlite/engine.rs`), because
//! sqlx's SQLite driver cost most of the server's CPU in hand-offs (BENCHMARKS.md).
//! SQLite's `Conn` never waits, so the same `async fn` runs to its end in one poll on
//! that thread (`run_now`), and on PostgreSQL it awaits the network as any sqlx code.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgPool, Postgres};

use tijori_core::store::{StoreError, StoreResult};

use crate::rows::FromSqlite;

/// Which database a `Conn` talks to, for the few statements that differ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A connection, or a transaction on one, that runs statements of either backend.
/// The area modules are written over it once.
pub(crate) trait Conn {
    /// Which backend this is: chooses the variant where the two differ.
    const BACKEND: Backend;
    /// Appended to a `SELECT` that must hold its row until the transaction ends.
    /// PostgreSQL's `NO KEY` lock does not hold up rows that merely reference the
    /// locked one (a new payment of a locked user); SQLite needs none, having one
    /// writer that runs every write transaction alone.
    const LOCK_ROW: &'static str;
    /// Appended to a `SELECT` of jobs to claim: workers claiming at once on
    /// PostgreSQL each skip the rows another is taking. SQLite's one writer claims
    /// alone.
    const SKIP_LOCKED: &'static str;

    /// Runs a statement that returns no rows; the number of rows it changed.
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, DbFail>;
    /// The first row a statement returns, if any.
    async fn fetch_optional<R: Row>(&mut self, q: Query<'_>) -> Result<Option<R>, DbFail>;
    /// Every row a statement returns.
    async fn fetch_all<R: Row>(&mut self, q: Query<'_>) -> Result<Vec<R>, DbFail>;
}

/// A row both backends can read: by column name from rusqlite (`FromSqlite`) and
/// through sqlx's `FromRow` from PostgreSQL. Tuples are rows too, read by position.
pub(crate) trait Row: FromSqlite + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin {}
impl<T: FromSqlite + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin> Row for T {}

/// One value bound to a statement's parameter.
#[derive(Clone, Debug)]
pub(crate) enum Arg<'a> {
    Str(Option<&'a str>),
    I64(Option<i64>),
    I32(Option<i32>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    /// The column arrays PostgreSQL's `UNNEST` and `ANY` take, in one round trip;
    /// SQLite has no arrays, and a statement binding one is PostgreSQL's variant.
    Strs(Vec<&'a str>),
    OptStrs(Vec<Option<&'a str>>),
    I64s(Vec<i64>),
    Times(Vec<DateTime<Utc>>),
    OptTimes(Vec<Option<DateTime<Utc>>>),
}

macro_rules! arg_from {
    ($($t:ty => $v:ident($e:expr)),* $(,)?) => {$(
        impl<'a> From<$t> for Arg<'a> {
            fn from(x: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Arg::$v(($e)(x))
            }
        }
    )*};
}

arg_from! {
    &'a str => Str(Some),
    &'a String => Str(|s: &'a String| Some(s.as_str())),
    Option<&'a str> => Str(|s| s),
    &'a Option<String> => Str(|s: &'a Option<String>| s.as_deref()),
    i64 => I64(Some),
    Option<i64> => I64(|x| x),
    i32 => I32(Some),
    Option<i32> => I32(|x| x),
    bool => Bool(|x| x),
    DateTime<Utc> => Time(Some),
    Option<DateTime<Utc>> => Time(|x| x),
    Vec<&'a str> => Strs(|x| x),
    Vec<Option<&'a str>> => OptStrs(|x| x),
    Vec<i64> => I64s(|x| x),
    Vec<DateTime<Utc>> => Times(|x| x),
    Vec<Option<DateTime<Utc>>> => OptTimes(|x| x),
}

/// A statement with its arguments, built as sqlx's `query(..).bind(..)` is.
pub(crate) struct Query<'a> {
    sql: &'a str,
    args: Vec<Arg<'a>>,
}

/// A statement in PostgreSQL's dialect with `$N` parameters (see the module's doc).
pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::with_capacity(8),
    }
}

impl<'a> Query<'a> {
    /// Binds the next parameter (`$1`, then `$2`, ...).
    pub(crate) fn bind(mut self, arg: impl Into<Arg<'a>>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// See `Conn::execute`.
    pub(crate) async fn execute(self, c: &mut impl Conn) -> Result<u64, DbFail> {
        c.execute(self).await
    }

    /// See `Conn::fetch_optional`.
    pub(crate) async fn fetch_optional<R: Row>(
        self,
        c: &mut impl Conn,
    ) -> Result<Option<R>, DbFail> {
        c.fetch_optional(self).await
    }

    /// The one row the statement returns; `DbFail::NoRow` if none.
    pub(crate) async fn fetch_one<R: Row>(self, c: &mut impl Conn) -> Result<R, DbFail> {
        c.fetch_optional(self).await?.ok_or(DbFail::NoRow)
    }

    /// See `Conn::fetch_all`.
    pub(crate) async fn fetch_all<R: Row>(self, c: &mut impl Conn) -> Result<Vec<R>, DbFail> {
        c.fetch_all(self).await
    }
}

/// The parameters of a statement put together from parts: each is numbered as it
/// is added, so a part needs to know nothing of the others.
#[derive(Default)]
pub(crate) struct Params<'a> {
    args: Vec<Arg<'a>>,
}

impl<'a> Params<'a> {
    /// Adds `arg`; its placeholder (`$N`).
    pub(crate) fn add(&mut self, arg: impl Into<Arg<'a>>) -> String {
        self.args.push(arg.into());
        format!("${}", self.args.len())
    }

    /// The statement `sql`, written with these parameters.
    pub(crate) fn query(self, sql: &'a str) -> Query<'a> {
        Query {
            sql,
            args: self.args,
        }
    }
}

/// Answers when the database does (`Store::ping`, for /healthz).
pub(crate) async fn ping(c: &mut impl Conn) -> StoreResult<()> {
    query("SELECT 1")
        .fetch_one::<(i32,)>(c)
        .await
        .map_err(ctx("database did not answer"))?;
    Ok(())
}

/// Whether the latest migration applied is `known` (`Store::migrated`): sqlx notes
/// each one it applied in `_sqlx_migrations`, on both databases.
pub(crate) async fn migrated(c: &mut impl Conn, known: i64) -> StoreResult<bool> {
    let (applied,) = query("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one::<(i64,)>(c)
        .await
        .map_err(ctx("could not read which migrations the database holds"))?;
    Ok(applied >= known)
}

/// The latest migration in `migrator`.
pub(crate) fn latest(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Why a statement failed, in either backend's terms: read by `ctx` and `db_err`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbFail {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error("the statement returned no row")]
    NoRow,
    #[error("cannot bind {0}")]
    Bind(String),
}

impl DbFail {
    fn is_unique(&self) -> bool {
        match self {
            DbFail::Sqlite(e) => sqlite_constraint(
                e,
                &[
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
                    rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
                ],
            ),
            DbFail::Postgres(sqlx::Error::Database(d)) => d.is_unique_violation(),
            _ => false,
        }
    }

    /// A row names another that does not exist.
    pub(crate) fn is_foreign_key(&self) -> bool {
        match self {
            DbFail::Sqlite(e) => {
                sqlite_constraint(e, &[rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY])
            }
            DbFail::Postgres(sqlx::Error::Database(d)) => d.is_foreign_key_violation(),
            _ => false,
        }
    }
}

fn sqlite_constraint(e: &rusqlite::Error, kinds: &[i32]) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if kinds.contains(&f.extended_code))
}

/// A failed statement as a database error, with what we were doing.
pub(crate) fn ctx(what: &'static str) -> impl FnOnce(DbFail) -> StoreError {
    move |e| StoreError::Database(anyhow::Error::new(e).context(what))
}

/// `ctx`, except that a unique-constraint failure is `Conflict(conflict)`.
pub(crate) fn db_err(
    what: &'static str,
    conflict: &'static str,
) -> impl FnOnce(DbFail) -> StoreError {
    move |e| {
        if e.is_unique() {
            StoreError::Conflict(conflict)
        } else {
            ctx(what)(e)
        }
    }
}

/// Runs a store call written over `Conn` on SQLite, here and now. SQLite's `Conn`
/// never waits, so the future finishes in its first poll; one that does not has
/// awaited something else, which is a bug, reported as an error rather than a hang.
pub(crate) fn run_now<T>(f: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(answer) => answer,
        Poll::Pending => Err(StoreError::Database(anyhow::anyhow!(
            "a SQLite store call waited for something other than SQLite"
        ))),
    }
}

// --- SQLite ------------------------------------------------------------------------

/// A SQLite connection (the writer's, in its transaction, or a reader).
pub(crate) struct Sqlite<'c>(pub(crate) &'c rusqlite::Connection);

impl Sqlite<'_> {
    fn prepare(&self, q: &Query<'_>) -> Result<rusqlite::CachedStatement<'_>, DbFail> {
        let mut s = self.0.prepare_cached(q.sql)?;
        for index in 1..=s.parameter_count() {
            // `$N` (or `?N`) is bound to the Nth argument, wherever it stands.
            let n = match s.parameter_name(index) {
                Some(name) => name[1..]
                    .parse::<usize>()
                    .map_err(|_| DbFail::Bind(format!("parameter {name} in {:?}", q.sql)))?,
                None => index,
            };
            let arg = q.args.get(n - 1).ok_or_else(|| {
                DbFail::Bind(format!(
                    "${n}: only {} arguments for {:?}",
                    q.args.len(),
                    q.sql
                ))
            })?;
            match arg {
                Arg::Str(v) => s.raw_bind_parameter(index, v)?,
                Arg::I64(v) => s.raw_bind_parameter(index, v)?,
                Arg::I32(v) => s.raw_bind_parameter(index, v)?,
                Arg::Bool(v) => s.raw_bind_parameter(index, v)?,
                Arg::Time(v) => s.raw_bind_parameter(index, v.map(crate::sqlite::ts))?,
                other => {
                    return Err(DbFail::Bind(format!(
                        "an array ({other:?}) on SQLite, in {:?}",
                        q.sql
                    )))
                }
            }
        }
        Ok(s)
    }
}

impl Conn for Sqlite<'_> {
    const BACKEND: Backend = Backend::Sqlite;
    const LOCK_ROW: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    async fn execute(&mut self, q: Query<'_>) -> Result<u64, DbFail> {
        let mut s = self.prepare(&q)?;
        Ok(s.raw_execute()? as u64)
    }

    async fn fetch_optional<R: Row>(&mut self, q: Query<'_>) -> Result<Option<R>, DbFail> {
        let mut s = self.prepare(&q)?;
        let mut rows = s.raw_query();
        match rows.next()? {
            Some(r) => Ok(Some(R::from_sqlite(r)?)),
            None => Ok(None),
        }
    }

    async fn fetch_all<R: Row>(&mut self, q: Query<'_>) -> Result<Vec<R>, DbFail> {
        let mut s = self.prepare(&q)?;
        let mut rows = s.raw_query();
        let mut all = Vec::new();
        while let Some(r) = rows.next()? {
            all.push(R::from_sqlite(r)?);
        }
        Ok(all)
    }
}

// --- PostgreSQL --------------------------------------------------------------------

/// A PostgreSQL write transaction. Of any lifetime, not only the pool's `'static`:
/// checking that a future holding one is `Send` (as `async_trait` asks of a store
/// method's) forgets the lifetime, and asks for `Conn` on every `Transaction<'_>`.
pub(crate) type PgTx<'t> = sqlx::Transaction<'t, Postgres>;

/// PostgreSQL's pool, for statements that need no transaction: each runs on
/// whichever connection is free.
pub(crate) struct PgPoolConn<'p>(pub(crate) &'p PgPool);

fn pg_query<'q>(q: Query<'q>) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    let mut query = sqlx::query(q.sql);
    for arg in q.args {
        query = match arg {
            Arg::Str(v) => query.bind(v),
            Arg::I64(v) => query.bind(v),
            Arg::I32(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
            Arg::Time(v) => query.bind(v),
            Arg::Strs(v) => query.bind(v),
            Arg::OptStrs(v) => query.bind(v),
            Arg::I64s(v) => query.bind(v),
            Arg::Times(v) => query.bind(v),
            Arg::OptTimes(v) => query.bind(v),
        };
    }
    query
}

fn pg_rows<R: Row>(rows: Vec<PgRow>) -> Result<Vec<R>, DbFail> {
    rows.iter()
        .map(|r| R::from_row(r).map_err(DbFail::from))
        .collect()
}

macro_rules! pg_conn {
    ($t:ty, $exec:ident => $e:expr) => {
        // For every lifetime: the futures of `async_trait` methods are checked
        // `Send` with their lifetimes erased.
        impl<'c> Conn for $t {
            const BACKEND: Backend = Backend::Postgres;
            const LOCK_ROW: &'static str = " FOR NO KEY UPDATE";
            const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

            async fn execute(&mut self, q: Query<'_>) -> Result<u64, DbFail> {
                let $exec = self;
                Ok(pg_query(q).execute($e).await?.rows_affected())
            }

            async fn fetch_optional<R: Row>(&mut self, q: Query<'_>) -> Result<Option<R>, DbFail> {
                let $exec = self;
                match pg_query(q).fetch_optional($e).await? {
                    Some(r) => Ok(Some(R::from_row(&r)?)),
                    None => Ok(None),
                }
            }

            async fn fetch_all<R: Row>(&mut self, q: Query<'_>) -> Result<Vec<R>, DbFail> {
                let $exec = self;
                pg_rows(pg_query(q).fetch_all($e).await?)
            }
        }
    };
}

pg_conn!(sqlx::Transaction<'c, Postgres>, tx => &mut **tx);
pg_conn!(PgPoolConn<'c>, pool => pool.0);
