//! Paid days are never lost (issue 9 items 1 and 4): another plan is queued after the
//! paid time unless the customer chooses to switch now, the initiate answer says which
//! before they pay, `GET /api/subscriptions/me/` shows what is queued, and each refund
//! takes back only its share of the unused days.

use std::sync::Arc;

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_core::clock::{Clock, ManualClock};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{days_between, error_code, TestApp, TestUser};

async fn app_on_clock(db: TestDatabase) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    app.tijori.schedule_recurring_jobs().await.unwrap();
    (app, clock)
}

/// Initiates `plan` with `change` (if any), checks the answer, pays and verifies it.
async fn buy(app: &TestApp, user: &TestUser, plan: &str, change: Option<&str>) -> Value {
    let mut body = json!({"plan_id": app.plan_id(plan).await});
    if let Some(change) = change {
        body["change"] = json!(change);
    }
    let res = app.post(user, "/api/subscriptions/initiate/", body).await;
    assert_eq!(res.status(), StatusCode::OK, "initiate {plan}");
    let started: Value = res.json().await.unwrap();
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let (status, _) = app.verify(user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "verify {plan}");
    started
}

async fn another_plan_is_queued_and_shown_and_no_notice_announces_a_false_end(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("sita").await;
    let first = buy(&app, &user, "Basic", None).await;
    assert_eq!(first["change"]["mode"], "new");
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(me["plan"]["name"], "Basic");
    assert_eq!(me["queued"], json!([]));

    // Standard, bought on day 10: it will start when Basic ends, and says so first.
    clock.advance(Duration::days(10));
    let second = buy(&app, &user, "Standard", None).await;
    assert_eq!(second["change"]["mode"], "queue");
    assert_eq!(second["change"]["starts_at"], me["end_date"]);
    assert_eq!(
        days_between(&second["change"]["starts_at"], &second["change"]["ends_at"]),
        90
    );
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(me["plan"]["name"], "Basic", "Basic runs on: {me}");
    assert_eq!(me["is_active"], true);
    let queued = me["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{me}");
    assert_eq!(queued[0]["plan"]["name"], "Standard");
    assert_eq!(queued[0]["start_date"], me["end_date"]);
    assert_eq!(queued[0]["end_date"], second["change"]["ends_at"]);

    // Basic's end nears and passes: the paid time goes on, so no reminder and no
    // expiry notice; then Standard is the plan held.
    clock.advance(Duration::days(18));
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();
    clock.advance(Duration::days(3));
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();
    assert!(
        app.tijori.outbox(10).await.unwrap().is_empty(),
        "nothing ends: {:?}",
        app.tijori.outbox(10).await.unwrap()
    );
    // (API tokens last 30 days: sign in again.)
    let user = TestUser {
        token: app.issue_second_token(&user).await,
        ..user
    };
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(me["plan"]["name"], "Standard");
    assert_eq!(me["is_active"], true);
    assert_eq!(me["queued"], json!([]));
}

async fn switching_now_turns_the_unused_days_into_days_of_the_new_plan(db: TestDatabase) {
    let (app, _clock) = app_on_clock(db).await;
    let user = app.register("sita").await;
    buy(&app, &user, "Basic", None).await;

    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": app.plan_id("Premium").await, "change": "later"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&res.json().await.unwrap()), "validation_error");

    // Premium now: 30 unused Basic days (500.00 per 30 days) are worth 45.6 days of
    // Premium (4000.00 per 365 days).
    let started = buy(&app, &user, "Premium", Some("switch_now")).await;
    assert_eq!(started["change"]["mode"], "switch_now");
    assert_eq!(
        days_between(
            &started["change"]["starts_at"],
            &started["change"]["ends_at"]
        ),
        365 + 45
    );
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(me["plan"]["name"], "Premium");
    assert_eq!(me["queued"], json!([]));
    assert_eq!(days_between(&me["start_date"], &me["end_date"]), 365 + 45);

    // The same plan again extends it, whatever was asked.
    let again = buy(&app, &user, "Premium", Some("switch_now")).await;
    assert_eq!(again["change"]["mode"], "extend");
    assert_eq!(again["change"]["starts_at"], me["end_date"]);
}

async fn each_partial_refund_takes_back_its_share_of_the_days(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let admin = app.admin("operator").await;
    let user = app.register("hari").await;
    let started = buy(&app, &user, "Basic", None).await;
    let payment = started["payment_id"].as_str().unwrap();
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(days_between(&me["start_date"], &me["end_date"]), 30);

    // 100.00 of 500.00 is a fifth: 6 of the 30 days; then another fifth, 6 more.
    clock.advance(Duration::days(1));
    for (n, left) in [(1, 24), (2, 18)] {
        let res = app
            .post(
                &admin,
                &format!("/api/payments/{payment}/refund/"),
                json!({"amount": "100.00"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "refund {n}");
        let me = app.subscription(&user).await.unwrap();
        assert_eq!(
            days_between(&me["start_date"], &me["end_date"]),
            left,
            "after refund {n}: {me}"
        );
        assert_eq!(me["is_active"], true);
    }
    // The rest: the unused days go; the day used stays used.
    let res = app
        .post(
            &admin,
            &format!("/api/payments/{payment}/refund/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(days_between(&me["start_date"], &me["end_date"]), 1);
    assert_eq!(me["is_active"], false);
}

async fn the_plans_page_says_what_will_happen_and_offers_switching_now(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("gita").await;
    buy(&app, &user, "Basic", None).await;
    let (browser, _) = app.sign_in_browser(&user).await;
    let html = browser
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("change-extend"), "Basic again extends it");
    assert!(
        html.contains("change-queue") && html.contains("Starts when your current paid time ends"),
        "another plan is queued by default"
    );
    assert!(
        html.contains(r#"name="change" value="switch_now""#),
        "switching is offered"
    );
    let csrf = crate::helpers::csrf_token(&html);

    // Ticking "switch now" is what the payment is opened with.
    let res = browser
        .post(app.url("/subscribe"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("plan_id", app.plan_id("Standard").await.as_str()),
            ("gateway", "khalti"),
            ("change", "switch_now"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let payment_url = res.headers()["location"].to_str().unwrap().to_owned();
    app.pay_on_checkout(&payment_url, "pay").await;
    let pidx = url::Url::parse(&payment_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "pidx")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(app.verify(&user, &pidx).await.0, StatusCode::OK);
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(me["plan"]["name"], "Standard", "switched now: {me}");
    assert_eq!(me["queued"], json!([]));
}

test_both!(
    the_plans_page_says_what_will_happen_and_offers_switching_now,
    each_partial_refund_takes_back_its_share_of_the_days,
    another_plan_is_queued_and_shown_and_no_notice_announces_a_false_end,
    switching_now_turns_the_unused_days_into_days_of_the_new_plan,
);
