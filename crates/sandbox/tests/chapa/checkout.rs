//! The hosted checkout page, the browser return and the callback (chapa.md §3).

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Harness, Receiver};

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn page_shows_the_payment_and_three_buttons() {
    let h = Harness::start().await;
    let (tx_ref, url) = h.new_payment(json!({})).await;
    let response = h.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("Chapa SANDBOX — no real money"), "{html}");
    for id in ["id=\"pay\"", "id=\"fail\"", "id=\"cancel\""] {
        assert!(html.contains(id), "{id} missing");
    }
    let path = url.strip_prefix(h.base.trim_end_matches('/')).unwrap();
    assert!(
        html.contains(&format!("method=\"post\" action=\"{path}\"")),
        "{html}"
    );
    assert!(html.contains("100.00 ETB"));
    assert!(html.contains(&tx_ref));
    assert!(html.contains("Payment for my favourite merchant"));

    let response = h
        .client
        .get(h.url("chapa/checkout/doesnotexist"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(!response.text().await.unwrap().contains("id=\"pay\""));
}

#[tokio::test]
async fn pay_redirects_to_return_url_and_calls_back() {
    let h = Harness::start().await;
    let receiver = Receiver::start(0).await;
    let callback_url = receiver.url("chapa/callback?shop=1");
    let (tx_ref, url) = h.new_payment(json!({"callback_url": callback_url})).await;
    let response = h.submit(&url, "pay").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Unchanged: chapa.md documents no parameters on the return.
    assert_eq!(
        location(&response),
        "https://merchant.example/return?order=7"
    );

    let hit = receiver.next().await;
    assert_eq!(hit.method, "GET");
    assert_eq!(hit.uri.path(), "/chapa/callback");
    let reference = h.sandbox.chapa().payment(&tx_ref).unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        hit.query(),
        vec![
            ("shop".to_owned(), "1".to_owned()),
            ("trx_ref".to_owned(), tx_ref.clone()),
            ("ref_id".to_owned(), reference),
            ("status".to_owned(), "success".to_owned()),
        ]
    );
    let (status, json) = h.verify(&tx_ref).await;
    assert_eq!(
        (status, &json["data"]["status"]),
        (StatusCode::OK, &json!("success"))
    );
    let record = h
        .record_until(&tx_ref, |r| r["callbacks"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(record["callbacks"][0]["status"], 200);

    // The link is spent: no buttons, and a second submit changes nothing.
    let html = h
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("id=\"pay\""));
    assert!(html.contains("This payment has been completed."));
    let again = h.submit(&url, "cancel").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(
        h.sandbox.chapa().payment(&tx_ref).unwrap()["status"],
        "success"
    );
    receiver.none_within(150).await;
}

#[tokio::test]
async fn fail_lets_the_customer_retry() {
    let h = Harness::start().await;
    let receiver = Receiver::start(0).await;
    let (tx_ref, url) = h
        .new_payment(json!({"callback_url": receiver.url("cb")}))
        .await;
    let response = h.submit(&url, "fail").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("Payment failed (attempt 1 of 10)"), "{html}");
    assert!(html.contains("id=\"pay\""), "retry possible");
    let hit = receiver.next().await;
    assert!(hit
        .query()
        .contains(&("status".to_owned(), "failed".to_owned())));

    let response = h.submit(&url, "pay").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let hit = receiver.next().await;
    assert!(hit
        .query()
        .contains(&("status".to_owned(), "success".to_owned())));
    assert_eq!(h.sandbox.chapa().payment(&tx_ref).unwrap()["attempts"], 2);
}

#[tokio::test]
async fn cancel_redirects_and_reports_cancelled() {
    let h = Harness::start().await;
    let receiver = Receiver::start(0).await;
    let (tx_ref, url) = h
        .new_payment(json!({"callback_url": receiver.url("cb")}))
        .await;
    let response = h.submit(&url, "cancel").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        "https://merchant.example/return?order=7"
    );
    let hit = receiver.next().await;
    assert!(hit
        .query()
        .contains(&("trx_ref".to_owned(), tx_ref.clone())));
    assert!(hit
        .query()
        .contains(&("status".to_owned(), "cancelled".to_owned())));
    assert_eq!(
        h.sandbox.chapa().payment(&tx_ref).unwrap()["status"],
        "cancelled"
    );
    let page = h
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("This payment was cancelled."));
}

#[tokio::test]
async fn without_return_url_the_page_shows_the_outcome() {
    let h = Harness::start().await;
    let (tx_ref, url) = h.new_payment(json!({"return_url": null})).await;
    let response = h.submit(&url, "pay").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("This payment has been completed."), "{html}");
    assert_eq!(
        h.sandbox.chapa().payment(&tx_ref).unwrap()["status"],
        "success"
    );
    // No callback_url: no callback logged.
    assert_eq!(
        h.sandbox.chapa().payment(&tx_ref).unwrap()["callbacks"],
        json!([])
    );
}
