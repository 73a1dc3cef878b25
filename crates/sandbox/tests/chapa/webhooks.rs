//! Webhook delivery, signatures, retries and the misbehaviour switches (chapa.md §5).

use std::time::{Duration, Instant};

use serde_json::json;
use tijori_sandbox::{ChapaSettings, DEFAULT_CHAPA_WEBHOOK_SECRET};

use crate::common::{hmac_hex, webhook_settings, Harness, Receiver};

#[tokio::test]
async fn success_webhook_is_flat_and_signed_both_ways() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(webhook_settings(&receiver)).await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();

    let hit = receiver.next().await;
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.uri.path(), "/webhooks/chapa");
    assert!(hit.header("content-type").starts_with("application/json"));
    // x-chapa-signature = hex(HMAC_SHA256(secret, raw body)).
    assert_eq!(
        hit.header("x-chapa-signature"),
        hmac_hex(DEFAULT_CHAPA_WEBHOOK_SECRET, &hit.body)
    );
    // chapa-signature = hex(HMAC_SHA256(secret, secret)).
    assert_eq!(
        hit.header("chapa-signature"),
        hmac_hex(
            DEFAULT_CHAPA_WEBHOOK_SECRET,
            DEFAULT_CHAPA_WEBHOOK_SECRET.as_bytes()
        )
    );
    let body = hit.json();
    let (_, verify) = h.verify(&tx_ref).await;
    assert_eq!(body["event"], "charge.success");
    assert_eq!(body["status"], "success");
    assert_eq!(body["tx_ref"], tx_ref.as_str());
    assert_eq!(body["reference"], verify["data"]["reference"]);
    // Money as 2-dp strings in webhooks.
    assert_eq!(body["amount"], "100.00");
    assert_eq!(body["charge"], "3.50");
    assert_eq!(body["mode"], "test");
    assert_eq!(body["type"], "API");
    assert_eq!(body["mobile"], "0912345678");
    assert!(body.get("data").is_none(), "flat payload");
    // Exactly once when answered 200.
    receiver.none_within(200).await;
    let record = h
        .record_until(&tx_ref, |r| r["webhooks"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(record["webhooks"][0]["status"], 200);
    assert_eq!(record["webhooks"][0]["event"], "charge.success");
}

#[tokio::test]
async fn redelivered_until_answered_200() {
    let receiver = Receiver::start(2).await;
    let h = Harness::with(webhook_settings(&receiver)).await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let first = receiver.next().await;
    let second = receiver.next().await;
    let third = receiver.next().await;
    assert_eq!(first.body, second.body);
    assert_eq!(second.body, third.body);
    assert_eq!(
        third.header("x-chapa-signature"),
        hmac_hex(DEFAULT_CHAPA_WEBHOOK_SECRET, &third.body)
    );
    assert!(second.at.duration_since(first.at) >= Duration::from_millis(30));
    receiver.none_within(200).await;
    let record = h
        .record_until(&tx_ref, |r| r["webhooks"].as_array().unwrap().len() == 3)
        .await;
    let statuses: Vec<_> = record["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["attempt"].clone(), w["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (json!(1), json!(500)),
            (json!(2), json!(500)),
            (json!(3), json!(200))
        ]
    );
}

#[tokio::test]
async fn gives_up_after_the_schedule() {
    let receiver = Receiver::start(usize::MAX).await;
    let h = Harness::with(webhook_settings(&receiver)).await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    // 1 + 3 retries (webhook_retry_ms has 3 entries).
    for _ in 0..4 {
        receiver.next().await;
    }
    receiver.none_within(300).await;
}

#[tokio::test]
async fn unreachable_url_is_retried_too() {
    // Nothing listens there: connection errors count as "not 200".
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/hook", free.local_addr().unwrap());
    drop(free);
    let h = Harness::with(ChapaSettings {
        webhook_url: Some(dead),
        webhook_retry_ms: vec![10, 10],
        ..ChapaSettings::default()
    })
    .await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let record = h
        .record_until(&tx_ref, |r| r["webhooks"].as_array().unwrap().len() == 3)
        .await;
    assert!(record["webhooks"][2]["error"].is_string(), "{record}");
}

