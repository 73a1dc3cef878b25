//! initiate, lookup and refund: auth, validation, response shapes, statuses.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::{KhaltiSettings, DEFAULT_KHALTI_SECRET_KEY};

use crate::common::{json_of, sample, Harness, ALPHABET};

const INITIATE: &str = "khalti/api/v2/epayment/initiate/";
const LOOKUP: &str = "khalti/api/v2/epayment/lookup/";

async fn with_auth(
    h: &Harness,
    path: &str,
    auth: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = h.client.post(h.url(path)).json(&sample());
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.unwrap();
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(response).await;
    (status, body, www)
}

#[tokio::test]
async fn auth_errors_have_drf_bodies() {
    let h = Harness::start().await;
    let cases: &[(Option<&str>, &str)] = &[
        (None, "Authentication credentials were not provided."),
        (Some(""), "Authentication credentials were not provided."),
        (
            Some(DEFAULT_KHALTI_SECRET_KEY),
            "Authentication credentials were not provided.",
        ),
        (
            Some("Bearer test_secret_key_tijori_sandbox"),
            "Authentication credentials were not provided.",
        ),
        (
            Some("Key"),
            "Invalid token header. No credentials provided.",
        ),
        (
            Some("Key abc def"),
            "Invalid token header. Token string should not contain spaces.",
        ),
        (Some("Key wrong_key"), "Invalid token."),
        (Some("Key test_secret_key_tijori_sandboX"), "Invalid token."),
    ];
    for path in [
        INITIATE,
        LOOKUP,
        "khalti/api/merchant-transaction/abc/refund/",
    ] {
        for (auth, detail) in cases {
            let (status, body, www) = with_auth(&h, path, *auth).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {auth:?}");
            assert_eq!(
                body,
                json!({"detail": detail, "status_code": 401}),
                "{path} {auth:?}"
            );
            assert_eq!(www.as_deref(), Some("Key"));
        }
    }
}

#[tokio::test]
async fn auth_keyword_is_case_insensitive() {
    let h = Harness::start().await;
    for keyword in ["Key", "key", "KEY"] {
        let auth = format!("{keyword} {DEFAULT_KHALTI_SECRET_KEY}");
        let (status, body, _) = with_auth(&h, INITIATE, Some(&auth)).await;
        assert_eq!(status, StatusCode::OK, "{keyword}: {body}");
    }
}

#[tokio::test]
async fn auth_comes_before_body_parsing_and_validation() {
    let h = Harness::start().await;
    let response = h
        .client
        .post(h.url(INITIATE))
        .header("Authorization", "Key nope")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Invalid token.");
}

