//! The Khalti subscription flow and DESIGN.md §1's status table, end to end.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::KhaltiSettings;
use tijori_testkit::{test_both, TestDatabase};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{browser, client, config, days_between, TestApp};

async fn a_paid_subscription_is_granted(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("sita").await;
    let plan = app.plan_id("Basic").await;

    let started = app.initiate(&user, &plan).await;
    let pidx = started["pidx"].as_str().unwrap();
    let payment_id = started["payment_id"].as_str().unwrap();
    assert!(started["payment_url"].as_str().unwrap().contains(pidx));
    assert!(started["expires_at"].is_string());
    assert_eq!(app.payment(&user, payment_id).await["status"], "initiated");

    let back = app
        .pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    assert_eq!(back.path(), "/payment-success/");
    assert!(back.query().unwrap().contains("status=Completed"));

    let (status, body) = app.verify(&user, pidx).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["subscription"]["plan"]["name"], "Basic");
    assert_eq!(body["subscription"]["is_active"], true);
    assert_eq!(
        days_between(
            &body["subscription"]["start_date"],
            &body["subscription"]["end_date"]
        ),
        30
    );

    let me = app.subscription(&user).await.expect("a subscription");
    assert_eq!(me["plan"]["id"], plan.as_str());
    let payment = app.payment(&user, payment_id).await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["amount"], "500.00");
    assert_eq!(payment["currency"], "NPR");
    assert_eq!(payment["provider_ref"], pidx);

    // Every gateway answer is kept verbatim, in order: the initiate and the lookup.
    let answers = app.gateway_answers(payment_id).await;
    let kinds: Vec<&str> = answers.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["initiate", "lookup"]);
    assert!(
        answers[1].body.contains("\"Completed\""),
        "{}",
        answers[1].body
    );

    // Verifying again changes nothing and grants nothing more.
    let (status, again) = app.verify(&user, pidx).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["subscription"]["end_date"],
        body["subscription"]["end_date"]
    );
}

async fn the_return_page_looks_the_payment_up_before_it_answers(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("ram").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let back = app
        .pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;

    // Not signed in: sent to sign in, and back here afterwards.
    let res = client().get(back.clone()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login?next=%2Fpayment-success%2F%3Fpidx%3D"));

    let (browser, _) = app.sign_in_browser(&user).await;
    let page = browser.get(back).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"headline\">Payment successful"),
        "{html}"
    );
    assert!(html.contains("Basic"));
    assert!(
        app.subscription(&user).await.is_some(),
        "the page itself settled the payment"
    );

    let account = browser
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        account.contains("completed") && account.contains("Basic"),
        "{account}"
    );
}

async fn a_forged_return_url_grants_nothing(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("hari").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let pidx = started["pidx"].as_str().unwrap();

    // Everything Khalti's real redirect would say, but the payment was never made.
    let (browser, _) = app.sign_in_browser(&user).await;
    let forged = app.url(&format!(
        "/payment-success/?pidx={pidx}&txnId=fake&amount=50000&total_amount=50000&status=Completed&mobile=98XXXXX001&tidx=fake&purchase_order_id=x&transaction_id=fake"
    ));
    let html = browser
        .get(forged)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("id=\"headline\">Payment successful"),
        "{html}"
    );
    assert!(
        html.contains("id=\"headline\">Confirming your payment"),
        "{html}"
    );

    assert!(app.subscription(&user).await.is_none());
    assert_eq!(
        app.payment(&user, started["payment_id"].as_str().unwrap())
            .await["status"],
        "initiated"
    );
    let (status, body) = app.verify(&user, pidx).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("pending"))
    );
    // The forged redirect is on record as a signal, next to the lookup that refuted it.
    let answers = app
        .gateway_answers(started["payment_id"].as_str().unwrap())
        .await;
    assert!(answers
        .iter()
        .any(|a| a.kind == "return_signal" && a.body.contains("status=Completed")));
}

