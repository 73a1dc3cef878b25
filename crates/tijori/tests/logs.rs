//! The real binary with `TIJORI_LOG_FORMAT=json`: every line is a JSON object, and the
//! line that says a payment settled carries the id of the request that settled it
//! (the one the client sent as `X-Request-Id`, answered back) and the payment's id,
//! so one payment's life can be followed through the log.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The spans a JSON line happened in, with their fields.
fn spans(line: &Value) -> &[Value] {
    line["spans"].as_array().map_or(&[], Vec::as_slice)
}

fn in_span_with(line: &Value, field: &str, value: &str) -> bool {
    spans(line).iter().any(|s| s[field] == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_payments_log_line_names_its_request_and_payment() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let log = dir.path().join("stdout.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tijori"))
        .arg("serve")
        .env("TIJORI_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TIJORI_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("tijori.db").display()),
        )
        .env("TIJORI_WORKER", "false")
        .env("TIJORI_LOG_FORMAT", "json")
        .env("TIJORI_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/livez"))
        .send()
        .await
        .map_or(true, |r| r.status() != StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "tijori did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let outcome = async {
        let res = http
            .put(format!("{base}/sandbox/khalti/_sandbox/settings"))
            .json(&json!({"auto_complete": true}))
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::OK);
        let res = http
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"username": "logged", "email": "logged@example.com",
                          "password": "correct horse battery"}))
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::CREATED);
        let token = res.json::<Value>().await?["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let plans: Vec<Value> = http
            .get(format!("{base}/api/subscriptions/plans/"))
            .send()
            .await?
            .json()
            .await?;
        let plan = plans.iter().find(|p| p["currency"] == "NPR").unwrap()["id"].clone();
        let res = http
            .post(format!("{base}/api/subscriptions/initiate/"))
            .header("Authorization", format!("Token {token}"))
            // Not a usable id (a space): replaced by one of tijori's own.
            .header("X-Request-Id", "not usable")
            .json(&json!({"plan_id": plan}))
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::OK);
        let made = res.headers()["x-request-id"].to_str()?.to_owned();
        assert!(made != "not usable" && made.len() == 36, "{made}");
        let started: Value = res.json().await?;
        let payment = started["payment_id"].as_str().unwrap().to_owned();

        let res = http
            .post(format!("{base}/api/subscriptions/verify/"))
            .header("Authorization", format!("Token {token}"))
            .header("X-Request-Id", "verify-7f3a")
            .json(&json!({"pidx": started["pidx"]}))
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-request-id"], "verify-7f3a");
        anyhow::Ok(payment)
    }
    .await;
    // Stop it so that everything it logged is in the file.
    let _ = child.kill();
    let _ = child.wait();
    let payment = outcome.unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    let settled = lines
        .iter()
        .find(|l| l["fields"]["message"] == "payment settled")
        .unwrap_or_else(|| panic!("no settle line in:\n{text}"));
    assert!(
        in_span_with(settled, "request_id", "verify-7f3a"),
        "{settled}"
    );
    assert!(in_span_with(settled, "payment_id", &payment), "{settled}");
    assert!(
        spans(settled).iter().any(|s| s["user_id"].is_string()),
        "the request's user is named: {settled}"
    );
    // The payment's whole life is found by its id: opened, then settled.
    let of_payment: Vec<&Value> = lines
        .iter()
        .filter(|l| in_span_with(l, "payment_id", &payment))
        .collect();
    assert!(of_payment.len() >= 2, "{of_payment:?}");
}
