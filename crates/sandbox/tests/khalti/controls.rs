//! Sandbox-only controls: settings, faults, latency, forced outcomes, index page.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::{Fault, KhaltiSettings, DEFAULT_KHALTI_PUBLIC_KEY, DEFAULT_KHALTI_SECRET_KEY};

use crate::common::{json_of, sample, Harness};

const SETTINGS: &str = "khalti/_sandbox/settings";

async fn put_settings(h: &Harness, body: Value) -> (StatusCode, Value) {
    let response = h
        .client
        .put(h.url(SETTINGS))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn raw_initiate(h: &Harness) -> reqwest::Response {
    h.client
        .post(h.url("khalti/api/v2/epayment/initiate/"))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .json(&sample())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn settings_endpoint_reads_and_partially_updates() {
    let h = Harness::start().await;
    let response = h.client.get(h.url(SETTINGS)).send().await.unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "secret_key": DEFAULT_KHALTI_SECRET_KEY, "public_key": DEFAULT_KHALTI_PUBLIC_KEY,
            "expires_in_secs": 1800, "pending_lookups": 0, "auto_complete": false,
            "latency_ms": 0, "fault": "none", "fault_count": 0
        })
    );

    let (status, body) = put_settings(
        &h,
        json!({"pending_lookups": 3, "fault": "garbage", "fault_count": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["pending_lookups"], 3);
    assert_eq!(body["fault"], "garbage");
    assert_eq!(body["expires_in_secs"], 1800, "untouched keys are kept");
    let settings = h.sandbox.khalti().settings();
    assert_eq!(settings.pending_lookups, 3);
    assert_eq!(settings.fault, Fault::Garbage);
    assert_eq!(settings.fault_count, 5);

    for bad in [
        json!({"no_such_setting": 1}),
        json!({"fault": "explode"}),
        json!({"latency_ms": "slow"}),
        json!({"secret_key": ""}),
        json!({"public_key": " "}),
        json!([1]),
    ] {
        let (status, body) = put_settings(&h, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(
        h.sandbox.khalti().settings(),
        settings,
        "rejected PUTs change nothing"
    );
}

#[tokio::test]
async fn secret_key_setting_is_the_only_accepted_key() {
    let h = Harness::start().await;
    let (status, _) = put_settings(&h, json!({"secret_key": "live_secret_key_abc"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.initiate(&sample()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Invalid token.");
    let response = h
        .client
        .post(h.url("khalti/api/v2/epayment/initiate/"))
        .header("Authorization", "Key live_secret_key_abc")
        .json(&sample())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn control_endpoints_force_outcomes() {
    let h = Harness::start().await;
    let a = h.new_payment(json!({})).await;
    let b = h.new_payment(json!({})).await;
    let c = h.new_payment(json!({})).await;

    let post = |path: String| h.client.post(h.url(&path)).send();
    let (status, record) = json_of(
        post(format!("khalti/_sandbox/payments/{a}/complete"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "Completed");
    assert!(record["redirect_url"]
        .as_str()
        .unwrap()
        .contains("&status=Completed&"));
    let (status, record) = json_of(
        post(format!("khalti/_sandbox/payments/{b}/cancel"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "User canceled");
    let (status, record) = json_of(
        post(format!("khalti/_sandbox/payments/{c}/expire"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "Expired");

    for (pidx, status) in [(&a, "Completed"), (&b, "User canceled"), (&c, "Expired")] {
        let (_, body) = h.lookup(pidx).await;
        assert_eq!(body["status"], status);
    }

    // Terminal states stay terminal: 409, nothing changes.
    let (status, body) = json_of(
        post(format!("khalti/_sandbox/payments/{b}/complete"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"].as_str().unwrap().contains("User canceled"),
        "{body}"
    );
    assert!(h.sandbox.khalti().cancel(&a).is_err());
    assert!(h.sandbox.khalti().expire(&a).is_err());

    let (status, _) = json_of(
        post("khalti/_sandbox/payments/nope/complete".into())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = json_of(
        post(format!("khalti/_sandbox/payments/{a}/explode"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(h.sandbox.khalti().complete("nope").is_err());
    assert!(h.sandbox.khalti().payment("nope").is_none());

    let response = h
        .client
        .get(h.url(&format!("khalti/_sandbox/payments/{a}")))
        .send()
        .await
        .unwrap();
    let (status, record) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["pidx"], a.as_str());
    assert_eq!(record["masked_mobile"], "98XXXXX001");
    let response = h
        .client
        .get(h.url("khalti/_sandbox/payments/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = h
        .client
        .get(h.url("khalti/_sandbox/payments"))
        .send()
        .await
        .unwrap();
    let (_, list) = json_of(response).await;
    let pidxs: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pidx"].as_str().unwrap())
        .collect();
    assert_eq!(pidxs, [c.as_str(), b.as_str(), a.as_str()], "newest first");
}

#[tokio::test]
async fn fault_server_error_answers_500_html() {
    let h = Harness::with(KhaltiSettings {
        fault: Fault::ServerError,
        ..KhaltiSettings::default()
    })
    .await;
    for _ in 0..2 {
        let response = raw_initiate(&h).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let text = response.text().await.unwrap();
        assert!(text.contains("500 Internal Server Error"), "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }
    // Even lookup of nothing, and before auth: the proxy answers.
    let response = h
        .client
        .post(h.url("khalti/api/v2/epayment/lookup/"))
        .json(&json!({"pidx": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Pages and controls are not affected.
    let (status, _) = h.get_text("").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.get_text(SETTINGS).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h.sandbox.khalti().recent_payments(20).is_empty(),
        "faulted calls create nothing"
    );
}

#[tokio::test]
async fn fault_garbage_answers_200_non_json() {
    let h = Harness::with(KhaltiSettings {
        fault: Fault::Garbage,
        ..KhaltiSettings::default()
    })
    .await;
    let response = raw_initiate(&h).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn fault_timeout_holds_the_request() {
    let h = Harness::with(KhaltiSettings {
        fault: Fault::Timeout,
        ..KhaltiSettings::default()
    })
    .await;
    let started = Instant::now();
    let result = h
        .client
        .post(h.url("khalti/api/v2/epayment/initiate/"))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .json(&sample())
        .timeout(Duration::from_millis(1500))
        .send()
        .await;
    let err = result.expect_err("no answer within the client's timeout");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

#[tokio::test]
async fn fault_count_limits_the_fault_then_clears_it() {
    let h = Harness::start().await;
    let (status, _) = put_settings(&h, json!({"fault": "server_error", "fault_count": 2})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        raw_initiate(&h).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(h.sandbox.khalti().settings().fault_count, 1, "counts down");
    assert_eq!(
        raw_initiate(&h).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(raw_initiate(&h).await.status(), StatusCode::OK);
    let settings = h.sandbox.khalti().settings();
    assert_eq!((settings.fault, settings.fault_count), (Fault::None, 0));

    // Programmatic control works the same way.
    h.sandbox.khalti().set_settings(KhaltiSettings {
        fault: Fault::Garbage,
        fault_count: 1,
        ..KhaltiSettings::default()
    });
    let first = raw_initiate(&h).await;
    assert!(serde_json::from_str::<Value>(&first.text().await.unwrap()).is_err());
    assert_eq!(raw_initiate(&h).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_api_answers_only() {
    let h = Harness::with(KhaltiSettings {
        latency_ms: 400,
        ..KhaltiSettings::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(raw_initiate(&h).await.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let (status, _) = h.get_text(SETTINGS).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn index_page_shows_configuration_and_recent_payments() {
    let h = Harness::start().await;
    let pidx = h
        .new_payment(json!({"purchase_order_name": "Momo platter"}))
        .await;
    let done = h.new_payment(json!({})).await;
    h.sandbox.khalti().complete(&done).unwrap();
    let (status, html) = h.get_text("").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        format!("{}khalti/api/v2/", h.base),
        DEFAULT_KHALTI_SECRET_KEY.to_owned(),
        "9800000000".to_owned(),
        "987654".to_owned(),
        "Momo platter".to_owned(),
        format!("{}khalti/pay/?pidx={pidx}", h.base),
        done.clone(),
        "Completed".to_owned(),
    ] {
        assert!(html.contains(&needle), "missing {needle:?} in\n{html}");
    }
}

#[tokio::test]
async fn index_lists_only_the_20_most_recent() {
    let h = Harness::start().await;
    let mut pidxs = Vec::new();
    for i in 0..22 {
        pidxs.push(
            h.new_payment(json!({"purchase_order_id": format!("order-{i}")}))
                .await,
        );
    }
    let (_, html) = h.get_text("").await;
    assert!(!html.contains(&pidxs[0]) && !html.contains(&pidxs[1]));
    assert!(pidxs[2..].iter().all(|p| html.contains(p.as_str())));
}

/// Benchmarks: with auto_complete, a payment is paid when it is looked up.
#[tokio::test]
async fn auto_complete_pays_at_lookup() {
    let h = crate::common::Harness::start().await;
    h.sandbox
        .khalti()
        .set_settings(tijori_sandbox::KhaltiSettings {
            auto_complete: true,
            ..h.sandbox.khalti().settings()
        });
    let pidx = h.new_payment(serde_json::json!({})).await;
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Completed", "{body}");
    assert!(body["transaction_id"].is_string());
}
