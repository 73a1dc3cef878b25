//! How the SQLite store runs its statements.
//!
//! Writes: one thread owns the only write connection and runs each write as a closure,
//! the whole transaction in one go. Closures that queue up while one batch runs are
//! committed together (group commit): each runs in its own savepoint, so one that fails
//! is rolled back alone, and none is answered before the batch's COMMIT returned. With
//! `synchronous = FULL` that is one fsync per batch rather than one per write, so
//! durability costs little under load.
//!
//! Reads: run on the caller's thread, on a connection from a small pool. A read from
//! SQLite's page cache takes microseconds; handing it to another thread and back costs
//! more than the read itself (BENCHMARKS.md).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};
use tijori_core::store::{StoreError, StoreResult};
use tokio::sync::oneshot;

/// Writes committed together at most. Bounds how long the first of a batch waits.
const MAX_BATCH: usize = 256;
/// Idle read connections kept open; more are opened when more threads read at once.
const MAX_IDLE_READERS: usize = 8;
/// Prepared statements kept per connection: every statement the store has, and then
/// some.
const STATEMENT_CACHE: usize = 160;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL pages after which a commit copies the log back into the database (SQLite's
/// default is 1,000). Under load the log holds the same hot pages (an index's root,
/// its newest leaves) many times over, and a checkpoint copies each page once: every
/// 40 MB rather than every 4 MB, fewer pages are copied and flushed in all (the
/// checkpoints' share of tijori's CPU fell from 4.7 to 1.5 % under the Khalti bench).
/// The copy runs on the writer thread, so a longer one holds the writes behind it a
/// little longer (p99 1 to 5 ms more, p50 up to 2 ms less). The WAL file is about
/// 40 MB after a busy spell (more while a long read, such as `tijori backup`, keeps
/// a checkpoint from finishing). With `Synchronous::Full` durability is the same;
/// with `Normal`, which reaches the disk at checkpoints, a power cut can lose more.
/// BENCHMARKS.md, "Fewer checkpoints".
const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// When SQLite makes a commit durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on disk before it is answered: survives a power cut.
    Full,
    /// Commits reach the OS at once and the disk at each checkpoint: survives the
    /// process being killed, not a power cut (SQLite's WAL + NORMAL).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

pub(super) struct Engine {
    writes: mpsc::Sender<Message>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

enum Message {
    Write(Box<dyn WriteJob>),
    Stop,
}

impl Engine {
    pub(super) fn open(path: &Path, synchronous: Synchronous) -> anyhow::Result<Engine> {
        let writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("failed to open SQLite database {}", path.display()))?;
        configure(&writer)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context("failed to switch SQLite to WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!(
                "SQLite refused WAL mode (it answered {mode:?}) for {}",
                path.display()
            );
        }
        writer
            .execute_batch(&format!(
                "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
                 PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};",
                synchronous.pragma()
            ))
            .context("failed to configure the SQLite writer")?;
        let (writes, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tijori-sqlite-writer".into())
            .spawn(move || write_loop(writer, queue))
            .context("failed to start the SQLite writer thread")?;
        Ok(Engine {
            writes,
            writer: Mutex::new(Some(thread)),
            readers: Mutex::new(Vec::new()),
            path: path.to_owned(),
        })
    }

    /// Runs `op` in the writer's transaction; its answer comes once that committed.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (answer, answered) = oneshot::channel();
        self.writes
            .send(Message::Write(Box::new(Job { op, answer })))
            .map_err(|_| closed())?;
        // The job runs to its end even if this caller goes away: no half-done write.
        answered.await.map_err(|_| closed())?
    }

    /// Runs `op` on a read connection, here and now.
    pub(super) fn read<T>(&self, op: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let idle = lock(&self.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = op(&conn);
        let mut readers = lock(&self.readers);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }

    fn open_reader(&self) -> StoreResult<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Database(anyhow::Error::new(e).context(format!(
                "failed to open a read connection to {}",
                self.path.display()
            )))
        })?;
        configure(&conn).map_err(StoreError::Database)?;
        Ok(conn)
    }

    /// Finishes the writes already queued, then stops the writer.
    pub(super) async fn close(&self) {
        let _ = self.writes.send(Message::Stop);
        let thread = lock(&self.writer).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        lock(&self.readers).clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The writer drains what is queued and ends; nobody waits for it.
        let _ = self.writes.send(Message::Stop);
    }
}

