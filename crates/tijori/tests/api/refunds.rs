//! Refunds an operator makes through the gateways' refund APIs.

use std::sync::Arc;
use tijori_core::store::OperatorEventKind;

use chrono::Duration;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_core::clock::{Clock, ManualClock};
use tijori_core::jobs::{JobKind, JobStatus};
use tijori_sandbox::{Fault, KhaltiSettings};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{error_code, TestApp, TestUser};

async fn refund(
    app: &TestApp,
    admin: &TestUser,
    payment: &str,
    body: Value,
) -> (StatusCode, Value) {
    let res = app
        .post(admin, &format!("/api/payments/{payment}/refund/"), body)
        .await;
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// A user with a paid Basic subscription (Khalti): (user, payment id).
async fn subscribed(app: &TestApp, name: &str) -> (TestUser, String) {
    let (user, payment, _) = subscribed_with_pidx(app, name).await;
    (user, payment)
}

/// `subscribed`, with the payment's pidx: (user, payment id, pidx).
async fn subscribed_with_pidx(app: &TestApp, name: &str) -> (TestUser, String, String) {
    let user = app.register(name).await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let pidx = started["pidx"].as_str().unwrap().to_owned();
    let (status, _) = app.verify(&user, &pidx).await;
    assert_eq!(status, StatusCode::OK);
    (
        user,
        started["payment_id"].as_str().unwrap().to_owned(),
        pidx,
    )
}

/// Khalti answers the next API call with a 5xx page: a refund asked then gets no
/// answer we can read, so its outcome is unknown.
fn khalti_fails_once(app: &TestApp) {
    let khalti = app.sandbox().khalti();
    khalti.set_settings(KhaltiSettings {
        fault: Fault::ServerError,
        fault_count: 1,
        ..khalti.settings()
    });
}

/// The refunds whose outcome is unknown, as the operator's API lists them.
async fn unknown_refunds(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let res = app.get(admin, "/api/admin/refunds/").await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Vec<Value>>().await.unwrap()
}

/// A refund of `payment` that got a 5xx: its id (it is listed as unknown).
async fn unknown_refund_of(app: &TestApp, admin: &TestUser, payment: &str, body: Value) -> String {
    let (status, answer) = refund(app, admin, payment, body).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    let unknown = unknown_refunds(app, admin).await;
    let mine: Vec<&Value> = unknown
        .iter()
        .filter(|r| r["payment_id"] == payment)
        .collect();
    assert_eq!(mine.len(), 1, "{unknown:?}");
    assert_eq!(mine[0]["status"], "unknown");
    mine[0]["id"].as_str().unwrap().to_owned()
}

async fn a_full_refund_revokes_the_subscription(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    let (user, payment) = subscribed(&app, "sita").await;

    // Customers cannot refund, not even their own payment.
    let (status, body) = refund(&app, &user, &payment, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, body) = refund(&app, &admin, &payment, json!({"reason": "changed mind"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payment"]["status"], "refunded");
    assert_eq!(body["refund"]["amount"], "500.00");
    assert_eq!(body["refund"]["status"], "succeeded");
    let sub = app.subscription(&user).await;
    assert!(
        sub.as_ref().is_none_or(|s| s["is_active"] == false),
        "the refunded period is taken back: {sub:?}"
    );
    // Khalti's own record says refunded, and its answer is on the payment's trail.
    let answers = app.gateway_answers(&payment).await;
    assert!(answers.iter().any(|a| a.kind == "refund"), "{answers:?}");

    let (status, body) = refund(&app, &admin, &payment, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left: {body}");
    assert_eq!(error_code(&body), "not_refundable");
}

async fn partial_refunds_keep_the_subscription_until_the_last(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    let (user, payment) = subscribed(&app, "hari").await;

    let (status, body) = refund(&app, &admin, &payment, json!({"amount": "600"})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "more than was paid: {body}"
    );
    assert_eq!(error_code(&body), "invalid_refund_amount");
    let (status, _) = refund(&app, &admin, &payment, json!({"amount": "1.001"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = refund(&app, &admin, &payment, json!({"amount": "200.00"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payment"]["status"], "partially_refunded");
    assert_eq!(app.subscription(&user).await.unwrap()["is_active"], true);

    let (status, body) = refund(&app, &admin, &payment, json!({"amount": "300.01"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "only 300 left: {body}");
    let (status, body) = refund(&app, &admin, &payment, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refund"]["amount"], "300.00", "the rest");
    assert_eq!(body["payment"]["status"], "refunded");
    let sub = app.subscription(&user).await;
    assert!(
        sub.as_ref().is_none_or(|s| s["is_active"] == false),
        "{sub:?}"
    );
}

async fn an_order_refund_restocks_when_asked(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let user = app.register("abebe").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let order = app.order_of(&user, &coffee, 2).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.product(&coffee).await["stock"], 3);

    // Two operators click at once: one refund reaches Chapa.
    let payment = checkout["payment_id"].as_str().unwrap();
    let other = app.admin("operator2").await;
    let results = join_all([
        refund(&app, &admin, payment, json!({"restock": true})),
        refund(&app, &other, payment, json!({"restock": true})),
    ])
    .await;
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(ok[0]["restocked"], true);
    assert_eq!(app.order_json(&user, &order).await["status"], "refunded");
    assert_eq!(app.product(&coffee).await["stock"], 5, "restocked once");
    let record = app.sandbox().chapa().payment(tx_ref).unwrap();
    assert!(record.to_string().contains("refund"), "{record}");
}

/// Issue 9 item 2: a refund whose answer was lost but which went through at the
/// gateway is found by the background look-up queued with it, and then has the
/// effects of a refund answered at once. (Before: the refund stayed unknown for
/// ever, a new refund was refused with 409, and with force as "more than is left".)
async fn an_unknown_refund_is_settled_by_its_background_look_up(db: TestDatabase) {
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    let admin = app.admin("operator").await;
    let (user, payment, pidx) = subscribed_with_pidx(&app, "sita").await;

    khalti_fails_once(&app);
    let refund_id = unknown_refund_of(&app, &admin, &payment, json!({"reason": "duplicate"})).await;
    // The look-up was queued with the unknown refund.
    let queued = app.tijori.jobs(Some(JobStatus::Queued)).await.unwrap();
    assert!(
        queued
            .iter()
            .any(|j| j.kind == JobKind::CheckRefund && j.payload == refund_id),
        "{queued:?}"
    );
    // A second refund is refused while the first one's outcome is unknown.
    let (status, body) = refund(&app, &admin, &payment, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "refund_outcome_unknown");

    // The refund did reach Khalti: its lookup now says Refunded.
    app.sandbox()
        .khalti()
        .dashboard_refund(&pidx, None)
        .unwrap();
    // Meanwhile the operator's list has grown long (webhooks naming no payment).
    for n in 0..600 {
        app.tijori
            .store()
            .record_operator_event(
                OperatorEventKind::WebhookUnmatched,
                None,
                &format!("filler {n}"),
                app.tijori.now(),
            )
            .await
            .unwrap();
    }
    clock.advance(Duration::minutes(1));
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();

    assert!(unknown_refunds(&app, &admin).await.is_empty());
    // Its notice on the operator's list is closed with it, however long the list.
    let open = app
        .tijori
        .store()
        .operator_events(false, 10_000)
        .await
        .unwrap();
    assert_eq!(open.len(), 600, "only the fillers are left open");
    assert!(
        !open
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundUnknown),
        "{open:?}"
    );
    // Every event, resolved ones too (the list the admin API shows is the newest).
    let every = app
        .tijori
        .store()
        .operator_events(true, 10_000)
        .await
        .unwrap();
    assert!(every
        .iter()
        .any(|e| e.kind == OperatorEventKind::RefundUnknown && e.detail.contains(&refund_id)));
    assert_eq!(app.payment(&user, &payment).await["status"], "refunded");
    let sub = app.subscription(&user).await;
    assert!(
        sub.as_ref().is_none_or(|s| s["is_active"] == false),
        "the refunded period is taken back: {sub:?}"
    );
    // Our refund accounts for it: nothing was refunded "elsewhere".
    assert!(
        !every
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundFound),
        "{every:?}"
    );
    let (status, body) = refund(&app, &admin, &payment, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left: {body}");
    assert_eq!(error_code(&body), "not_refundable");
}

/// A refund whose answer was lost and which did not happen is found failed by an
/// operator's re-check, and the payment can be refunded again.
async fn a_recheck_fails_a_refund_that_did_not_happen(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    let (user, payment) = subscribed(&app, "hari").await;
    khalti_fails_once(&app);
    let refund_id = unknown_refund_of(&app, &admin, &payment, json!({"amount": "100"})).await;

    // Customers cannot re-check.
    let res = app
        .post(
            &user,
            &format!("/api/admin/refunds/{refund_id}/recheck/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // The admin page lists it with its buttons; its "Re-check" asks Khalti, whose
    // lookup still reads Completed: the refund did not happen.
    let (browser, csrf) = app.sign_in_browser(&admin).await;
    let page = browser
        .get(app.url("/admin/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("recheck-{refund_id}")), "{page}");
    assert!(page.contains(&format!("resolve-{refund_id}")), "{page}");
    let res = browser
        .post(app.url(&format!("/admin/refunds/{refund_id}/recheck")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert!(unknown_refunds(&app, &admin).await.is_empty());
    // Asked again over the API, it is answered as it stands.
    let res = app
        .post(
            &admin,
            &format!("/api/admin/refunds/{refund_id}/recheck/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["refund"]["status"], "failed", "{body}");
    assert_eq!(body["payment"]["status"], "completed", "{body}");
    assert_eq!(app.subscription(&user).await.unwrap()["is_active"], true);

    // Nothing blocks the payment any more.
    let (status, body) = refund(&app, &admin, &payment, json!({"amount": "100"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payment"]["status"], "partially_refunded");
}

/// `force` is the operator's word that the earlier refund did not happen: recorded
/// as its resolution, and the new refund goes ahead. (Before: refused as "more than
/// is left".)
async fn a_forced_refund_resolves_the_unknown_one_as_failed(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    let (_, payment) = subscribed(&app, "gita").await;
    khalti_fails_once(&app);
    let first = unknown_refund_of(&app, &admin, &payment, json!({})).await;

    let (status, body) = refund(
        &app,
        &admin,
        &payment,
        json!({"force": true, "reason": "checked in Khalti: nothing refunded"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refund"]["status"], "succeeded");
    assert_eq!(body["payment"]["status"], "refunded");
    assert!(unknown_refunds(&app, &admin).await.is_empty());
    let events = app.operator_events().await;
    let resolved = events
        .iter()
        .find(|e| e.kind == OperatorEventKind::RefundResolved)
        .expect("the resolution is in the audit trail");
    assert!(resolved.detail.contains(&first), "{resolved:?}");
    assert!(resolved.detail.contains("operator"), "{resolved:?}");
    assert!(resolved.detail.contains("nothing refunded"), "{resolved:?}");
}

/// An operator settles an unknown refund by hand, with a reason kept in the audit
/// trail; settled as succeeded it has the effects the refund would have had (the
/// order refunded and, as asked, restocked). Chapa's verify cannot tell (its refunds
/// take days to show), so a re-check leaves it unknown.
async fn an_operator_resolves_an_unknown_refund_by_hand(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let user = app.register("abebe").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let order = app.order_of(&user, &coffee, 2).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let payment = checkout["payment_id"].as_str().unwrap();

    app.chapa_settings(|s| {
        s.fault = Fault::ServerError;
        s.fault_count = 1;
    });
    let refund_id = unknown_refund_of(&app, &admin, payment, json!({"restock": true})).await;
    let res = app
        .post(
            &admin,
            &format!("/api/admin/refunds/{refund_id}/recheck/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["refund"]["status"], "unknown",
        "Chapa cannot tell: {body}"
    );

    let resolve = format!("/api/admin/refunds/{refund_id}/resolve/");
    let res = app
        .post(
            &admin,
            &resolve,
            json!({"status": "succeeded", "reason": "  "}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a reason is required"
    );
    let res = app
        .post(&admin, &resolve, json!({"status": "maybe", "reason": "x"}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .post(
            &admin,
            &resolve,
            json!({"status": "succeeded", "reason": "Chapa's dashboard shows it refunded"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["refund"]["status"], "succeeded", "{body}");
    assert_eq!(body["refund"]["resolved_by"], admin.id.to_string());
    assert_eq!(
        body["refund"]["resolution"],
        "Chapa's dashboard shows it refunded"
    );
    assert!(body["refund"]["resolved_at"].is_string());
    assert_eq!(body["payment"]["status"], "refunded");
    assert_eq!(app.order_json(&user, &order).await["status"], "refunded");
    assert_eq!(
        app.product(&coffee).await["stock"],
        5,
        "restocked, as asked"
    );
    let events = app.operator_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundResolved
                && e.detail.contains("operator")
                && e.detail.contains("dashboard shows it refunded")),
        "{events:?}"
    );
    // Settled once: a second resolution is refused.
    let res = app
        .post(
            &admin,
            &resolve,
            json!({"status": "failed", "reason": "oops"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
}

/// Issue 9 item 5: a refund made in Khalti's dashboard is found by the background
/// audit of recently paid payments, and settled like any: the payment refunded, the
/// subscription revoked, and the operator told.
async fn the_audit_finds_a_refund_made_in_the_dashboard(db: TestDatabase) {
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    app.tijori.schedule_recurring_jobs().await.unwrap();
    let (user, payment, pidx) = subscribed_with_pidx(&app, "mohan").await;
    app.sandbox()
        .khalti()
        .dashboard_refund(&pidx, None)
        .unwrap();
    // Just looked up (the verify): the audit leaves it for a few hours.
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();
    assert_eq!(app.payment(&user, &payment).await["status"], "completed");

    clock.advance(Duration::hours(7));
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();
    assert_eq!(app.payment(&user, &payment).await["status"], "refunded");
    let sub = app.subscription(&user).await;
    assert!(
        sub.as_ref().is_none_or(|s| s["is_active"] == false),
        "{sub:?}"
    );
    let events = app.operator_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundFound
                && e.payment_id.as_ref().map(|p| p.to_string()) == Some(payment.clone())),
        "{events:?}"
    );
}

/// "Check payment status" on a completed payment looks it up too: a partial refund
/// made in the dashboard is found at once.
async fn check_payment_status_finds_a_dashboard_refund(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, payment, pidx) = subscribed_with_pidx(&app, "laxmi").await;
    app.sandbox()
        .khalti()
        .dashboard_refund(&pidx, Some(10_000))
        .unwrap();
    let res = app
        .post(
            &user,
            &format!("/api/payments/{payment}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "partially_refunded", "{body}");
    let events = app.operator_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundFound),
        "{events:?}"
    );
}

/// Chapa's `charge.refunded` webhook for a refund made in its dashboard: looked up,
/// the order refunded, the operator told, and, with TIJORI_RESTOCK_FOUND_REFUNDS,
/// its items back on the shelf.
async fn chapa_charge_refunded_finds_a_dashboard_refund(db: TestDatabase) {
    let mut config = crate::helpers::config(&db.url);
    config.restock_found_refunds = true;
    let app = TestApp::spawn_with(db, config).await;
    app.chapa_settings(|s| s.send_callbacks = false);
    let user = app.register("tigist").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let order = app.order_of(&user, &coffee, 2).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    app.wait_for_order(&user, &order, "paid").await;
    assert_eq!(app.product(&coffee).await["stock"], 3);

    app.sandbox()
        .chapa()
        .dashboard_refund(tx_ref, None)
        .unwrap();
    app.wait_for_order(&user, &order, "refunded").await;
    let payment = checkout["payment_id"].as_str().unwrap();
    assert_eq!(app.payment(&user, payment).await["status"], "refunded");
    // The restock follows the settlement in the same call; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.product(&coffee).await["stock"] != 5 {
        assert!(std::time::Instant::now() < deadline, "never restocked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let events = app.operator_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundFound && e.detail.contains("restocked")),
        "{events:?}"
    );
}

/// Chapa's `charge.refunded` webhook settles a refund of ours whose answer was lost:
/// Chapa's verify then reads `refunded`, so the refund succeeded, with its effects
/// (the order refunded and, as the operator asked, restocked), and nothing is
/// reported as refunded elsewhere.
async fn chapa_charge_refunded_settles_an_unknown_refund(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    app.chapa_settings(|s| s.send_callbacks = false);
    let user = app.register("almaz").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let order = app.order_of(&user, &coffee, 2).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    app.wait_for_order(&user, &order, "paid").await;
    let payment = checkout["payment_id"].as_str().unwrap();

    app.chapa_settings(|s| {
        s.fault = Fault::ServerError;
        s.fault_count = 1;
    });
    let refund_id = unknown_refund_of(&app, &admin, payment, json!({"restock": true})).await;
    // The refund reaches Chapa after all (as the operator might redo it there), and
    // Chapa says so with charge.refunded.
    app.sandbox()
        .chapa()
        .dashboard_refund(tx_ref, None)
        .unwrap();
    app.wait_for_order(&user, &order, "refunded").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.product(&coffee).await["stock"] != 5 {
        assert!(std::time::Instant::now() < deadline, "never restocked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(unknown_refunds(&app, &admin).await.is_empty());
    let res = app
        .post(
            &admin,
            &format!("/api/admin/refunds/{refund_id}/recheck/"),
            json!({}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["refund"]["status"], "succeeded", "{body}");
    let events = app.operator_events().await;
    assert!(
        !events
            .iter()
            .any(|e| e.kind == OperatorEventKind::RefundFound),
        "our own refund: {events:?}"
    );
}

/// A further partial refund whose success was recorded but whose settle never ran
/// (the process died in between) still takes its share of the days: any look-up of
/// the payment ("check payment status" here; the audit and the check job alike)
/// brings the paid period in line with the refunds that succeeded.
async fn a_further_partial_refund_settled_later_takes_its_days(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    let (user, payment, pidx) = subscribed_with_pidx(&app, "gita").await;
    let end = |sub: Option<Value>| {
        chrono::DateTime::parse_from_rfc3339(sub.unwrap()["end_date"].as_str().unwrap()).unwrap()
    };
    let (status, body) = refund(&app, &admin, &payment, json!({"amount": "100"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after_first = end(app.subscription(&user).await);

    // The second partial refund reached Khalti and was recorded as succeeded, and
    // then the process stopped before the payment was settled.
    app.sandbox()
        .khalti()
        .dashboard_refund(&pidx, Some(10_000))
        .unwrap();
    let now = app.tijori.now();
    let second = tijori_core::store::Refund {
        id: tijori_core::id::RefundId::generate(),
        payment_id: tijori_core::id::PaymentId::from_trusted(payment.clone()),
        amount: tijori_core::money::Money::from_minor(10_000, tijori_core::money::Currency::Npr)
            .unwrap(),
        reason: None,
        status: tijori_core::store::RefundStatus::Requested,
        detail: None,
        requested_by: admin.id.clone(),
        restock: false,
        resolved_by: None,
        resolved_at: None,
        resolution: None,
        created_at: now,
        updated_at: now,
    };
    let store = app.tijori.store();
    store.begin_refund(&second).await.unwrap();
    store
        .finish_refund(
            &second.id,
            tijori_core::store::RefundStatus::Succeeded,
            None,
            now,
        )
        .await
        .unwrap();
    assert_eq!(end(app.subscription(&user).await), after_first);

    let res = app
        .post(
            &user,
            &format!("/api/payments/{payment}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // 100.00 of Basic's 500.00 is a fifth of its 30 days, all of them unused.
    let taken = after_first - end(app.subscription(&user).await);
    assert!(
        (taken - Duration::days(6)).num_seconds().abs() <= 60,
        "took {taken:?}"
    );
    // Looked up again: nothing more is taken.
    let res = app
        .post(
            &user,
            &format!("/api/payments/{payment}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(after_first - end(app.subscription(&user).await), taken);
}

test_both!(
    a_further_partial_refund_settled_later_takes_its_days,
    chapa_charge_refunded_settles_an_unknown_refund,
    an_unknown_refund_is_settled_by_its_background_look_up,
    a_recheck_fails_a_refund_that_did_not_happen,
    a_forced_refund_resolves_the_unknown_one_as_failed,
    an_operator_resolves_an_unknown_refund_by_hand,
    the_audit_finds_a_refund_made_in_the_dashboard,
    check_payment_status_finds_a_dashboard_refund,
    chapa_charge_refunded_finds_a_dashboard_refund,
);

test_both!(
    a_full_refund_revokes_the_subscription,
    partial_refunds_keep_the_subscription_until_the_last,
    an_order_refund_restocks_when_asked,
);
