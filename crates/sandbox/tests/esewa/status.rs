//! The status check API: each of the seven statuses, and its refusals.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{parse, Harness, PRODUCT, STATUS};

/// The exact answer body (esewa.md §5.2: keys in the docs' order, a numeric total).
fn body(uuid: &str, total: &str, status: &str, ref_id: Option<&str>) -> String {
    let ref_id = ref_id.map_or("null".to_owned(), |r| format!("\"{r}\""));
    format!(
        r#"{{"product_code":"EPAYTEST","transaction_uuid":"{uuid}","total_amount":{total},"status":"{status}","ref_id":{ref_id}}}"#
    )
}

async fn check(h: &Harness, uuid: &str) -> (StatusCode, String) {
    h.status_text(&[
        ("product_code", PRODUCT),
        ("total_amount", "110"),
        ("transaction_uuid", uuid),
    ])
    .await
}

fn ref_of(h: &Harness, uuid: &str) -> String {
    h.sandbox.esewa().payment(uuid).unwrap()["ref_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_status_has_the_docs_body() {
    let h = Harness::start().await;
    let control = h.sandbox.esewa();

    // PENDING: the form reached eSewa, nobody paid yet.
    let pending = h.new_payment().await;
    assert_eq!(
        check(&h, &pending).await,
        (StatusCode::OK, body(&pending, "110.0", "PENDING", None))
    );

    // COMPLETE after Pay.
    let paid = h.new_payment().await;
    h.pay(&paid).await;
    let r = ref_of(&h, &paid);
    assert_eq!(
        check(&h, &paid).await,
        (StatusCode::OK, body(&paid, "110.0", "COMPLETE", Some(&r)))
    );

    // CANCELED after Cancel.
    let canceled = h.new_payment().await;
    h.submit(&canceled, "", "", "", "cancel").await;
    let r = ref_of(&h, &canceled);
    assert_eq!(
        check(&h, &canceled).await,
        (
            StatusCode::OK,
            body(&canceled, "110.0", "CANCELED", Some(&r))
        )
    );

    // NOT_FOUND for an unknown uuid, echoing the query.
    assert_eq!(
        check(&h, "never-posted").await,
        (
            StatusCode::OK,
            body("never-posted", "110.0", "NOT_FOUND", None)
        )
    );

    // NOT_FOUND once the session expired.
    let expired = h.new_payment().await;
    control.expire(&expired).unwrap();
    assert_eq!(
        check(&h, &expired).await,
        (StatusCode::OK, body(&expired, "110.0", "NOT_FOUND", None))
    );

    // AMBIGUOUS by the control, then settled.
    let halted = h.new_payment().await;
    control.ambiguous(&halted).unwrap();
    let r = ref_of(&h, &halted);
    assert_eq!(
        check(&h, &halted).await,
        (
            StatusCode::OK,
            body(&halted, "110.0", "AMBIGUOUS", Some(&r))
        )
    );
    control.complete(&halted).unwrap();
    assert_eq!(
        check(&h, &halted).await,
        (StatusCode::OK, body(&halted, "110.0", "COMPLETE", Some(&r)))
    );

    // PARTIAL_REFUND then FULL_REFUND, refunds made by eSewa outside the API.
    control.partial_refund(&paid).unwrap();
    let r = ref_of(&h, &paid);
    assert_eq!(
        check(&h, &paid).await,
        (
            StatusCode::OK,
            body(&paid, "110.0", "PARTIAL_REFUND", Some(&r))
        )
    );
    control.refund(&paid).unwrap();
    assert_eq!(
        check(&h, &paid).await,
        (
            StatusCode::OK,
            body(&paid, "110.0", "FULL_REFUND", Some(&r))
        )
    );
    assert_eq!(h.sandbox.esewa().payment(&paid).unwrap()["checks"], 3);
}

#[tokio::test]
async fn amounts_compare_as_numbers() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    for total in ["110", "110.0", "110.00", "110."] {
        let (status, text) = h
            .status_text(&[
                ("product_code", PRODUCT),
                ("total_amount", total),
                ("transaction_uuid", &uuid),
            ])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(parse(&text)["status"], "PENDING", "{total}");
    }
    // Another amount: NOT_FOUND, echoing the amount asked for.
    for (total, echoed) in [
        ("100", json!(100.0)),
        ("110.5", json!(110.5)),
        ("110.001", json!(110.001)),
    ] {
        let (status, text) = h
            .status_text(&[
                ("product_code", PRODUCT),
                ("total_amount", total),
                ("transaction_uuid", &uuid),
            ])
            .await;
        assert_eq!(status, StatusCode::OK);
        let body = parse(&text);
        assert_eq!(body["status"], "NOT_FOUND", "{total}");
        assert_eq!(body["total_amount"], echoed);
        assert_eq!(body["ref_id"], json!(null));
    }
}

