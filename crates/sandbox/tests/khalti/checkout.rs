//! The hosted checkout page and the return redirect.

use reqwest::StatusCode;
use serde_json::json;
use tijori_sandbox::{KhaltiSettings, Sandbox, SandboxConfig};

use crate::common::{client, json_of, location, Harness};

#[tokio::test]
async fn page_has_the_element_contract() {
    let h = Harness::start().await;
    let pidx = h
        .new_payment(json!({"purchase_order_name": "Masala tea"}))
        .await;
    let (status, html) = h.get_text(&format!("khalti/pay/?pidx={pidx}")).await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "Khalti SANDBOX — no real money",
        "Masala tea",
        "Rs. 13.00",
        "example.com",
        r#"<form method="post" action="/khalti/pay/">"#,
        r#"name="khalti_id" id="khalti_id""#,
        r#"name="mpin" id="mpin""#,
        r#"name="otp" id="otp""#,
        &format!(r#"<input type="hidden" name="pidx" value="{pidx}">"#),
        r#"<button type="submit" name="action" value="pay" id="pay""#,
        r#"<button type="submit" name="action" value="cancel" id="cancel" class="cancel" formnovalidate>"#,
        "9800000000",
        "9800000005",
        "1111",
        "987654",
    ] {
        assert!(html.contains(needle), "missing {needle:?} in\n{html}");
    }
}

