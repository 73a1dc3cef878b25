//! `POST refund/{reference}` (chapa.md §6).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use chapa::{Amount, Error, RefundRequest};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, AUTH};

const REFUND_INITIATED: &str = r#"{
  "message": "Refund initiated successfully. Processing time: 1-3 business days",
  "status": "success",
  "data": {
    "id": 730,
    "chapa_reference": "APezQ1KKswbb",
    "bank_reference": "BLC9JI3G21",
    "amount": "1.00",
    "ref": "MERC-DIS-REF-s223VGvQFJk",
    "currency": "ETB",
    "status": "Refund Initiated",
    "reason": null,
    "merchant_reference": "OTAS379IOSHJ",
    "created_at": "2024-12-13T17:33:27.000000Z",
    "updated_at": "2024-12-13T17:33:27.000000Z"
  }
}"#;

#[tokio::test]
async fn partial_refund_is_form_encoded_and_read() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refund/APezQ1KKswbb"))
        .and(header("authorization", AUTH))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "reason=accidental+purchase&amount=1.00&reference=REF123&meta%5Bcustomer_id%5D=123",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(REFUND_INITIATED))
        .expect(1)
        .mount(&server)
        .await;
    let mut request = RefundRequest::partial(Amount::from_minor(100))
        .with_reason("accidental purchase")
        .with_reference("REF123");
    request.meta.insert("customer_id".into(), "123".into());
    let refunded = client(&server)
        .await
        .refund("APezQ1KKswbb", &request)
        .await
        .unwrap();
    assert_eq!(refunded.status.as_deref(), Some("Refund Initiated"));
    assert_eq!(refunded.id.as_deref(), Some("730"));
    assert_eq!(refunded.amount, Some(Amount::from_minor(100)));
    assert_eq!(refunded.currency.as_deref(), Some("ETB"));
    assert_eq!(refunded.chapa_reference.as_deref(), Some("APezQ1KKswbb"));
    assert_eq!(
        refunded.refund_reference.as_deref(),
        Some("MERC-DIS-REF-s223VGvQFJk")
    );
    assert_eq!(refunded.bank_reference.as_deref(), Some("BLC9JI3G21"));
    assert_eq!(refunded.merchant_reference.as_deref(), Some("OTAS379IOSHJ"));
    assert_eq!(
        refunded.message.as_deref(),
        Some("Refund initiated successfully. Processing time: 1-3 business days")
    );
    assert_eq!(refunded.raw.body, REFUND_INITIATED);
}

#[tokio::test]
async fn full_refund_sends_no_amount_and_tolerates_a_sparse_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refund/APezQ1KKswbb"))
        .and(body_string(""))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"message":"Refund initiated successfully","status":"success","data":{"ref_id":"R-1","amount":1.5}}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let refunded = client(&server)
        .await
        .refund("APezQ1KKswbb", &RefundRequest::full())
        .await
        .unwrap();
    assert_eq!(refunded.refund_reference.as_deref(), Some("R-1"));
    assert_eq!(refunded.amount, Some(Amount::from_minor(150)));
    assert_eq!(refunded.status, None);
}

async fn refund_error(status: u16, body: &str) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refund/AP1"))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(&server)
        .await;
    client(&server)
        .await
        .refund("AP1", &RefundRequest::full())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn refund_errors_are_classified() {
    let err = refund_error(
        400,
        r#"{"message":"We don't support partial refunds","status":"failed","data":null}"#,
    )
    .await;
    match err {
        Error::Rejected { message, .. } => {
            assert_eq!(message.as_deref(), Some("We don't support partial refunds"))
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let err = refund_error(
        404,
        r#"{"message":"Transaction not found","status":"failed","data":null}"#,
    )
    .await;
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = refund_error(
        401,
        r#"{"message":"Invalid API Key or User doesn't exist","status":"failed","data":null}"#,
    )
    .await;
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let err = refund_error(
        200,
        r#"{"message":"Insufficient Balance","status":"failed","data":null}"#,
    )
    .await;
    assert!(
        matches!(
            err,
            Error::Rejected {
                http_status: 200,
                ..
            }
        ),
        "{err:?}"
    );
    let err = refund_error(200, "garbage").await;
    assert!(matches!(err, Error::InvalidAnswer { .. }), "{err:?}");
}

#[tokio::test]
async fn zero_partial_refund_and_empty_reference_are_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(REFUND_INITIATED))
        .expect(0)
        .mount(&server)
        .await;
    let client = client(&server).await;
    let err = client
        .refund("AP1", &RefundRequest::partial(Amount::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let err = client.refund("", &RefundRequest::full()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}
