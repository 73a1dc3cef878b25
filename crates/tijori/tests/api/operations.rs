//! Health, metrics, and the OpenAPI document staying true to the routes.

use reqwest::StatusCode;
use serde_json::Value;
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{client, TestApp};

async fn health_and_metrics(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let res = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tijori_http_responses_total{class=\"2xx\"}"),
        "{metrics}"
    );
    let home = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(
        home.headers()["x-frame-options"],
        "DENY",
        "no framing by other sites"
    );
    assert_eq!(
        home.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let sandbox = client().get(app.url("/sandbox/")).send().await.unwrap();
    assert!(
        sandbox.status().is_redirection(),
        "/sandbox/ leads to the sandbox's index"
    );
}

/// Every documented path answers from a real handler: not the router's bare 404 or
/// a 405. Path parameters get a placeholder; the handlers' own 404 (a JSON envelope)
/// counts as routed.
async fn every_documented_route_exists(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let doc: Value = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 11);
    for (path, ops) in paths {
        let concrete = path.replace("{id}", "pay_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d");
        for method in ops.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = client()
                .request(method.clone(), app.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                status != StatusCode::NOT_FOUND || body.contains("\"error\""),
                "{method} {path} is not routed"
            );
        }
    }
}

test_both!(health_and_metrics, every_documented_route_exists);

async fn check_payment_status_is_rate_limited_per_user(db: TestDatabase) {
    let mut config = crate::helpers::config(&db.url);
    config.refresh_limit = 3;
    let app = TestApp::spawn_with(db, config).await;
    let user = app.register("impatient").await;
    let other = app.register("patient").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let path = format!(
        "/api/payments/{}/refresh/",
        started["payment_id"].as_str().unwrap()
    );
    for _ in 0..3 {
        let res = app.post(&user, &path, serde_json::json!({})).await;
        assert_eq!(res.status(), reqwest::StatusCode::OK);
    }
    let res = app.post(&user, &path, serde_json::json!({})).await;
    assert_eq!(res.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(crate::helpers::error_code(&body), "rate_limited");
    // Someone else's checks are not held up (their own payment).
    let theirs = app.initiate(&other, &app.plan_id("Basic").await).await;
    let res = app
        .post(
            &other,
            &format!(
                "/api/payments/{}/refresh/",
                theirs["payment_id"].as_str().unwrap()
            ),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
}

test_both!(check_payment_status_is_rate_limited_per_user);
