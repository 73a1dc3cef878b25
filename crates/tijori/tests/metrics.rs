//! What `/metrics` shows an operator after real work: a paid flow, a webhook with a bad
//! signature, a job that dies. A test binary of its own: the counters are the
//! process's (the `metrics` facade has one recorder per process), so no other test
//! may add to them meanwhile; the two databases' runs take turns and compare what
//! each added. The exposition is read with a Prometheus text-format parser.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

#[allow(dead_code)] // the helpers of the API tests; this file uses a few
#[path = "api/helpers.rs"]
mod helpers;

use std::sync::Arc;

use chrono::Duration;
use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use tijori_core::clock::{Clock, ManualClock, SystemClock};
use tijori_core::jobs::{JobKind, NewJob};
use tijori_testkit::{test_both, Backend, TestDatabase};

use helpers::{chapa_charge_body, client, TestApp};

/// One run at a time: each compares the process's counters before and after.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn scrape(app: &TestApp) -> Scrape {
    let res = client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// `scrape`, once the database's counts read by the last one are stale (they are
/// reused for a second, however often /metrics is asked).
async fn scrape_fresh(app: &TestApp) -> Scrape {
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    scrape(app).await
}

/// The value of the series `name{labels}` (a histogram: its count); 0 when absent.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .unwrap(),
            Value::Summary(_) => panic!("{name} is a summary, not a histogram"),
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} names {found:?}");
    found.first().copied().unwrap_or(0.0)
}

/// What a series grew by between two scrapes.
fn grew(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(after, name, labels) - value(before, name, labels)
}

