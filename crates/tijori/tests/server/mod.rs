//! The real binary, started for a test that needs a process of its own (to kill it, to
//! run another command beside it): `tijori serve` on a free port and a SQLite file in
//! the test's folder, the per-user limits raised for a load, no worker unless asked.
//! Shared by `durability.rs` and `backup.rs` (`mod server;`).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub async fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[]).await
    }

    /// `start`, with `env` set last (so it overrides the defaults).
    pub async fn start_with(dir: &Path, env: &[(&str, &str)]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_tijori"))
            .arg("serve")
            .env("TIJORI_LISTEN", format!("127.0.0.1:{port}"))
            .env("TIJORI_DATABASE_URL", database_url(dir))
            .env("TIJORI_WORKER", "false")
            .env("TIJORI_CHECKOUT_LIMIT", "1000000")
            .env("TIJORI_VERIFY_LIMIT", "1000000")
            .env("TIJORI_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("stderr-{port}"))).unwrap())
            .spawn()
            .expect("tijori starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while client()
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .map_or(true, |r| r.status() != StatusCode::OK)
        {
            assert!(Instant::now() < deadline, "tijori did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    /// Ctrl-C, as an operator stops it (before a restore).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "tijori did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SQLite database a server on `dir` uses.
pub fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("tijori.db").display())
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An authenticated POST of `body`; the answer's status and JSON (`Null` if none).
pub async fn post(base: &str, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let res = client()
        .post(format!("{base}{path}"))
        .header("Authorization", format!("Token {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}
