//! Chapa orders end to end: paid by webhook, by callback, forged webhooks, a webhook
//! that verify contradicts, and every signal at once.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use tijori_core::store::OperatorEventKind;
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{chapa_charge_body, chapa_hmac, chapa_signed, TestApp, TestUser};

/// A user with a pending order for one demo ETB product and its open Chapa checkout:
/// (user, order id, tx_ref, product id, stock after reserving).
async fn open_chapa_order(app: &TestApp, name: &str) -> (TestUser, String, String, String, u64) {
    let user = app.register(name).await;
    let product = app.product_in("ETB").await;
    let order = app.order_of(&user, &product, 1).await;
    let stock = app.product(&product).await["stock"].as_u64().unwrap();
    let (status, body) = app.initialize(&user, &order, Some("chapa")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tx_ref = body["tx_ref"].as_str().unwrap().to_owned();
    (user, order, tx_ref, product, stock)
}

async fn an_order_is_paid_by_the_webhook(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.chapa_settings(|s| s.send_callbacks = false);
    let (user, order, tx_ref, product, stock) = open_chapa_order(&app, "abebe").await;

    app.sandbox().chapa().pay(&tx_ref).unwrap();
    let paid = app.wait_for_order(&user, &order, "paid").await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        app.product(&product).await["stock"].as_u64().unwrap(),
        stock,
        "paying takes nothing more off the shelf"
    );
    let deliveries = app.webhook_deliveries().await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0].reference.as_deref(), Some(tx_ref.as_str()));
    assert_eq!(deliveries[0].outcome.as_deref(), Some("verified"));
    assert!(!deliveries[0].duplicate);
    // The webhook only made us ask Chapa: the verify answer is on the audit trail.
    let payment_id = deliveries[0].payment_id.clone().unwrap();
    let kinds: Vec<String> = app
        .gateway_answers(&payment_id)
        .await
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["initiate", "lookup"]);
    assert!(app.operator_events().await.is_empty());
}