/// Each documented validation error (khalti.md §3.3), exact body.
#[tokio::test]
async fn initiate_validation_errors_are_exact() {
    let h = Harness::start().await;
    let cases: Vec<(Value, Value)> = vec![
        (
            json!({"return_url": ""}),
            json!({"return_url": ["This field may not be blank."]}),
        ),
        (
            json!({"return_url": "   "}),
            json!({"return_url": ["This field may not be blank."]}),
        ),
        (
            json!({"return_url": "example.com/payment"}),
            json!({"return_url": ["Enter a valid URL."]}),
        ),
        (
            json!({"return_url": "http://myapp/return"}),
            json!({"return_url": ["Enter a valid URL."]}),
        ),
        (
            json!({"website_url": ""}),
            json!({"website_url": ["This field may not be blank."]}),
        ),
        (
            json!({"website_url": "not a url"}),
            json!({"website_url": ["Enter a valid URL."]}),
        ),
        (
            json!({"amount": 999}),
            json!({"amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."]}),
        ),
        (
            json!({"amount": "10"}),
            json!({"amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."]}),
        ),
        (
            json!({"amount": -5000}),
            json!({"amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."]}),
        ),
        (
            json!({"amount": "abc"}),
            json!({"amount": ["A valid integer is required."]}),
        ),
        (
            json!({"amount": 1000.5}),
            json!({"amount": ["A valid integer is required."]}),
        ),
        (
            json!({"amount": "1300.5"}),
            json!({"amount": ["A valid integer is required."]}),
        ),
        (
            json!({"amount": true}),
            json!({"amount": ["A valid integer is required."]}),
        ),
        (
            json!({"amount": null}),
            json!({"amount": ["This field may not be null."]}),
        ),
        (
            json!({"purchase_order_id": ""}),
            json!({"purchase_order_id": ["This field may not be blank."]}),
        ),
        (
            json!({"purchase_order_name": ""}),
            json!({"purchase_order_name": ["This field may not be blank."]}),
        ),
        (
            json!({"purchase_order_name": null}),
            json!({"purchase_order_name": ["This field may not be null."]}),
        ),
        (
            json!({"purchase_order_name": {"a": 1}}),
            json!({"purchase_order_name": ["Not a valid string."]}),
        ),
        (
            json!({"amount_breakdown": [{"label": "Mark Price", "amount": 1000}, {"label": "VAT", "amount": 299}]}),
            json!({"amount": ["Amount Breakdown mismatch."]}),
        ),
        (
            json!({"amount_breakdown": {"label": "x", "amount": 1300}}),
            json!({"amount_breakdown": ["Expected a list of items but got type \"dict\"."]}),
        ),
    ];
    for (changes, expected) in cases {
        let mut body = sample();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, got) = h.initiate(&body).await;
        let mut expected = expected.as_object().unwrap().clone();
        expected.insert("error_key".into(), json!("validation_error"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{changes}");
        assert_eq!(got, Value::Object(expected), "{changes}");
    }
}

