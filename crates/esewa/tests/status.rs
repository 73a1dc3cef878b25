//! `GET api/epay/transaction/status/` for every status of esewa.md §5.3, the outage answer
//! of §5.4, and what is not an answer.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use esewa::{Error, Paisa, Status, StatusAnswer};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, uuid, PRODUCT_CODE, STATUS_PATH};

/// The docs' request: `?product_code=EPAYTEST&total_amount=100&transaction_uuid=123`.
async fn answer(http_status: u16, body: &str) -> (MockServer, Result<StatusAnswer, Error>) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .and(query_param("product_code", PRODUCT_CODE))
        .and(query_param("total_amount", "100"))
        .and(query_param("transaction_uuid", "123"))
        .respond_with(ResponseTemplate::new(http_status).set_body_string(body))
        .expect(1)
        .mount(&server)
        .await;
    let result = client(&server)
        .await
        .status(&uuid("123"), Paisa::new(10000))
        .await;
    (server, result)
}

/// The docs' COMPLETE sample (esewa.md §5.2), as printed.
const COMPLETE: &str = r#"{
  "product_code": "EPAYTEST",
  "transaction_uuid": "123",
  "total_amount": 100.0,
  "status": "COMPLETE",
  "ref_id": "0001TS9"
}"#;

/// The same answer for another status, `ref_id` as the docs' samples have it (esewa.md
/// §5.3: `null` for PENDING and NOT_FOUND) and `total_amount` as `100` for FULL_REFUND.
fn body(status: &str, total: &str, ref_id: Option<&str>) -> String {
    let ref_id = ref_id.map_or("null".to_string(), |r| format!("\"{r}\""));
    format!(
        r#"{{"product_code":"EPAYTEST","transaction_uuid":"123","total_amount":{total},"status":"{status}","ref_id":{ref_id}}}"#
    )
}

#[tokio::test]
async fn the_docs_complete_sample_is_paid() {
    let (_server, result) = answer(200, COMPLETE).await;
    let answer = result.unwrap();
    assert_eq!(answer.status, Status::Complete);
    assert_eq!(answer.transaction_uuid, "123");
    assert_eq!(answer.total_amount, Some(Paisa::new(10000)));
    assert_eq!(answer.ref_id.as_deref(), Some("0001TS9"));
    assert_eq!(answer.raw.http_status, 200);
    assert_eq!(answer.raw.body, COMPLETE);
    assert!(answer.confirms(Paisa::new(10000)));
    assert!(!answer.confirms(Paisa::new(10001)));
}

#[tokio::test]
async fn every_documented_status_is_an_answer() {
    let cases = [
        ("PENDING", "100.0", None, Status::Pending),
        ("COMPLETE", "100.0", Some("0001TS9"), Status::Complete),
        ("FULL_REFUND", "100", Some("0001TS9"), Status::FullRefund),
        (
            "PARTIAL_REFUND",
            "100.0",
            Some("0001TS9"),
            Status::PartialRefund,
        ),
        ("AMBIGUOUS", "100.0", Some("0001TS9"), Status::Ambiguous),
        ("NOT_FOUND", "100.0", None, Status::NotFound),
        ("CANCELED", "100.0", Some("0001TS9"), Status::Canceled),
    ];
    for (status, total, ref_id, expected) in cases {
        let text = body(status, total, ref_id);
        let (_server, result) = answer(200, &text).await;
        let answer = result.unwrap_or_else(|e| panic!("{status}: {e:?}"));
        assert_eq!(answer.status, expected, "{status}");
        assert_eq!(answer.status.as_str(), status);
        assert_eq!(answer.total_amount, Some(Paisa::new(10000)), "{status}");
        assert_eq!(answer.ref_id.as_deref(), ref_id, "{status}");
        assert_eq!(answer.raw.body, text);
        assert_eq!(answer.confirms(Paisa::new(10000)), status == "COMPLETE");
    }
}

#[tokio::test]
async fn a_not_found_without_an_amount_is_still_an_answer() {
    // Undocumented, tolerated: nothing was paid, so no amount is needed.
    let text = r#"{"product_code":"EPAYTEST","transaction_uuid":"123","total_amount":null,"status":"NOT_FOUND","ref_id":null}"#;
    let (_server, result) = answer(200, text).await;
    let answer = result.unwrap();
    assert_eq!(answer.status, Status::NotFound);
    assert_eq!(answer.total_amount, None);
    assert!(!answer.confirms(Paisa::new(10000)));
}

