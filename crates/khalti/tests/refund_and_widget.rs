//! Refund (khalti.md §6) and legacy widget verification (khalti.md §9.3).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use chrono::DateTime;
use khalti::{Error, Paisa, RefundRequest};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, AUTH};

const TXN: &str = "GFq9PFS7b2iYvL8Lir9oXe";
const REFUND_PATH: &str = "/api/merchant-transaction/GFq9PFS7b2iYvL8Lir9oXe/refund/";

#[tokio::test]
async fn full_refund_posts_an_empty_object_outside_v2() {
    let server = MockServer::start().await;
    let answer = r#"{"detail": "Transaction refund successful."}"#;
    Mock::given(method("POST"))
        .and(path(REFUND_PATH))
        .and(header("authorization", AUTH))
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(200).set_body_string(answer))
        .expect(1)
        .mount(&server)
        .await;

    let refunded = client(&server)
        .await
        .refund(TXN, &RefundRequest::default())
        .await
        .unwrap();
    assert_eq!(refunded.detail, "Transaction refund successful.");
    assert_eq!(refunded.raw.http_status, 200);
    assert_eq!(refunded.raw.body, answer);
}

#[tokio::test]
async fn partial_bank_refund_sends_amount_in_paisa_and_mobile() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(REFUND_PATH))
        .and(body_json(json!({ "amount": 500, "mobile": "9800000001" })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"detail": "Transaction refund successful."}"#),
        )
        .expect(1)
        .mount(&server)
        .await;

    let request = RefundRequest {
        amount: Some(Paisa::new(500)),
        mobile: Some("9800000001".into()),
    };
    let refunded = client(&server).await.refund(TXN, &request).await.unwrap();
    assert_eq!(refunded.detail, "Transaction refund successful.");
}

#[tokio::test]
async fn refund_refusal_is_rejected_with_its_reason() {
    // Refund error bodies are undocumented (khalti.md §6); this is the DRF envelope
    // Khalti uses elsewhere.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(REFUND_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"detail": "Transaction already refunded.", "error_key": "validation_error"}"#,
        ))
        .mount(&server)
        .await;

    let err = client(&server)
        .await
        .refund(TXN, &RefundRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Transaction already refunded.");
    match err {
        Error::Rejected {
            detail, error_key, ..
        } => {
            assert_eq!(detail.as_deref(), Some("Transaction already refunded."));
            assert_eq!(error_key.as_deref(), Some("validation_error"));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn refund_of_unknown_transaction_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_string(r#"{"detail": "Not found.", "error_key": "validation_error"}"#),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .refund("unknownTxn", &RefundRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let received = server.received_requests().await.unwrap();
    assert_eq!(
        received[0].url.path(),
        "/api/merchant-transaction/unknownTxn/refund/"
    );
}

#[tokio::test]
async fn refund_refuses_an_empty_transaction_id_without_calling() {
    let server = MockServer::start().await;
    let err = client(&server)
        .await
        .refund("", &RefundRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

const VERIFY_SUCCESS: &str = r#"{
  "idx": "8xmeJnNXfoVjCvGcZiiGe7",
  "type":  { "idx": "e476BL6jt9kgagEmsakyTL", "name": "Wallet payment" },
  "state": { "idx": "DhvMj9hdRufLqkP8ZY4d8g", "name": "Completed", "template": "is complete" },
  "amount": 1000, "fee_amount": 30, "refunded": false,
  "created_on": "2018-06-20T14:48:08.867125+05:45", "ebanker": null,
  "user":     { "idx": "cCaPkRPQGn5D8StkiqqMJg", "name": "Test User", "mobile": "98XXXXXXX9" },
  "merchant": { "idx": "UM75Gm2gWmZvA4TPwkwZye", "name": "Test Merchant", "mobile": "testmerchant@khalti.com" }
}"#;

#[tokio::test]
async fn widget_verification_reads_the_transaction() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/payment/verify/"))
        .and(header("authorization", AUTH))
        .and(body_json(
            json!({ "token": "QUao9cqFzxPgvWJNi9aKac", "amount": 1000 }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(VERIFY_SUCCESS))
        .expect(1)
        .mount(&server)
        .await;

    let verified = client(&server)
        .await
        .verify_widget("QUao9cqFzxPgvWJNi9aKac", Paisa::new(1000))
        .await
        .unwrap();
    assert_eq!(verified.idx, "8xmeJnNXfoVjCvGcZiiGe7");
    assert_eq!(verified.amount, Paisa::new(1000));
    assert_eq!(verified.fee_amount, Some(Paisa::new(30)));
    assert_eq!(verified.state_name, "Completed");
    assert_eq!(verified.type_name.as_deref(), Some("Wallet payment"));
    assert!(!verified.refunded);
    assert_eq!(
        verified.created_on,
        Some(DateTime::parse_from_rfc3339("2018-06-20T14:48:08.867125+05:45").unwrap())
    );
    assert_eq!(verified.user_mobile.as_deref(), Some("98XXXXXXX9"));
    assert_eq!(verified.raw.body, VERIFY_SUCCESS);
}

#[tokio::test]
async fn widget_invalid_token_is_rejected() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/payment/verify/"))
        .respond_with(
            ResponseTemplate::new(400).set_body_string(r#"{"token": ["Invalid token."]}"#),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .verify_widget("bogus", Paisa::new(1000))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "token: Invalid token.");
    match err {
        Error::Rejected {
            field_errors,
            error_key,
            ..
        } => {
            assert_eq!(field_errors["token"], vec!["Invalid token.".to_string()]);
            assert_eq!(error_key, None);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn widget_answer_without_state_is_invalid() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"idx": "8xmeJnNXfoVjCvGcZiiGe7", "amount": 1000}"#),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .verify_widget("t", Paisa::new(1000))
        .await
        .unwrap_err();
    match err {
        Error::InvalidAnswer { reason, .. } => assert!(reason.contains("state"), "{reason}"),
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}
