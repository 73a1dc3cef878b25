//! The background work, on a clock the tests move: the reconciler finds outcomes that
//! never arrived, unpaid orders expire, late payments are not lost, and jobs survive a
//! worker that dies.

use std::sync::Arc;
use tijori_core::store::OperatorEventKind;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;
use tijori_core::clock::{Clock, ManualClock};
use tijori_core::jobs::JobStatus;
use tijori_sandbox::{Fault, KhaltiSettings};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{TestApp, TestUser};

async fn app_on_clock(db: TestDatabase) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    app.tijori.schedule_recurring_jobs().await.unwrap();
    (app, clock)
}

async fn run_jobs(app: &TestApp) -> usize {
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap()
}

async fn a_paid_payment_whose_return_never_arrives_is_found(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("sita").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let pidx = started["pidx"].as_str().unwrap();
    let payment_id = started["payment_id"].as_str().unwrap();
    // The customer pays and closes the tab: no return, no verify.
    app.sandbox().khalti().complete(pidx).unwrap();

    run_jobs(&app).await;
    assert_eq!(
        app.payment(&user, payment_id).await["status"],
        "initiated",
        "too young to be reconciled"
    );

    clock.advance(Duration::minutes(16));
    run_jobs(&app).await;
    assert_eq!(app.payment(&user, payment_id).await["status"], "completed");
    let sub = app
        .subscription(&user)
        .await
        .expect("granted by the reconciler");
    assert_eq!(
        crate::helpers::days_between(&sub["start_date"], &sub["end_date"]),
        30
    );

    // Later sweeps, a verify and a manual pass change nothing more.
    clock.advance(Duration::minutes(20));
    run_jobs(&app).await;
    let report = app.tijori.reconcile_once(4).await.unwrap();
    assert!(report.changed.is_empty(), "{report:?}");
    let (status, _) = app.verify(&user, pidx).await;
    assert_eq!(status, StatusCode::OK);
    let sub = app.subscription(&user).await.unwrap();
    assert_eq!(
        crate::helpers::days_between(&sub["start_date"], &sub["end_date"]),
        30,
        "fulfilled once"
    );
}

async fn one_pass_reconciles_more_than_one_batch(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("mohan").await;
    let plan = app.plan_id("Basic").await;
    let mut started = Vec::new();
    for _ in 0..5 {
        let s = app.initiate(&user, &plan).await;
        app.sandbox()
            .khalti()
            .complete(s["pidx"].as_str().unwrap())
            .unwrap();
        started.push(s);
    }
    clock.advance(Duration::minutes(16));
    let small_batches =
        app.tijori
            .clone()
            .with_background(tijori_core::service::BackgroundSettings {
                sweep_batch: 2,
                ..Default::default()
            });
    let report = small_batches.reconcile_once(2).await.unwrap();
    assert_eq!(report.checked, 5, "{report:?}");
    assert_eq!(report.changed.len(), 5, "{report:?}");
    for s in &started {
        assert_eq!(
            app.payment(&user, s["payment_id"].as_str().unwrap()).await["status"],
            "completed"
        );
    }
}

async fn the_reconciler_tries_a_timed_out_lookup_again(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("laxmi").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let khalti = app.sandbox().khalti();
    khalti.complete(started["pidx"].as_str().unwrap()).unwrap();
    // Khalti's next answer is too late (the tests' gateway timeout is 2 s).
    khalti.set_settings(KhaltiSettings {
        fault: Fault::Timeout,
        fault_count: 1,
        ..khalti.settings()
    });
    clock.advance(Duration::minutes(16));
    let report = app.tijori.reconcile_once(2).await.unwrap();
    assert!(report.failed.is_empty(), "tried again at once: {report:?}");
    assert_eq!(report.changed.len(), 1, "{report:?}");
    assert_eq!(
        app.payment(&user, started["payment_id"].as_str().unwrap())
            .await["status"],
        "completed"
    );
}

