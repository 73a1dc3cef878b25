//! initialize, verify and refund (chapa.md §2, §4, §6).

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY;

use crate::common::{fresh_ref, json_of, sample, Harness};

#[tokio::test]
async fn missing_or_wrong_key_is_401_with_chapa_bodies() {
    let h = Harness::start().await;
    let url = h.url("chapa/v1/transaction/initialize");
    let body = sample(&fresh_ref());

    let response = h.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(
        json_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "Authorization required", "status": "failed", "data": null})
        )
    );

    let invalid = json!({"message": "Invalid API Key or User doesn't exist", "status": "failed", "data": null});
    for auth in [
        "Bearer CHASECK_TEST-wrong".to_owned(),
        format!("Key {DEFAULT_CHAPA_SECRET_KEY}"),
        "Bearer".to_owned(),
        format!("Bearer {DEFAULT_CHAPA_SECRET_KEY} extra"),
    ] {
        let response = h
            .client
            .post(&url)
            .header("Authorization", &auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            json_of(response).await,
            (StatusCode::UNAUTHORIZED, invalid.clone()),
            "{auth}"
        );
    }

    // verify authenticates too, before looking anything up.
    let response = h
        .client
        .get(h.url("chapa/v1/transaction/verify/whatever"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Nothing was created by the rejected calls.
    assert!(h.sandbox.chapa().recent_payments(10).is_empty());
}

#[tokio::test]
async fn initialize_answers_a_hosted_link() {
    let h = Harness::start().await;
    let tx_ref = fresh_ref();
    let (status, json) = h.initialize(&sample(&tx_ref)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["message"], "Hosted Link");
    assert_eq!(json["status"], "success");
    let url = json["data"]["checkout_url"].as_str().unwrap();
    let token = url
        .strip_prefix(&h.url("chapa/checkout/"))
        .unwrap_or_else(|| panic!("{url}"));
    assert_eq!(token.len(), 45, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()), "{token}");
    let record = h.sandbox.chapa().payment(&tx_ref).unwrap();
    assert_eq!(record["status"], "pending");
    assert_eq!(record["amount"], "100.00");
    assert_eq!(record["checkout_url"], url);
}

#[tokio::test]
async fn missing_fields_give_laravel_validation_objects() {
    let h = Harness::start().await;
    let (status, json) = h.initialize(&json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json,
        json!({
            "message": {
                "amount": ["validation.required"],
                "currency": ["validation.required"],
                "tx_ref": ["validation.required"],
            },
            "status": "failed",
            "data": null,
        })
    );
}

#[tokio::test]
async fn malformed_fields_are_rejected_per_field() {
    let h = Harness::start().await;
    let cases = [
        ("email", json!("not-an-email"), "validation.email"),
        ("email", json!(""), "validation.email"),
        ("phone_number", json!("+251912345678"), "validation.regex"),
        ("amount", json!("ten"), "validation.numeric"),
        ("amount", json!("0"), "validation.gt.numeric"),
        ("amount", json!("1.005"), "validation.decimal"),
        ("callback_url", json!("not a url"), "validation.url"),
        ("tx_ref", json!(12), "validation.string"),
    ];
    for (field, value, rule) in cases {
        let mut body = sample(&fresh_ref());
        body[field] = value.clone();
        let (status, json) = h.initialize(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {json}");
        assert_eq!(
            json,
            json!({"message": {field: [rule]}, "status": "failed", "data": null}),
            "{field}={value}"
        );
    }
    assert!(h.sandbox.chapa().recent_payments(50).is_empty());
}

#[tokio::test]
async fn unsupported_currency_and_content_type() {
    let h = Harness::start().await;
    let mut body = sample(&fresh_ref());
    body["currency"] = json!("EUR");
    assert_eq!(
        h.initialize(&body).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "Invalid currency, EUR is not supported", "status": "failed", "data": null})
        )
    );
    let response = h
        .client
        .post(h.url("chapa/v1/transaction/initialize"))
        .header("Authorization", Harness::bearer())
        .header("Content-Type", "text/plain")
        .body("amount=10")
        .send()
        .await
        .unwrap();
    let (status, json) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json["message"],
        "Incorrect header settings Please check if content-type is present and set to application/json"
    );
}

