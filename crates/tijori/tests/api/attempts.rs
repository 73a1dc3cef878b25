//! Retried attempts (issue 9, items 3, 6, 8 and the return page's part of 10): a
//! failed Chapa attempt stays worth looking up while its checkout lives, the return
//! page is a signal even without a session and looks up at most once every few
//! seconds, and an Idempotency-Key whose process died is taken over at once.

use std::sync::Arc;

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_core::clock::{Clock, ManualClock, SystemClock};
use tijori_core::idempotency::{
    fingerprint, Attempt, Claim, Claimant, IdempotencyKey, InstanceId, Leftover,
};
use tijori_core::payment::PaymentStatus;
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{browser, client, error_code, TestApp, TestUser};

async fn app_on_clock(db: TestDatabase) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    (app, clock)
}

/// A pending order of one ETB product and its open Chapa checkout:
/// (order id, payment id, tx_ref, checkout url).
async fn chapa_checkout(app: &TestApp, user: &TestUser) -> (String, String, String, String) {
    let product = app.product_in("ETB").await;
    let order = app.order_of(user, &product, 1).await;
    let (status, body) = app.initialize(user, &order, Some("chapa")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let s = |k: &str| body[k].as_str().unwrap().to_owned();
    (order, s("payment_id"), s("tx_ref"), s("checkout_url"))
}

/// No callback and no webhook: only a lookup can learn the outcome.
fn signals_lost(app: &TestApp) {
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
}

// Item 3 -------------------------------------------------------------------------------

async fn a_failed_chapa_attempt_paid_on_retry_is_found_by_the_reconciler(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    signals_lost(&app);
    let user = app.register("abebe").await;
    let (order, payment, tx_ref, _) = chapa_checkout(&app, &user).await;

    // The first attempt fails; the customer is told so.
    app.sandbox().chapa().fail(&tx_ref).unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.payment(&user, &payment).await["status"], "failed");

    // A Khalti payment the customer canceled is final: never looked up again.
    let plan = app.plan_id("Basic").await;
    let khalti = app.initiate(&user, &plan).await;
    let pidx = khalti["pidx"].as_str().unwrap();
    app.sandbox().khalti().cancel(pidx).unwrap();
    let (status, _) = app.verify(&user, pidx).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let khalti_id = khalti["payment_id"].as_str().unwrap();
    let khalti_lookups = app.gateway_answers(khalti_id).await.len();

    // They try again on the same checkout and pay; nothing tells tijori.
    app.sandbox().chapa().pay(&tx_ref).unwrap();
    clock.advance(Duration::minutes(16));
    let report = app.tijori.reconcile_once(4).await.unwrap();
    let id = tijori_core::id::PaymentId::parse(&payment).unwrap();
    assert!(
        report
            .changed
            .contains(&(id, PaymentStatus::Failed, PaymentStatus::Completed)),
        "{report:?}"
    );
    assert_eq!(app.order_json(&user, &order).await["status"], "paid");
    assert_eq!(
        app.gateway_answers(khalti_id).await.len(),
        khalti_lookups,
        "a canceled Khalti payment is not looked up again"
    );
}

