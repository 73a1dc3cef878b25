//! Khalti timing out, refusing connections, answering garbage or refusing us: each is
//! an error the caller can act on, and none loses the payment.

use reqwest::StatusCode;
use serde_json::json;
use tijori_core::money::{Currency, Money};
use tijori_core::subscription::NewPlan;
use tijori_sandbox::{Fault, KhaltiSettings};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{closed_port, error_code, TestApp};

/// Makes Khalti fail the next three API calls: a lookup that fails fast with a 5xx
/// is tried three times before the caller hears of it.
fn fault(app: &TestApp, fault: Fault) {
    fault_n(app, fault, 3);
}

fn fault_n(app: &TestApp, fault: Fault, count: u32) {
    let khalti = app.sandbox().khalti();
    khalti.set_settings(KhaltiSettings {
        fault,
        fault_count: count,
        ..khalti.settings()
    });
}

/// Initiates and pays, so the next verify is the one the fault hits.
async fn paid(app: &TestApp, user: &crate::helpers::TestUser) -> (String, String) {
    let started = app.initiate(user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    (
        started["pidx"].as_str().unwrap().to_owned(),
        started["payment_id"].as_str().unwrap().to_owned(),
    )
}

async fn a_lookup_timeout_is_504_and_the_payment_stays_checkable(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("timeout").await;
    let (pidx, payment_id) = paid(&app, &user).await;

    fault_n(&app, Fault::Timeout, 1);
    let started = std::time::Instant::now();
    let (status, body) = app.verify(&user, &pidx).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(error_code(&body), "gateway_timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the configured timeout applies"
    );
    assert_eq!(app.payment(&user, &payment_id).await["status"], "initiated");
    assert!(app.subscription(&user).await.is_none());

    let (status, body) = app.verify(&user, &pidx).await;
    assert_eq!(status, StatusCode::OK, "once Khalti answers again: {body}");
}

async fn garbage_and_server_errors_are_502_and_kept(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("garbage").await;
    let (pidx, payment_id) = paid(&app, &user).await;

    for f in [Fault::Garbage, Fault::ServerError] {
        fault(&app, f);
        let (status, body) = app.verify(&user, &pidx).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{f:?}: {body}");
        assert_eq!(error_code(&body), "gateway_bad_answer");
        assert_eq!(app.payment(&user, &payment_id).await["status"], "initiated");
    }
    // What Khalti answered is on record for whoever investigates.
    let answers = app.gateway_answers(&payment_id).await;
    assert!(
        answers.iter().filter(|a| a.kind == "lookup").count() >= 2,
        "{answers:?}"
    );
    assert!(answers.iter().any(|a| a.http_status == 500));

    // One 5xx in a row is ridden out by the retry: the caller sees the answer.
    fault_n(&app, Fault::ServerError, 2);
    assert_eq!(app.verify(&user, &pidx).await.0, StatusCode::OK);
}

async fn refused_connections_are_503_and_another_process_settles_it_later(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("refused").await;
    let (pidx, payment_id) = paid(&app, &user).await;

    // A second tijori on the same database, whose Khalti refuses connections.
    let port = closed_port();
    let down = app
        .sibling(|c| {
            c.khalti_base_url = Some(
                format!("http://127.0.0.1:{port}/khalti/api/v2/")
                    .parse()
                    .unwrap(),
            )
        })
        .await;
    let res = down
        .post(&user, "/api/subscriptions/verify/", json!({"pidx": pidx}))
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "gateway_unreachable");
    assert_eq!(app.payment(&user, &payment_id).await["status"], "initiated");

    // The first process, whose Khalti answers, settles it.
    assert_eq!(app.verify(&user, &pidx).await.0, StatusCode::OK);
    assert!(
        down.subscription(&user).await.is_some(),
        "both processes see one truth"
    );
}

async fn an_initiate_that_fails_is_kept_as_failed(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("initfail").await;
    let plan = app.plan_id("Basic").await;

    fault_n(&app, Fault::Timeout, 1);
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": plan}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);

    // Khalti's own validation: it refuses anything under Rs 10, with its reason.
    let cheap = app
        .tijori
        .create_plan(NewPlan {
            name: "Too cheap".into(),
            description: String::new(),
            price: Money::parse_major("5", Currency::Npr).unwrap(),
            duration_days: 1,
        })
        .await
        .unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": cheap.id.to_string()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "gateway_rejected");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("Amount should be greater than Rs. 10"),
        "{body}"
    );

    // Neither lost: both are on the user's record as failed, with why.
    let history = app.tijori.payment_history(&user.id, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    for p in &history {
        assert_eq!(p.status.as_str(), "failed");
        assert!(p.status_reason.is_some());
        assert!(p.provider_ref.is_none());
    }
}

