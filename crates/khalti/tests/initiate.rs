//! `POST epayment/initiate/` against the bodies in khalti.md §2 and §3.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use std::collections::BTreeMap;

use chrono::DateTime;
use khalti::{AmountBreakdown, CustomerInfo, Error, InitiateRequest, Paisa, ProductDetail};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{base, client, client_at, AUTH};

const SUCCESS: &str = r#"{
  "pidx": "bZQLD9wRVWo4CdESSfuSsB",
  "payment_url": "https://test-pay.khalti.com/?pidx=bZQLD9wRVWo4CdESSfuSsB",
  "expires_at": "2023-05-25T16:26:16.471649+05:45",
  "expires_in": 1800
}"#;

/// The docs' sample request (khalti.md §3.1), built through the typed API.
fn docs_sample_request() -> InitiateRequest {
    let mut merchant_extra = BTreeMap::new();
    merchant_extra.insert("username".to_string(), "merchant_name".to_string());
    merchant_extra.insert("extra".to_string(), "merchant_extra".to_string());
    InitiateRequest {
        return_url: "https://example.com/payment/".parse().unwrap(),
        website_url: "https://example.com/".parse().unwrap(),
        amount: Paisa::new(1300),
        purchase_order_id: "test12".into(),
        purchase_order_name: "test".into(),
        customer_info: Some(CustomerInfo {
            name: Some("Khalti Bahadur".into()),
            email: Some("example@gmail.com".into()),
            phone: Some("9800000123".into()),
        }),
        amount_breakdown: vec![
            AmountBreakdown {
                label: "Mark Price".into(),
                amount: Paisa::new(1000),
            },
            AmountBreakdown {
                label: "VAT".into(),
                amount: Paisa::new(300),
            },
        ],
        product_details: vec![ProductDetail {
            identity: "1234567890".into(),
            name: "Khalti logo".into(),
            total_price: Paisa::new(1300),
            quantity: 1,
            unit_price: Paisa::new(1300),
        }],
        merchant_extra,
    }
}

fn minimal_request() -> InitiateRequest {
    InitiateRequest::new(
        "https://example.com/payment/".parse().unwrap(),
        "https://example.com/".parse().unwrap(),
        Paisa::new(1000),
        "test12",
        "test",
    )
}

#[tokio::test]
async fn success_sends_the_documented_body_and_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/initiate/"))
        .and(header("authorization", AUTH))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "return_url": "https://example.com/payment/",
            "website_url": "https://example.com/",
            "amount": 1300,
            "purchase_order_id": "test12",
            "purchase_order_name": "test",
            "customer_info": { "name": "Khalti Bahadur", "email": "example@gmail.com", "phone": "9800000123" },
            "amount_breakdown": [ { "label": "Mark Price", "amount": 1000 }, { "label": "VAT", "amount": 300 } ],
            "product_details": [ { "identity": "1234567890", "name": "Khalti logo", "total_price": 1300, "quantity": 1, "unit_price": 1300 } ],
            "merchant_username": "merchant_name",
            "merchant_extra": "merchant_extra"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string(SUCCESS))
        .expect(1)
        .mount(&server)
        .await;

    let started = client(&server)
        .await
        .initiate(&docs_sample_request())
        .await
        .unwrap();

    assert_eq!(started.pidx, "bZQLD9wRVWo4CdESSfuSsB");
    assert_eq!(
        started.payment_url.as_str(),
        "https://test-pay.khalti.com/?pidx=bZQLD9wRVWo4CdESSfuSsB"
    );
    assert_eq!(
        started.expires_at,
        DateTime::parse_from_rfc3339("2023-05-25T16:26:16.471649+05:45").unwrap()
    );
    assert_eq!(
        started.expires_at.offset().local_minus_utc(),
        5 * 3600 + 45 * 60
    );
    assert_eq!(started.expires_in, 1800);
    assert_eq!(started.raw.http_status, 200);
    assert_eq!(started.raw.body, SUCCESS, "raw keeps the exact bytes");

    // Check what wiremock received, independently of the matchers above.
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        AUTH
    );
    let sent: serde_json::Value = received[0].body_json().unwrap();
    assert_eq!(
        sent["amount"],
        json!(1300),
        "amount is a JSON integer in paisa"
    );
}

#[tokio::test]
async fn minimal_request_leaves_optional_fields_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/initiate/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(SUCCESS))
        .mount(&server)
        .await;

    client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap();

    let received = server.received_requests().await.unwrap();
    let sent: serde_json::Value = received[0].body_json().unwrap();
    assert_eq!(
        sent,
        json!({
            "return_url": "https://example.com/payment/",
            "website_url": "https://example.com/",
            "amount": 1000,
            "purchase_order_id": "test12",
            "purchase_order_name": "test"
        })
    );
}

#[tokio::test]
async fn base_url_without_trailing_slash_still_reaches_v2() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/initiate/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(SUCCESS))
        .expect(1)
        .mount(&server)
        .await;

    let base_without_slash = base(&server).trim_end_matches('/').to_string();
    assert!(base_without_slash.ends_with("/api/v2"));
    let started = client_at(&base_without_slash)
        .initiate(&minimal_request())
        .await
        .unwrap();
    assert_eq!(started.pidx, "bZQLD9wRVWo4CdESSfuSsB");
}