async fn reconcile_once_reports_what_it_changed(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("hari").await;
    let plan = app.plan_id("Basic").await;
    let paid = app.initiate(&user, &plan).await;
    let canceled = app.initiate(&user, &plan).await;
    let untouched = app.initiate(&user, &plan).await;
    let khalti = app.sandbox().khalti();
    khalti.complete(paid["pidx"].as_str().unwrap()).unwrap();
    khalti.cancel(canceled["pidx"].as_str().unwrap()).unwrap();

    clock.advance(Duration::minutes(16));
    let report = app.tijori.reconcile_once(2).await.unwrap();
    assert_eq!(report.checked, 3);
    assert!(report.failed.is_empty(), "{report:?}");
    let mut changed: Vec<(String, String)> = report
        .changed
        .iter()
        .map(|(id, _, to)| (id.to_string(), to.to_string()))
        .collect();
    changed.sort();
    let mut expected = vec![
        (
            paid["payment_id"].as_str().unwrap().to_owned(),
            "completed".to_owned(),
        ),
        (
            canceled["payment_id"].as_str().unwrap().to_owned(),
            "canceled".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(changed, expected);
    assert_eq!(
        app.payment(&user, untouched["payment_id"].as_str().unwrap())
            .await["status"],
        "initiated"
    );
    // Looked at just now: the next pass leaves all three alone for a while.
    assert_eq!(app.tijori.reconcile_once(2).await.unwrap().checked, 0);
}

/// Two `reconcile --once` at the same time over the same stale payments: each
/// transition is reported by the pass whose compare-and-set won it, and only there;
/// the other pass says it found the payment already settled.
async fn concurrent_reconcile_passes_report_each_transition_once(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let plan = app.plan_id("Basic").await;
    let khalti = app.sandbox().khalti();
    let mut ids = Vec::new();
    // One payment per customer: this is about the reports, not about one user's
    // concurrent first purchases.
    for name in ["gita", "ram", "shyam", "kamal"] {
        let user = app.register(name).await;
        let s = app.initiate(&user, &plan).await;
        khalti.complete(s["pidx"].as_str().unwrap()).unwrap();
        ids.push(s["payment_id"].as_str().unwrap().to_owned());
    }
    // Slow lookups, so that both passes have read the same stale payments before
    // either settles one.
    khalti.set_settings(KhaltiSettings {
        latency_ms: 300,
        ..khalti.settings()
    });
    clock.advance(Duration::minutes(16));
    let (a, b) = (app.tijori.clone(), app.tijori.clone());
    let (one, two) = tokio::join!(a.reconcile_once(4), b.reconcile_once(4));
    let (one, two) = (one.unwrap(), two.unwrap());
    let mut reported: Vec<String> = one
        .changed
        .iter()
        .chain(&two.changed)
        .map(|(id, _, to)| {
            assert_eq!(to.as_str(), "completed");
            id.to_string()
        })
        .collect();
    reported.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        reported, expected,
        "each transition once in total: {one:?} {two:?}"
    );
    // What a pass read but did not win, it calls already settled.
    for report in [&one, &two] {
        for (id, now) in &report.already_settled {
            assert!(ids.contains(&id.to_string()));
            assert_eq!(now.as_str(), "completed");
            assert!(!report.changed.iter().any(|(c, _, _)| c == id));
        }
    }
    assert!(
        one.already_settled.len() + two.already_settled.len() > 0,
        "the passes overlapped: {one:?} {two:?}"
    );
}

async fn an_abandoned_order_expires_and_its_stock_comes_back(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("abebe").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let order = app.order_of(&user, &coffee, 3).await;
    assert_eq!(app.product(&coffee).await["stock"], 2);

    clock.advance(Duration::minutes(29));
    run_jobs(&app).await;
    assert_eq!(app.order_json(&user, &order).await["status"], "pending");

    clock.advance(Duration::minutes(2));
    run_jobs(&app).await;
    assert_eq!(app.order_json(&user, &order).await["status"], "expired");
    assert_eq!(app.product(&coffee).await["stock"], 5);
    let (status, body) = app.initialize(&user, &order, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Expiring again returns nothing twice.
    clock.advance(Duration::minutes(5));
    run_jobs(&app).await;
    assert_eq!(app.product(&coffee).await["stock"], 5);
}

/// `late` orders one of `product` and opens its checkout; the order expires, `rival`
/// takes the last one, and then `late` pays on Chapa: (order id, checkout).
async fn paid_after_the_stock_went(
    app: &TestApp,
    clock: &ManualClock,
    late: &TestUser,
    rival: &TestUser,
    product: &str,
) -> (String, serde_json::Value) {
    let order = app.order_of(late, product, 1).await;
    let (_, checkout) = app.initialize(late, &order, None).await;
    clock.advance(Duration::minutes(31));
    run_jobs(app).await;
    app.order_of(rival, product, 1).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    (order, checkout)
}

async fn a_payment_after_expiry_is_never_lost(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let late = app.register("almaz").await;
    let rival = app.register("kebede").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 2).await;
    let pot = app.new_product("Pot", "1200", "ETB", 1).await;

    // Stock still there: re-reserved and paid.
    let order = app.order_of(&late, &coffee, 2).await;
    let (_, checkout) = app.initialize(&late, &order, None).await;
    clock.advance(Duration::minutes(31));
    run_jobs(&app).await;
    assert_eq!(app.order_json(&late, &order).await["status"], "expired");
    assert_eq!(app.product(&coffee).await["stock"], 2);
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    let res = app
        .post(
            &late,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.order_json(&late, &order).await["status"], "paid");
    assert_eq!(app.product(&coffee).await["stock"], 0);

    // Stock gone meanwhile: the money is held for an operator to refund.
    let (order, checkout) = paid_after_the_stock_went(&app, &clock, &late, &rival, &pot).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    let res = app
        .post(
            &late,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "held for review");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["payment_status"], "needs_review");
    assert_eq!(app.order_json(&late, &order).await["status"], "expired");
    assert_eq!(app.product(&pot).await["stock"], 0);
    let events = app.operator_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == OperatorEventKind::NeedsReview && e.detail.contains("refund")),
        "{events:?}"
    );
}

