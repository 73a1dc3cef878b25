//! Sandbox-only controls, settings, faults, latency and the index page.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tijori_sandbox::{ChapaSettings, Fault, DEFAULT_CHAPA_SECRET_KEY};

use crate::common::{fresh_ref, json_of, sample, Harness, Receiver};

#[tokio::test]
async fn settings_get_and_partial_put() {
    let h = Harness::start().await;
    let (status, json) = json_of(
        h.client
            .get(h.url("chapa/_sandbox/settings"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json,
        serde_json::to_value(ChapaSettings::default()).unwrap()
    );
    assert_eq!(json["secret_key"], DEFAULT_CHAPA_SECRET_KEY);
    assert_eq!(json["webhook_url"], serde_json::Value::Null);

    let (status, json) = h
        .put_settings(json!({"webhook_url": "http://127.0.0.1:1/hook", "webhook_retry_ms": [1, 2]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let settings = h.sandbox.chapa().settings();
    assert_eq!(
        settings.webhook_url.as_deref(),
        Some("http://127.0.0.1:1/hook")
    );
    assert_eq!(settings.webhook_retry_ms, vec![1, 2]);
    assert_eq!(settings.secret_key, DEFAULT_CHAPA_SECRET_KEY, "kept");

    for bad in [
        json!({"nope": 1}),
        json!({"webhook_url": "ftp://x"}),
        json!({"secret_key": ""}),
        json!({"fault": "explode"}),
        json!([1]),
    ] {
        let (status, json) = h.put_settings(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(json["error"].is_string());
    }
    assert_eq!(
        h.sandbox.chapa().settings(),
        settings,
        "unchanged by bad PUTs"
    );

    // A new secret key is enforced at once.
    h.put_settings(json!({"secret_key": "CHASECK_TEST-other"}))
        .await;
    let (status, _) = h.initialize(&sample(&fresh_ref())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn payment_controls() {
    let h = Harness::start().await;
    let receiver = Receiver::start(0).await;
    h.put_settings(json!({"webhook_url": receiver.url("wh")}))
        .await;
    let (tx_ref, _) = h.new_payment(json!({})).await;

    let get = |path: String| {
        let client = h.client.clone();
        async move { json_of(client.get(path).send().await.unwrap()).await }
    };
    let (status, record) = get(h.url(&format!("chapa/_sandbox/payments/{tx_ref}"))).await;
    assert_eq!(
        (status, record["status"].clone()),
        (StatusCode::OK, json!("pending"))
    );

    let post = |action: &str| {
        h.client
            .post(h.url(&format!("chapa/_sandbox/payments/{tx_ref}/{action}")))
            .send()
    };
    let (status, record) = json_of(post("pay").await.unwrap()).await;
    assert_eq!(
        (status, record["status"].clone()),
        (StatusCode::OK, json!("success"))
    );
    assert_eq!(receiver.next().await.json()["event"], "charge.success");
    let (status, json) = json_of(post("cancel").await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    let (status, _) = json_of(post("explode").await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = json_of(
        h.client
            .post(h.url("chapa/_sandbox/payments/unknown/pay"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(h.url("chapa/_sandbox/payments/unknown")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, list) = get(h.url("chapa/_sandbox/payments")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["tx_ref"], tx_ref.as_str());

    // Programmatic control.
    let chapa = h.sandbox.chapa();
    assert!(chapa.pay("unknown").is_err());
    assert!(chapa.payment("unknown").is_none());
}

#[tokio::test]
async fn faults_replace_the_answer_and_count_down() {
    let h = Harness::start().await;
    h.put_settings(json!({"fault": "server_error", "fault_count": 1}))
        .await;
    let tx_ref = fresh_ref();
    let response = h
        .client
        .post(h.url("chapa/v1/transaction/initialize"))
        .header("Authorization", Harness::bearer())
        .json(&sample(&tx_ref))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("500 Internal Server Error"));
    // Not processed, and the fault is used up.
    assert!(h.sandbox.chapa().payment(&tx_ref).is_none());
    assert_eq!(h.sandbox.chapa().settings().fault, Fault::None);
    let (status, _) = h.initialize(&sample(&tx_ref)).await;
    assert_eq!(status, StatusCode::OK);

    h.put_settings(json!({"fault": "garbage"})).await;
    for _ in 0..2 {
        let response = h
            .client
            .get(h.url(&format!("chapa/v1/transaction/verify/{tx_ref}")))
            .header("Authorization", Harness::bearer())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_err(),
            "{text}"
        );
    }
    // Pages and controls are not affected.
    let (status, _) = json_of(
        h.client
            .get(h.url(&format!("chapa/_sandbox/payments/{tx_ref}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    h.put_settings(json!({"fault": "timeout"})).await;
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .get(h.url(&format!("chapa/v1/transaction/verify/{tx_ref}")))
        .header("Authorization", Harness::bearer())
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn latency_delays_api_answers() {
    let h = Harness::with(ChapaSettings {
        latency_ms: 300,
        ..ChapaSettings::default()
    })
    .await;
    let start = Instant::now();
    let (status, _) = h.verify("unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn index_page_has_a_chapa_section() {
    let h = Harness::start().await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    let response = h.client.get(h.url("")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("<h2>Chapa</h2>"), "{html}");
    assert!(html.contains(DEFAULT_CHAPA_SECRET_KEY));
    assert!(html.contains(&format!("{}chapa/v1/", h.base)));
    assert!(html.contains(&tx_ref));
    // The Khalti section is still there.
    assert!(html.contains("<h2>Khalti</h2>"));
}
