//! A settle that was answered survives `kill -9`: the real binary on SQLite is killed
//! while payments are settling, started again on the same file, and every payment it
//! had called paid is still paid (SQLite's writer answers a write only after the
//! COMMIT of its batch returned; with synchronous = FULL that commit is on disk).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

#[allow(dead_code)] // each test file uses some of it
mod server;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use server::{client, post, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_payment_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let base = server.base.clone();
    let http = client();
    let res = http
        .put(format!("{base}/sandbox/khalti/_sandbox/settings"))
        .json(&json!({"auto_complete": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let plans: Vec<Value> = http
        .get(format!("{base}/api/subscriptions/plans/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plan = plans.iter().find(|p| p["currency"] == "NPR").unwrap()["id"].clone();

    // Eight customers each open a checkout; then all verify at once, and the server
    // dies as soon as the first few have been told "paid".
    let mut customers = Vec::new();
    for i in 0..8 {
        let res = http
            .post(format!("{base}/api/auth/register"))
            .json(
                &json!({"username": format!("durable{i}"), "email": format!("d{i}@example.com"),
                "password": "correct horse battery"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let token = res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, started) = post(
            &base,
            &token,
            "/api/subscriptions/initiate/",
            json!({"plan_id": plan}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{started}");
        customers.push((token, started));
    }
    let (told, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for (token, started) in &customers {
        let (base, token, told) = (base.clone(), token.clone(), told.clone());
        let pidx = started["pidx"].clone();
        let payment = started["payment_id"].as_str().unwrap().to_owned();
        tokio::spawn(async move {
            let (status, _) = post(
                &base,
                &token,
                "/api/subscriptions/verify/",
                json!({"pidx": pidx}),
            )
            .await;
            if status == StatusCode::OK {
                let _ = told.send((token, payment));
            }
        });
    }
    drop(told);
    let mut paid = Vec::new();
    while let Some(answer) = answers.recv().await {
        paid.push(answer);
        if paid.len() == 3 {
            break;
        }
    }
    server.kill();
    assert!(!paid.is_empty(), "some verify answered 200 before the kill");

    let server = Server::start(dir.path()).await;
    for (token, payment) in &paid {
        let res = client()
            .get(format!("{}/api/payments/{payment}/", server.base))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let now: Value = res.json().await.unwrap();
        assert_eq!(
            now["status"], "completed",
            "answered paid, then lost: {now}"
        );
        let res = client()
            .get(format!("{}/api/subscriptions/me/", server.base))
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "the subscription it granted is kept"
        );
    }
}

/// An event written with its change survives `kill -9` before it was delivered: the
/// receiver is down when the payment settles, tijori dies, and the next tijori on the
/// same file delivers it once the receiver is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_event_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("tijori.db").display());
    // Nothing listens here yet: every try fails until the receiver starts.
    let receiver_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let created = Command::new(env!("CARGO_BIN_EXE_tijori"))
        .args(["webhook-endpoint", "create"])
        .arg(format!("http://127.0.0.1:{receiver_port}/hooks"))
        .env("TIJORI_DATABASE_URL", &database)
        .env("TIJORI_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("TIJORI_LOG", "warn")
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let worker = [
        ("TIJORI_WORKER", "true"),
        ("TIJORI_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    let server = Server::start_with(dir.path(), &worker).await;
    let base = server.base.clone();
    let http = client();
    let res = http
        .put(format!("{base}/sandbox/khalti/_sandbox/settings"))
        .json(&json!({"auto_complete": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let plans: Vec<Value> = http
        .get(format!("{base}/api/subscriptions/plans/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plan = plans.iter().find(|p| p["currency"] == "NPR").unwrap()["id"].clone();
    let res = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": "kept", "email": "kept@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, started) = post(
        &base,
        &token,
        "/api/subscriptions/initiate/",
        json!({"plan_id": plan}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let (status, body) = post(
        &base,
        &token,
        "/api/subscriptions/verify/",
        json!({"pidx": started["pidx"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.kill();

    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                let event: Value = serde_json::from_str(&body).unwrap();
                kept.lock()
                    .unwrap()
                    .push(event["type"].as_str().unwrap().to_owned());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let _server = Server::start_with(dir.path(), &worker).await;
    // A failed try waits 5 s (a tenth more at most) before the next; a try the kill
    // cut off is taken up again when its two-minute lease runs out.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let mut kinds = got.lock().unwrap().clone();
        kinds.sort();
        kinds.dedup();
        if kinds == ["payment.completed", "subscription.activated"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered after the restart: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
