//! A fresh, isolated database for every test, on SQLite and on PostgreSQL.
//!
//! tijori promises that the same test suite passes on both of its storage backends
//! (DESIGN.md §3), and the properties that matter most — exactly-once fulfilment under
//! concurrent settles, row locking — behave differently on the two. So store and
//! application tests run once per backend, each against a database nobody else uses:
//!
//! - [`TestDatabase::sqlite`]: a database file in a fresh temporary directory (a real
//!   file, not `:memory:`, so WAL, the reader pool and several connections behave as in
//!   production). The directory is removed when the `TestDatabase` is dropped.
//! - [`TestDatabase::postgres`]: a fresh database (`CREATE DATABASE test_<random>`) on
//!   a throwaway PostgreSQL server, dropped again when the `TestDatabase` is dropped.
//!
//! The server is started once per test process, lazily, by the first test that asks
//! for one: `initdb` into a temporary directory (trust authentication, superuser
//! `postgres`), listening on `127.0.0.1` on a free port, tuned for speed over
//! durability (`fsync`, `synchronous_commit` and `full_page_writes` off) and with room
//! for many tests in parallel (`max_connections = 300`). When the tests run as root
//! (containers, CI), `initdb` and the server run as the `postgres` system user, since
//! PostgreSQL refuses to run as root. A detached watchdog stops the server and removes
//! its directory when the test process exits, however it exits (a normal end, a
//! panic, Ctrl-C or `kill -9`): Rust runs no destructors for statics.
//!
//! [`test_both!`] turns one async test body into a test per backend, named so that a
//! failure says where: `settle::concurrent_settles_fulfil_once::postgres`.
//!
//! ```ignore
//! use tijori_testkit::{test_both, TestDatabase};
//!
//! async fn migrations_are_idempotent(db: TestDatabase) -> anyhow::Result<()> {
//!     let database = tijori_store::Database::connect(&db.url).await?;
//!     database.migrate().await?;
//!     database.migrate().await?;
//!     Ok(())
//! }
//! test_both!(migrations_are_idempotent);
//! ```
//!
//! # Environment
//!
//! - `TIJORI_TEST_POSTGRES_URL` — an admin URL of an existing PostgreSQL server (for
//!   example `postgres://postgres:secret@127.0.0.1:5432/postgres`; the role must be
//!   allowed to `CREATE DATABASE`). When set, no server is started: each test gets a
//!   database of its own on that server.
//! - Otherwise the PostgreSQL binaries (`initdb`, `pg_ctl`) are looked for on `PATH`
//!   and then under `/usr/lib/postgresql/*/bin` (Debian and Ubuntu), `/usr/pgsql-*/bin`
//!   (Fedora, RHEL) and `/usr/local/pgsql/bin`. On Debian or Ubuntu:
//!   `apt-get install postgresql`.
//! - PostgreSQL tests fail loudly when PostgreSQL is missing. `TIJORI_SKIP_POSTGRES=1`
//!   allows skipping them on a machine without it: [`postgres_skipped`] then returns
//!   `true` and [`test_both!`] turns each PostgreSQL test into a pass that says it was
//!   skipped on stderr. With PostgreSQL available the variable changes nothing.
//! - `TIJORI_TEST_TIMEOUT_SECS` — how long one [`test_both!`] test may take before it
//!   fails as a suspected deadlock (default 120).

use std::fmt::Debug;
use std::future::Future;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio::sync::OnceCell;

