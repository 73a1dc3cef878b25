//! A separate `tijori worker` (the real binary) answers /livez, /readyz and /metrics
//! on `TIJORI_WORKER_LISTEN`, so its jobs and its heartbeat are watched like a
//! server's, and serves nothing else there.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_worker_answers_probes_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tijori"))
        .arg("worker")
        .env("TIJORI_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("TIJORI_WORKER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TIJORI_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("tijori.db").display()),
        )
        .env("TIJORI_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let outcome = async {
        // Ready once the worker has gone round its loop.
        let deadline = Instant::now() + Duration::from_secs(30);
        let body = loop {
            if let Ok(res) = http.get(format!("{base}/readyz")).send().await {
                let status = res.status();
                let body: Value = res.json().await?;
                if status == StatusCode::OK && body["worker"]["detail"] != "none in this process" {
                    break body;
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "the worker never got ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        anyhow::ensure!(body["worker"]["ok"] == true, "{body}");
        let live = http.get(format!("{base}/livez")).send().await?;
        anyhow::ensure!(live.status() == StatusCode::OK);
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        anyhow::ensure!(
            metrics.contains("tijori_worker_heartbeat_age_seconds"),
            "{metrics}"
        );
        // Its recurring jobs have run (the sweeps are queued at start, due at once).
        anyhow::ensure!(metrics.contains("tijori_jobs_run_total{"), "{metrics}");
        let api = http
            .get(format!("{base}/api/subscriptions/plans/"))
            .send()
            .await?;
        anyhow::ensure!(
            api.status() == StatusCode::NOT_FOUND,
            "a worker serves no API: {}",
            api.status()
        );
        let doc = http.get(format!("{base}/api/openapi.json")).send().await?;
        anyhow::ensure!(
            doc.status() == StatusCode::NOT_FOUND,
            "nor the API's document"
        );
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    outcome.unwrap();
}