async fn an_order_is_paid_by_the_callback_alone(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.chapa_settings(|s| s.webhook_url = None);
    let (user, order, tx_ref, _, _) = open_chapa_order(&app, "almaz").await;
    app.sandbox().chapa().pay(&tx_ref).unwrap();
    app.wait_for_order(&user, &order, "paid").await;
    assert!(app.webhook_deliveries().await.is_empty());
    let payment = app
        .tijori
        .store()
        .payment_by_provider_ref(tijori_core::gateway::GatewayKind::Chapa, &tx_ref)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<String> = app
        .gateway_answers(payment.id.as_str())
        .await
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(
        kinds,
        ["initiate", "callback", "lookup"],
        "the callback made us ask Chapa"
    );

    // The callback is a signal anyone can send: for an unknown tx_ref it does nothing,
    // and answers as for a known one, so it tells nobody which references exist
    // (issue 9, item 10).
    let res = crate::helpers::client()
        .get(app.url("/api/payments/chapa/callback/?trx_ref=nope&status=success"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"received": true})
    );
    assert_eq!(
        app.gateway_answers(payment.id.as_str()).await.len(),
        3,
        "nothing recorded for the unknown reference on this payment"
    );

    // Replayed for the paid payment, by anyone who saw it: the same answer, and
    // neither a row nor a call to Chapa each time.
    for _ in 0..20 {
        let res = crate::helpers::client()
            .get(app.url(&format!(
                "/api/payments/chapa/callback/?trx_ref={tx_ref}&status=success"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(
        app.gateway_answers(payment.id.as_str()).await.len(),
        3,
        "replays of a settled payment's callback keep nothing"
    );
}

async fn forged_webhooks_change_nothing(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let (user, order, tx_ref, _, _) = open_chapa_order(&app, "tigist").await;
    let body = chapa_charge_body(&tx_ref, "charge.success", "success", "850.00");
    let secret = tijori_sandbox::DEFAULT_CHAPA_WEBHOOK_SECRET;

    let wrong_key = chapa_hmac("not-the-secret", &body);
    let constant_only = chapa_hmac(secret, secret.as_bytes());
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let signed_other_body = chapa_signed(&body);
    for (what, sent, headers) in [
        ("no signature", body.clone(), vec![]),
        (
            "wrong key",
            body.clone(),
            vec![("x-chapa-signature", wrong_key)],
        ),
        (
            "garbage",
            body.clone(),
            vec![("x-chapa-signature", "zz".into())],
        ),
        (
            "only the constant header",
            body.clone(),
            vec![("chapa-signature", constant_only)],
        ),
        ("a signature of another body", tampered, signed_other_body),
    ] {
        let res = app.chapa_webhook(&sent, &headers).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_signature", "{what}");
    }
    assert!(
        app.webhook_deliveries().await.is_empty(),
        "nothing unauthenticated is stored"
    );
    assert_eq!(app.order_json(&user, &order).await["status"], "pending");
}

async fn a_webhook_that_verify_contradicts_grants_nothing(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let (user, order, tx_ref, _, _) = open_chapa_order(&app, "dawit").await;
    // Properly signed (someone has the secret, or Chapa erred), but Chapa's own
    // verify says the payment failed.
    app.sandbox().chapa().fail(&tx_ref).unwrap();
    let body = chapa_charge_body(&tx_ref, "charge.success", "success", "850.00");
    let res = app.chapa_webhook(&body, &chapa_signed(&body)).await;
    assert_eq!(res.status(), StatusCode::OK, "answered, so Chapa stops");
    assert_eq!(app.order_json(&user, &order).await["status"], "pending");

    let events = app.operator_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, OperatorEventKind::WebhookContradicted);
    assert!(events[0].detail.contains("failed"), "{}", events[0].detail);
    let deliveries = app.webhook_deliveries().await;
    assert_eq!(
        deliveries[0].outcome.as_deref(),
        Some("webhook_contradicted")
    );

    // A signed webhook for a payment we never had is recorded for the operator too.
    let body = chapa_charge_body("pay_unknown", "charge.success", "success", "1.00");
    let res = app.chapa_webhook(&body, &chapa_signed(&body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(app
        .operator_events()
        .await
        .iter()
        .any(|e| e.kind == OperatorEventKind::WebhookUnmatched));
}

async fn a_webhook_chapa_cannot_verify_now_is_kept_for_later(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let (user, order, tx_ref, _, _) = open_chapa_order(&app, "hana").await;
    app.sandbox().chapa().pay(&tx_ref).unwrap();
    // Chapa's verify is down (every attempt answers 500) when the webhook comes.
    app.chapa_settings(|s| {
        s.fault = tijori_sandbox::Fault::ServerError;
        s.fault_count = 0;
    });
    let body = chapa_charge_body(&tx_ref, "charge.success", "success", "850.00");
    let res = app.chapa_webhook(&body, &chapa_signed(&body)).await;
    assert_eq!(res.status(), StatusCode::OK, "authentic, so answered");
    assert_eq!(
        app.order_json(&user, &order).await["status"],
        "pending",
        "a webhook alone pays nothing"
    );
    let events = app.operator_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, OperatorEventKind::WebhookUnverified);
    assert!(
        events[0].detail.contains("checked again"),
        "{}",
        events[0].detail
    );
    let deliveries = app.webhook_deliveries().await;
    assert_eq!(deliveries[0].outcome.as_deref(), Some("webhook_unverified"));
    let payment_id = deliveries[0]
        .payment_id
        .clone()
        .expect("matched to its payment");
    assert_eq!(
        app.payment(&user, &payment_id).await["status"],
        "initiated",
        "still open, for the reconciler"
    );

    // Chapa recovers: the same delivery again (as Chapa retries) settles it.
    app.chapa_settings(|s| s.fault = tijori_sandbox::Fault::None);
    let res = app.chapa_webhook(&body, &chapa_signed(&body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.order_json(&user, &order).await["status"], "paid");
    let deliveries = app.webhook_deliveries().await;
    assert_eq!(deliveries.len(), 2);
    assert!(
        deliveries
            .iter()
            .any(|d| d.duplicate && d.outcome.as_deref() == Some("verified")),
        "the repeat is recognised and still verified: {deliveries:?}"
    );
}

async fn every_signal_at_once_pays_the_order_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let (user, order, tx_ref, product, stock) = open_chapa_order(&app, "selam").await;
    app.sandbox().chapa().pay(&tx_ref).unwrap();
    let (browser, _) = app.sign_in_browser(&user).await;

    let body = chapa_charge_body(&tx_ref, "charge.success", "success", "850.00");
    let headers = chapa_signed(&body);
    let webhooks = (0..5).map(|_| {
        let (app, body, headers) = (&app, &body, &headers);
        async move { app.chapa_webhook(body, headers).await.status() }
    });
    let return_page = async {
        browser
            .get(app.url(&format!("/payment-success/?tx_ref={tx_ref}")))
            .send()
            .await
            .unwrap()
            .status()
    };
    let payment = app
        .tijori
        .store()
        .payment_by_provider_ref(tijori_core::gateway::GatewayKind::Chapa, &tx_ref)
        .await
        .unwrap()
        .unwrap();
    let refresh_path = format!("/api/payments/{}/refresh/", payment.id);
    let refresh = app.post(&user, &refresh_path, serde_json::json!({}));
    let (webhook_statuses, page, refreshed) =
        tokio::join!(join_all(webhooks), return_page, refresh);
    assert!(
        webhook_statuses.iter().all(|s| *s == StatusCode::OK),
        "{webhook_statuses:?}"
    );
    assert_eq!(page, StatusCode::OK);
    assert_eq!(refreshed.status(), StatusCode::OK);

    assert_eq!(app.order_json(&user, &order).await["status"], "paid");
    assert_eq!(
        app.payment(&user, payment.id.as_str()).await["status"],
        "completed"
    );
    assert_eq!(
        app.product(&product).await["stock"].as_u64().unwrap(),
        stock,
        "stock taken once, at ordering"
    );
    let deliveries = app.webhook_deliveries().await;
    assert_eq!(deliveries.len(), 5, "every delivery is recorded");
    assert_eq!(
        deliveries.iter().filter(|d| !d.duplicate).count(),
        1,
        "and the repeats recognised"
    );
    // A second fulfilment would have found the order paid and held the payment for
    // review, with an operator event: there is none.
    assert!(app.operator_events().await.is_empty());
}

test_both!(
    an_order_is_paid_by_the_webhook,
    an_order_is_paid_by_the_callback_alone,
    forged_webhooks_change_nothing,
    a_webhook_that_verify_contradicts_grants_nothing,
    a_webhook_chapa_cannot_verify_now_is_kept_for_later,
    every_signal_at_once_pays_the_order_once,
);
