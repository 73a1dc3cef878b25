//! `POST epayment/lookup/` for every status in khalti.md §5.2 and its error cases.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod common;

use khalti::{Error, LookupStatus, Paisa};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, AUTH};

const PIDX: &str = "HT6o6PEZRWFJ5ygavzHWd5";
const TXN: &str = "GFq9PFS7b2iYvL8Lir9oXe";

async fn answer(http_status: u16, body: &str) -> (MockServer, Result<khalti::Lookup, Error>) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/lookup/"))
        .and(header("authorization", AUTH))
        .and(body_json(json!({ "pidx": PIDX })))
        .respond_with(ResponseTemplate::new(http_status).set_body_string(body))
        .expect(1)
        .mount(&server)
        .await;
    let result = client(&server).await.lookup(PIDX).await;
    (server, result)
}

fn body(status: &str, transaction_id: Option<&str>, refunded: bool) -> String {
    json!({
        "pidx": PIDX,
        "total_amount": 1000,
        "status": status,
        "transaction_id": transaction_id,
        "fee": 0,
        "refunded": refunded
    })
    .to_string()
}

#[tokio::test]
async fn every_documented_status_is_an_answer() {
    // (status text, HTTP code, transaction id, refunded, expected) from khalti.md §5.2,
    // plus the two older names.
    let cases = [
        ("Initiated", 200, None, false, LookupStatus::Initiated),
        ("Pending", 200, None, false, LookupStatus::Pending),
        ("Completed", 200, Some(TXN), false, LookupStatus::Completed),
        ("Refunded", 200, Some(TXN), true, LookupStatus::Refunded),
        (
            "Partially Refunded",
            200,
            Some(TXN),
            false,
            LookupStatus::PartiallyRefunded,
        ),
        (
            "Partially refunded",
            200,
            Some(TXN),
            true,
            LookupStatus::PartiallyRefunded,
        ),
        ("Expired", 400, None, false, LookupStatus::Expired),
        (
            "User canceled",
            400,
            None,
            false,
            LookupStatus::UserCanceled,
        ),
        ("Canceled", 400, None, false, LookupStatus::Canceled),
        ("Failed", 200, None, false, LookupStatus::Failed),
    ];
    for (status, http, txn, refunded, expected) in cases {
        let text = body(status, txn, refunded);
        let (_server, result) = answer(http, &text).await;
        let lookup = result.unwrap_or_else(|e| panic!("{status} with HTTP {http}: {e:?}"));
        assert_eq!(lookup.status, expected, "{status}");
        assert_eq!(lookup.pidx, PIDX);
        assert_eq!(lookup.total_amount, Paisa::new(1000));
        assert_eq!(lookup.transaction_id.as_deref(), txn, "{status}");
        assert_eq!(lookup.fee, Paisa::ZERO);
        assert_eq!(lookup.refunded, refunded, "{status}");
        assert_eq!(lookup.raw.http_status, http);
        assert_eq!(lookup.raw.body, text);
        assert_eq!(lookup.status.is_completed(), status == "Completed");
    }
}

#[tokio::test]
async fn the_docs_completed_sample() {
    let text = r#"{
  "pidx": "HT6o6PEZRWFJ5ygavzHWd5",
  "total_amount": 1000,
  "status": "Completed",
  "transaction_id": "GFq9PFS7b2iYvL8Lir9oXe",
  "fee": 0,
  "refunded": false
}"#;
    let (_server, result) = answer(200, text).await;
    let lookup = result.unwrap();
    assert_eq!(lookup.status, LookupStatus::Completed);
    assert_eq!(lookup.transaction_id.as_deref(), Some(TXN));
    assert_eq!(lookup.raw.body, text);
}

#[tokio::test]
async fn unknown_status_is_kept_verbatim() {
    let (_server, result) = answer(200, &body("On Hold", None, false)).await;
    let lookup = result.unwrap();
    assert_eq!(lookup.status, LookupStatus::Other("On Hold".into()));
    assert!(!lookup.status.is_completed());
    assert!(!lookup.status.is_failed());
}

#[tokio::test]
async fn amounts_as_strings_and_unknown_fields_are_accepted() {
    let text = json!({
        "pidx": PIDX,
        "total_amount": "1000",
        "status": "Completed",
        "transaction_id": TXN,
        "fee": "30",
        "refunded": false,
        "purchase_order_id": "test12",
        "extra_merchant_params": {"a": "b"}
    })
    .to_string();
    let (_server, result) = answer(200, &text).await;
    let lookup = result.unwrap();
    assert_eq!(lookup.total_amount, Paisa::new(1000));
    assert_eq!(lookup.fee, Paisa::new(30));
}

