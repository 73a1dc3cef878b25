//! `POST transaction/initialize` against the documented bodies (chapa.md §2).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use chapa::{Amount, Customization, Error, InitializeRequest};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, AUTH};

const HOSTED_LINK: &str = r#"{
  "message": "Hosted Link",
  "status": "success",
  "data": {
    "checkout_url": "https://checkout.chapa.co/checkout/payment/V38JyhpTygC9QimkJrdful9oEjih0heIv53eJ1MsJS6xG"
  }
}"#;

fn documented_request() -> InitializeRequest {
    let mut request = InitializeRequest::new(Amount::from_minor(1000), "ETB", "chewatatest-6669");
    request.email = Some("abebech_bekele@gmail.com".into());
    request.first_name = Some("Bilen".into());
    request.last_name = Some("Gizachew".into());
    request.phone_number = Some("0912345678".into());
    request.callback_url = Some(
        "https://webhook.site/077164d6-29cb-40df-ba29-8a00e59a7e60"
            .parse()
            .unwrap(),
    );
    request.return_url = Some("https://www.google.com/".parse().unwrap());
    request.customization = Some(Customization {
        title: Some("Payment for my favourite merchant".into()),
        description: Some("I love online payments".into()),
        logo: None,
    });
    request.meta = Some(json!({"invoices": [
        {"key": "Paracetamol", "value": "2pcs"},
        {"key": "Ibuprofen", "value": "1pcs"}
    ]}));
    request
}

#[tokio::test]
async fn sends_the_documented_request_and_reads_the_hosted_link() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/transaction/initialize"))
        .and(header("authorization", AUTH))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "amount": "10.00",
            "currency": "ETB",
            "email": "abebech_bekele@gmail.com",
            "first_name": "Bilen",
            "last_name": "Gizachew",
            "phone_number": "0912345678",
            "tx_ref": "chewatatest-6669",
            "callback_url": "https://webhook.site/077164d6-29cb-40df-ba29-8a00e59a7e60",
            "return_url": "https://www.google.com/",
            "customization": {
                "title": "Payment for my favourite merchant",
                "description": "I love online payments"
            },
            "meta": {"invoices": [
                {"key": "Paracetamol", "value": "2pcs"},
                {"key": "Ibuprofen", "value": "1pcs"}
            ]}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string(HOSTED_LINK))
        .expect(1)
        .mount(&server)
        .await;

    let started = client(&server)
        .await
        .initialize(&documented_request())
        .await
        .unwrap();
    assert_eq!(
        started.checkout_url.as_str(),
        "https://checkout.chapa.co/checkout/payment/V38JyhpTygC9QimkJrdful9oEjih0heIv53eJ1MsJS6xG"
    );
    assert_eq!(started.message.as_deref(), Some("Hosted Link"));
    assert_eq!(started.raw.http_status, 200);
    assert_eq!(started.raw.body, HOSTED_LINK);
}

#[tokio::test]
async fn amount_is_a_decimal_string_in_major_units() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/transaction/initialize"))
        .and(body_json(
            json!({"amount": "500.50", "currency": "USD", "tx_ref": "tx-1"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_string(HOSTED_LINK))
        .expect(1)
        .mount(&server)
        .await;
    let request = InitializeRequest::new(Amount::from_minor(50050), "USD", "tx-1");
    assert!(client(&server).await.initialize(&request).await.is_ok());
}

async fn rejection(status: u16, body: &str) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/transaction/initialize"))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(&server)
        .await;
    client(&server)
        .await
        .initialize(&InitializeRequest::new(
            Amount::from_minor(1000),
            "ETB",
            "tx-1",
        ))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn documented_400_messages_are_rejections_in_chapas_words() {
    for message in [
        "Invalid currency, XYZ is not supported",
        "Transaction reference has been used before",
        "User can't receive payments",
        "Merchant's share of payment is not enough to cover transaction fee.",
        "Incorrect header settings Please check if content-type is present and set to application/json",
    ] {
        let body = json!({"message": message, "status": "failed", "data": null}).to_string();
        match rejection(400, &body).await {
            Error::Rejected {
                http_status: 400,
                message: got,
                field_errors,
                raw,
            } => {
                assert_eq!(got.as_deref(), Some(message));
                assert!(field_errors.is_empty());
                assert_eq!(raw.body, body);
            }
            other => panic!("{message}: expected Rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn validation_message_as_an_object_becomes_field_errors() {
    let err = rejection(
        400,
        r#"{"message":{"email":["validation.email"],"amount":["validation.required"]},"status":"failed","data":null}"#,
    )
    .await;
    match &err {
        Error::Rejected {
            message,
            field_errors,
            ..
        } => {
            assert_eq!(*message, None);
            assert_eq!(field_errors["email"], vec!["validation.email"]);
            assert_eq!(field_errors["amount"], vec!["validation.required"]);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(
        err.reason(),
        "amount: validation.required; email: validation.email"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn the_401s_are_unauthorized_with_trimmed_messages() {
    for (message, expected) in [
        ("Authorization required\t", "Authorization required"),
        (
            "Invalid API Key or User doesn't exist",
            "Invalid API Key or User doesn't exist",
        ),
    ] {
        let body = json!({"message": message, "status": "failed", "data": null}).to_string();
        match rejection(401, &body).await {
            Error::Unauthorized { message, raw } => {
                assert_eq!(message, expected);
                assert_eq!(raw.http_status, 401);
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn api_disabled_404_is_a_rejection() {
    let err = rejection(
        404,
        r#"{"message":"Payments through API is disabled, please contact us","status":"failed","data":null}"#,
    )
    .await;
    assert!(
        matches!(
            err,
            Error::Rejected {
                http_status: 404,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn too_many_requests_is_a_transient_rejection() {
    let err = rejection(
        429,
        r#"{"message":"Too many requests","status":"failed","data":null}"#,
    )
    .await;
    assert!(
        matches!(
            err,
            Error::Rejected {
                http_status: 429,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn garbage_and_missing_checkout_url_are_invalid_answers() {
    for (status, body) in [
        (200, "<html>oops</html>"),
        (
            200,
            r#"{"message":"Hosted Link","status":"success","data":{}}"#,
        ),
        (
            200,
            r#"{"message":"Hosted Link","status":"success","data":{"checkout_url":"not a url"}}"#,
        ),
        (200, r#"["Hosted Link"]"#),
        (400, "Bad Request"),
    ] {
        let err = rejection(status, body).await;
        match &err {
            Error::InvalidAnswer {
                http_status, raw, ..
            } => {
                assert_eq!(*http_status, status);
                assert_eq!(raw.body, body);
            }
            other => panic!("{body}: expected InvalidAnswer, got {other:?}"),
        }
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn a_5xx_is_a_transient_server_error() {
    let err = rejection(502, "<html>Bad Gateway</html>").await;
    assert!(
        matches!(
            err,
            Error::ServerError {
                http_status: 502,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(HOSTED_LINK))
        .expect(0)
        .mount(&server)
        .await;
    let client = client(&server).await;
    for request in [
        InitializeRequest::new(Amount::ZERO, "ETB", "tx-1"),
        InitializeRequest::new(Amount::from_minor(100), "", "tx-1"),
        InitializeRequest::new(Amount::from_minor(100), "ETB", ""),
        InitializeRequest::new(Amount::from_minor(100), "ETB", "tx 1/../x"),
    ] {
        let err = client.initialize(&request).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }
}