#[tokio::test]
async fn duplicate_tx_ref_is_400_even_after_a_failed_first_call() {
    let h = Harness::start().await;
    let tx_ref = fresh_ref();
    let (status, _) = h.initialize(&sample(&tx_ref)).await;
    assert_eq!(status, StatusCode::OK);
    let mut again = sample(&tx_ref);
    again["amount"] = json!("55");
    assert_eq!(
        h.initialize(&again).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "Transaction reference has been used before", "status": "failed", "data": null})
        )
    );
    // The original is untouched.
    assert_eq!(
        h.sandbox.chapa().payment(&tx_ref).unwrap()["amount"],
        "100.00"
    );
}

#[tokio::test]
async fn form_encoded_initialize_with_bracket_keys() {
    let h = Harness::start().await;
    let tx_ref = fresh_ref();
    let response = h
        .client
        .post(h.url("chapa/v1/transaction/initialize"))
        .header("Authorization", Harness::bearer())
        .form(&[
            ("amount", "10.50"),
            ("currency", "USD"),
            ("tx_ref", tx_ref.as_str()),
            ("customization[title]", "Form title"),
            ("meta[order]", "42"),
        ])
        .send()
        .await
        .unwrap();
    let (status, json) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let (status, json) = h.verify(&tx_ref).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["data"]["amount"], json!(10.5));
    assert_eq!(json["data"]["currency"], "USD");
    assert_eq!(
        json["data"]["customization"],
        json!({"title": "Form title", "description": null, "logo": null})
    );
    assert_eq!(json["data"]["meta"], json!({"order": "42"}));
    assert_eq!(json["data"]["email"], Value::Null);
}

#[tokio::test]
async fn verify_unknown_and_unpaid() {
    let h = Harness::start().await;
    assert_eq!(
        h.verify("never-initialized").await,
        (
            StatusCode::NOT_FOUND,
            json!({"message": "Invalid transaction or Transaction not found", "status": "failed", "data": null})
        )
    );
    let (tx_ref, _) = h.new_payment(json!({})).await;
    assert_eq!(
        h.verify(&tx_ref).await,
        (
            StatusCode::NOT_FOUND,
            json!({"message": "Payment not paid yet", "status": null, "data": null})
        )
    );

    // The switch: 200 with data.status "pending".
    let (status, _) = h.put_settings(json!({"verify_pending_as_200": true})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, json) = h.verify(&tx_ref).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "success");
    assert_eq!(json["data"]["status"], "pending");
}

#[tokio::test]
async fn verify_after_payment_has_the_documented_body() {
    let h = Harness::start().await;
    let (tx_ref, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let (status, json) = h.verify(&tx_ref).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["message"], "Payment details");
    assert_eq!(json["status"], "success");
    let data = &json["data"];
    let reference = data["reference"].as_str().unwrap();
    assert!(
        reference.starts_with("AP") && reference.len() == 12,
        "{reference}"
    );
    let created_at = data["created_at"].as_str().unwrap();
    assert_eq!(created_at.len(), 27, "{created_at}");
    assert!(created_at.ends_with(".000000Z"), "{created_at}");
    let mut expected = json!({
        "first_name": "Bilen",
        "last_name": "Gizachew",
        "email": "abebech_bekele@gmail.com",
        "currency": "ETB",
        "amount": 100,
        "charge": 3.5,
        "mode": "test",
        "method": "test",
        "type": "API",
        "status": "success",
        "reference": reference,
        "tx_ref": tx_ref,
        "customization": {
            "title": "Payment for my favourite merchant",
            "description": "I love online payments",
            "logo": null
        },
        "meta": { "invoices": [ {"key": "Paracetamol", "value": "2pcs"} ] },
        "created_at": created_at,
    });
    expected["updated_at"] = data["updated_at"].clone();
    assert_eq!(data, &expected);
    // Money fields are JSON numbers in verify (chapa.md §4.1).
    assert!(data["amount"].is_number() && data["charge"].is_number());
}

