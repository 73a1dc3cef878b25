//! Sandbox-only controls: settings, forced outcomes, faults, latency, auto-complete,
//! the index page.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::{EsewaFault, EsewaSettings};

use crate::common::{
    fresh_uuid, location, parse, success_data, Form, Harness, FAILURE_URL, PRODUCT, SECRET,
    SETTINGS, STATUS, SUCCESS_URL,
};

async fn raw_status(h: &Harness, uuid: &str) -> reqwest::Response {
    h.client
        .get(h.url(STATUS))
        .query(&[
            ("product_code", PRODUCT),
            ("total_amount", "110"),
            ("transaction_uuid", uuid),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn settings_read_and_partially_update() {
    let h = Harness::start().await;
    let response = h.client.get(h.url(SETTINGS)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        parse(&response.text().await.unwrap()),
        json!({
            "product_code": "EPAYTEST", "secret_key": SECRET, "auto_complete": false,
            "outcome": "complete", "outcome_count": 0, "complete_after_checks": 0,
            "group_thousands": false, "outage_status": 200, "latency_ms": 0,
            "fault": "none", "fault_count": 0
        })
    );
    let (status, body) = h
        .put_settings(json!({"fault": "outage", "fault_count": 3, "outcome": "ambiguous"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fault"], "outage");
    assert_eq!(body["outcome"], "ambiguous");
    assert_eq!(body["product_code"], "EPAYTEST", "untouched keys are kept");
    let settings = h.sandbox.esewa().settings();
    assert_eq!(
        (settings.fault, settings.fault_count),
        (EsewaFault::Outage, 3)
    );

    for bad in [
        json!({"no_such_setting": 1}),
        json!({"fault": "explode"}),
        json!({"outcome": "COMPLETE"}),
        json!({"latency_ms": "slow"}),
        json!({"secret_key": ""}),
        json!({"product_code": " "}),
        json!({"outage_status": 42}),
        json!([1]),
    ] {
        let (status, body) = h.put_settings(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(
        h.sandbox.esewa().settings(),
        settings,
        "rejected PUTs change nothing"
    );
}

#[tokio::test]
async fn another_merchant_can_be_configured() {
    let h = Harness::with(EsewaSettings {
        product_code: "TIJORI1".into(),
        secret_key: "s3cr3t".into(),
        ..EsewaSettings::default()
    })
    .await;
    let uuid = fresh_uuid();
    let mut form = Form::sample(&uuid).set("product_code", "TIJORI1");
    // Signed with the UAT key: refused.
    form.sign(SECRET);
    let response = h.post_form(&form).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(parse(&response.text().await.unwrap())["code"], "ES104");
    form.sign("s3cr3t");
    assert_eq!(h.post_form(&form).await.status(), StatusCode::FOUND);
    let response = h.pay(&uuid).await;
    let data = success_data(&location(&response), SUCCESS_URL, "s3cr3t");
    assert_eq!(data.json["product_code"], "TIJORI1");
    // EPAYTEST is unknown to this sandbox now.
    assert_eq!(
        raw_status(&h, &uuid).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn control_actions_follow_the_lifecycle() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;

    let (status, body) = h.control(&uuid, "explode").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("unknown action"));
    let (status, _) = h.control("no-such-uuid", "complete").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = h.control(&uuid, "refund").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a PENDING payment has nothing to refund"
    );
    assert!(
        body["error"].as_str().unwrap().contains("PENDING"),
        "{body}"
    );

    let (status, record) = h.control(&uuid, "complete").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "COMPLETE");
    let data = success_data(
        record["redirect_url"].as_str().unwrap(),
        SUCCESS_URL,
        SECRET,
    );
    assert_eq!(data.json["transaction_code"], record["ref_id"]);

    for (action, expected) in [
        ("partial_refund", StatusCode::OK),
        ("refund", StatusCode::OK),
        ("partial_refund", StatusCode::CONFLICT),
        ("complete", StatusCode::CONFLICT),
        ("cancel", StatusCode::CONFLICT),
        ("expire", StatusCode::CONFLICT),
    ] {
        assert_eq!(h.control(&uuid, action).await.0, expected, "{action}");
    }
    assert_eq!(h.status(&uuid).await.1["status"], "FULL_REFUND");

    // pending and ambiguous send the browser to failure_url; expire nowhere.
    let p = h.new_payment().await;
    let (_, record) = h.control(&p, "pending").await;
    assert_eq!(
        (record["status"].clone(), record["redirect_url"].clone()),
        (json!("PENDING"), json!(FAILURE_URL))
    );
    let (_, record) = h.control(&p, "cancel").await;
    assert_eq!(record["status"], "CANCELED");
    let a = h.new_payment().await;
    let (_, record) = h.control(&a, "ambiguous").await;
    assert_eq!(
        (record["status"].clone(), record["redirect_url"].clone()),
        (json!("AMBIGUOUS"), json!(FAILURE_URL))
    );
    assert_eq!(h.control(&a, "expire").await.0, StatusCode::CONFLICT);
    let e = h.new_payment().await;
    let (_, record) = h.control(&e, "expire").await;
    assert_eq!(
        (record["status"].clone(), record["redirect_url"].clone()),
        (json!("NOT_FOUND"), Value::Null)
    );

    // Listing, newest first.
    let response = h
        .client
        .get(h.url("esewa/_sandbox/payments"))
        .send()
        .await
        .unwrap();
    let list = parse(&response.text().await.unwrap());
    let uuids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["transaction_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, [e.as_str(), a.as_str(), p.as_str(), uuid.as_str()]);
    let response = h
        .client
        .get(h.url(&format!("esewa/_sandbox/payments/{a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        parse(&response.text().await.unwrap())["status"],
        "AMBIGUOUS"
    );
    let response = h
        .client
        .get(h.url("esewa/_sandbox/payments/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fault_outage_answers_the_documented_body() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    h.put_settings(json!({"fault": "outage", "fault_count": 1}))
        .await;
    let response = raw_status(&h, &uuid).await;
    assert_eq!(response.status(), StatusCode::OK, "pay-np: 200 by default");
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        r#"{"code":0,"error_message":"Service is currently unavailable"}"#
    );
    assert!(parse(&text).get("status").is_none(), "no status to misread");
    // The count ran out: a normal answer.
    assert_eq!(raw_status(&h, &uuid).await.status(), StatusCode::OK);
    assert_eq!(h.status(&uuid).await.1["status"], "PENDING");

    h.put_settings(json!({"fault": "outage", "outage_status": 503}))
        .await;
    let response = raw_status(&h, &uuid).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        parse(&response.text().await.unwrap())["error_message"],
        "Service is currently unavailable"
    );
    // fault_count 0: until changed.
    assert_eq!(
        raw_status(&h, &uuid).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn fault_server_error_and_garbage() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    h.put_settings(json!({"fault": "server_error", "fault_count": 2}))
        .await;
    for _ in 0..2 {
        let response = raw_status(&h, &uuid).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = parse(&response.text().await.unwrap());
        assert_eq!(
            body["status"], 500,
            "a number, not a payment status: {body}"
        );
        assert_eq!(body["error"], "Internal Server Error");
    }
    let settings = h.sandbox.esewa().settings();
    assert_eq!(
        (settings.fault, settings.fault_count),
        (EsewaFault::None, 0)
    );
    assert_eq!(raw_status(&h, &uuid).await.status(), StatusCode::OK);

    h.put_settings(json!({"fault": "garbage", "fault_count": 1}))
        .await;
    let response = raw_status(&h, &uuid).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(h.status(&uuid).await.1["status"], "PENDING");
}

#[tokio::test]
async fn fault_timeout_holds_the_status_call() {
    let h = Harness::with(EsewaSettings {
        fault: EsewaFault::Timeout,
        ..EsewaSettings::default()
    })
    .await;
    let started = Instant::now();
    let result = h
        .client
        .get(h.url(STATUS))
        .query(&[
            ("product_code", PRODUCT),
            ("total_amount", "110"),
            ("transaction_uuid", "x"),
        ])
        .timeout(Duration::from_millis(800))
        .send()
        .await;
    let err = result.expect_err("no answer within the client's timeout");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(700));
}

#[tokio::test]
async fn faults_and_latency_spare_the_form_and_the_page() {
    let h = Harness::with(EsewaSettings {
        fault: EsewaFault::Timeout,
        latency_ms: 2_000,
        ..EsewaSettings::default()
    })
    .await;
    let started = Instant::now();
    let uuid = h.new_payment().await;
    let response = h.pay(&uuid).await;
    success_data(&location(&response), SUCCESS_URL, SECRET);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        h.sandbox.esewa().settings().fault,
        EsewaFault::Timeout,
        "not consumed"
    );
}

#[tokio::test]
async fn latency_delays_status_answers() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    h.put_settings(json!({"latency_ms": 300})).await;
    let started = Instant::now();
    assert_eq!(h.status(&uuid).await.1["status"], "PENDING");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn auto_complete_redirects_the_form_straight_to_signed_success() {
    let h = Harness::with(EsewaSettings {
        auto_complete: true,
        ..EsewaSettings::default()
    })
    .await;
    let uuid = fresh_uuid();
    let response = h.post_form(&Form::sample(&uuid)).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let data = success_data(&location(&response), SUCCESS_URL, SECRET);
    assert_eq!(data.json["status"], "COMPLETE");
    assert_eq!(data.json["total_amount"], "110.0");
    let (_, body) = h.status(&uuid).await;
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["ref_id"], data.json["transaction_code"]);
    assert_eq!(
        h.sandbox.esewa().payment(&uuid).unwrap()["payer"],
        "9806800001"
    );
    // Refused forms stay refused.
    let bad = Form::sample(&fresh_uuid()).set("total_amount", "111");
    assert_eq!(h.post_form(&bad).await.status(), StatusCode::BAD_REQUEST);

    // The outcome switch applies to the automatic Pay too.
    h.put_settings(json!({"outcome": "ambiguous", "outcome_count": 1}))
        .await;
    let uuid = fresh_uuid();
    let response = h.post_form(&Form::sample(&uuid)).await;
    assert_eq!(location(&response), FAILURE_URL);
    assert_eq!(h.status(&uuid).await.1["status"], "AMBIGUOUS");
}

#[tokio::test]
async fn index_page_has_an_esewa_section() {
    let h = Harness::start().await;
    let open = h.new_payment().await;
    let done = h.new_payment().await;
    h.pay(&done).await;
    let response = h.client.get(h.url("")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    for needle in [
        "<h2>eSewa (ePay v2)</h2>".to_owned(),
        format!("{}esewa/api/epay/main/v2/form", h.base),
        format!("{}esewa/api/epay/transaction/status/", h.base),
        format!("{}esewa/_sandbox/", h.base),
        "EPAYTEST".to_owned(),
        "8gBm/:&amp;EnhH.1/q".to_owned(),
        "9806800005".to_owned(),
        "Nepal@123".to_owned(),
        format!("{}esewa/checkout/{open}", h.base),
        done.clone(),
        "COMPLETE".to_owned(),
        // The others are still there.
        "<h2>Khalti</h2>".to_owned(),
        "<h2>Chapa</h2>".to_owned(),
    ] {
        assert!(html.contains(&needle), "missing {needle:?} in\n{html}");
    }
    assert!(
        !html.contains(&format!("esewa/checkout/{done}")),
        "a paid payment has no link"
    );
}