/// The storage backends tijori runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database that belongs to one test. `url` is what the application takes as
/// `TIJORI_DATABASE_URL`. Dropping it removes the database.
pub struct TestDatabase {
    pub url: String,
    backend: Backend,
    guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite().await,
            Backend::Postgres => TestDatabase::postgres().await,
        }
    }

    /// A SQLite database file in a fresh temporary directory (the file itself is
    /// created by whoever connects first).
    pub async fn sqlite() -> TestDatabase {
        let dir = tempfile::Builder::new()
            .prefix("tijori-sqlite-")
            .tempdir()
            .expect("failed to create a temporary directory for a SQLite test database");
        let url = format!("sqlite://{}", dir.path().join("tijori.db").display());
        TestDatabase {
            url,
            backend: Backend::Sqlite,
            guard: Guard::Sqlite(dir),
        }
    }

    /// A fresh, empty database on the shared test server (started on first use).
    pub async fn postgres() -> TestDatabase {
        if postgres_skipped() {
            panic!(
                "PostgreSQL tests are skipped (TIJORI_SKIP_POSTGRES=1 and no PostgreSQL \
                 found): check tijori_testkit::postgres_skipped() before asking for a \
                 PostgreSQL database"
            );
        }
        let server = server().await;
        let name = format!("test_{:016x}", rand::random::<u64>());
        let create = async {
            let mut conn = PgConnection::connect(&server.admin_url).await?;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await?;
            conn.close().await
        };
        if let Err(e) = create.await {
            panic!(
                "failed to create test database {name} on {}: {e}",
                server.describe()
            );
        }
        TestDatabase {
            url: with_database(&server.admin_url, &name),
            backend: Backend::Postgres,
            guard: Guard::Postgres {
                admin_url: server.admin_url.clone(),
                name,
            },
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("backend", &self.backend)
            .field("url", &redact(&self.url))
            .finish()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = &self.guard {
            // Drop runs inside the test's runtime, where we cannot block on a future:
            // do it on a thread of our own, with a runtime of its own, and wait for it.
            // FORCE ends the connections the test's pool may still hold.
            let (admin_url, sql) = (
                admin_url.clone(),
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
            let dropped = std::thread::spawn(move || -> Result<(), String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    let mut conn = PgConnection::connect(&admin_url).await?;
                    conn.execute(sql.as_str()).await?;
                    conn.close().await
                })
                .map_err(|e| e.to_string())
            })
            .join();
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("tijori-testkit: failed to drop test database {name}: {e}"),
                Err(_) => eprintln!("tijori-testkit: dropping test database {name} panicked"),
            }
        }
    }
}

/// Whether PostgreSQL tests should be skipped: `TIJORI_SKIP_POSTGRES=1` is set, and
/// there is no PostgreSQL to run them on (neither `TIJORI_TEST_POSTGRES_URL` nor the
/// binaries). Without the variable a missing PostgreSQL fails the tests instead.
pub fn postgres_skipped() -> bool {
    std::env::var("TIJORI_SKIP_POSTGRES").is_ok_and(|v| v == "1")
        && external_url().is_none()
        && pg_bin_dir().is_none()
}

