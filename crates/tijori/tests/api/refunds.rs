//! Refunds an operator makes through the gateways' refund APIs.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
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
    let user = app.register(name).await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let (status, _) = app.verify(&user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    (user, started["payment_id"].as_str().unwrap().to_owned())
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

test_both!(
    a_full_refund_revokes_the_subscription,
    partial_refunds_keep_the_subscription_until_the_last,
    an_order_refund_restocks_when_asked,
);