/// Money that arrives after its order expired and its stock went to someone else is
/// not "under review" to its customer: they are told it was received and will be
/// refunded, and, once the operator refunds it, that it was.
async fn a_late_payment_is_told_it_will_be_refunded_then_that_it_was(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let late = app.register("almaz").await;
    let rival = app.register("kebede").await;
    let admin = app.admin("operator").await;
    let pot = app.new_product("Pot", "1200", "ETB", 1).await;
    let (_, checkout) = paid_after_the_stock_went(&app, &clock, &late, &rival, &pot).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();

    let res = app
        .post(
            &late,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "held for review");
    let body: serde_json::Value = res.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("arrived after your order had expired")
            && message.contains("We will refund it in full"),
        "{message}"
    );
    let (browser, _) = app.sign_in_browser(&late).await;
    let page = |path: String| {
        let browser = browser.clone();
        let url = app.url(&path);
        async move { browser.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let back = page(format!("/payment-success/?tx_ref={tx_ref}")).await;
    assert!(
        back.contains("Payment received, to be refunded") && !back.contains("under review"),
        "{back}"
    );
    let account = page("/account/".into()).await;
    assert!(
        account.contains("received late, to be refunded"),
        "{account}"
    );

    let payment_id = checkout["payment_id"].as_str().unwrap();
    let res = app
        .post(
            &admin,
            &format!("/api/payments/{payment_id}/refund/"),
            json!({"reason": "paid after the order expired"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let back = page(format!("/payment-success/?tx_ref={tx_ref}")).await;
    assert!(
        back.contains("Payment refunded")
            && back.contains("arrived after your order could no longer take it"),
        "{back}"
    );
}

async fn a_job_whose_worker_died_is_taken_over_once(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("ram").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.sandbox()
        .khalti()
        .complete(started["pidx"].as_str().unwrap())
        .unwrap();
    clock.advance(Duration::minutes(16));
    // The sweep runs and queues the lookup; a worker claims it and dies.
    app.tijori.queue_stale_payments().await.unwrap();
    let claimed = app.tijori.claim_jobs("doomed", 10, 10).await.unwrap();
    let lookup: Vec<_> = claimed
        .iter()
        .filter(|j| j.kind == tijori_core::jobs::JobKind::ReconcilePayment)
        .collect();
    assert_eq!(lookup.len(), 1);
    let job_id = lookup[0].id;

    // Within the lease nobody else takes it.
    assert!(app
        .tijori
        .claim_jobs("other", 10, 10)
        .await
        .unwrap()
        .is_empty());
    clock.advance(Duration::minutes(3));
    run_jobs(&app).await;
    assert_eq!(
        app.payment(&user, started["payment_id"].as_str().unwrap())
            .await["status"],
        "completed"
    );
    let jobs = app.tijori.store().jobs(None, 50).await.unwrap();
    let job = jobs.iter().find(|j| j.id == job_id).unwrap();
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.attempts, 2, "the dead worker's attempt counts");
    // The dead worker coming back cannot mark someone else's run.
    let store = app.tijori.store();
    assert!(!store
        .complete_job(job_id, "doomed", None, Utc::now())
        .await
        .unwrap());
}

async fn a_failing_job_backs_off_then_dies_where_an_operator_sees_it(db: TestDatabase) {
    // No recurring sweeps: the one lookup job below is the only work there is, so
    // the operator's retry is what finally settles the payment.
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    let user = app.register("gita").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let khalti = app.sandbox().khalti();
    khalti.set_settings(KhaltiSettings {
        fault: Fault::Garbage,
        fault_count: 0,
        ..khalti.settings()
    });
    clock.advance(Duration::minutes(16));
    app.tijori.queue_stale_payments().await.unwrap();
    for attempt in 1..=8 {
        run_jobs(&app).await;
        let jobs = app.tijori.store().jobs(None, 50).await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let job = &jobs[0];
        assert_eq!(job.kind, tijori_core::jobs::JobKind::ReconcilePayment);
        assert_eq!(job.attempts, attempt);
        if attempt < 8 {
            assert_eq!(job.status, JobStatus::Queued);
            assert!(job.run_at > clock.now(), "backed off");
            assert!(job.last_error.as_deref().unwrap().contains("khalti"));
            clock.advance(Duration::hours(2));
        } else {
            assert_eq!(job.status, JobStatus::Dead);
        }
    }
    let events = app.operator_events().await;
    assert!(
        events.iter().any(|e| e.kind == OperatorEventKind::JobDead),
        "{events:?}"
    );

    // Khalti recovers; the operator retries the job and the payment settles.
    khalti.set_settings(KhaltiSettings {
        fault: Fault::None,
        ..khalti.settings()
    });
    khalti.complete(started["pidx"].as_str().unwrap()).unwrap();
    // The operator sees the dead job and retries it.
    let admin = app.admin("operator").await;
    let res = app.get(&admin, "/api/admin/jobs/?status=dead").await;
    assert_eq!(res.status(), StatusCode::OK);
    let dead: Vec<serde_json::Value> = res.json().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["kind"], "reconcile_payment");
    assert_eq!(dead[0]["payload"], started["payment_id"]);
    let res = app.get(&user, "/api/admin/jobs/").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "operators only");
    let res = app
        .post(
            &admin,
            &format!("/api/admin/jobs/{}/retry/", dead[0]["id"]),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post(
            &admin,
            &format!("/api/admin/jobs/{}/retry/", dead[0]["id"]),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "no longer a dead job");
    assert_eq!(run_jobs(&app).await, 1, "the retried job runs at once");
    assert_eq!(
        app.payment(&user, started["payment_id"].as_str().unwrap())
            .await["status"],
        "completed"
    );
}

async fn a_renewal_reminder_goes_out_once_per_period_then_an_expiry_notice(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let res = crate::helpers::client()
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "sita", "email": "sita@example.com",
            "password": "correct horse battery", "time_zone": "Mars/Olympus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "an unknown zone");
    let user = app.register("sita").await; // no zone: inferred from NPR (Nepal)
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    assert_eq!(
        app.verify(&user, started["pidx"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    clock.advance(Duration::days(26));
    run_jobs(&app).await;
    assert!(
        app.tijori.outbox(10).await.unwrap().is_empty(),
        "4 days left: too early"
    );

    clock.advance(Duration::days(1) + Duration::minutes(1));
    // Two workers find it due at the same moment.
    let (a, b) = tokio::join!(app.tijori.queue_notices(), app.tijori.queue_notices());
    assert_eq!(a.unwrap() + b.unwrap(), 1, "written once");
    // Two workers deliver at the same moment; the mail goes out once.
    let (a, b) = tokio::join!(
        app.tijori.run_due_jobs("worker-a", 8),
        app.tijori.run_due_jobs("worker-b", 8)
    );
    assert!(a.unwrap() + b.unwrap() >= 1, "the delivery ran");
    let (a, b) = tokio::join!(
        app.tijori.run_due_jobs("worker-a", 8),
        app.tijori.run_due_jobs("worker-b", 8)
    );
    a.unwrap();
    b.unwrap();
    let outbox = app.tijori.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let mail = &outbox[0];
    assert_eq!(mail.to, "sita@example.com");
    assert!(mail.subject.contains("Basic"), "{}", mail.subject);
    assert!(
        mail.body.contains("Nepal Time (UTC+05:45)"),
        "in Nepal time: {}",
        mail.body
    );
    assert!(
        mail.body.contains(app.base.as_str().trim_end_matches('/')),
        "a renew link"
    );
    assert_eq!(
        mail.status, "kept",
        "no SMTP: kept in the outbox, not dropped"
    );

    // Days pass; no second reminder for the same period.
    clock.advance(Duration::days(1));
    run_jobs(&app).await;
    assert_eq!(app.tijori.outbox(10).await.unwrap().len(), 1);

    let (sub, _) = app.tijori.my_subscription(&user.id).await.unwrap().unwrap();
    assert!(sub.is_active(clock.now()));

    // It ends at its end date: an expiry notice, once.
    clock.advance(Duration::days(3));
    let (sub, _) = app.tijori.my_subscription(&user.id).await.unwrap().unwrap();
    assert!(!sub.is_active(clock.now()), "ended: {sub:?}");
    let (a, b) = tokio::join!(
        app.tijori.run_due_jobs("worker-a", 8),
        app.tijori.run_due_jobs("worker-b", 8)
    );
    a.unwrap();
    b.unwrap();
    clock.advance(Duration::hours(1));
    let (a, b) = tokio::join!(
        app.tijori.run_due_jobs("worker-a", 8),
        app.tijori.run_due_jobs("worker-b", 8)
    );
    a.unwrap();
    b.unwrap();
    let outbox = app.tijori.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(
        outbox[0].subject.contains("has ended"),
        "{}",
        outbox[0].subject
    );

    // The operator reads it.
    let admin = app.admin("operator").await;
    let res = app.get(&admin, "/api/admin/outbox/").await;
    assert_eq!(res.status(), StatusCode::OK);
    let listed: Vec<serde_json::Value> = res.json().await.unwrap();
    assert_eq!(listed.len(), 2);
}

async fn with_smtp_a_reminder_is_mailed_once(db: TestDatabase) {
    let sink = crate::helpers::SmtpSink::start().await;
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock_and(db, clock.clone(), |c| {
        c.smtp_url = Some(sink.url.clone().into());
        c.mail_from = "Tijori Shop <shop@example.com>".into();
    })
    .await;
    app.tijori.schedule_recurring_jobs().await.unwrap();
    let user = app.register("ganesh").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    assert_eq!(
        app.verify(&user, started["pidx"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    clock.advance(Duration::days(27) + Duration::minutes(1));
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            app.tijori.run_due_jobs("worker-a", 8),
            app.tijori.run_due_jobs("worker-b", 8)
        );
        a.unwrap();
        b.unwrap();
    }
    let outbox = app.tijori.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].status, "sent", "{:?}", outbox[0]);
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "mailed once: {received:?}");
    let mail = &received[0];
    assert!(mail.contains("To: ganesh@example.com"), "{mail}");
    let from = mail.lines().find(|l| l.starts_with("From: ")).unwrap_or("");
    assert!(
        from.contains("Tijori Shop") && from.ends_with("<shop@example.com>"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: Your Basic subscription ends soon"),
        "{mail}"
    );
    assert!(mail.contains("UTC+05:45"), "{mail}");
}

async fn a_checkout_never_paid_is_closed_once_its_link_is_dead(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let user = app.register("dawit").await;
    let coffee = app.product_in("ETB").await;
    let order = app.order_of(&user, &coffee, 1).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let payment = checkout["payment_id"].as_str().unwrap();

    clock.advance(Duration::hours(2));
    run_jobs(&app).await;
    assert_eq!(
        app.payment(&user, payment).await["status"],
        "initiated",
        "Chapa says not paid yet; the checkout may still be used"
    );
    clock.advance(Duration::hours(23));
    run_jobs(&app).await;
    let closed = app.payment(&user, payment).await;
    assert_eq!(closed["status"], "expired", "{closed}");
    assert!(
        app.tijori.reconcile_once(2).await.unwrap().checked == 0,
        "closed: not looked at again"
    );

    // Paid after all (a customer on a very old tab): the money still counts.
    app.sandbox()
        .chapa()
        .pay(checkout["tx_ref"].as_str().unwrap())
        .unwrap();
    let res = app
        .post(
            &user,
            &format!("/api/payments/{payment}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.payment(&user, payment).await["status"], "completed");
}

async fn a_payment_the_gateway_calls_pending_stays_open(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    let khalti = app.sandbox().khalti();
    khalti.set_settings(KhaltiSettings {
        pending_lookups: 1_000,
        ..khalti.settings()
    });
    let user = app.register("bishnu").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    khalti.complete(started["pidx"].as_str().unwrap()).unwrap();
    clock.advance(Duration::hours(3));
    run_jobs(&app).await;
    assert_eq!(
        app.payment(&user, started["payment_id"].as_str().unwrap())
            .await["status"],
        "pending",
        "Khalti is deciding: never closed by us, even past the link's expiry"
    );
}

test_both!(
    a_late_payment_is_told_it_will_be_refunded_then_that_it_was,
    a_payment_the_gateway_calls_pending_stays_open,
    a_checkout_never_paid_is_closed_once_its_link_is_dead,
    a_renewal_reminder_goes_out_once_per_period_then_an_expiry_notice,
    with_smtp_a_reminder_is_mailed_once,
    a_paid_payment_whose_return_never_arrives_is_found,
    reconcile_once_reports_what_it_changed,
    concurrent_reconcile_passes_report_each_transition_once,
    the_reconciler_tries_a_timed_out_lookup_again,
    one_pass_reconciles_more_than_one_batch,
    an_abandoned_order_expires_and_its_stock_comes_back,
    a_payment_after_expiry_is_never_lost,
    a_job_whose_worker_died_is_taken_over_once,
    a_failing_job_backs_off_then_dies_where_an_operator_sees_it,
);