#[tokio::test]
async fn verify_after_failure_and_cancel_reads_failed() {
    let h = Harness::start().await;
    let chapa = h.sandbox.chapa();
    let (failed, _) = h.new_payment(json!({})).await;
    chapa.fail(&failed).unwrap();
    let (status, json) = h.verify(&failed).await;
    assert_eq!(
        (status, &json["data"]["status"]),
        (StatusCode::OK, &json!("failed"))
    );
    // A retry after a failed attempt can still succeed (chapa.md §3.3).
    chapa.pay(&failed).unwrap();
    assert_eq!(h.verify(&failed).await.1["data"]["status"], "success");

    let (cancelled, _) = h.new_payment(json!({})).await;
    chapa.cancel(&cancelled).unwrap();
    assert_eq!(h.verify(&cancelled).await.1["data"]["status"], "failed");
    assert!(chapa.pay(&cancelled).is_err());
}

#[tokio::test]
async fn refunds_partial_then_full() {
    let h = Harness::start().await;
    let (tx_ref, _) = h.new_payment(json!({})).await;

    // Not paid yet: nothing to refund.
    let reference = h.sandbox.chapa().payment(&tx_ref).unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, json) = h.refund(&reference, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["status"], "failed");

    h.sandbox.chapa().pay(&tx_ref).unwrap();
    let (status, json) = h
        .refund(
            &reference,
            &[
                ("amount", "40"),
                ("reason", "accidental purchase"),
                ("reference", "REF-1"),
                ("meta[customer_id]", "123"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["message"],
        "Refund initiated successfully. Processing time: 1-3 business days"
    );
    assert_eq!(json["status"], "success");
    let data = &json["data"];
    assert_eq!(data["chapa_reference"], reference.as_str());
    assert_eq!(data["amount"], "40.00");
    assert_eq!(data["currency"], "ETB");
    assert_eq!(data["status"], "Refund Initiated");
    assert_eq!(data["reason"], "accidental purchase");
    assert_eq!(data["merchant_reference"], "REF-1");
    assert_eq!(data["meta"], json!({"customer_id": "123"}));
    assert!(data["ref"].as_str().unwrap().starts_with("MERC-DIS-REF-"));
    assert!(data["id"].is_u64());

    // Still "success" until everything is refunded.
    assert_eq!(h.verify(&tx_ref).await.1["data"]["status"], "success");
    // Same merchant reference again.
    let (status, json) = h
        .refund(&reference, &[("amount", "1"), ("reference", "REF-1")])
        .await;
    assert_eq!(
        (status, json["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("Refund reference has been used before")
        )
    );
    // More than what is left (60.00).
    let (status, json) = h.refund(&reference, &[("amount", "60.01")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json["message"].as_str().unwrap().contains("60.00"),
        "{json}"
    );

    // The rest, by tx_ref this time (chapa.md §14 q8).
    let (status, json) = h.refund(&tx_ref, &[]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["data"]["amount"], "60.00");
    assert_eq!(h.verify(&tx_ref).await.1["data"]["status"], "refunded");
    let (status, json) = h.refund(&reference, &[]).await;
    assert_eq!(
        (status, json),
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "Transaction has already been refunded", "status": "failed", "data": null})
        )
    );

    let (status, json) = h.refund("APnothing000", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        json["message"],
        "Invalid transaction or Transaction not found"
    );
    // Invalid amount.
    let (tx2, _) = h.new_payment(json!({})).await;
    h.sandbox.chapa().pay(&tx2).unwrap();
    let (status, json) = h.refund(&tx2, &[("amount", "abc")]).await;
    assert_eq!(
        (status, json),
        (
            StatusCode::BAD_REQUEST,
            json!({"message": {"amount": ["validation.numeric"]}, "status": "failed", "data": null})
        )
    );
}