async fn an_operator_sees_payments_webhooks_and_dead_jobs(db: TestDatabase) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sqlite = db.backend() == Backend::Sqlite;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    let before = scrape(&app).await;

    // A paid Khalti flow, verified through the API.
    let user = app.register("metered").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let (status, body) = app.verify(&user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A checkout Khalti refuses to open (a proxy's 500): failed, and counted so.
    let khalti = app.sandbox().khalti();
    khalti.set_settings(tijori_sandbox::KhaltiSettings {
        fault: tijori_sandbox::Fault::ServerError,
        fault_count: 1,
        ..khalti.settings()
    });
    let refused = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            serde_json::json!({"plan_id": app.plan_id("Basic").await}),
        )
        .await;
    assert!(!refused.status().is_success());

    // A Chapa webhook whose signature is wrong.
    let body = chapa_charge_body("tx-nobody", "charge.success", "success", "10.00");
    let res = app
        .chapa_webhook(&body, &[("x-chapa-signature", "0".repeat(64))])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A job that cannot run (its payload names nothing) dies after its tries.
    let now = clock.now();
    app.tijori
        .store()
        .enqueue_job(
            &NewJob {
                kind: JobKind::ReconcilePayment,
                payload: "not a payment".into(),
                unique_key: None,
                run_at: now,
            },
            now,
        )
        .await
        .unwrap();
    for _ in 0..JobKind::ReconcilePayment.max_attempts() {
        app.tijori.run_due_jobs("metrics-test", 1).await.unwrap();
        clock.advance(Duration::hours(2));
    }

    let after = scrape_fresh(&app).await;
    let khalti_sub_completed = [
        ("gateway", "khalti"),
        ("purpose", "subscription"),
        ("status", "completed"),
    ];
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_payment_outcomes_total",
            &khalti_sub_completed
        ),
        1.0
    );
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_payment_outcomes_total",
            &[
                ("gateway", "khalti"),
                ("purpose", "subscription"),
                ("status", "failed")
            ]
        ),
        1.0,
        "a checkout that never opened counts as failed"
    );
    assert_eq!(value(&after, "tijori_database_gauges_up", &[]), 1.0);
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_settlements_total",
            &[("path", "verify"), ("changed", "true")]
        ),
        1.0
    );
    // Initiate twice (one refused), lookup once; each timed.
    for (operation, calls) in [("initiate", 2.0), ("lookup", 1.0)] {
        let call = [
            ("gateway", "khalti"),
            ("operation", operation),
            ("outcome", "ok"),
        ];
        assert_eq!(
            grew(&before, &after, "tijori_gateway_requests_total", &call),
            1.0,
            "{operation}"
        );
        assert_eq!(
            grew(
                &before,
                &after,
                "tijori_gateway_request_duration_seconds",
                &call[..2]
            ),
            calls,
            "{operation}'s time"
        );
    }
    let initiates = |s: &Scrape| -> f64 {
        s.samples
            .iter()
            .filter(|x| {
                x.metric == "tijori_gateway_requests_total"
                    && x.labels.get("gateway") == Some("khalti")
                    && x.labels.get("operation") == Some("initiate")
                    && x.labels.get("outcome") != Some("ok")
            })
            .map(|x| match x.value {
                Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        initiates(&after) - initiates(&before),
        1.0,
        "the refused one"
    );
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_webhooks_received_total",
            &[("gateway", "chapa"), ("outcome", "bad_signature")]
        ),
        1.0
    );
    let reconcile = |outcome| [("kind", "reconcile_payment"), ("outcome", outcome)];
    assert_eq!(
        grew(&before, &after, "tijori_jobs_run_total", &reconcile("dead")),
        1.0
    );
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_jobs_run_total",
            &reconcile("retry")
        ),
        f64::from(JobKind::ReconcilePayment.max_attempts() - 1)
    );
    // The gauges are this app's database's, read at the scrape.
    assert_eq!(
        value(&after, "tijori_jobs_dead", &[("class", "other")]),
        1.0
    );
    assert_eq!(
        value(&after, "tijori_jobs_dead", &[("class", "deliveries")]),
        0.0
    );
    assert_eq!(value(&after, "tijori_payments_open", &[]), 0.0);
    assert_eq!(value(&after, "tijori_payments_held_for_review", &[]), 0.0);
    assert_eq!(value(&after, "tijori_live_subscribers", &[]), 0.0);
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_http_requests_total",
            &[
                ("route", "/api/subscriptions/verify/"),
                ("method", "POST"),
                ("status", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        grew(
            &before,
            &after,
            "tijori_http_requests_total",
            &[
                ("route", "/api/payments/chapa/webhook/"),
                ("method", "POST"),
                ("status", "4xx")
            ]
        ),
        1.0
    );
    if sqlite {
        assert!(
            grew(
                &before,
                &after,
                "tijori_sqlite_commit_duration_seconds",
                &[]
            ) >= 3.0,
            "the writer's commits are timed"
        );
    }
    assert!(after.docs.contains_key("tijori_payment_outcomes_total"));

    // An open payment counts as open, and as overdue once the reconciler (not running
    // here) has not looked at it for twice the reconcile age; looked at, it is not.
    // (A link that outlasts the test clock's moves, the dead job's hours included, so
    // that it stays open.)
    let khalti = app.sandbox().khalti();
    khalti.set_settings(tijori_sandbox::KhaltiSettings {
        expires_in_secs: 2 * 24 * 3600,
        ..khalti.settings()
    });
    let open = app.initiate(&user, &app.plan_id("Basic").await).await;
    assert!(open["payment_id"].is_string());
    let now_open = scrape_fresh(&app).await;
    assert_eq!(value(&now_open, "tijori_payments_open", &[]), 1.0);
    assert_eq!(value(&now_open, "tijori_payments_overdue", &[]), 0.0);
    clock.advance(Duration::minutes(20));
    let not_yet = scrape_fresh(&app).await;
    assert_eq!(value(&not_yet, "tijori_payments_overdue", &[]), 0.0);
    clock.advance(Duration::minutes(20));
    let overdue = scrape_fresh(&app).await;
    assert_eq!(value(&overdue, "tijori_payments_overdue", &[]), 1.0);
    app.tijori.reconcile_once(1).await.unwrap();
    let looked_at = scrape_fresh(&app).await;
    assert_eq!(value(&looked_at, "tijori_payments_open", &[]), 1.0);
    assert_eq!(value(&looked_at, "tijori_payments_overdue", &[]), 0.0);
}

test_both!(an_operator_sees_payments_webhooks_and_dead_jobs);
