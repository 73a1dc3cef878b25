//! Receipts: numbered once per paid payment without gaps, shown to their owner with
//! the gateway's transaction id and the refunds, and mailed once.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use tijori_core::id::PaymentId;
use tijori_core::mail::OutboxMail;
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{TestApp, TestUser};

async fn user_of(app: &TestApp, u: &TestUser) -> tijori_core::account::User {
    app.tijori
        .user_by_api_token(&u.token)
        .await
        .unwrap()
        .unwrap()
}

/// Subscribes `name` to Basic and pays on the sandbox: (user, payment id, pidx).
async fn paid(app: &TestApp, name: &str) -> (TestUser, String, String) {
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

/// The receipts in the outbox (the last 50 mails), whatever else was mailed.
async fn receipt_mails(app: &TestApp) -> Vec<OutboxMail> {
    let outbox = app.tijori.outbox(50).await.unwrap();
    outbox
        .into_iter()
        .filter(|m| m.subject.starts_with("Your receipt R-"))
        .collect()
}

async fn a_paid_payment_has_a_numbered_receipt_with_the_gateways_transaction(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (asha, payment, _) = paid(&app, "asha").await;
    let (browser, _) = app.sign_in_browser(&asha).await;
    let page = |path: String| {
        let browser = browser.clone();
        let url = app.url(&path);
        async move {
            let res = browser.get(url).send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let (status, html) = page(format!("/payments/{payment}/receipt/")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"receipt-number\">R-000001<"), "{html}");
    assert!(
        html.contains("id=\"merchant-name\">tijori demo shop<"),
        "{html}"
    );
    assert!(html.contains(">Rs. 500.00<"), "{html}");
    assert!(html.contains("Basic plan, 30 days"), "{html}");
    // Khalti's transaction_id, the one the customer sees in their app (not the pidx).
    let txn = app.payment(&asha, &payment).await;
    let stored = app
        .tijori
        .receipt_for(
            &user_of(&app, &asha).await,
            &PaymentId::parse(&payment).unwrap(),
        )
        .await
        .unwrap();
    let transaction = stored
        .payment
        .provider_txn_id
        .clone()
        .expect("Khalti's transaction id");
    assert_ne!(Some(transaction.as_str()), txn["provider_ref"].as_str());
    assert!(
        html.contains(&format!("id=\"receipt-transaction\">{transaction}<")),
        "{html}"
    );
    assert!(
        html.contains("(UTC+05:45)"),
        "the date is in Nepal's zone: {html}"
    );

    // The same receipt again: the same number.
    let (_, again) = page(format!("/payments/{payment}/receipt/")).await;
    assert!(again.contains("R-000001"), "{again}");

    // Someone else's, or an unpaid one: not found.
    let (bikash, _, _) = paid(&app, "bikash").await;
    let (other, _) = app.sign_in_browser(&bikash).await;
    let res = other
        .get(app.url(&format!("/payments/{payment}/receipt/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let open = app.initiate(&asha, &app.plan_id("Basic").await).await;
    let (status, _) = page(format!(
        "/payments/{}/receipt/",
        open["payment_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A refund shows on it.
    let admin = app.admin("operator").await;
    let res = app
        .post(
            &admin,
            &format!("/api/payments/{payment}/refund/"),
            json!({"amount": "100.00", "reason": "goodwill"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let (_, html) = page(format!("/payments/{payment}/receipt/")).await;
    assert!(html.contains("-Rs. 100.00"), "{html}");
    assert!(html.contains("id=\"receipt-net\">Rs. 400.00<"), "{html}");
}

async fn receipts_are_numbered_without_gaps_and_mailed_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let mut ids = Vec::new();
    for name in ["abebe", "almaz", "asha", "bikash", "chaltu", "dawit"] {
        let (_, payment, _) = paid(&app, name).await;
        ids.push(PaymentId::parse(&payment).unwrap());
    }
    // Issued at once, from many requests: 1..=6, each once.
    let operator = app.admin("operator").await;
    let operator = user_of(&app, &operator).await;
    let issued = join_all(ids.iter().map(|id| app.tijori.receipt_for(&operator, id))).await;
    let mut numbers: Vec<i64> = issued
        .into_iter()
        .map(|r| r.unwrap().receipt.number)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=6).collect::<Vec<_>>());

    // The job mails each once, however often (and however many workers, the app's
    // own included) run it.
    let (a, b) = tokio::join!(app.tijori.queue_receipts(), app.tijori.queue_receipts());
    assert!(a.unwrap() + b.unwrap() <= 6);
    assert_eq!(app.tijori.queue_receipts().await.unwrap(), 0);
    let receipts = receipt_mails(&app).await;
    assert_eq!(receipts.len(), 6, "{receipts:?}");
    let first = receipts
        .iter()
        .find(|m| m.subject.contains("R-000001"))
        .unwrap();
    assert!(
        first.body.contains("Amount paid:  Rs. 500.00"),
        "{}",
        first.body
    );
    assert!(first.body.contains("/receipt/"), "{}", first.body);
}

/// A payment refunded in part before the job came round still earns its receipt,
/// and its mail; one refunded in full does not.
async fn a_partly_refunded_payment_is_still_mailed_its_receipt(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("operator").await;
    let mut payments = Vec::new();
    for (name, amount) in [("hari", "100.00"), ("gita", "500.00")] {
        let (_, payment, _) = paid(&app, name).await;
        let res = app
            .post(
                &admin,
                &format!("/api/payments/{payment}/refund/"),
                json!({"amount": amount, "reason": "goodwill"}),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        payments.push(payment);
    }
    // (The app's own sweep may have run too; either way, one mail.)
    app.tijori.queue_receipts().await.unwrap();
    let receipts = receipt_mails(&app).await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert!(receipts[0].to.starts_with("hari@"), "{:?}", receipts[0]);
    assert!(
        receipts[0]
            .body
            .contains(&format!("/payments/{}/receipt/", payments[0])),
        "{}",
        receipts[0].body
    );
}

test_both!(
    a_paid_payment_has_a_numbered_receipt_with_the_gateways_transaction,
    a_partly_refunded_payment_is_still_mailed_its_receipt,
    receipts_are_numbered_without_gaps_and_mailed_once,
);