fn external_url() -> Option<String> {
    std::env::var("TIJORI_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

// The shared server ----------------------------------------------------------------

struct Server {
    /// A superuser URL to the `postgres` maintenance database.
    admin_url: String,
    /// Where the server we started keeps its files (None for an external server).
    base: Option<PathBuf>,
}

impl Server {
    fn describe(&self) -> String {
        match &self.base {
            Some(base) => format!(
                "the test PostgreSQL server (log: {})",
                base.join("postgres.log").display()
            ),
            None => "the server named by TIJORI_TEST_POSTGRES_URL".to_owned(),
        }
    }
}

/// Started at most once per process. A failure is kept too, so every PostgreSQL test
/// fails at once with the same message instead of each retrying for 30 s.
static SERVER: OnceCell<Result<Server, String>> = OnceCell::const_new();

async fn server() -> &'static Server {
    let server = SERVER
        .get_or_init(|| async {
            match external_url() {
                Some(url) => {
                    wait_until_ready(&url, Duration::from_secs(10), None).await?;
                    Ok(Server {
                        admin_url: url,
                        base: None,
                    })
                }
                None => {
                    let (admin_url, base) = tokio::task::spawn_blocking(start_server)
                        .await
                        .map_err(|e| format!("starting PostgreSQL panicked: {e}"))??;
                    wait_until_ready(&admin_url, Duration::from_secs(30), Some(&base)).await?;
                    Ok(Server {
                        admin_url,
                        base: Some(base),
                    })
                }
            }
        })
        .await;
    match server {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

/// Connects in a loop until the server answers a query.
async fn wait_until_ready(url: &str, limit: Duration, base: Option<&Path>) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let attempt = async {
            let mut conn = PgConnection::connect(url).await?;
            conn.execute("SELECT 1").await?;
            conn.close().await
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if started.elapsed() >= limit => {
                let log = base
                    .map(|b| format!("\n--- server log ---\n{}", read_log(b, 0)))
                    .unwrap_or_default();
                return Err(format!(
                    "PostgreSQL at {} did not accept connections within {limit:?}: {e}{log}",
                    redact(url)
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// initdb and start a server in a fresh temporary directory. Blocking.
fn start_server() -> Result<(String, PathBuf), String> {
    let bin = pg_bin_dir().ok_or_else(|| {
        "PostgreSQL tests need PostgreSQL, and none was found: neither \
         TIJORI_TEST_POSTGRES_URL is set nor are initdb and pg_ctl on PATH or under \
         /usr/lib/postgresql/*/bin. Install it (Debian/Ubuntu: `apt-get install \
         postgresql`), or point TIJORI_TEST_POSTGRES_URL at a server, or set \
         TIJORI_SKIP_POSTGRES=1 to skip the PostgreSQL tests on this machine."
            .to_owned()
    })?;
    let as_user = run_as()?;

    // Root-owned temporary directories elsewhere (e.g. under /root) may not be
    // reachable by the postgres user; /tmp is.
    let parent = if as_user.is_some() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let base = tempfile::Builder::new()
        .prefix("tijori-pg-")
        .tempdir_in(&parent)
        .map_err(|e| format!("failed to create a directory for PostgreSQL: {e}"))?
        .keep();
    let data = base.join("data");
    let log = base.join("postgres.log");

    // From here on the watchdog owns the directory: it stops the server and removes
    // everything once this process is gone, even if the start fails half-way.
    spawn_watchdog(&base, &data, &bin.join("pg_ctl"), as_user.as_ref())?;

    if let Some(user) = &as_user {
        std::os::unix::fs::chown(&base, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("failed to chown {} to postgres: {e}", base.display()))?;
    }

    let initdb = command(as_user.as_ref(), &bin.join("initdb"), &base)
        .arg("-D")
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .output()
        .map_err(|e| format!("failed to run initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed ({}):\n{}{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }

    // Speed over durability: this server's data is thrown away anyway.
    let settings = format!(
        "\n# tijori-testkit\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{}'\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         max_connections = 300\n",
        base.display()
    );
    append(&data.join("postgresql.conf"), &settings)?;

    // The port is free when we look and taken by someone else a moment later only
    // rarely; when that happens, try another.
    for _attempt in 0..5 {
        let port = free_port()?;
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let start = command(as_user.as_ref(), &bin.join("pg_ctl"), &base)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &format!("-p {port}"), "-w", "-t", "30", "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("failed to run pg_ctl: {e}"))?;
        if start.status.success() {
            return Ok((
                format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                base,
            ));
        }
        let server_log = read_log(&base, log_start);
        if server_log.contains("Address already in use") {
            continue;
        }
        return Err(format!(
            "PostgreSQL failed to start ({}):\n{}{}\n--- server log ---\n{server_log}",
            start.status,
            String::from_utf8_lossy(&start.stdout),
            String::from_utf8_lossy(&start.stderr)
        ));
    }
    Err(format!(
        "PostgreSQL could not get a free port in 5 attempts\n--- server log ---\n{}",
        read_log(&base, 0)
    ))
}

/// Stops the server and removes `base` once this process has exited. It runs in a
/// session of its own, so neither Ctrl-C nor the end of this process reaches it.
fn spawn_watchdog(
    base: &Path,
    data: &Path,
    pg_ctl: &Path,
    as_user: Option<&User>,
) -> Result<(), String> {
    const SCRIPT: &str = r#"
pid=$1 base=$2 data=$3 pg_ctl=$4
shift 4
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
if [ -f "$data/postmaster.pid" ]; then
    "$@" "$pg_ctl" -D "$data" stop -m immediate -w -t 10 >/dev/null 2>&1 || {
        kill -QUIT "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null
        sleep 1
    }
fi
rm -rf "$base"
"#;
    let mut cmd = if which("setsid").is_some() {
        let mut c = Command::new("setsid");
        c.arg("sh");
        c
    } else {
        let mut c = Command::new("sh");
        c.process_group(0);
        c
    };
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("tijori-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(base)
        .arg(data)
        .arg(pg_ctl)
        .args(as_user.map(|u| u.prefix.clone()).unwrap_or_default())
        .current_dir("/")
        // Holding the test's stdout or stderr open would make whoever reads them
        // (cargo, a pipe) wait for the watchdog.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
        .map_err(|e| format!("failed to start the PostgreSQL watchdog: {e}"))?;
    Ok(())
}

/// The system user to run PostgreSQL as, when we are root (PostgreSQL refuses to run
/// as root).
struct User {
    uid: u32,
    gid: u32,
    /// The command that runs the rest of the command line as this user.
    prefix: Vec<String>,
}

fn run_as() -> Result<Option<User>, String> {
    if euid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let (uid, gid) = passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == "postgres")
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            "the tests run as root, and PostgreSQL refuses to run as root, but there is no \
             `postgres` system user to run it as (Debian's postgresql package creates one). \
             Run the tests as another user, create the user, or set \
             TIJORI_TEST_POSTGRES_URL."
                .to_owned()
        })?;
    let prefix = if which("runuser").is_some() {
        vec![
            "runuser".into(),
            "-u".into(),
            "postgres".into(),
            "--".into(),
        ]
    } else if which("setpriv").is_some() {
        vec![
            "setpriv".into(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
        ]
    } else {
        return Err(
            "the tests run as root and need `runuser` or `setpriv` (util-linux) to run \
             PostgreSQL as the postgres user"
                .to_owned(),
        );
    };
    Ok(Some(User { uid, gid, prefix }))
}

fn euid() -> u32 {
    // /proc/self is owned by the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or_else(|_| {
            Command::new("id")
                .arg("-u")
                .output()
                .ok()
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                .unwrap_or(u32::MAX)
        })
}

fn command(as_user: Option<&User>, program: &Path, cwd: &Path) -> Command {
    let mut cmd = match as_user {
        Some(user) => {
            let mut c = Command::new(&user.prefix[0]);
            c.args(&user.prefix[1..]).arg(program);
            c
        }
        None => Command::new(program),
    };
    // The test's own directory may not be readable by the postgres user.
    cmd.current_dir(cwd);
    cmd
}

/// The directory holding `initdb` and `pg_ctl`.
fn pg_bin_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut versioned = Vec::new();
        for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(version) = name.strip_prefix(prefix) {
                    let major: u32 = version
                        .split('.')
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    versioned.push((major, entry.path().join("bin")));
                }
            }
        }
        // The newest version first.
        versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        on_path
            .into_iter()
            .chain(versioned.into_iter().map(|(_, dir)| dir))
            .chain([PathBuf::from("/usr/local/pgsql/bin")])
            .find(|d| has_both(d))
    })
    .clone()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("failed to find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("failed to find a free port: {e}"))
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// The server log from byte `from` on (what one start attempt wrote).
fn read_log(base: &Path, from: u64) -> String {
    match std::fs::read(base.join("postgres.log")) {
        Ok(bytes) => {
            let from = usize::try_from(from).unwrap_or(0).min(bytes.len());
            String::from_utf8_lossy(&bytes[from..]).into_owned()
        }
        Err(e) => format!("(no server log: {e})"),
    }
}

/// `url` fit for a log or a panic message: any password replaced.
fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:****{}", &url[..colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// `url` with its database replaced by `name` (user, host and query kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}

// Running one body on both backends -----------------------------------------------

/// What a test body may return: nothing, or a `Result` whose error fails the test.
pub trait TestOutcome {
    fn into_result(self) -> Result<(), String>;
}

impl TestOutcome for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> TestOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// Runs a test body with a time limit, so a deadlock fails the test instead of
/// hanging the run, and fails the test on an `Err` outcome. Used by [`test_both!`].
pub async fn run<T: TestOutcome>(body: impl Future<Output = T>) {
    let secs = std::env::var("TIJORI_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let limit = Duration::from_secs(secs);
    match tokio::time::timeout(limit, body).await {
        Ok(outcome) => {
            if let Err(e) = outcome.into_result() {
                panic!("test failed: {e}");
            }
        }
        Err(_) => panic!(
            "test did not finish within {limit:?} (a deadlock?); TIJORI_TEST_TIMEOUT_SECS \
             raises the limit"
        ),
    }
}

/// One async test body, run as two tests: on SQLite and on PostgreSQL.
///
/// The body is an `async fn(TestDatabase)` returning `()` or `Result<(), E: Debug>`.
/// `test_both!(name)` (or several: `test_both!(a, b, c)`) makes a module `name` next
/// to the function `name`, holding the tests `name::sqlite` and `name::postgres`; put
/// the calls in a module of their own to group them (`settle::…::postgres`).
/// `test_both!(name => path::to::body)` names the module and the body separately; the
/// path is resolved inside the new module, which glob-imports its parent. Attributes
/// written before a name (`#[ignore = "why"]`) go on both of its tests.
///
/// Each test runs on a multi-threaded runtime (two workers), so spawned tasks really
/// run in parallel. The caller needs `tokio` (with its `macros` feature) as a
/// dependency.
#[macro_export]
macro_rules! test_both {
    ($(#[$meta:meta])* $name:ident => $body:path) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$meta])*
            async fn sqlite() {
                $crate::run(async { $body($crate::TestDatabase::sqlite().await).await }).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$meta])*
            async fn postgres() {
                if $crate::postgres_skipped() {
                    eprintln!(
                        "skipped {}: TIJORI_SKIP_POSTGRES=1 and no PostgreSQL found",
                        module_path!()
                    );
                    return;
                }
                $crate::run(async { $body($crate::TestDatabase::postgres().await).await }).await
            }
        }
    };
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {
        $( $crate::test_both!($(#[$meta])* $name => super::$name); )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_database_in_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "test_1"),
            "postgres://postgres@127.0.0.1:5432/test_1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/admin?sslmode=disable", "test_1"),
            "postgres://u:p@db:5432/test_1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://u@db", "test_1"),
            "postgresql://u@db/test_1"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://u:s3cret@db:5432/admin?sslmode=disable"),
            "postgres://u:****@db:5432/admin?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact("sqlite:///tmp/x/tijori.db"),
            "sqlite:///tmp/x/tijori.db"
        );
    }

    #[tokio::test]
    async fn sqlite_databases_are_fresh_files_removed_on_drop() {
        let a = TestDatabase::sqlite().await;
        let b = TestDatabase::sqlite().await;
        assert_ne!(a.url, b.url);
        assert!(a.url.starts_with("sqlite:///"), "{}", a.url);
        let file = PathBuf::from(a.url.trim_start_matches("sqlite://"));
        let dir = file.parent().unwrap().to_owned();
        assert!(dir.is_dir());
        drop(a);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[tokio::test]
    async fn postgres_databases_are_fresh_and_dropped() {
        if postgres_skipped() {
            return;
        }
        let a = TestDatabase::postgres().await;
        let b = TestDatabase::postgres().await;
        assert_ne!(a.url, b.url);
        let mut conn = PgConnection::connect(&a.url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        conn.close().await.unwrap();
        let Guard::Postgres { admin_url, name } = &a.guard else {
            unreachable!()
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        drop(a);
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(left, 0, "database {name} was not dropped");
    }
}