#[tokio::test]
async fn fractional_amount_is_an_invalid_answer() {
    let text = json!({
        "pidx": PIDX, "total_amount": 10.5, "status": "Completed",
        "transaction_id": TXN, "fee": 0, "refunded": false
    })
    .to_string();
    let (_server, result) = answer(200, &text).await;
    match result.unwrap_err() {
        Error::InvalidAnswer { reason, .. } => assert!(reason.contains("fractional"), "{reason}"),
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_broken_lookup_body_under_400_is_still_an_invalid_answer() {
    // It claims to be a lookup answer (status + pidx) but the amount is unusable.
    let text = json!({ "pidx": PIDX, "total_amount": -1, "status": "Expired" }).to_string();
    let (_server, result) = answer(400, &text).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidAnswer {
                http_status: 400,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn empty_transaction_id_reads_as_none() {
    let (_server, result) = answer(400, &body("User canceled", Some(""), false)).await;
    assert_eq!(result.unwrap().transaction_id, None);
}

#[tokio::test]
async fn unknown_pidx_is_not_found() {
    let text = r#"{"detail": "Not found.", "error_key": "validation_error"}"#;
    let (_server, result) = answer(404, text).await;
    let err = result.unwrap_err();
    assert!(!err.is_transient());
    assert!(err.reason().contains("Not found."), "{}", err.reason());
    match err {
        Error::NotFound { detail, raw } => {
            assert_eq!(detail, "Not found.");
            assert_eq!(raw.http_status, 404);
            assert_eq!(raw.body, text);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_pidx_with_400_is_also_not_found() {
    // khalti.md §12.1: the status code for an unknown pidx is not documented.
    let text = r#"{"detail": "Not found.", "error_key": "validation_error"}"#;
    let (_server, result) = answer(400, text).await;
    assert!(
        matches!(result, Err(Error::NotFound { ref detail, .. }) if detail == "Not found."),
        "{result:?}"
    );
}

#[tokio::test]
async fn blank_pidx_validation_is_rejected() {
    let text = r#"{"pidx": ["This field may not be blank."], "error_key": "validation_error"}"#;
    let (_server, result) = answer(400, text).await;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "pidx: This field may not be blank.");
    assert!(matches!(err, Error::Rejected { .. }));
}

#[tokio::test]
async fn invalid_token_on_lookup_is_unauthorized() {
    let (_server, result) =
        answer(401, r#"{"detail": "Invalid token.", "status_code": 401}"#).await;
    assert!(
        matches!(result, Err(Error::Unauthorized { ref detail, .. }) if detail == "Invalid token."),
        "{result:?}"
    );
}

#[tokio::test]
async fn answer_about_another_pidx_is_refused() {
    let text = json!({
        "pidx": "someOtherPidx000000000", "total_amount": 1000, "status": "Completed",
        "transaction_id": TXN, "fee": 0, "refunded": false
    })
    .to_string();
    let (_server, result) = answer(200, &text).await;
    match result.unwrap_err() {
        Error::InvalidAnswer { reason, .. } => {
            assert!(reason.contains("someOtherPidx"), "{reason}")
        }
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn body_without_status_is_an_invalid_answer() {
    let text = json!({ "pidx": PIDX, "total_amount": 1000 }).to_string();
    let (_server, result) = answer(200, &text).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidAnswer {
                http_status: 200,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn garbage_with_200_is_an_invalid_answer() {
    let (_server, result) = answer(200, "OK").await;
    match result.unwrap_err() {
        Error::InvalidAnswer { reason, raw, .. } => {
            assert!(reason.contains("not JSON"), "{reason}");
            assert_eq!(raw.body, "OK");
        }
        other => panic!("expected InvalidAnswer, got {other:?}"),
    }
}

#[tokio::test]
async fn html_502_on_lookup_is_transient() {
    let (_server, result) = answer(502, "<html><body>Bad Gateway</body></html>").await;
    let err = result.unwrap_err();
    assert!(err.is_transient());
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
}

#[tokio::test]
async fn a_lookup_body_with_500_is_still_a_server_error() {
    let (_server, result) = answer(500, &body("Completed", Some(TXN), false)).await;
    assert!(
        matches!(
            result,
            Err(Error::ServerError {
                http_status: 500,
                ..
            })
        ),
        "{result:?}"
    );
}