async fn unpaid_and_pending_payments_answer_202(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("gita").await;
    let plan = app.plan_id("Basic").await;

    // Initiated: nobody has paid.
    let started = app.initiate(&user, &plan).await;
    let (status, body) = app.verify(&user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["payment_status"], "initiated");

    // Pending: Khalti holds it for two lookups, then completes it.
    app.sandbox().khalti().set_settings(KhaltiSettings {
        pending_lookups: 2,
        ..app.sandbox().khalti().settings()
    });
    let started = app.initiate(&user, &plan).await;
    let pidx = started["pidx"].as_str().unwrap();
    let back = app
        .pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    assert!(back.query().unwrap().contains("status=Pending"));
    for _ in 0..2 {
        let (status, body) = app.verify(&user, pidx).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["payment_status"], "pending");
        assert!(app.subscription(&user).await.is_none());
    }
    let (status, body) = app.verify(&user, pidx).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(app.subscription(&user).await.is_some());
}

async fn canceled_and_expired_payments_answer_400(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("maya").await;
    let plan = app.plan_id("Basic").await;

    let started = app.initiate(&user, &plan).await;
    let back = app
        .pay_on_checkout(started["payment_url"].as_str().unwrap(), "cancel")
        .await;
    assert!(back.as_str().contains("status=User%20canceled"));
    let (status, body) = app.verify(&user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["payment_status"].as_str()),
        (Some("failed"), Some("canceled"))
    );

    let started = app.initiate(&user, &plan).await;
    let pidx = started["pidx"].as_str().unwrap();
    app.sandbox().khalti().expire(pidx).unwrap();
    let (status, body) = app.verify(&user, pidx).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["payment_status"], "expired");
    assert!(app.subscription(&user).await.is_none());
}