#[tokio::test]
async fn a_status_body_on_a_4xx_is_still_an_answer() {
    // The HTTP codes are undocumented (esewa.md §5.2): the body decides.
    let text = body("NOT_FOUND", "100.0", None);
    let (_server, result) = answer(404, &text).await;
    let answer = result.unwrap();
    assert_eq!(answer.status, Status::NotFound);
    assert_eq!(answer.raw.http_status, 404);
}

#[tokio::test]
async fn an_unknown_status_is_kept_verbatim() {
    let (_server, result) = answer(200, &body("REVERSED", "100.0", Some("0001TS9"))).await;
    let answer = result.unwrap();
    assert_eq!(answer.status, Status::Other("REVERSED".into()));
    assert!(!answer.confirms(Paisa::new(10000)));
}

#[tokio::test]
async fn the_outage_answer_is_not_a_status() {
    // esewa.md §5.4, as documented, with HTTP 200 (as pay-np meets it) and with a 503.
    let outage = r#"{"code": 0, "error_message": "Service is currently unavailable"}"#;
    for http in [200, 503] {
        let (_server, result) = answer(http, outage).await;
        let err = result.unwrap_err();
        match &err {
            Error::Unavailable { code, message, raw } => {
                assert_eq!(code.as_deref(), Some("0"));
                assert_eq!(message, "Service is currently unavailable");
                assert_eq!(raw.http_status, http);
                assert_eq!(raw.body, outage);
            }
            other => panic!("HTTP {http}: expected Unavailable, got {other:?}"),
        }
        assert!(err.is_transient());
        assert_eq!(
            err.reason(),
            "eSewa is unavailable: Service is currently unavailable"
        );
    }
}

#[tokio::test]
async fn an_unknown_merchant_is_unauthorized() {
    // esewa.md §3.3 / §11 row 6.
    let text =
        r#"{"error_message":"Unable to fetch merchant key. Please try again later.","code":0}"#;
    let (_server, result) = answer(400, text).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(err.raw().unwrap().body, text);
}

#[tokio::test]
async fn a_5xx_is_a_server_error() {
    for (http, text) in [
        (
            500,
            r#"{"timestamp":"2025-06-10T10:00:00.000+00:00","status":500,"error":"Internal Server Error","path":"/api/epay/transaction/status/"}"#,
        ),
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ] {
        let (_server, result) = answer(http, text).await;
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::ServerError { http_status, .. } if *http_status == http),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(err.raw().unwrap().body, text);
    }
}

#[tokio::test]
async fn garbage_is_an_invalid_answer() {
    for text in [
        "",
        "<html>maintenance</html>",
        "COMPLETE",
        "[]",
        r#"{"status":"COMPLETE"}"#,
        r#"{"product_code":"EPAYTEST","transaction_uuid":"124","total_amount":100.0,"status":"COMPLETE","ref_id":"0001TS9"}"#,
        r#"{"product_code":"EPAYTEST","transaction_uuid":"123","total_amount":"a lot","status":"COMPLETE","ref_id":"0001TS9"}"#,
        r#"{"message":"ok"}"#,
    ] {
        let (_server, result) = answer(200, text).await;
        let err = result.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::InvalidAnswer {
                    http_status: 200,
                    ..
                }
            ),
            "{text}: {err:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(err.raw().unwrap().body, text);
    }
}

#[tokio::test]
async fn a_refused_query_is_rejected() {
    let text = r#"{"timestamp":"2025-06-10T10:00:00.000+00:00","status":400,"error":"Bad Request","path":"/api/epay/transaction/status/"}"#;
    let (_server, result) = answer(400, text).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Rejected {
                http_status: 400,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reason(), "Bad Request");
}

#[tokio::test]
async fn the_query_carries_the_forms_rupee_text() {
    // 110.50 rupees: sent as the form would post it, `110.5`.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(STATUS_PATH))
        .and(query_param("product_code", PRODUCT_CODE))
        .and(query_param("total_amount", "110.5"))
        .and(query_param("transaction_uuid", "250610-162413"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"product_code":"EPAYTEST","transaction_uuid":"250610-162413","total_amount":110.5,"status":"PENDING","ref_id":null}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let answer = client(&server)
        .await
        .status(&uuid("250610-162413"), Paisa::new(11050))
        .await
        .unwrap();
    assert_eq!(answer.status, Status::Pending);
    assert_eq!(answer.total_amount, Some(Paisa::new(11050)));
}