async fn a_failed_chapa_attempt_past_its_checkouts_life_is_left_alone(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    signals_lost(&app);
    let user = app.register("almaz").await;
    let (_, payment, tx_ref, _) = chapa_checkout(&app, &user).await;
    app.sandbox().chapa().fail(&tx_ref).unwrap();
    app.post(
        &user,
        "/api/subscriptions/verify/",
        json!({"tx_ref": tx_ref}),
    )
    .await;
    let answers = app.gateway_answers(&payment).await.len();
    clock.advance(Duration::hours(25));
    let report = app.tijori.reconcile_once(4).await.unwrap();
    assert_eq!(report.checked, 0, "{report:?}");
    assert_eq!(app.gateway_answers(&payment).await.len(), answers);

    // Its callback URL replayed by anyone who saw it: money arriving late would
    // still count, so it is looked into, but at most once every few seconds, not
    // once (and a kept row) per replay.
    for _ in 0..20 {
        let res = client()
            .get(app.url(&format!(
                "/api/payments/chapa/callback/?trx_ref={tx_ref}&status=success"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let kinds: Vec<String> = app
        .gateway_answers(&payment)
        .await
        .into_iter()
        .skip(answers)
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["callback", "lookup"], "one look for twenty replays");
    clock.advance(Duration::seconds(6));
    client()
        .get(app.url(&format!(
            "/api/payments/chapa/callback/?trx_ref={tx_ref}&status=success"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.gateway_answers(&payment).await.len(),
        answers + 4,
        "and another once the few seconds passed"
    );
}

async fn the_return_page_looks_a_failed_chapa_attempt_up_and_offers_to_try_again(db: TestDatabase) {
    let (app, clock) = app_on_clock(db).await;
    signals_lost(&app);
    let user = app.register("dawit").await;
    let (browser, _) = app.sign_in_browser(&user).await;
    let (order, payment, tx_ref, checkout_url) = chapa_checkout(&app, &user).await;
    app.sandbox().chapa().fail(&tx_ref).unwrap();

    let page = |path: String| {
        let (browser, app) = (&browser, &app);
        async move {
            let res = browser.get(app.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            res.text().await.unwrap()
        }
    };
    // As the page writes it (minijinja escapes slashes).
    let try_again = format!(
        r#"href="{}" id="try-again""#,
        checkout_url.replace('/', "&#x2f;")
    );
    let returned = page(format!("/payment-success/?tx_ref={tx_ref}")).await;
    assert!(returned.contains(r#"data-outcome="failed""#), "{returned}");
    assert!(
        returned.contains(&try_again),
        "the return page offers the same checkout again: {returned}"
    );
    let order_page = page(format!("/orders/{order}/")).await;
    assert!(order_page.contains(&try_again), "{order_page}");
    let account = page("/account/".into()).await;
    assert!(
        account.contains(&format!(
            r#"data-payment-id="{payment}" data-status="failed""#
        )),
        "\"Check payment status\" is offered for the failed attempt: {account}"
    );

    // Paid on the second try: the return page (the sandbox sends the browser back)
    // looks it up again and finds it paid.
    app.sandbox().chapa().pay(&tx_ref).unwrap();
    clock.advance(Duration::seconds(
        tijori_core::service::RETURN_LOOKUP_EVERY_SECS,
    ));
    let returned = page(format!("/payment-success/?tx_ref={tx_ref}")).await;
    assert!(returned.contains(r#"data-outcome="success""#), "{returned}");
    assert_eq!(app.order_json(&user, &order).await["status"], "paid");
}

async fn verify_finds_a_retry_that_succeeded(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    signals_lost(&app);
    let user = app.register("selam").await;
    let (order, payment, tx_ref, _) = chapa_checkout(&app, &user).await;
    app.sandbox().chapa().fail(&tx_ref).unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.sandbox().chapa().pay(&tx_ref).unwrap();
    // Verify looks a failed Chapa attempt up again too.
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"payment_id": payment}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.order_json(&user, &order).await["status"], "paid");
}

// Items 8 and 10 -----------------------------------------------------------------------

async fn a_return_without_a_session_is_looked_up_then_asks_to_sign_in(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("gita").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let pidx = started["pidx"].as_str().unwrap();
    // Paid; the customer's session expired meanwhile (this browser has none).
    app.sandbox().khalti().complete(pidx).unwrap();
    let back = format!("/payment-success/?pidx={pidx}&status=Completed");
    let res = client().get(app.url(&back)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let login = app.url(&location);
    assert_eq!(login.path(), "/login");
    let query: std::collections::HashMap<_, _> = login.query_pairs().into_owned().collect();
    assert_eq!(query.get("next").map(String::as_str), Some(back.as_str()));
    assert_eq!(
        query.get("notice").map(String::as_str),
        Some("payment_checked")
    );
    // The lookup was made: the payment is settled and the subscription granted.
    let payment = app
        .payment(&user, started["payment_id"].as_str().unwrap())
        .await;
    assert_eq!(payment["status"], "completed");
    assert!(app.subscription(&user).await.is_some());

    // The sign-in page says why, and sends them back to the return page.
    let page = client().get(login.clone()).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"id="login-notice""#), "{html}");
    let browser = browser();
    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("username", "gita"),
            ("password", "correct horse battery"),
            ("next", back.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], back.as_str());
    let html = browser.get(app.url(&back)).send().await.unwrap();
    let html = html.text().await.unwrap();
    assert!(html.contains(r#"data-outcome="success""#), "{html}");

    // An unknown reference gets the same answer, and costs nothing.
    let res = client()
        .get(app.url("/payment-success/?pidx=NoSuchPidx"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .contains("notice=payment_checked"));
}

async fn the_return_page_looks_up_once_every_few_seconds_and_keeps_a_capped_query(
    db: TestDatabase,
) {
    let (app, clock) = app_on_clock(db).await;
    let user = app.register("hari").await;
    let (browser, _) = app.sign_in_browser(&user).await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let (pidx, payment) = (
        started["pidx"].as_str().unwrap(),
        started["payment_id"].as_str().unwrap(),
    );
    let lookups = || async {
        app.gateway_answers(payment)
            .await
            .iter()
            .filter(|a| a.kind == "lookup")
            .count()
    };
    let junk = "x".repeat(5_000);
    let back = format!("/payment-success/?pidx={pidx}&junk={junk}");
    // Loaded over and over, signed in or not: one lookup.
    for i in 0..6 {
        if i % 2 == 0 {
            let res = browser.get(app.url(&back)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "signed in: the page itself");
        } else {
            let res = client().get(app.url(&back)).send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::SEE_OTHER,
                "signed out: to sign-in"
            );
            let to = res.headers()["location"].to_str().unwrap();
            assert!(to.contains("notice=payment_checked"), "{to}");
        }
    }
    assert_eq!(lookups().await, 1);
    clock.advance(Duration::seconds(
        tijori_core::service::RETURN_LOOKUP_EVERY_SECS,
    ));
    browser.get(app.url(&back)).send().await.unwrap();
    assert_eq!(lookups().await, 2, "a few seconds later, one more");

    // A return is kept once per lookup (each at most 2 KB): a page reloaded in a
    // loop cannot grow the audit trail.
    let signals: Vec<_> = app
        .gateway_answers(payment)
        .await
        .into_iter()
        .filter(|a| a.kind == "return_signal")
        .collect();
    assert_eq!(signals.len(), 2);
    for s in &signals {
        assert!(s.body.len() <= tijori_core::service::MAX_RETURN_QUERY_BYTES);
        assert!(s.body.starts_with(&format!("pidx={pidx}&junk=xxx")));
    }
}

// Item 6 -------------------------------------------------------------------------------

/// Sends `body` (exact bytes) to `path` with an Idempotency-Key.
async fn keyed(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    key: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let res = client()
        .post(app.url(path))
        .header("Authorization", format!("Token {}", user.token))
        .header("Idempotency-Key", key)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// A claim on `key` for `body` at `path`, made `ago` by a process that then died
/// (its last heartbeat was that claim), and the attempt it was running.
async fn claimed_by_a_dead_process(
    app: &TestApp,
    user: &TestUser,
    path: &str,
    key: &str,
    body: &[u8],
    ago: Duration,
) -> Attempt {
    let at = app.tijori.now() - ago;
    let dead = InstanceId::from_trusted(format!("dead-{key}"));
    let key = IdempotencyKey::parse(key).unwrap();
    let claim = app
        .tijori
        .store()
        .claim_idempotency_key(
            &user.id,
            &key,
            &fingerprint("POST", path, body),
            &Claimant::new(dead.clone(), at),
            at,
        )
        .await
        .unwrap();
    assert_eq!(claim, Claim::New);
    Attempt {
        user: user.id.clone(),
        key,
        holder: dead,
        left: Leftover::default(),
    }
}

async fn a_retry_after_a_crash_gets_the_order_the_dead_request_made(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("yonas").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 10).await;
    let body =
        serde_json::to_vec(&json!({"items": [{"product_id": coffee, "quantity": 2}]})).unwrap();
    // The first request reserved the stock and its process was killed before it
    // answered (a minute ago: its lease has four more to run).
    let attempt = claimed_by_a_dead_process(
        &app,
        &user,
        "/api/orders/",
        "order-1",
        &body,
        Duration::minutes(1),
    )
    .await;
    let request = tijori_core::shop::OrderRequest::parse([(coffee.as_str(), 2)]).unwrap();
    let now = app.tijori.now();
    let made = app
        .tijori
        .store()
        .create_order_for(
            &tijori_core::shop::NewOrder {
                id: tijori_core::id::OrderId::generate(),
                user: user.id.clone(),
                request,
                caps: tijori_core::shop::OrderCaps::UNLIMITED,
                expires_at: now + Duration::minutes(30),
            },
            now,
            Some(&attempt),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(app.product(&coffee).await["stock"], 8);

    // The client retries after the restart: at once, the same order.
    let (status, order) = keyed(&app, &user, "/api/orders/", "order-1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["id"], made.id.as_str());
    assert_eq!(app.product(&coffee).await["stock"], 8, "reserved once");
    // And that answer is now the key's.
    let (status, again) = keyed(&app, &user, "/api/orders/", "order-1", &body).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &order));

    // A key a live process holds (its heartbeat is fresh) is still in progress.
    let live = InstanceId::from_trusted("live");
    let key = IdempotencyKey::parse("order-2").unwrap();
    let now = app.tijori.now();
    app.tijori
        .store()
        .claim_idempotency_key(
            &user.id,
            &key,
            &fingerprint("POST", "/api/orders/", &body),
            &Claimant::new(live.clone(), now),
            now,
        )
        .await
        .unwrap();
    let (status, busy) = keyed(&app, &user, "/api/orders/", "order-2", &body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&busy), "idempotency_in_progress");
    assert_eq!(app.product(&coffee).await["stock"], 8);
}

async fn a_retry_after_a_crash_mid_checkout_reuses_or_closes_what_it_left(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("meron").await;
    let plan = app.plan_id("Basic").await;
    let path = "/api/subscriptions/initiate/";

    // Killed after the gateway opened the checkout, before answering: the retry
    // gets that checkout, not a second one.
    let body = serde_json::to_vec(&json!({"plan_id": plan})).unwrap();
    let attempt =
        claimed_by_a_dead_process(&app, &user, path, "sub-1", &body, Duration::seconds(30)).await;
    let account = app.tijori.store().user(&user.id).await.unwrap().unwrap();
    let first = app
        .tijori
        .initiate_subscription(
            &account,
            &plan,
            tijori_core::gateway::GatewayKind::Khalti,
            tijori_core::subscription::PlanChange::Queue,
            Some(&attempt),
        )
        .await
        .unwrap()
        .0;
    let opened = app.sandbox().khalti().recent_payments(100).len();
    let (status, answer) = keyed(&app, &user, path, "sub-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["payment_id"], first.id.as_str());
    assert_eq!(answer["pidx"], first.provider_ref.as_deref().unwrap());
    assert_eq!(
        app.sandbox().khalti().recent_payments(100).len(),
        opened,
        "no second checkout at the gateway"
    );

    // Killed before the checkout was recorded: that payment is closed (it blocks
    // nothing) and the retry opens one.
    let body = serde_json::to_vec(&json!({"plan_id": plan, "gateway": "khalti"})).unwrap();
    let attempt =
        claimed_by_a_dead_process(&app, &user, path, "sub-2", &body, Duration::seconds(30)).await;
    let now = app.tijori.now();
    let orphan = tijori_core::payment::Payment {
        id: tijori_core::id::PaymentId::generate(),
        user_id: user.id.clone(),
        gateway: tijori_core::gateway::GatewayKind::Khalti,
        purpose: first.purpose.clone(),
        amount: first.amount,
        status: PaymentStatus::Initiated,
        checkout: tijori_core::payment::CheckoutKind::Hosted,
        provider_ref: None,
        provider_txn_id: None,
        payment_url: None,
        expires_at: None,
        status_reason: None,
        created_at: now,
        updated_at: now,
    };
    app.tijori
        .store()
        .insert_payment_for(&orphan, Some(&attempt))
        .await
        .unwrap();
    let (status, answer) = keyed(&app, &user, path, "sub-2", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_ne!(answer["payment_id"], orphan.id.as_str());
    assert_eq!(
        app.payment(&user, orphan.id.as_str()).await["status"],
        "failed"
    );
}

async fn a_running_tijori_keeps_its_keys_and_frees_them_when_it_stops(db: TestDatabase) {
    let mut app = TestApp::spawn(db).await;
    let user = app.register("ruth").await;
    let key = IdempotencyKey::parse("held").unwrap();
    let store = app.tijori.store().clone();
    // A claim the running app made a minute ago (a slow request): its heartbeat,
    // not the claim's time, says it is alive.
    let ago = app.tijori.now() - Duration::minutes(1);
    let mine = Claimant::new(app.tijori.instance().clone(), ago);
    assert_eq!(
        store
            .claim_idempotency_key(&user.id, &key, "print", &mine, ago)
            .await
            .unwrap(),
        Claim::New
    );
    let now = app.tijori.now();
    let other = Claimant::new(InstanceId::from_trusted("other"), now);
    assert_eq!(
        store
            .claim_idempotency_key(&user.id, &key, "print", &other, now)
            .await
            .unwrap(),
        Claim::InProgress,
        "the app's heartbeat keeps its key"
    );
    // Stopped cleanly: its heartbeat row goes, and its keys are free at once.
    let db = app.db.take().expect("owns its database");
    drop((store, app));
    // Sooner than a missed heartbeat would free it (20 s after the last beat).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let database = tijori_store::Database::connect(&db.url).await.unwrap();
        let now = SystemClock.now();
        let other = Claimant::new(InstanceId::from_trusted("other"), now);
        let claim = database
            .store()
            .claim_idempotency_key(&user.id, &key, "print", &other, now)
            .await
            .unwrap();
        database.close().await;
        if claim == Claim::TakenOver(Leftover::default()) {
            break;
        }
        assert_eq!(claim, Claim::InProgress);
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped app's key was never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

test_both!(
    a_failed_chapa_attempt_paid_on_retry_is_found_by_the_reconciler,
    a_failed_chapa_attempt_past_its_checkouts_life_is_left_alone,
    the_return_page_looks_a_failed_chapa_attempt_up_and_offers_to_try_again,
    verify_finds_a_retry_that_succeeded,
    a_return_without_a_session_is_looked_up_then_asks_to_sign_in,
    the_return_page_looks_up_once_every_few_seconds_and_keeps_a_capped_query,
    a_retry_after_a_crash_gets_the_order_the_dead_request_made,
    a_retry_after_a_crash_mid_checkout_reuses_or_closes_what_it_left,
    a_running_tijori_keeps_its_keys_and_frees_them_when_it_stops,
);
