//! `GET transaction/verify/{tx_ref}` against the documented bodies (chapa.md §4).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use chapa::{Amount, Error, PaymentStatus, Verification};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, AUTH};

const PAYMENT_DETAILS: &str = r#"{
  "message": "Payment details",
  "status": "success",
  "data": {
    "first_name": "Bilen",
    "last_name": "Gizachew",
    "email": "abebech_bekele@gmail.com",
    "currency": "ETB",
    "amount": 100,
    "charge": 3.5,
    "mode": "test",
    "method": "test",
    "type": "API",
    "status": "success",
    "reference": "6jnheVKQEmy",
    "tx_ref": "chewatatest-6669",
    "customization": {
      "title": "Payment for my favourite merchant",
      "description": "I love online payments",
      "logo": null
    },
    "meta": null,
    "created_at": "2023-02-02T07:05:23.000000Z",
    "updated_at": "2023-02-02T07:05:23.000000Z"
  }
}"#;

async fn verify_answer(status: u16, body: &str, tx_ref: &str) -> Result<Verification, Error> {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/transaction/verify/{tx_ref}")))
        .and(header("authorization", AUTH))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .expect(1)
        .mount(&server)
        .await;
    client(&server).await.verify(tx_ref).await
}

#[tokio::test]
async fn the_documented_success_is_paid_and_exact() {
    let v = verify_answer(200, PAYMENT_DETAILS, "chewatatest-6669")
        .await
        .unwrap();
    assert_eq!(v.status, PaymentStatus::Success);
    assert_eq!(v.envelope_status.as_deref(), Some("success"));
    assert_eq!(v.amount, Some(Amount::from_minor(10000)));
    assert_eq!(v.charge, Some(Amount::from_minor(350)));
    assert_eq!(v.currency.as_deref(), Some("ETB"));
    assert_eq!(v.reference.as_deref(), Some("6jnheVKQEmy"));
    assert_eq!(v.tx_ref, "chewatatest-6669");
    assert_eq!(v.mode.as_deref(), Some("test"));
    assert_eq!(v.method.as_deref(), Some("test"));
    assert_eq!(v.kind.as_deref(), Some("API"));
    assert_eq!(v.email.as_deref(), Some("abebech_bekele@gmail.com"));
    assert_eq!(v.meta, None);
    assert_eq!(
        v.customization.as_ref().unwrap()["title"],
        "Payment for my favourite merchant"
    );
    assert_eq!(
        v.created_at.unwrap().to_rfc3339(),
        "2023-02-02T07:05:23+00:00"
    );
    assert_eq!(v.message.as_deref(), Some("Payment details"));
    assert_eq!(v.raw.body, PAYMENT_DETAILS);
    assert!(v.is_paid());
    assert!(v.confirms("chewatatest-6669", Amount::from_minor(10000), "ETB"));
    assert!(!v.confirms("chewatatest-6669", Amount::from_minor(9999), "ETB"));
    assert!(!v.confirms("chewatatest-6669", Amount::from_minor(10000), "USD"));
    assert!(!v.confirms("other", Amount::from_minor(10000), "ETB"));
}