#[tokio::test]
async fn twice_sends_the_same_webhook_twice() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(ChapaSettings {
        webhook_twice: true,
        ..webhook_settings(&receiver)
    })
    .await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let a = receiver.next().await;
    let b = receiver.next().await;
    assert_eq!(a.body, b.body);
    assert_eq!(a.header("x-chapa-signature"), b.header("x-chapa-signature"));
    receiver.none_within(200).await;
}

#[tokio::test]
async fn late_webhook_waits_for_the_delay() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(ChapaSettings {
        webhook_delay_ms: 400,
        ..webhook_settings(&receiver)
    })
    .await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    let paid = Instant::now();
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let hit = receiver.next().await;
    assert!(
        hit.at.duration_since(paid) >= Duration::from_millis(400),
        "{:?}",
        hit.at.duration_since(paid)
    );
}

#[tokio::test]
async fn out_of_order_delivers_newest_first() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(ChapaSettings {
        webhook_out_of_order: true,
        webhook_hold_ms: 3_000,
        ..webhook_settings(&receiver)
    })
    .await;
    let chapa = h.sandbox.chapa();
    let (first, _) = h.new_payment(json!({})).await;
    let (second, _) = h.new_payment(json!({})).await;
    chapa.pay(&first).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    chapa.pay(&second).unwrap();
    assert_eq!(receiver.next().await.json()["tx_ref"], second.as_str());
    assert_eq!(receiver.next().await.json()["tx_ref"], first.as_str());

    // A lone webhook is released after the hold time.
    let (third, _) = h.new_payment(json!({})).await;
    h.put_settings(json!({"webhook_hold_ms": 100})).await;
    chapa.pay(&third).unwrap();
    assert_eq!(receiver.next().await.json()["tx_ref"], third.as_str());
}

#[tokio::test]
async fn bad_signature_switch_breaks_both_headers() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(ChapaSettings {
        webhook_bad_signature: true,
        ..webhook_settings(&receiver)
    })
    .await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let hit = receiver.next().await;
    let secret = DEFAULT_CHAPA_WEBHOOK_SECRET;
    assert_ne!(hit.header("x-chapa-signature"), hmac_hex(secret, &hit.body));
    assert_ne!(
        hit.header("chapa-signature"),
        hmac_hex(secret, secret.as_bytes())
    );
    assert_eq!(hit.header("x-chapa-signature").len(), 64);
}

#[tokio::test]
async fn custom_secret_is_used() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(ChapaSettings {
        webhook_secret: "another-secret".to_owned(),
        ..webhook_settings(&receiver)
    })
    .await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let hit = receiver.next().await;
    assert_eq!(
        hit.header("x-chapa-signature"),
        hmac_hex("another-secret", &hit.body)
    );
}

#[tokio::test]
async fn failure_cancel_and_refund_events() {
    let receiver = Receiver::start(0).await;
    let h = Harness::with(webhook_settings(&receiver)).await;
    let chapa = h.sandbox.chapa();
    let (a, _) = h.new_payment(json!({})).await;
    chapa.fail(&a).unwrap();
    let body = receiver.next().await.json();
    assert_eq!(
        (body["event"].clone(), body["status"].clone()),
        (json!("charge.failed/cancelled"), json!("failed/cancelled"))
    );
    chapa.cancel(&a).unwrap();
    assert_eq!(
        receiver.next().await.json()["event"],
        "charge.failed/cancelled"
    );

    let (b, _) = h.new_payment(json!({})).await;
    chapa.pay(&b).unwrap();
    assert_eq!(receiver.next().await.json()["event"], "charge.success");
    let (status, _) = h.refund(&b, &[]).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let hit = receiver.next().await;
    let body = hit.json();
    assert_eq!(body["event"], "charge.refunded");
    assert_eq!(body["status"], "refunded");
    assert_eq!(
        hit.header("x-chapa-signature"),
        hmac_hex(DEFAULT_CHAPA_WEBHOOK_SECRET, &hit.body)
    );
}

#[tokio::test]
async fn no_webhook_without_a_url() {
    let h = Harness::start().await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.sandbox.chapa().payment(&tx_ref).unwrap()["webhooks"],
        json!([])
    );
}
