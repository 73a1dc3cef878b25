//! Timeouts, unreachable hosts, dropped connections, redirects.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use std::error::Error as _;
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use chapa::Error;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{base, client, client_with_timeout, SECRET};

#[tokio::test]
async fn a_slow_answer_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/transaction/verify/tx-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"message":"Payment not paid yet","status":null,"data":null}"#)
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let client = client_with_timeout(&base(&server), Duration::from_millis(200));
    let started = Instant::now();
    let err = client.verify("tx-1").await.unwrap_err();
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
        &format!("http://127.0.0.1:{port}/v1/"),
        Duration::from_secs(5),
    );
    let err = client.verify("tx-1").await.unwrap_err();
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
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = stream.read(&mut buf);
    });
    let client = client_with_timeout(
        &format!("http://127.0.0.1:{port}/v1/"),
        Duration::from_secs(5),
    );
    let err = client.verify("tx-1").await.unwrap_err();
    server.join().unwrap();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "https://evil.example/"))
        .mount(&server)
        .await;
    let client = client(&server).await;
    let err = client.verify("tx-1").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidAnswer {
                http_status: 301,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{client:?} {err:?} {err}").contains(SECRET));
}