#[tokio::test]
async fn page_escapes_merchant_input() {
    let h = Harness::start().await;
    let pidx = h
        .new_payment(json!({"purchase_order_name": "<script>alert(1)</script>"}))
        .await;
    let (_, html) = h.get_text(&format!("khalti/pay/?pidx={pidx}")).await;
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn unknown_or_missing_pidx_is_404() {
    let h = Harness::start().await;
    for path in ["khalti/pay/?pidx=bZQLD9wRVWo4CdESSfuSsB", "khalti/pay/"] {
        let (status, html) = h.get_text(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("Payment not found"), "{html}");
        assert!(!html.contains("<form"), "{html}");
    }
    let response = h
        .submit("nope", "9800000001", "1111", "987654", "pay")
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_credentials_then_right_ones_redirect_exactly() {
    let h = Harness::start().await;
    let pidx = h.new_payment(json!({})).await;

    for (id, mpin, otp, error) in [
        ("9800000009", "1111", "987654", "Mobile or pin invalid."),
        ("9800000001", "2222", "987654", "Mobile or pin invalid."),
        ("", "", "", "Mobile or pin invalid."),
        (
            "9800000001",
            "1111",
            "123456",
            "Confirmation code or transaction pin does not match.",
        ),
    ] {
        let response = h.submit(&pidx, id, mpin, otp, "pay").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("location").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains(error), "{id}/{mpin}/{otp}: {html}");
        assert!(html.contains(r#"id="khalti_id""#), "form re-rendered");
        let (_, body) = h.lookup(&pidx).await;
        assert_eq!(body["status"], "Initiated", "nothing changed");
    }

    let response = h.submit(&pidx, "9800000004", "1111", "987654", "pay").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let record = h.sandbox.khalti().payment(&pidx).unwrap();
    let txn = record["transaction_id"].as_str().unwrap();
    assert_eq!(
        location(&response),
        format!(
            "https://example.com/payment/?pidx={pidx}&txnId={txn}&amount=1300&total_amount=1300&status=Completed&mobile=98XXXXX004&tidx={txn}&purchase_order_id=test12&purchase_order_name=test&transaction_id={txn}"
        )
    );
    assert_eq!(record["redirect_url"], location(&response));
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Completed");
    assert_eq!(body["transaction_id"], txn);

    // Terminal: a second payment attempt changes nothing and does not redirect.
    let again = h.submit(&pidx, "9800000001", "1111", "987654", "pay").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.headers().get("location").is_none());
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("already been completed"));
    assert_eq!(
        h.sandbox.khalti().payment(&pidx).unwrap()["transaction_id"],
        txn
    );
}

#[tokio::test]
async fn cancel_redirects_with_the_cancel_parameters() {
    let h = Harness::start().await;
    let pidx = h
        .new_payment(json!({
            "return_url": "https://shop.example.com/khalti/return?order=7&x=a%20b",
            "purchase_order_name": "Tea & biscuits",
        }))
        .await;
    // Cancel needs no credentials.
    let response = h.submit(&pidx, "", "", "", "cancel").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        format!(
            "https://shop.example.com/khalti/return?order=7&x=a%20b&pidx={pidx}&transaction_id=&tidx=&amount=1300&total_amount=1300&mobile=&status=User%20canceled&purchase_order_id=test12&purchase_order_name=Tea%20%26%20biscuits"
        )
    );
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "User canceled");

    // The page now says so, without a form; paying is refused.
    let (status, html) = h.get_text(&format!("khalti/pay/?pidx={pidx}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("This payment was cancelled."), "{html}");
    assert!(!html.contains("<form"), "{html}");
    let response = h.submit(&pidx, "9800000001", "1111", "987654", "pay").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let (_, body) = h.lookup(&pidx).await;
    assert_eq!(body["status"], "User canceled");
}

#[tokio::test]
async fn pending_redirect_says_pending() {
    let h = Harness::with(KhaltiSettings {
        pending_lookups: 1,
        ..KhaltiSettings::default()
    })
    .await;
    let pidx = h.new_payment(json!({})).await;
    let response = h.submit(&pidx, "9800000001", "1111", "987654", "pay").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = location(&response);
    assert!(location.contains("&status=Pending&"), "{location}");
    assert!(location.contains("&mobile=98XXXXX001&"), "{location}");
    let (_, body) = h.lookup(&pidx).await;
    assert_eq!(body["status"], "Pending");
    let (_, body) = h.lookup(&pidx).await;
    assert_eq!(body["status"], "Completed");
}

#[tokio::test]
async fn expired_page_has_no_form() {
    let h = Harness::start().await;
    let pidx = h.new_payment(json!({})).await;
    h.sandbox.khalti().expire(&pidx).unwrap();
    let (status, html) = h.get_text(&format!("khalti/pay/?pidx={pidx}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("This payment link has expired."), "{html}");
    assert!(!html.contains("<form"));
    let response = h.submit(&pidx, "", "", "", "cancel").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "Expired");
}

/// The app nests the router under `/sandbox`; links and the form follow.
#[tokio::test]
async fn works_nested_under_a_prefix() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sandbox = Sandbox::new(SandboxConfig::new(
        format!("http://{addr}/sandbox").parse().unwrap(),
    ));
    let app = axum::Router::new().nest("/sandbox", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client();
    let base = format!("http://{addr}/sandbox/");

    let response = client
        .post(format!("{base}khalti/api/v2/epayment/initiate/"))
        .header(
            "Authorization",
            format!("Key {}", tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY),
        )
        .json(&crate::common::sample())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pidx = body["pidx"].as_str().unwrap();
    let payment_url = body["payment_url"].as_str().unwrap();
    assert_eq!(payment_url, format!("{base}khalti/pay/?pidx={pidx}"));

    let html = client
        .get(payment_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/sandbox/khalti/pay/">"#),
        "{html}"
    );
    let response = client
        .post(format!("http://{addr}/sandbox/khalti/pay/"))
        .form(&[
            ("pidx", pidx),
            ("khalti_id", "9800000000"),
            ("mpin", "1111"),
            ("otp", "987654"),
            ("action", "pay"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("https://example.com/payment/?pidx="));

    let index = client
        .get(format!("http://{addr}/sandbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    let missing = client.get(format!("{base}nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let html = index.text().await.unwrap();
    assert!(html.contains(&format!("{base}khalti/api/v2/")), "{html}");

    // The 404 page links home to `/sandbox`, which the nested router serves.
    let html = client
        .get(format!("{base}khalti/pay/?pidx=nope"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<a href="/sandbox">"#), "{html}");
}
