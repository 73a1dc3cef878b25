//! Khalti's legacy widget (KPG-1): the server verifies the browser's token with the
//! secret key and cross-checks the amount before anything is fulfilled.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{error_code, TestApp, TestUser};

async fn widget_verify(app: &TestApp, user: &TestUser, body: Value) -> (StatusCode, Value) {
    let res = app
        .post(user, "/api/payments/khalti/widget/verify/", body)
        .await;
    let status = res.status();
    (status, res.json().await.unwrap())
}

async fn a_widget_token_pays_for_a_plan_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("bishnu").await;
    let plan = app.plan_id("Basic").await; // NPR 500.00
    let token = app.sandbox().khalti().mint_widget_token(50_000).unwrap();

    let body = json!({"token": token, "amount": 50_000, "plan_id": plan});
    let (status, verified) = widget_verify(&app, &user, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["status"], "success");
    assert_eq!(verified["subscription"]["plan"]["name"], "Basic");
    let payment = app
        .payment(&user, verified["payment_id"].as_str().unwrap())
        .await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["gateway"], "khalti");
    let state = app.sandbox().khalti().widget_transaction(&token).unwrap();
    assert!(
        state.to_string().contains("Completed"),
        "the server captured it: {state}"
    );

    // The same token again (a retry) answers the same payment and grants nothing more.
    let (status, again) = widget_verify(&app, &user, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["payment_id"], verified["payment_id"]);
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(
        crate::helpers::days_between(&me["start_date"], &me["end_date"]),
        30
    );
    // Nobody else can spend it.
    let thief = app.register("thief").await;
    let (status, body) = widget_verify(&app, &thief, body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "token_used");
}

async fn a_wrong_amount_is_refused_before_khalti_is_asked(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("gita").await;
    let plan = app.plan_id("Basic").await;
    let token = app.sandbox().khalti().mint_widget_token(1_000).unwrap();

    // The browser says 10 rupees for a 500-rupee plan.
    let (status, body) = widget_verify(
        &app,
        &user,
        json!({"token": token, "amount": 1_000, "plan_id": plan}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "amount_mismatch");
    assert!(app.subscription(&user).await.is_none());
    let state = app.sandbox().khalti().widget_transaction(&token).unwrap();
    assert!(
        !state.to_string().contains("Completed"),
        "not captured: {state}"
    );

    // The browser claims the price, but the token was for 10 rupees: Khalti refuses
    // to verify it for 500, and nothing is granted.
    let (status, body) = widget_verify(
        &app,
        &user,
        json!({"token": token, "amount": 50_000, "plan_id": plan}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "gateway_rejected");
    assert!(app.subscription(&user).await.is_none());

    // A token Khalti never issued.
    let (status, body) = widget_verify(
        &app,
        &user,
        json!({"token": "NoSuchToken123", "amount": 50_000, "plan_id": plan}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "gateway_rejected");

    // Malformed requests.
    for body in [
        json!({"token": token, "amount": 50_000}),
        json!({"token": token, "amount": 50_000, "plan_id": plan, "order_id": "ord_x"}),
        json!({"token": "", "amount": 50_000, "plan_id": plan}),
        json!({"token": token, "amount": "50000", "plan_id": plan}),
    ] {
        let (status, answer) = widget_verify(&app, &user, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
}

async fn a_widget_token_pays_for_an_order(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("kamala").await;
    let tea = app.product_in("NPR").await; // NPR 650.00
    let order = app.order_of(&user, &tea, 1).await;
    let token = app.sandbox().khalti().mint_widget_token(65_000).unwrap();
    let (status, body) = widget_verify(
        &app,
        &user,
        json!({"token": token, "amount": 65_000, "order_id": order}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(app.order_json(&user, &order).await["status"], "paid");

    // A paid order takes no second widget payment: nothing is captured.
    let again = app.sandbox().khalti().mint_widget_token(65_000).unwrap();
    let (status, body) = widget_verify(
        &app,
        &user,
        json!({"token": again, "amount": 65_000, "order_id": order}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "order_not_pending");
    let state = app.sandbox().khalti().widget_transaction(&again).unwrap();
    assert!(
        !state.to_string().contains("Completed"),
        "not captured: {state}"
    );

    // An ETB order cannot be paid with Khalti's widget.
    let coffee = app.product_in("ETB").await;
    let etb_order = app.order_of(&user, &coffee, 1).await;
    let token = app.sandbox().khalti().mint_widget_token(85_000).unwrap();
    let (status, body) = widget_verify(
        &app,
        &user,
        json!({"token": token, "amount": 85_000, "order_id": etb_order}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "unsupported");
}

test_both!(
    a_widget_token_pays_for_a_plan_once,
    a_wrong_amount_is_refused_before_khalti_is_asked,
    a_widget_token_pays_for_an_order,
);