fn configure(conn: &Connection) -> anyhow::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .context("failed to set SQLite's busy timeout")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these leaves nothing half-changed (a Vec push or pop).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn closed() -> StoreError {
    StoreError::Database(anyhow::anyhow!("the SQLite database is closed"))
}

/// A write waiting for the writer thread.
trait WriteJob: Send {
    /// Runs inside the batch's transaction, in a savepoint of its own; returns the
    /// answer to give once the batch is committed (or not).
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply>;
    /// Answers without running (the batch could not begin).
    fn refuse(self: Box<Self>, why: &str);
}

trait Reply: Send {
    fn send(self: Box<Self>, committed: Result<(), &str>);
}

struct Job<F, T> {
    op: F,
    answer: oneshot::Sender<StoreResult<T>>,
}

struct Answer<T> {
    result: StoreResult<T>,
    answer: oneshot::Sender<StoreResult<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply> {
        let Job { op, answer } = *self;
        let result = match run_cached(conn, "SAVEPOINT write") {
            Err(e) => Err(StoreError::Database(
                anyhow::Error::new(e).context("failed to open a savepoint"),
            )),
            Ok(()) => {
                let result = catch_unwind(AssertUnwindSafe(|| op(conn))).unwrap_or_else(|_| {
                    Err(StoreError::Database(anyhow::anyhow!(
                        "a database write panicked (see the log)"
                    )))
                });
                // On failure only this write's own changes go; the batch goes on. With
                // the transaction itself gone (SQLite rolls back on some I/O errors) the
                // writer loop notices and answers the whole batch.
                if !conn.is_autocommit() {
                    let ended = if result.is_ok() {
                        run_cached(conn, "RELEASE write")
                    } else {
                        conn.execute_batch("ROLLBACK TO write; RELEASE write")
                    };
                    if let Err(e) = ended {
                        tracing::error!(error = %e, "failed to end a write's savepoint");
                    }
                }
                result
            }
        };
        Box::new(Answer { result, answer })
    }

    fn refuse(self: Box<Self>, why: &str) {
        let _ = self
            .answer
            .send(Err(StoreError::Database(anyhow::anyhow!("{why}"))));
    }
}

impl<T: Send> Reply for Answer<T> {
    fn send(self: Box<Self>, committed: Result<(), &str>) {
        let result = match (self.result, committed) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(e), _) => Err(e),
            (Ok(_), Err(why)) => Err(StoreError::Database(anyhow::anyhow!(
                "failed to commit: {why}"
            ))),
        };
        // A caller that went away does not want its answer.
        let _ = self.answer.send(result);
    }
}

/// Runs one statement that returns no rows from the connection's statement cache: the
/// writer runs a savepoint and its release for every write, and BEGIN and COMMIT for
/// every batch: parsing them again each time (`execute_batch` prepares, runs and
/// finalises) was about 2 % of the writer's samples.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn write_loop(conn: Connection, queue: mpsc::Receiver<Message>) {
    let mut stopping = false;
    while !stopping {
        let mut batch: Vec<Box<dyn WriteJob>> = match queue.recv() {
            Ok(Message::Write(job)) => vec![job],
            Ok(Message::Stop) | Err(_) => break,
        };
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Message::Write(job)) => batch.push(job),
                Ok(Message::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        run_batch(&conn, batch);
    }
}

/// Runs a batch in as few transactions as it takes (one, unless SQLite itself rolls
/// one back), answering every write only after its transaction's fate is known.
fn run_batch(conn: &Connection, batch: Vec<Box<dyn WriteJob>>) {
    let mut jobs = batch.into_iter().peekable();
    while jobs.peek().is_some() {
        // IMMEDIATE: take the write lock now (another process may hold it; then
        // busy_timeout waits), not halfway through a write.
        if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
            let why = format!("failed to begin a write transaction: {e}");
            jobs.for_each(|job| job.refuse(&why));
            return;
        }
        let mut pending = Vec::new();
        let mut lost = false;
        for job in jobs.by_ref() {
            pending.push(job.run(conn));
            if conn.is_autocommit() {
                lost = true;
                break;
            }
        }
        if lost {
            for reply in pending {
                reply.send(Err(
                    "SQLite rolled the transaction back (see the errors above)",
                ));
            }
            continue;
        }
        let committing = std::time::Instant::now();
        let committed = run_cached(conn, "COMMIT");
        metrics::histogram!(tijori_core::telemetry::SQLITE_COMMIT)
            .record(committing.elapsed().as_secs_f64());
        metrics::histogram!(tijori_core::telemetry::SQLITE_BATCH).record(pending.len() as f64);
        match committed {
            Ok(()) => pending.into_iter().for_each(|r| r.send(Ok(()))),
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, "a SQLite commit failed");
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                pending.into_iter().for_each(|r| r.send(Err(&why)));
            }
        }
    }
}

