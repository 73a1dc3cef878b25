//! Timeouts, unreachable hosts, dropped connections, and what gets logged.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use std::error::Error as _;
use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use khalti::Error;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{base, client, client_with_timeout, SECRET};

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/lookup/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"pidx":"p","total_amount":1000,"status":"Completed","transaction_id":"t","fee":0,"refunded":false}"#)
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let client = client_with_timeout(&base(&server), Duration::from_millis(200));
    let started = Instant::now();
    let err = client.lookup("p").await.unwrap_err();
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

    let client = client_with_timeout(
        &format!("http://127.0.0.1:{port}/api/v2/"),
        Duration::from_secs(5),
    );
    let err = client.lookup("p").await.unwrap_err();
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

    let client = client_with_timeout(
        &format!("http://127.0.0.1:{port}/api/v2/"),
        Duration::from_secs(5),
    );
    let err = client.lookup("p").await.unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
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
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/lookup/"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_string(r#"{"detail": "Not found.", "error_key": "validation_error"}"#),
        )
        .mount(&server)
        .await;
    let client = client(&server).await;

    let log = Arc::new(Mutex::new(String::new()));
    let guard = tracing::subscriber::set_default(Capture(log.clone()));
    let err = client.lookup("p").await.unwrap_err();
    drop(guard);

    assert!(matches!(err, Error::NotFound { .. }));
    let log = log.lock().unwrap().clone();
    assert!(log.contains("[DEBUG]"), "{log}");
    assert!(log.contains("method=\"POST\""), "{log}");
    assert!(log.contains("path=/api/v2/epayment/lookup/"), "{log}");
    assert!(log.contains("status=404"), "{log}");
    assert!(log.contains("elapsed_ms="), "{log}");
    assert!(!log.contains(SECRET), "the key leaked into the log: {log}");
    // Nor may it leak through any Debug/Display of the client or the error.
    assert!(!format!("{client:?} {err:?} {err}").contains(SECRET));
}
