//! Timeouts, unreachable hosts, dropped connections, redirects, and what gets logged.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use std::error::Error as _;
use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use esewa::{Error, Paisa};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{base, client, client_with_timeout, uuid, SECRET, STATUS_PATH};

const COMPLETE: &str = r#"{"product_code":"EPAYTEST","transaction_uuid":"t-1","total_amount":100.0,"status":"COMPLETE","ref_id":"0001TS9"}"#;

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(COMPLETE)
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let client = client_with_timeout(&base(&server), Duration::from_millis(200));
    let started = Instant::now();
    let err = client
        .status(&uuid("t-1"), Paisa::new(10000))
        .await
        .unwrap_err();
    let waited = started.elapsed();

    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(err.is_transient());
    assert!(err.raw().is_none());
    assert!(waited < Duration::from_secs(2), "gave up after {waited:?}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let client = client_with_timeout(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5));
    let err = client
        .status(&uuid("t-1"), Paisa::new(10000))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    match &err {
        Error::Unreachable { source } => assert!(source.is_connect(), "{source:?}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        err.source().is_some(),
        "the reqwest error is kept as source"
    );
    assert!(err.raw().is_none());
}

#[tokio::test]
async fn a_connection_dropped_before_the_answer_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept one connection, read a bit of the request, hang up without answering.
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = stream.read(&mut buf);
    });
    let client = client_with_timeout(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5));
    let err = client
        .status(&uuid("t-1"), Paisa::new(10000))
        .await
        .unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", "https://login.example/"),
        )
        .mount(&server)
        .await;
    let client = client(&server).await;
    let err = client
        .status(&uuid("t-1"), Paisa::new(10000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidAnswer {
                http_status: 302,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn an_endless_answer_is_cut_off() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(2 * 1024 * 1024)))
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .status(&uuid("t-1"), Paisa::new(10000))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidAnswer { reason, raw, .. } => {
            assert!(reason.contains("larger than"), "{reason}");
            assert_eq!(raw.body.len(), 1024 * 1024);
        }
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

/// Collects every event and span field into one string.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        attrs.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        text.push_str(&format!("[{}] ", event.metadata().level()));
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn calls_are_logged_at_debug_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string(COMPLETE))
        .mount(&server)
        .await;
    let client = client(&server).await;

    let log = Arc::new(Mutex::new(String::new()));
    let guard = tracing::subscriber::set_default(Capture(log.clone()));
    let answer = client
        .status(&uuid("t-1"), Paisa::new(10000))
        .await
        .unwrap();
    // Signing and verifying log nothing either.
    let form = client
        .sign_form(&esewa::FormRequest::new(
            Paisa::new(10000),
            uuid("t-1"),
            "https://shop.example/ok".parse().unwrap(),
            "https://shop.example/failed".parse().unwrap(),
        ))
        .unwrap();
    let refused = client.verify_callback("bm90IGpzb24=").unwrap_err();
    drop(guard);

    let log = log.lock().unwrap().clone();
    assert!(log.contains("[DEBUG]"), "{log}");
    assert!(log.contains("method=\"GET\""), "{log}");
    assert!(log.contains("path=/api/epay/transaction/status/"), "{log}");
    assert!(log.contains("status=200"), "{log}");
    assert!(log.contains("elapsed_ms="), "{log}");
    assert!(!log.contains(SECRET), "the key leaked into the log: {log}");
    // Nor may it leak through any Debug/Display of what the client hands out.
    let shown = format!("{client:?} {answer:?} {form:?} {refused:?} {refused}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!serde_json::to_string(&form).unwrap().contains(SECRET));
}