#[tokio::test]
async fn missing_fields_are_all_reported_together() {
    let h = Harness::start().await;
    let (status, body) = h.initiate(&json!({"unknown": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let required = json!(["This field is required."]);
    assert_eq!(
        body,
        json!({
            "return_url": required, "website_url": required, "amount": required,
            "purchase_order_id": required, "purchase_order_name": required,
            "error_key": "validation_error"
        })
    );

    // An empty body is an empty object, as in DRF.
    let response = h
        .client
        .post(h.url(INITIATE))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    let (status, empty) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(empty, body);

    // Several bad fields at once.
    let (_, body) = h
        .initiate(&json!({"return_url": "x", "website_url": "", "amount": 5, "purchase_order_id": "1", "purchase_order_name": " "}))
        .await;
    assert_eq!(
        body,
        json!({
            "return_url": ["Enter a valid URL."],
            "website_url": ["This field may not be blank."],
            "amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."],
            "purchase_order_name": ["This field may not be blank."],
            "error_key": "validation_error"
        })
    );
}

#[tokio::test]
async fn malformed_bodies_get_drf_errors_not_500() {
    let h = Harness::start().await;
    let send = |content_type: &'static str, body: &'static str| {
        h.client
            .post(h.url(INITIATE))
            .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let (status, body) = json_of(send("application/json", "{\"amount\": ").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{body}"
    );

    let (status, body) = json_of(send("application/json", "[1, 2]").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."], "error_key": "validation_error"})
    );

    let (status, body) = json_of(send("text/plain", "hello").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        body,
        json!({"detail": "Unsupported media type \"text/plain\" in request."})
    );

    // Form-encoded bodies are parsed like DRF's FormParser does.
    let form = "return_url=https%3A%2F%2Fexample.com%2Fr&website_url=https%3A%2F%2Fexample.com&amount=1000&purchase_order_id=o1&purchase_order_name=Tea";
    let (status, body) = json_of(
        send("application/x-www-form-urlencoded", form)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn initiate_success_shape() {
    let h = Harness::start().await;
    let before = Utc::now();
    let (status, body) = h.initiate(&sample()).await;
    assert_eq!(status, StatusCode::OK);
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["expires_at", "expires_in", "payment_url", "pidx"]);

    let pidx = body["pidx"].as_str().unwrap();
    assert_eq!(pidx.len(), 22);
    assert!(pidx.chars().all(|c| ALPHABET.contains(c)), "{pidx}");
    assert_eq!(
        body["payment_url"],
        format!("{}khalti/pay/?pidx={pidx}", h.base)
    );
    assert_eq!(body["expires_in"], 1800);

    let expires_at = body["expires_at"].as_str().unwrap();
    assert!(expires_at.ends_with("+05:45"), "{expires_at}");
    let fraction = expires_at.split('.').nth(1).unwrap();
    assert_eq!(fraction.len(), "471649+05:45".len(), "{expires_at}");
    let parsed = DateTime::parse_from_rfc3339(expires_at).unwrap();
    let delta = parsed.with_timezone(&Utc) - before;
    assert!((1799..=1801).contains(&delta.num_seconds()), "{delta}");

    // Different pidx each time, even for the same purchase_order_id (§3.1).
    let (_, again) = h.initiate(&sample()).await;
    assert_ne!(again["pidx"], body["pidx"]);
}

#[tokio::test]
async fn initiate_accepts_documented_variants_and_stores_merchant_fields() {
    let h = Harness::start().await;
    let variants = [
        json!({"amount": "1000", "amount_breakdown": null}),
        json!({"amount": 1300.0}),
        json!({"purchase_order_id": 12345}),
        json!({"amount": 1000, "amount_breakdown": [{"label": "Price", "amount": 1200}, {"label": "Discount", "amount": -200}]}),
        json!({"return_url": "http://localhost:8000/khalti/return?order=5"}),
        json!({"return_url": "http://127.0.0.1:8000/r", "website_url": "http://127.0.0.1:8000"}),
    ];
    for changes in variants {
        let pidx = h.new_payment(changes.clone()).await;
        assert_eq!(pidx.len(), 22, "{changes}");
    }

    let pidx = h
        .new_payment(json!({"purchase_order_id": 12345, "amount": "2000", "amount_breakdown": [], "other": "ignored"}))
        .await;
    let record = h.sandbox.khalti().payment(&pidx).unwrap();
    assert_eq!(record["purchase_order_id"], "12345");
    assert_eq!(record["amount"], 2000);
    assert_eq!(
        record["merchant_extra"],
        json!({"merchant_username": "merchant_name", "merchant_extra": "merchant_extra"})
    );
    assert_eq!(record["customer_info"]["name"], "Khalti Bahadur");
    assert!(record.get("other").is_none());
}

#[tokio::test]
async fn paths_without_trailing_slash_work() {
    let h = Harness::start().await;
    let (status, body) = h.api("khalti/api/v2/epayment/initiate", &sample()).await;
    assert_eq!(status, StatusCode::OK);
    let pidx = body["pidx"].as_str().unwrap();
    let (status, body) = h
        .api("khalti/api/v2/epayment/lookup", &json!({"pidx": pidx}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Initiated");
}

#[tokio::test]
async fn other_methods_get_401_then_405() {
    let h = Harness::start().await;
    let response = h.client.get(h.url(LOOKUP)).send().await.unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "Authentication credentials were not provided."
    );

    let response = h
        .client
        .get(h.url(LOOKUP))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body, json!({"detail": "Method \"GET\" not allowed."}));
}

#[tokio::test]
async fn lookup_initiated() {
    let h = Harness::start().await;
    let pidx = h.new_payment(json!({})).await;
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"pidx": pidx, "total_amount": 1300, "status": "Initiated", "transaction_id": null, "fee": 0, "refunded": false})
    );
}

#[tokio::test]
async fn lookup_completed_shows_transaction_id() {
    let h = Harness::start().await;
    let pidx = h.new_payment(json!({})).await;
    h.sandbox.khalti().complete(&pidx).unwrap();
    let record = h.sandbox.khalti().payment(&pidx).unwrap();
    let txn = record["transaction_id"].as_str().unwrap().to_owned();
    assert_eq!(txn.len(), 22);
    assert!(txn.chars().all(|c| ALPHABET.contains(c)), "{txn}");
    assert_eq!(record["mobile"], "9800000001");

    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"pidx": pidx, "total_amount": 1300, "status": "Completed", "transaction_id": txn, "fee": 0, "refunded": false})
    );
}