#[tokio::test]
async fn money_as_strings_is_read_exactly() {
    let body = PAYMENT_DETAILS
        .replace(r#""amount": 100,"#, r#""amount": "1311.05","#)
        .replace(r#""charge": 3.5,"#, r#""charge": "12.000","#);
    let v = verify_answer(200, &body, "chewatatest-6669").await.unwrap();
    assert_eq!(v.amount, Some(Amount::from_minor(131105)));
    assert_eq!(v.charge, Some(Amount::from_minor(1200)));
}

#[tokio::test]
async fn money_as_fractional_numbers_is_read_without_floats() {
    // 0.1 + 0.2 style values: read from the JSON text, not an f64.
    let body = PAYMENT_DETAILS
        .replace(r#""amount": 100,"#, r#""amount": 1234567.89,"#)
        .replace(r#""charge": 3.5,"#, r#""charge": 0.30,"#);
    let v = verify_answer(200, &body, "chewatatest-6669").await.unwrap();
    assert_eq!(v.amount, Some(Amount::from_minor(123456789)));
    assert_eq!(v.charge, Some(Amount::from_minor(30)));
}

#[tokio::test]
async fn an_inexact_amount_is_an_invalid_answer() {
    let body = PAYMENT_DETAILS.replace(r#""amount": 100,"#, r#""amount": 100.005,"#);
    let err = verify_answer(200, &body, "chewatatest-6669")
        .await
        .unwrap_err();
    match err {
        Error::InvalidAnswer { reason, .. } => assert!(reason.contains("amount"), "{reason}"),
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn pending_failed_and_unknown_statuses_are_answers_but_not_paid() {
    for (text, expected) in [
        ("pending", PaymentStatus::Pending),
        ("failed", PaymentStatus::Failed),
        ("failed/cancelled", PaymentStatus::FailedOrCancelled),
        ("refunded", PaymentStatus::Refunded),
        ("reversed", PaymentStatus::Reversed),
        ("on_hold", PaymentStatus::Other("on_hold".into())),
    ] {
        let body = PAYMENT_DETAILS.replace(
            r#""status": "success",
    "reference""#,
            &format!(
                r#""status": "{text}",
    "reference""#
            ),
        );
        let v = verify_answer(200, &body, "chewatatest-6669").await.unwrap();
        assert_eq!(v.status, expected, "{text}");
        assert!(!v.is_paid(), "{text}");
        assert!(!v.confirms("chewatatest-6669", Amount::from_minor(10000), "ETB"));
    }
}

#[tokio::test]
async fn data_success_under_a_failed_envelope_is_not_paid() {
    let body = PAYMENT_DETAILS.replacen(r#""status": "success""#, r#""status": "failed""#, 1);
    let v = verify_answer(200, &body, "chewatatest-6669").await.unwrap();
    assert_eq!(v.status, PaymentStatus::Success);
    assert_eq!(v.envelope_status.as_deref(), Some("failed"));
    assert!(!v.is_paid());
}

#[tokio::test]
async fn message_as_an_object_is_tolerated_on_success() {
    let body = PAYMENT_DETAILS.replace(
        r#""message": "Payment details""#,
        r#""message": {"info": ["Payment details"]}"#,
    );
    let v = verify_answer(200, &body, "chewatatest-6669").await.unwrap();
    assert!(v.is_paid());
    assert_eq!(v.message, None);
}

#[tokio::test]
async fn not_paid_yet_is_an_answer_with_null_or_string_null_status() {
    for body in [
        r#"{"message":"Payment not paid yet","status":null,"data":null}"#,
        r#"{"data":null,"message":"Payment not paid yet","status":"null"}"#,
        r#"{"message":"Payment not paid yet\t","status":null,"data":null}"#,
    ] {
        let v = verify_answer(404, body, "tx-unpaid").await.unwrap();
        assert_eq!(v.status, PaymentStatus::NotPaidYet, "{body}");
        assert_eq!(v.tx_ref, "tx-unpaid");
        assert_eq!(v.envelope_status, None);
        assert_eq!(v.amount, None);
        assert_eq!(v.raw.http_status, 404);
        assert!(!v.is_paid());
    }
}

#[tokio::test]
async fn unknown_tx_ref_is_not_found() {
    let err = verify_answer(
        404,
        r#"{"message":"Invalid transaction or Transaction not found\t","status":"failed","data":null}"#,
        "tx-nope",
    )
    .await
    .unwrap_err();
    match &err {
        Error::NotFound { message, raw } => {
            assert_eq!(message, "Invalid transaction or Transaction not found");
            assert_eq!(raw.http_status, 404);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn key_problems_are_unauthorized() {
    for message in [
        "Authorization required",
        "Invalid API Key",
        "Live secret keys can't be used to verify a test transaction",
        "Test secret keys can't be used to verify a live transaction",
    ] {
        let body = json!({"message": message, "status": "failed", "data": null}).to_string();
        match verify_answer(401, &body, "tx-1").await {
            Err(Error::Unauthorized { message: got, .. }) => assert_eq!(got, message),
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_answer_about_another_tx_ref_is_invalid() {
    let err = verify_answer(200, PAYMENT_DETAILS, "tx-asked")
        .await
        .unwrap_err();
    match err {
        Error::InvalidAnswer { reason, .. } => assert!(reason.contains("chewatatest-6669")),
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_is_an_invalid_answer() {
    for body in [
        "",
        "not json",
        r#"{"message":"Payment details","status":"success"}"#,
        "[]",
    ] {
        let err = verify_answer(200, body, "tx-1").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidAnswer {
                    http_status: 200,
                    ..
                }
            ),
            "{body}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_tx_ref_is_one_encoded_path_segment() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/transaction/verify/a%2Fb"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            r#"{"message":"Invalid transaction or Transaction not found","status":"failed","data":null}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).await.verify("a/b").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = client(&server).await.verify(" ").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[tokio::test]
async fn not_paid_yet_with_http_200_is_the_same_answer() {
    let v = verify_answer(
        200,
        r#"{"message":"Payment not paid yet","status":"null","data":null}"#,
        "tx-unpaid",
    )
    .await
    .unwrap();
    assert_eq!(v.status, PaymentStatus::NotPaidYet);
    assert_eq!(v.raw.http_status, 200);
}

#[tokio::test]
async fn a_401_without_a_json_body_is_still_unauthorized() {
    match verify_answer(401, "Unauthorized", "tx-1").await {
        Err(Error::Unauthorized { message, raw }) => {
            assert_eq!(message, "HTTP 401 without an explanation");
            assert_eq!(raw.body, "Unauthorized");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}