#[tokio::test]
async fn bad_queries_are_refused() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    for query in [
        vec![("product_code", PRODUCT), ("total_amount", "110")],
        vec![
            ("product_code", PRODUCT),
            ("transaction_uuid", uuid.as_str()),
        ],
        vec![("total_amount", "110"), ("transaction_uuid", uuid.as_str())],
        vec![
            ("product_code", PRODUCT),
            ("total_amount", ""),
            ("transaction_uuid", uuid.as_str()),
        ],
        vec![
            ("product_code", PRODUCT),
            ("total_amount", "abc"),
            ("transaction_uuid", uuid.as_str()),
        ],
        vec![
            ("product_code", PRODUCT),
            ("total_amount", "1,100"),
            ("transaction_uuid", uuid.as_str()),
        ],
    ] {
        let (status, text) = h.status_text(&query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query:?}");
        let body = parse(&text);
        // Spring Boot's error body: `status` is a number, not a payment status.
        assert_eq!(body["status"], 400, "{body}");
        assert_eq!(body["error"], "Bad Request");
        assert_eq!(body["path"], "/api/epay/transaction/status/");
        assert!(body["timestamp"].is_string());
    }
    let (status, text) = h
        .status_text(&[
            ("product_code", "OTHER"),
            ("total_amount", "110"),
            ("transaction_uuid", &uuid),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        text,
        r#"{"error_message":"Unable to fetch merchant key. Please try again later.","code":0}"#
    );
}

#[tokio::test]
async fn the_path_works_without_its_trailing_slash() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    let response = h
        .client
        .get(h.url(STATUS.trim_end_matches('/')))
        .query(&[
            ("product_code", PRODUCT),
            ("total_amount", "110"),
            ("transaction_uuid", &uuid),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(parse(&response.text().await.unwrap())["status"], "PENDING");
}

#[tokio::test]
async fn pending_and_ambiguous_settle_after_the_configured_checks() {
    let h = Harness::start().await;
    for outcome in ["pending", "ambiguous"] {
        h.put_settings(json!({"outcome": outcome, "complete_after_checks": 2}))
            .await;
        let uuid = h.new_payment().await;
        h.pay(&uuid).await;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (_, body) = h.status(&uuid).await;
            seen.push(body["status"].as_str().unwrap().to_owned());
        }
        let first = outcome.to_ascii_uppercase();
        assert_eq!(
            seen,
            [first.as_str(), first.as_str(), "COMPLETE", "COMPLETE"],
            "{outcome}"
        );
        // Settled late: the redirect it would now give is the signed success one.
        let record = h.sandbox.esewa().payment(&uuid).unwrap();
        crate::common::success_data(
            record["redirect_url"].as_str().unwrap(),
            crate::common::SUCCESS_URL,
            crate::common::SECRET,
        );
    }
}

#[tokio::test]
async fn a_pending_payment_stays_pending_without_the_setting() {
    let h = Harness::start().await;
    h.put_settings(json!({"outcome": "pending"})).await;
    let uuid = h.new_payment().await;
    h.pay(&uuid).await;
    for _ in 0..3 {
        assert_eq!(h.status(&uuid).await.1["status"], "PENDING");
    }
}