async fn a_refused_key_is_a_502_for_the_merchant_to_fix(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("badkey").await;
    let khalti = app.sandbox().khalti();
    khalti.set_settings(KhaltiSettings {
        secret_key: "some_other_key".into(),
        ..khalti.settings()
    });
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": app.plan_id("Basic").await}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "gateway_misconfigured");
    assert!(
        !body
            .to_string()
            .contains(tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY),
        "the key never leaks"
    );
    // Khalti's refusal is kept on the failed payment for whoever investigates.
    let failed = app.tijori.payment_history(&user.id, 1).await.unwrap();
    assert_eq!(failed[0].status.as_str(), "failed");
    let answers = app.gateway_answers(failed[0].id.as_str()).await;
    assert!(
        answers.iter().any(|a| a.kind == "initiate"
            && a.http_status == 401
            && a.body.contains("Invalid token")),
        "{answers:?}"
    );
}

test_both!(
    a_lookup_timeout_is_504_and_the_payment_stays_checkable,
    garbage_and_server_errors_are_502_and_kept,
    refused_connections_are_503_and_another_process_settles_it_later,
    an_initiate_that_fails_is_kept_as_failed,
    a_refused_key_is_a_502_for_the_merchant_to_fix,
);

/// Chapa's initialize failing each way: the caller gets an error it can act on, and
/// the payment row (created before the call) is kept as failed with the reason.
async fn chapa_initialize_failures_are_mapped(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("chapafail").await;
    let coffee = app.product_in("ETB").await;
    let order = app.order_of(&user, &coffee, 1).await;
    for (fault, status, code) in [
        (
            Fault::Timeout,
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
        ),
        (
            Fault::ServerError,
            StatusCode::BAD_GATEWAY,
            "gateway_bad_answer",
        ),
        (
            Fault::Garbage,
            StatusCode::BAD_GATEWAY,
            "gateway_bad_answer",
        ),
    ] {
        app.chapa_settings(|s| {
            s.fault = fault;
            s.fault_count = 1;
        });
        let (got, body) = app.initialize(&user, &order, Some("chapa")).await;
        assert_eq!(got, status, "{fault:?}: {body}");
        assert_eq!(error_code(&body), code, "{fault:?}");
    }
    // Chapa's own refusal (here: our key is not the one it knows) comes with its reason.
    app.chapa_settings(|s| s.secret_key = "CHASECK_TEST-someoneElsesKey000000000000000".into());
    let (got, body) = app.initialize(&user, &order, Some("chapa")).await;
    assert_eq!(got, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(error_code(&body), "gateway_misconfigured");
    app.chapa_settings(|s| s.secret_key = tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY.into());

    // Unreachable: a second tijori on the same database whose Chapa is a closed port.
    let offline = app
        .sibling(|c| {
            c.chapa_secret_key = Some(tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY.into());
            c.chapa_base_url = Some(
                format!("http://127.0.0.1:{}/v1/", closed_port())
                    .parse()
                    .unwrap(),
            );
            c.demo = Some(false);
        })
        .await;
    let (got, body) = offline.initialize(&user, &order, Some("chapa")).await;
    assert_eq!(got, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code(&body), "gateway_unreachable");

    // Chapa refusing the request itself: a 400 that carries Chapa's reason.
    let chapa = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/transaction/initialize"))
        .respond_with(wiremock::ResponseTemplate::new(400).set_body_json(json!({
            "message": {"email": ["The email must be a valid email address."]},
            "status": "failed",
            "data": null
        })))
        .mount(&chapa)
        .await;
    let strict = app
        .sibling(|c| {
            c.chapa_secret_key = Some(tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY.into());
            c.chapa_base_url = Some(format!("{}/v1/", chapa.uri()).parse().unwrap());
            c.demo = Some(false);
        })
        .await;
    let (got, body) = strict.initialize(&user, &order, Some("chapa")).await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "gateway_rejected");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("valid email"),
        "{body}"
    );

    // Every attempt is on record as failed, and the order can still be paid.
    let payments: Vec<serde_json::Value> =
        app.get(&user, "/api/orders/").await.json().await.unwrap();
    assert_eq!(payments[0]["status"], "pending");
    let history = app.tijori.payment_history(&user.id, 20).await.unwrap();
    assert_eq!(history.len(), 6, "{history:?}");
    assert!(history
        .iter()
        .all(|p| p.status == tijori_core::payment::PaymentStatus::Failed
            && p.status_reason.is_some()));
    let (got, body) = app.initialize(&user, &order, Some("chapa")).await;
    assert_eq!(got, StatusCode::CREATED, "{body}");
}

test_both!(chapa_initialize_failures_are_mapped);