async fn a_refund_at_khalti_revokes_the_subscription(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("bikash").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let pidx = started["pidx"].as_str().unwrap();
    let payment_id = started["payment_id"].as_str().unwrap();
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    assert_eq!(app.verify(&user, pidx).await.0, StatusCode::OK);

    // The merchant refunds on Khalti's side; tijori learns it on the next look.
    let txn = app.sandbox().khalti().payment(pidx).unwrap()["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refund = client()
        .post(app.url(&format!(
            "/sandbox/khalti/api/merchant-transaction/{txn}/refund/"
        )))
        .header(
            "Authorization",
            format!("Key {}", tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refund.status(), StatusCode::OK);

    let res = app
        .post(
            &user,
            &format!("/api/payments/{payment_id}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let payment: Value = res.json().await.unwrap();
    assert_eq!(payment["status"], "refunded");
    let me = app.subscription(&user).await.expect("the row stays, ended");
    assert_eq!(me["is_active"], false);
    let (status, body) = app.verify(&user, pidx).await;
    assert_eq!(
        (status, body["payment_status"].as_str()),
        (StatusCode::BAD_REQUEST, Some("refunded"))
    );
}

async fn twenty_concurrent_verifies_grant_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("anita").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let pidx = started["pidx"].as_str().unwrap().to_owned();
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;

    let verifies = (0..20).map(|_| app.verify(&user, &pidx));
    let answers = futures::future::join_all(verifies).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(
        days_between(&me["start_date"], &me["end_date"]),
        30,
        "granted once, not twenty times"
    );
    let ends: std::collections::HashSet<String> = answers
        .iter()
        .map(|(_, b)| b["subscription"]["end_date"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ends.len(),
        1,
        "every verify saw the same single grant: {ends:?}"
    );
}

async fn another_users_payment_is_not_found(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let owner = app.register("owner").await;
    let other = app.register("other").await;
    let started = app.initiate(&owner, &app.plan_id("Basic").await).await;
    let pidx = started["pidx"].as_str().unwrap();
    let payment_id = started["payment_id"].as_str().unwrap();
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;

    let (status, body) = app.verify(&other, pidx).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let res = app
        .post(
            &other,
            "/api/subscriptions/verify/",
            json!({"payment_id": payment_id}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&other, &format!("/api/payments/{payment_id}/"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let res = app
        .post(
            &other,
            &format!("/api/payments/{payment_id}/refresh/"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (browser, _) = app.sign_in_browser(&other).await;
    let page = browser
        .get(app.url(&format!("/payment-success/?pidx={pidx}&status=Completed")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    // Nothing the other user did settled or granted anything to anyone.
    assert!(app.subscription(&other).await.is_none());
    assert!(app.subscription(&owner).await.is_none());
    assert_eq!(app.verify(&owner, pidx).await.0, StatusCode::OK);
    assert!(app.subscription(&other).await.is_none());
}

async fn renewing_extends_and_a_new_plan_is_queued(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("kamal").await;
    let basic = app.plan_id("Basic").await;
    for _ in 0..2 {
        let started = app.initiate(&user, &basic).await;
        app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
            .await;
        assert_eq!(
            app.verify(&user, started["pidx"].as_str().unwrap()).await.0,
            StatusCode::OK
        );
    }
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(
        days_between(&me["start_date"], &me["end_date"]),
        60,
        "no paid day lost"
    );

    let started = app.initiate(&user, &app.plan_id("Standard").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    assert_eq!(
        app.verify(&user, started["pidx"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    // Another plan is queued after the paid 60 days (issue 9 item 4), not started
    // over them.
    let me = app.subscription(&user).await.unwrap();
    assert_eq!(me["plan"]["name"], "Basic");
    assert_eq!(days_between(&me["start_date"], &me["end_date"]), 60);
    let queued = &me["queued"][0];
    assert_eq!(queued["plan"]["name"], "Standard");
    assert_eq!(queued["start_date"], me["end_date"]);
    assert_eq!(days_between(&queued["start_date"], &queued["end_date"]), 90);
}

/// The sandbox never reports a wrong amount, so a fake Khalti does.
async fn a_different_amount_is_held_for_review(db: TestDatabase) {
    let khalti = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/initiate/"))
        .and(header("authorization", "Key live_secret_key_test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pidx": "bZQLD9wRVWo4CdESSfuSsB",
            "payment_url": "https://test-pay.khalti.com/?pidx=bZQLD9wRVWo4CdESSfuSsB",
            "expires_at": "2030-05-25T16:26:16.471649+05:45",
            "expires_in": 1800
        })))
        .mount(&khalti)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/epayment/lookup/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pidx": "bZQLD9wRVWo4CdESSfuSsB", "total_amount": 1000, "status": "Completed",
            "transaction_id": "GFq9PFS7b2iYvL8Lir9oXe", "fee": 0, "refunded": false
        })))
        .mount(&khalti)
        .await;
    let mut config = config(&db.url);
    config.khalti_secret_key = Some("live_secret_key_test".into());
    config.khalti_base_url = Some(format!("{}/api/v2/", khalti.uri()).parse().unwrap());
    config.demo = Some(true);
    // Chapa has no key either: without the sandbox it is simply left out.
    config.sandbox = Some(false);
    let app = TestApp::spawn_with(db, config).await;
    assert!(app.sandbox.is_none(), "no sandbox when told so");

    let user = app.register("nabin").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    assert_eq!(started["pidx"], "bZQLD9wRVWo4CdESSfuSsB");
    let (status, body) = app.verify(&user, "bZQLD9wRVWo4CdESSfuSsB").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["payment_status"], "needs_review");
    assert!(
        app.subscription(&user).await.is_none(),
        "a wrong amount is never fulfilled"
    );
    let payment = app
        .payment(&user, started["payment_id"].as_str().unwrap())
        .await;
    assert!(
        payment["status_reason"].as_str().unwrap().contains("1000"),
        "{payment}"
    );
}

async fn the_pages_show_plans_and_require_sign_in(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let home = browser()
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for plan in ["Basic", "Standard", "Premium", "Rs. 500.00"] {
        assert!(home.contains(plan), "{plan} missing from the home page");
    }
    assert!(home.contains("Sign in to subscribe"));
    let res = client().get(app.url("/account/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

test_both!(
    a_paid_subscription_is_granted,
    the_return_page_looks_the_payment_up_before_it_answers,
    a_forged_return_url_grants_nothing,
    unpaid_and_pending_payments_answer_202,
    canceled_and_expired_payments_answer_400,
    a_refund_at_khalti_revokes_the_subscription,
    twenty_concurrent_verifies_grant_once,
    another_users_payment_is_not_found,
    renewing_extends_and_a_new_plan_is_queued,
    a_different_amount_is_held_for_review,
    the_pages_show_plans_and_require_sign_in,
);