#[tokio::test]
async fn tolerates_unknown_fields_and_string_counters() {
    let server = MockServer::start().await;
    let body = r#"{
      "pidx": "bZQLD9wRVWo4CdESSfuSsB",
      "payment_url": "https://test-pay.khalti.com/?pidx=bZQLD9wRVWo4CdESSfuSsB",
      "expires_at": "2023-05-25T16:26:16.471649+05:45",
      "expires_in": "3600",
      "purchase_order_id": "test12"
    }"#;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;

    let started = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap();
    assert_eq!(started.expires_in, 3600);
}

/// Every validation body documented in khalti.md §3.3, with HTTP 400.
#[tokio::test]
async fn documented_validation_errors_are_rejected_with_field_errors() {
    let cases = [
        ("return_url", "This field may not be blank."),
        ("return_url", "Enter a valid URL."),
        ("website_url", "This field may not be blank."),
        ("website_url", "Enter a valid URL."),
        (
            "amount",
            "Amount should be greater than Rs. 10, that is 1000 paisa.",
        ),
        ("amount", "A valid integer is required."),
        ("purchase_order_id", "This field may not be blank."),
        ("purchase_order_name", "This field may not be blank."),
        ("amount", "Amount Breakdown mismatch."),
    ];
    for (field, message) in cases {
        let server = MockServer::start().await;
        let body = json!({ field: [message], "error_key": "validation_error" }).to_string();
        Mock::given(method("POST"))
            .and(path("/api/v2/epayment/initiate/"))
            .respond_with(ResponseTemplate::new(400).set_body_string(body.clone()))
            .mount(&server)
            .await;

        let err = client(&server)
            .await
            .initiate(&minimal_request())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), format!("{field}: {message}"));
        assert!(!err.is_transient());
        match err {
            Error::Rejected {
                http_status,
                detail,
                field_errors,
                error_key,
                raw,
            } => {
                assert_eq!(http_status, 400);
                assert_eq!(detail, None);
                assert_eq!(field_errors.len(), 1);
                assert_eq!(field_errors[field], vec![message.to_string()]);
                assert_eq!(error_key.as_deref(), Some("validation_error"));
                assert_eq!(raw.body, body);
            }
            other => panic!("{field}/{message}: expected Rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_minimum_amount_reason_is_fit_for_a_merchant() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{ "amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."], "error_key": "validation_error" }"#,
        ))
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "amount: Amount should be greater than Rs. 10, that is 1000 paisa."
    );
    assert_eq!(err.raw().unwrap().http_status, 400);
}

#[tokio::test]
async fn several_failing_fields_come_back_together() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"return_url":["Enter a valid URL."],"amount":["A valid integer is required."],"error_key":"validation_error"}"#,
        ))
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "amount: A valid integer is required.; return_url: Enter a valid URL."
    );
    match err {
        Error::Rejected { field_errors, .. } => assert_eq!(field_errors.len(), 2),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_token_is_unauthorized() {
    for detail in [
        "Invalid token.",
        "Authentication credentials were not provided.",
    ] {
        let server = MockServer::start().await;
        let body = json!({ "detail": detail, "status_code": 401 }).to_string();
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_string(body.clone()))
            .mount(&server)
            .await;
        let err = client(&server)
            .await
            .initiate(&minimal_request())
            .await
            .unwrap_err();
        assert_eq!(
            err.reason(),
            format!("Khalti refused the secret key: {detail}")
        );
        assert!(!err.is_transient());
        match err {
            Error::Unauthorized { detail: got, raw } => {
                assert_eq!(got, detail);
                assert_eq!(raw.http_status, 401);
                assert_eq!(raw.body, body);
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn html_502_is_a_transient_server_error() {
    let server = MockServer::start().await;
    let page = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("content-type", "text/html")
                .set_body_string(page),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap_err();
    assert!(err.is_transient());
    match &err {
        Error::ServerError { http_status, raw } => {
            assert_eq!(*http_status, 502);
            assert_eq!(raw.body, page);
        }
        other => panic!("expected ServerError, got {other:?}"),
    }
    assert!(!err.reason().contains('\n'));
}

#[tokio::test]
async fn garbage_with_200_is_an_invalid_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>hello</html>"))
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    match err {
        Error::InvalidAnswer {
            http_status,
            reason,
            raw,
        } => {
            assert_eq!(http_status, 200);
            assert!(reason.contains("not JSON"), "{reason}");
            assert_eq!(raw.body, "<html>hello</html>");
        }
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn json_missing_fields_with_200_is_an_invalid_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"pidx": "bZQLD9wRVWo4CdESSfuSsB", "expires_in": 1800}"#),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap_err();
    match err {
        Error::InvalidAnswer { reason, .. } => {
            assert!(reason.contains("payment_url"), "{reason}")
        }
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn non_json_4xx_is_an_invalid_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(405).set_body_string("Method Not Allowed"))
        .mount(&server)
        .await;
    let err = client(&server)
        .await
        .initiate(&minimal_request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidAnswer {
                http_status: 405,
                ..
            }
        ),
        "{err:?}"
    );
}
