//! `tijori backup`: a consistent copy of a SQLite database, taken while tijori serves.
//!
//! The copy is SQLite's online backup API reading one snapshot of the source, written
//! to a file beside the destination, checked (`PRAGMA integrity_check`), made durable
//! and only then renamed into place: a crash or a failed check never leaves half a
//! copy at the destination. PostgreSQL is backed up with `pg_dump` (README, "Backups").

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::SqliteConnectOptions;

/// How long the copy waits, in all, for a source that answers "busy" (SQLite resetting
/// or recovering the WAL) before giving up.
const BUSY_PATIENCE: Duration = Duration::from_secs(30);

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The database that was copied.
    pub source: PathBuf,
    /// Where the copy is.
    pub path: PathBuf,
    /// The copy's size in bytes.
    pub bytes: u64,
    /// What `PRAGMA integrity_check` said of the copy ("ok"; a copy that is not is
    /// refused with `BackupError::Integrity` and not kept).
    pub integrity: String,
    /// Payments the copy holds.
    pub payments: i64,
}

/// Why a backup was not made. The destination is left as it was, unless the copy
/// was already in place (a failure to sync its directory or read its size after).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A PostgreSQL database: `pg_dump` backs it up.
    #[error(
        "tijori backup copies SQLite databases only; back up PostgreSQL with pg_dump, \
         e.g. `pg_dump --format=custom --file=tijori.dump \"$TIJORI_DATABASE_URL\"` \
         (README, \"Backups\")"
    )]
    Postgres,
    /// Neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL {0:?}: it must start with sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// A `sqlite:` URL that does not parse, or names no file.
    #[error("invalid SQLite database URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The database file is not there (a backup never creates it).
    #[error("there is no SQLite database at {}", .0.display())]
    NoDatabase(PathBuf),
    /// The destination exists and replacing it was not asked for.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// The destination is the database (or its -wal or -shm file) itself.
    #[error("{} is the database being backed up (or its -wal/-shm file)", .0.display())]
    IsTheDatabase(PathBuf),
    /// The destination is a directory, or names none.
    #[error("{} is not a file path to write the copy to", .0.display())]
    NotAFile(PathBuf),
    /// A file-system call failed.
    #[error("failed to {what} {}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// To which file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A SQLite call failed.
    #[error("failed to {what} {}", path.display())]
    Sqlite {
        /// What we were doing.
        what: &'static str,
        /// On which database file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: rusqlite::Error,
    },
    /// The source stayed busy for `BUSY_PATIENCE`.
    #[error("gave up after {0:?}: the database at {1} stayed busy")]
    Busy(Duration, PathBuf),
    /// The copy did not pass `PRAGMA integrity_check`, and was deleted.
    #[error("the copy failed PRAGMA integrity_check and was not kept: {0}")]
    Integrity(String),
    /// The thread that copies panicked.
    #[error("the backup thread panicked")]
    Panicked,
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

/// Copies the database `database_url` names to `to`, a consistent snapshot taken
/// while others read and write it (a serving tijori, other processes), checks the
/// copy, and reports it. `to` is replaced only if `replace`; the database itself
/// never is. Refuses a PostgreSQL URL with `BackupError::Postgres`.
pub async fn backup(database_url: &str, to: &Path, replace: bool) -> Result<BackupReport> {
    let source = sqlite_path(database_url)?;
    let to = to.to_owned();
    tokio::task::spawn_blocking(move || backup_file(&source, &to, replace))
        .await
        .map_err(|_| BackupError::Panicked)?
}

/// The file a `sqlite:` URL names, as the store opens it (`SqliteStore::connect`).
fn sqlite_path(url: &str) -> Result<PathBuf> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => {}
        Some("postgres" | "postgresql") => return Err(BackupError::Postgres),
        _ => return Err(BackupError::UnsupportedUrl(crate::redact(url))),
    }
    let invalid = |why: String| BackupError::InvalidUrl {
        url: url.to_owned(),
        why,
    };
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(invalid(
            "an in-memory database has no file to back up".into(),
        ));
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
    Ok(options.get_filename().to_owned())
}

