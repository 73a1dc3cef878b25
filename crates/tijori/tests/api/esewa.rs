//! Paying with eSewa (issue 11): the signed form tijori's page posts, eSewa's signed
//! return, and the status check that alone settles, against the built-in eSewa sandbox.

use std::sync::Arc;

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_core::clock::{Clock, ManualClock, SystemClock};
use tijori_core::store::OperatorEventKind;
use tijori_sandbox::{EsewaFault, EsewaSettings};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{client, error_code, TestApp, TestUser};

async fn initiate_esewa(app: &TestApp, user: &TestUser, plan: &str) -> Value {
    let res = app
        .post(
            user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": plan, "gateway": "esewa"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "initiate");
    res.json().await.unwrap()
}

/// Posts the form as the payer's browser does (through tijori's page), pays on the
/// sandbox's hosted page with the test eSewa ID, and returns where eSewa redirects to.
async fn pay_with_esewa(app: &TestApp, started: &Value, action: &str) -> reqwest::Url {
    let page = client()
        .get(started["payment_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "tijori's page that posts the form"
    );
    let html = page.text().await.unwrap();
    let uuid = started["transaction_uuid"].as_str().unwrap();
    assert!(
        html.contains("Continue to eSewa") && html.contains(uuid),
        "{html}"
    );
    let posted = post_form(started).await;
    let hosted = app.url(&posted);
    let res = client()
        .post(hosted)
        .form(&[
            ("esewa_id", "9806800001"),
            ("password", "Nepal@123"),
            ("token", "123456"),
            ("action", action),
            ("transaction_uuid", uuid),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    reqwest::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

async fn a_subscription_paid_with_esewa_is_granted_once_the_status_check_says_so(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("sita").await;
    let plan = app.plan_id("Basic").await;
    let started = initiate_esewa(&app, &user, &plan).await;
    let payment_id = started["payment_id"].as_str().unwrap();
    let uuid = started["transaction_uuid"].as_str().unwrap();
    assert_eq!(uuid, payment_id.replace('_', "-"));
    assert_eq!(
        started["payment_url"].as_str().unwrap(),
        app.url(&format!("/payments/{payment_id}/esewa/")).as_str()
    );
    assert_eq!(started["form"]["fields"]["total_amount"], "500");
    assert_eq!(started["form"]["fields"]["transaction_uuid"], uuid);

    // Before the form reached eSewa it knows nothing of the payment: still open.
    let (status, body) = verify_uuid(&app, &user, uuid).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.payment(&user, payment_id).await["status"], "initiated");

    let back = pay_with_esewa(&app, &started, "pay").await;
    assert_eq!(back.path(), "/payment-success/");
    assert!(back.query().unwrap().contains("data="), "{back}");

    // The signed return is a signal: it names the payment (the page shows it), and
    // the status check settles. (The return page asks eSewa at most once every few
    // seconds, and the verify above just asked; verify asks again.)
    let (browser, _) = app.sign_in_browser(&user).await;
    let page = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let (status, body) = verify_uuid(&app, &user, uuid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(app.payment(&user, payment_id).await["status"], "completed");
    let me = app.subscription(&user).await.expect("a subscription");
    assert_eq!(me["plan"]["id"], plan.as_str());

    // Twenty verifies at once grant nothing more.
    let verifies = (0..20).map(|_| verify_uuid(&app, &user, uuid));
    for (status, body) in futures::future::join_all(verifies).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let periods = app.get(&user, "/api/subscriptions/me/").await;
    assert_eq!(periods.status(), StatusCode::OK);
    let answers = app.gateway_answers(payment_id).await;
    assert!(
        answers.iter().any(|a| a.body.contains("COMPLETE")),
        "{answers:?}"
    );
}

async fn a_canceled_esewa_payment_grants_nothing(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("ram").await;
    let plan = app.plan_id("Basic").await;
    let started = initiate_esewa(&app, &user, &plan).await;
    let payment_id = started["payment_id"].as_str().unwrap();
    let back = pay_with_esewa(&app, &started, "cancel").await;
    // The failure redirect carries nothing signed; its reference is ours.
    assert!(back
        .query()
        .unwrap()
        .contains(started["transaction_uuid"].as_str().unwrap()));
    let (browser, _) = app.sign_in_browser(&user).await;
    let page = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(app.payment(&user, payment_id).await["status"], "canceled");
    assert!(app.subscription(&user).await.is_none());
}

async fn a_forged_esewa_return_names_no_payment(db: TestDatabase) {
    use base64::Engine as _;
    let app = TestApp::spawn(db).await;
    let user = app.register("hari").await;
    let plan = app.plan_id("Basic").await;
    let started = initiate_esewa(&app, &user, &plan).await;
    let payment_id = started["payment_id"].as_str().unwrap();
    let uuid = started["transaction_uuid"].as_str().unwrap();
    let forged = json!({
        "transaction_code": "000AWEO", "status": "COMPLETE", "total_amount": "500.0",
        "transaction_uuid": uuid, "product_code": "EPAYTEST",
        "signed_field_names": "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names",
        "signature": "bm90IGEgc2lnbmF0dXJl"
    });
    let data = base64::engine::general_purpose::STANDARD.encode(forged.to_string());
    let (browser, _) = app.sign_in_browser(&user).await;
    let page = browser
        .get(app.url(&format!("/payment-success/?data={data}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::BAD_REQUEST,
        "a forged return names nothing"
    );
    assert_eq!(app.payment(&user, payment_id).await["status"], "initiated");
    assert!(app.subscription(&user).await.is_none());
    let suspect = |events: &[tijori_core::store::OperatorEvent]| {
        events
            .iter()
            .filter(|e| {
                e.kind == OperatorEventKind::ReturnSuspect
                    && e.payment_id.as_ref().map(|p| p.as_str()) == Some(payment_id)
            })
            .count()
    };
    assert_eq!(
        suspect(&app.operator_events().await),
        1,
        "recorded for the operator"
    );
    // Replayed, it adds nothing while the note is open: a stranger cannot fill the list.
    for _ in 0..3 {
        let again = browser
            .get(app.url(&format!("/payment-success/?data={data}")))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    }
    let events = app.operator_events().await;
    assert_eq!(suspect(&events), 1, "one open note per payment");
    let open = events
        .iter()
        .find(|e| e.kind == OperatorEventKind::ReturnSuspect)
        .unwrap();
    app.tijori.resolve_operator_event(open.id).await.unwrap();

    // A return signed with eSewa's key but for another amount is evidence against
    // itself: it names the payment (looked up: still unpaid), and is recorded.
    let signed = |amount: &str| {
        use hmac::Mac as _;
        let message = format!(
            "transaction_code=000AWEO,status=COMPLETE,total_amount={amount},\
             transaction_uuid={uuid},product_code=EPAYTEST,\
             signed_field_names=transaction_code,status,total_amount,transaction_uuid,\
             product_code,signed_field_names"
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
            tijori_sandbox::DEFAULT_ESEWA_SECRET_KEY.as_bytes(),
        )
        .unwrap();
        mac.update(message.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let body = json!({
            "transaction_code": "000AWEO", "status": "COMPLETE", "total_amount": amount,
            "transaction_uuid": uuid, "product_code": "EPAYTEST",
            "signed_field_names": "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names",
            "signature": signature
        });
        base64::engine::general_purpose::STANDARD.encode(body.to_string())
    };
    let page = browser
        .get(app.url(&format!("/payment-success/?data={}", signed("1.0"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "a verified return names its payment"
    );
    assert_eq!(app.payment(&user, payment_id).await["status"], "initiated");
    assert!(app.subscription(&user).await.is_none());
    let events = app.operator_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.kind == OperatorEventKind::ReturnSuspect
                && e.detail.contains("says 100 minor units")),
        "{events:?}"
    );
}

async fn verify_uuid(app: &TestApp, user: &TestUser, uuid: &str) -> (StatusCode, Value) {
    let res = app
        .post(
            user,
            "/api/subscriptions/verify/",
            json!({"transaction_uuid": uuid}),
        )
        .await;
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// Posts the signed form to the sandbox as the browser would, without paying: eSewa
/// now knows the payment (PENDING until the payer acts). Returns where eSewa sends
/// the browser (its hosted page).
async fn post_form(started: &Value) -> String {
    let form = &started["form"];
    let fields: Vec<(String, String)> = form["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let posted = client()
        .post(form["action"].as_str().unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_redirection(), "{}", posted.status());
    posted.headers()["location"].to_str().unwrap().to_owned()
}

/// DESIGN.md §1's status table for eSewa's statuses, each through verify (and, for a
/// refund made by eSewa, through "check payment status").
async fn each_esewa_status_settles_as_the_table_says(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let plan = app.plan_id("Basic").await;
    let esewa = app.sandbox().esewa();
    for (i, (act, http, status)) in [
        ("pending", StatusCode::ACCEPTED, "pending"),
        ("ambiguous", StatusCode::ACCEPTED, "pending"),
        ("cancel", StatusCode::BAD_REQUEST, "canceled"),
        ("complete", StatusCode::OK, "completed"),
    ]
    .into_iter()
    .enumerate()
    {
        let user = app.register(&format!("user{i}")).await;
        let started = initiate_esewa(&app, &user, &plan).await;
        let uuid = started["transaction_uuid"].as_str().unwrap();
        post_form(&started).await;
        match act {
            "pending" => esewa.pending(uuid),
            "ambiguous" => esewa.ambiguous(uuid),
            "cancel" => esewa.cancel(uuid),
            _ => esewa.complete(uuid),
        }
        .unwrap();
        let (got, body) = verify_uuid(&app, &user, uuid).await;
        assert_eq!(got, http, "{act}: {body}");
        let payment_id = started["payment_id"].as_str().unwrap();
        assert_eq!(
            app.payment(&user, payment_id).await["status"],
            status,
            "{act}"
        );
        assert_eq!(
            app.subscription(&user).await.is_some(),
            act == "complete",
            "{act}"
        );
        if act == "complete" {
            // eSewa refunds outside any API; its status check says so, and that
            // settles as any gateway's refund does.
            esewa.refund(uuid).unwrap();
            let res = app
                .post(
                    &user,
                    &format!("/api/payments/{payment_id}/refresh/"),
                    json!({}),
                )
                .await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(app.payment(&user, payment_id).await["status"], "refunded");
        }
    }
}

/// The status API's failures are told apart, and the payment stays open to be asked
/// again: timeout 504, 5xx and garbage 502, eSewa's outage answer 503.
async fn esewa_status_failures_leave_the_payment_recheckable(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("gita").await;
    let plan = app.plan_id("Basic").await;
    let started = initiate_esewa(&app, &user, &plan).await;
    let uuid = started["transaction_uuid"].as_str().unwrap();
    let payment_id = started["payment_id"].as_str().unwrap();
    post_form(&started).await;
    app.sandbox().esewa().complete(uuid).unwrap();
    for (fault, http, code) in [
        (
            EsewaFault::Timeout,
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
        ),
        (
            EsewaFault::ServerError,
            StatusCode::BAD_GATEWAY,
            "gateway_bad_answer",
        ),
        (
            EsewaFault::Garbage,
            StatusCode::BAD_GATEWAY,
            "gateway_bad_answer",
        ),
        (
            EsewaFault::Outage,
            StatusCode::SERVICE_UNAVAILABLE,
            "gateway_unavailable",
        ),
    ] {
        app.sandbox().esewa().set_settings(EsewaSettings {
            fault,
            fault_count: 0,
            ..EsewaSettings::default()
        });
        let (got, body) = verify_uuid(&app, &user, uuid).await;
        assert_eq!(got, http, "{fault:?}: {body}");
        assert_eq!(error_code(&body), code, "{fault:?}");
        assert_eq!(app.payment(&user, payment_id).await["status"], "initiated");
    }
    app.sandbox().esewa().set_settings(EsewaSettings::default());
    let (got, body) = verify_uuid(&app, &user, uuid).await;
    assert_eq!(got, StatusCode::OK, "{body}");
    assert_eq!(app.payment(&user, payment_id).await["status"], "completed");
}

/// The reconciler finds an eSewa payment whose return never came; one eSewa never
/// heard of is closed once its link's lifetime is over.
async fn the_reconciler_settles_and_closes_esewa_payments(db: TestDatabase) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    app.tijori.schedule_recurring_jobs().await.unwrap();
    let plan = app.plan_id("Basic").await;
    let paid_user = app.register("paid").await;
    let paid = initiate_esewa(&app, &paid_user, &plan).await;
    post_form(&paid).await;
    app.sandbox()
        .esewa()
        .complete(paid["transaction_uuid"].as_str().unwrap())
        .unwrap();
    let lost_user = app.register("lost").await;
    let lost = initiate_esewa(&app, &lost_user, &plan).await;

    clock.advance(Duration::minutes(16));
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();
    let paid_id = paid["payment_id"].as_str().unwrap();
    assert_eq!(
        app.payment(&paid_user, paid_id).await["status"],
        "completed"
    );
    assert!(app.subscription(&paid_user).await.is_some());
    let lost_id = lost["payment_id"].as_str().unwrap();
    assert_eq!(
        app.payment(&lost_user, lost_id).await["status"],
        "initiated",
        "NOT_FOUND while the link lives keeps it open"
    );

    clock.advance(Duration::hours(25));
    app.tijori.run_due_jobs("test-worker", 8).await.unwrap();
    let closed = app.payment(&lost_user, lost_id).await;
    assert_ne!(
        closed["status"], "initiated",
        "closed after the link's lifetime"
    );
    assert_ne!(closed["status"], "completed");
    assert!(app.subscription(&lost_user).await.is_none());
}

/// An order in NPR paid with eSewa (initialize answers the form too).
async fn an_order_is_paid_with_esewa(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("abebe").await;
    let product = app.product_in("NPR").await;
    let order = app.order_of(&user, &product, 1).await;
    let res = app
        .post(
            &user,
            "/api/payments/initialize/",
            json!({"order_id": order, "gateway": "esewa"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let started: Value = res.json().await.unwrap();
    let uuid = started["transaction_uuid"].as_str().unwrap().to_owned();
    assert!(
        started["form"]["fields"]["signature"].is_string(),
        "{started}"
    );
    post_form(&started).await;
    app.sandbox().esewa().complete(&uuid).unwrap();
    let (got, body) = verify_uuid(&app, &user, &uuid).await;
    assert_eq!(got, StatusCode::OK, "{body}");
    assert_eq!(app.order_json(&user, &order).await["status"], "paid");
}

/// eSewa has no refund API: a refund is made in eSewa's merchant portal and recorded
/// here with its reference; asked without one, it is refused and nothing is recorded.
async fn an_esewa_refund_is_recorded_with_its_reference(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("boss").await;
    let user = app.register("nima").await;
    let plan = app.plan_id("Basic").await;
    let started = initiate_esewa(&app, &user, &plan).await;
    let uuid = started["transaction_uuid"].as_str().unwrap();
    let payment_id = started["payment_id"].as_str().unwrap();
    post_form(&started).await;
    app.sandbox().esewa().complete(uuid).unwrap();
    let (got, body) = verify_uuid(&app, &user, uuid).await;
    assert_eq!(got, StatusCode::OK, "{body}");

    let path = format!("/api/payments/{payment_id}/refund/");
    let refund = |body: Value| app.post(&admin, &path, body);
    let res = refund(json!({"reason": "changed mind"})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "refund_made_outside_required", "{body}");
    assert_eq!(app.payment(&user, payment_id).await["status"], "completed");

    let res = refund(json!({"reason": "changed mind", "made_outside": "RF-20261207-1"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["refund"]["status"], "succeeded", "{body}");
    assert_eq!(app.payment(&user, payment_id).await["status"], "refunded");
    let me = app.subscription(&user).await;
    assert!(
        me.as_ref().is_none_or(|s| s["is_active"] == false),
        "the refunded period is taken back: {me:?}"
    );
    let answers = app.gateway_answers(payment_id).await;
    assert!(
        answers.iter().any(|a| a.body.contains("RF-20261207-1")),
        "the reference is on the audit trail: {answers:?}"
    );
}

test_both!(
    a_subscription_paid_with_esewa_is_granted_once_the_status_check_says_so,
    a_canceled_esewa_payment_grants_nothing,
    a_forged_esewa_return_names_no_payment,
    each_esewa_status_settles_as_the_table_says,
    esewa_status_failures_leave_the_payment_recheckable,
    the_reconciler_settles_and_closes_esewa_payments,
    an_order_is_paid_with_esewa,
    an_esewa_refund_is_recorded_with_its_reference,
);
