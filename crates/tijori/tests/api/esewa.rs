//! Paying with eSewa (issue 11): the signed form tijori's page posts, eSewa's signed
//! return, and the status check that alone settles, against the built-in eSewa sandbox.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{client, TestApp, TestUser};

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
    let form = &started["form"];
    let uuid = started["transaction_uuid"].as_str().unwrap();
    assert!(
        html.contains("Continue to eSewa") && html.contains(uuid),
        "{html}"
    );
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
    let hosted = app.url(posted.headers()["location"].to_str().unwrap());
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

test_both!(
    a_subscription_paid_with_esewa_is_granted_once_the_status_check_says_so,
    a_canceled_esewa_payment_grants_nothing,
    a_forged_esewa_return_names_no_payment,
);