/// The blocking part of `backup`.
fn backup_file(source: &Path, to: &Path, replace: bool) -> Result<BackupReport> {
    match std::fs::metadata(source) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(BackupError::NoDatabase(source.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::NoDatabase(source.to_owned()))
        }
        Err(e) => return Err(io_err("read", source)(e)),
    }
    check_destination(source, to, replace)?;
    let name = to
        .file_name()
        .ok_or_else(|| BackupError::NotAFile(to.to_owned()))?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !std::fs::metadata(&dir)
        .map_err(io_err("find the directory to write the copy in,", &dir))?
        .is_dir()
    {
        return Err(BackupError::NotAFile(to.to_owned()));
    }
    // Beside the destination, so that the rename below stays on one file system and
    // is atomic. Named by our process id: two processes backing up to one path at
    // once do not write the same file.
    let partial = Partial(dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    )));
    partial.remove()?;

    copy(source, &partial.0)?;
    let (integrity, payments) = check(&partial.0)?;
    File::open(&partial.0)
        .and_then(|f| f.sync_all())
        .map_err(io_err("flush the copy to disk at", &partial.0))?;

    // Checked again: the destination may have appeared while we copied.
    check_destination(source, to, replace)?;
    std::fs::rename(&partial.0, to).map_err(io_err("move the copy into place at", to))?;
    // The rename itself is durable once the directory is.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("flush to disk the directory", &dir))?;
    let bytes = std::fs::metadata(to)
        .map_err(io_err("read the size of", to))?
        .len();
    Ok(BackupReport {
        source: std::fs::canonicalize(source).unwrap_or_else(|_| source.to_owned()),
        path: std::fs::canonicalize(to).unwrap_or_else(|_| to.to_owned()),
        bytes,
        integrity,
        payments,
    })
}

/// Refuses a destination that is the database, a directory, or (unless `replace`)
/// an existing file.
fn check_destination(source: &Path, to: &Path, replace: bool) -> Result<()> {
    // The database's own files are refused whether they exist now or not: with tijori
    // stopped its -wal and -shm are gone, and a copy written there would be read as
    // the database's journal at the next start.
    let source_real = std::fs::canonicalize(source).map_err(io_err("resolve", source))?;
    if let Some(to_real) = real_path(to)? {
        if ["", "-wal", "-shm"]
            .iter()
            .any(|suffix| to_real == with_suffix(&source_real, suffix))
        {
            return Err(BackupError::IsTheDatabase(to.to_owned()));
        }
    }
    let existing = match std::fs::metadata(to) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", to)(e)),
    };
    if existing.is_dir() {
        return Err(BackupError::NotAFile(to.to_owned()));
    }
    if !replace {
        return Err(BackupError::Exists(to.to_owned()));
    }
    Ok(())
}