#[tokio::test]
async fn lookup_canceled_and_expired_answer_400_with_full_body() {
    let h = Harness::start().await;
    let canceled = h.new_payment(json!({})).await;
    h.sandbox.khalti().cancel(&canceled).unwrap();
    let (status, body) = h.lookup(&canceled).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"pidx": canceled, "total_amount": 1300, "status": "User canceled", "transaction_id": null, "fee": 0, "refunded": false})
    );

    let expired = h.new_payment(json!({})).await;
    h.sandbox.khalti().expire(&expired).unwrap();
    let (status, body) = h.lookup(&expired).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"pidx": expired, "total_amount": 1300, "status": "Expired", "transaction_id": null, "fee": 0, "refunded": false})
    );
}

#[tokio::test]
async fn lookup_unknown_and_invalid() {
    let h = Harness::start().await;
    let (status, body) = h.lookup("bZQLD9wRVWo4CdESSfuSsB").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"detail": "Not found.", "error_key": "validation_error"})
    );

    let (status, body) = h.api(LOOKUP, &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"pidx": ["This field is required."], "error_key": "validation_error"})
    );

    let (status, body) = h.api(LOOKUP, &json!({"pidx": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"pidx": ["This field may not be blank."], "error_key": "validation_error"})
    );
}

#[tokio::test]
async fn pending_lookups_answer_pending_first() {
    let h = Harness::with(KhaltiSettings {
        pending_lookups: 2,
        ..KhaltiSettings::default()
    })
    .await;
    let pidx = h.new_payment(json!({})).await;
    h.sandbox.khalti().complete(&pidx).unwrap();
    for _ in 0..2 {
        let (status, body) = h.lookup(&pidx).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "Pending");
        assert_eq!(body["transaction_id"], Value::Null);
    }
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Completed");
    assert!(body["transaction_id"].is_string());
    let (_, body) = h.lookup(&pidx).await;
    assert_eq!(body["status"], "Completed");
}

#[tokio::test]
async fn expiry_is_lazy_with_a_one_second_link() {
    let h = Harness::with(KhaltiSettings {
        expires_in_secs: 1,
        ..KhaltiSettings::default()
    })
    .await;
    let (status, body) = h.initiate(&sample()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 1);
    let pidx = body["pidx"].as_str().unwrap().to_owned();
    let (_, body) = h.lookup(&pidx).await;
    assert_eq!(body["status"], "Initiated");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = h.lookup(&pidx).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "Expired");
    // Terminal: cannot be paid any more.
    assert!(h.sandbox.khalti().complete(&pidx).is_err());
}

#[tokio::test]
async fn refunds_full_and_partial() {
    let h = Harness::start().await;
    let khalti = h.sandbox.khalti();

    let full = h.new_payment(json!({})).await;
    khalti.complete(&full).unwrap();
    let txn = khalti.payment(&full).unwrap()["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refund_path = format!("khalti/api/merchant-transaction/{txn}/refund/");
    let (status, body) = h.api(&refund_path, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"detail": "Transaction refund successful."}));
    let (status, body) = h.lookup(&full).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Refunded");
    assert_eq!(body["refunded"], true);
    assert_eq!(body["transaction_id"], txn.as_str());
    let (status, body) = h.api(&refund_path, &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["detail"], "Transaction already refunded.");

    let partial = h.new_payment(json!({})).await;
    khalti.complete(&partial).unwrap();
    let txn = khalti.payment(&partial).unwrap()["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refund_path = format!("khalti/api/merchant-transaction/{txn}/refund/");
    let (status, body) = h.api(&refund_path, &json!({"amount": 5000})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["amount"][0].is_string());
    let (status, _) = h.api(&refund_path, &json!({"amount": "300.00"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.lookup(&partial).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "Partially Refunded");
    assert_eq!(body["refunded"], true);
    let (status, _) = h.api(&refund_path, &json!({"amount": 1000})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = h.lookup(&partial).await;
    assert_eq!(body["status"], "Refunded");

    let (status, body) = h
        .api("khalti/api/merchant-transaction/nope/refund/", &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"detail": "Not found.", "error_key": "validation_error"})
    );
}