// --- Values ------------------------------------------------------------------------

/// A time as the store keeps it in SQLite: RFC 3339 text in UTC, the way sqlx wrote
/// it, so databases from earlier versions compare the same (`expires_at <= ?`).
pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

pub(crate) fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%F %T%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(dir: &tempfile::TempDir) -> Engine {
        let engine = Engine::open(&dir.path().join("t.db"), Synchronous::Full).unwrap();
        engine
            .read(|_| Ok(()))
            .expect("a reader opens once the file exists");
        engine
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_in_one_batch_fail_alone_and_are_answered_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = std::sync::Arc::new(engine(&dir));
        db.write(|c| {
            c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .map_err(|e| StoreError::Database(e.into()))
        })
        .await
        .unwrap();
        // 200 writes at once; every tenth one inserts twice and so fails half-way.
        let writes = (0..200i64).map(|k| {
            let db = db.clone();
            tokio::spawn(async move {
                let result = db
                    .write(move |c| {
                        let insert = |k: i64| {
                            c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])
                                .map_err(|e| StoreError::Database(e.into()))
                        };
                        insert(k)?;
                        if k % 10 == 0 {
                            insert(k)?;
                        }
                        Ok(k)
                    })
                    .await;
                // Answered means committed: a reader sees it at once.
                let seen = db
                    .read(|c| {
                        c.query_row("SELECT COUNT(*) FROM t WHERE k = ?1", [k], |r| {
                            r.get::<_, i64>(0)
                        })
                        .map_err(|e| StoreError::Database(e.into()))
                    })
                    .unwrap();
                (k, result.is_ok(), seen)
            })
        });
        for write in futures_join(writes).await {
            let (k, ok, seen) = write;
            if k % 10 == 0 {
                assert!(!ok, "{k} inserted itself twice");
                assert_eq!(seen, 0, "{k}: its first insert was rolled back with it");
            } else {
                assert!(ok, "{k} failed");
                assert_eq!(seen, 1, "{k} was answered before it was visible");
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_write_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = engine(&dir);
        db.write(|c| {
            c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
                .map_err(|e| StoreError::Database(e.into()))
        })
        .await
        .unwrap();
        let result: StoreResult<()> = db
            .write(|c| {
                c.execute("INSERT INTO t (k) VALUES (1)", []).unwrap();
                panic!("a bug");
            })
            .await;
        assert!(result.is_err());
        let count = db
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| StoreError::Database(e.into()))
            })
            .unwrap();
        assert_eq!(count, 0);
        db.close().await;
        let after_close: StoreResult<()> = db.write(|_| Ok(())).await;
        assert!(
            after_close.is_err(),
            "closed: writes are refused, not lost silently"
        );
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for h in handles.collect::<Vec<_>>() {
            out.push(h.await.unwrap());
        }
        out
    }

    #[test]
    fn times_keep_the_format_and_order_of_earlier_databases() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T00:35:12.148446Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ts(at), "2026-12-02T00:35:12.148446+00:00");
        assert_eq!(parse_ts(&ts(at)), Some(at));
        let whole = DateTime::parse_from_rfc3339("2026-12-02T00:35:12Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ts(whole), "2026-12-02T00:35:12+00:00");
        assert!(ts(whole) < ts(at), "text order is time order");
        assert_eq!(
            parse_ts("2026-12-02 00:35:12.5"),
            Some(whole + chrono::Duration::milliseconds(500))
        );
        assert_eq!(parse_ts("yesterday"), None);
    }
}