/// Copies every page of `source` into a new database at `to`.
fn copy(source: &Path, to: &Path) -> Result<()> {
    let sqlite = |what, path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Sqlite { what, path, source }
    };
    // Read-write but `query_only`: no statement of ours can change the database, and
    // when no one else has it open (tijori stopped), closing this connection
    // checkpoints and removes the -wal and -shm files opening it made, as SQLite does
    // for the last connection to close. A read-only connection would leave them.
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("open the database", source))?;
    src.busy_timeout(Duration::from_secs(10))
        .and_then(|()| src.execute_batch("PRAGMA query_only = ON"))
        .map_err(sqlite("configure the connection to", source))?;
    let mut dst = Connection::open_with_flags(
        to,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("create the copy", to))?;
    let backup = Backup::new(&src, &mut dst).map_err(sqlite("start copying to", to))?;
    // All pages in one step (-1), not a few pages a step with pauses between. A step
    // reads in one read transaction of the source; a write to the source by another
    // connection between two steps (tijori's writer, here always another connection,
    // often another process) makes the next step start the copy over. Under steady
    // load a copy in small steps starts over again and again and may never finish.
    // One step is one snapshot, so the copy is consistent and finishes in the time it
    // takes to read the file once. It does not hold tijori up: tijori's database is
    // always in WAL mode (the store switches it at every open), where a reader never
    // blocks the writer; the writer carries on appending to the WAL, which only cannot
    // be checkpointed past our snapshot until the copy ends (so it grows meanwhile).
    // `VACUUM INTO` would be one snapshot too, but it rebuilds every table and index
    // rather than copying pages: more work for as long as the WAL cannot be reset.
    let deadline = Instant::now() + BUSY_PATIENCE;
    loop {
        match backup
            .step(-1)
            .map_err(sqlite("copy the database to", to))?
        {
            StepResult::Done => break,
            // Not after a step of every page; were it, the next step carries on.
            StepResult::More => {}
            // The source is busy (its WAL being recovered or reset) or locked: retry.
            // (`StepResult` may grow; anything new is taken as "not yet".)
            _ => {
                if Instant::now() >= deadline {
                    return Err(BackupError::Busy(BUSY_PATIENCE, source.to_owned()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(backup);
    dst.close()
        .map_err(|(_, e)| sqlite("finish the copy", to)(e))?;
    src.close()
        .map_err(|(_, e)| sqlite("close the database", source)(e))?;
    Ok(())
}

/// Makes the copy one self-contained file and checks it: `PRAGMA integrity_check`'s
/// answer ("ok", or else the copy is refused) and how many payments it holds.
fn check(copy: &Path) -> Result<(String, i64)> {
    let sqlite = |what| {
        let path = copy.to_owned();
        move |source| BackupError::Sqlite { what, path, source }
    };
    let conn = Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("open the copy"))?;
    // The pages came from a WAL database, header and all. In rollback-journal mode the
    // copy is one file that opens anywhere (even read-only) with no -wal beside it;
    // tijori switches it back to WAL when it opens it as its database.
    conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
        r.get::<_, String>(0)
    })
    .map_err(sqlite("make a single file of the copy"))?;
    let problems = {
        let mut check = conn
            .prepare("PRAGMA integrity_check")
            .map_err(sqlite("check the integrity of the copy"))?;
        let rows = check
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sqlite("check the integrity of the copy"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sqlite("check the integrity of the copy"))?
    };
    let integrity = problems.join("; ");
    if integrity != "ok" {
        return Err(BackupError::Integrity(integrity));
    }
    let payments = conn
        .query_row("SELECT COUNT(*) FROM payments", [], |r| r.get::<_, i64>(0))
        .map_err(sqlite("count the payments in the copy"))?;
    conn.close().map_err(|(_, e)| sqlite("close the copy")(e))?;
    Ok((integrity, payments))
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { what, path, source }
}

/// `path` with `suffix` after its file name (`tijori.db` and `-wal`).
/// Where `to` is or would be, links resolved: its folder's real path and its name.
/// `None` when its folder does not exist (refused later, with its own message).
fn real_path(to: &Path) -> Result<Option<PathBuf>> {
    match std::fs::canonicalize(to) {
        Ok(real) => return Ok(Some(real)),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("resolve", to)(e)),
        Err(_) => {}
    }
    let (Some(name), folder) = (to.file_name(), to.parent()) else {
        return Ok(None);
    };
    let folder = match folder {
        Some(f) if !f.as_os_str().is_empty() => f,
        _ => Path::new("."),
    };
    match std::fs::canonicalize(folder) {
        Ok(real) => Ok(Some(real.join(name))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("resolve", folder)(e)),
    }
}

/// `path` with `suffix` added to its name (`tijori.db` → `tijori.db-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut path = path.to_owned().into_os_string();
    path.push(suffix);
    PathBuf::from(path)
}

/// The copy being written. Dropped, it is removed with any journal SQLite left beside
/// it (once moved into place there is nothing left to remove).
struct Partial(PathBuf);

impl Partial {
    fn remove(&self) -> Result<()> {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let path = with_suffix(&self.0, suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove the unfinished copy", &path)(e)),
            }
        }
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(error = %e, "failed to remove an unfinished backup");
        }
    }
}
