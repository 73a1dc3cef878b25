//! Legacy KPG-1 (widget): DIY initiate / confirm, verify, status, the token-minting
//! control (khalti.md §9).

use std::time::{Duration, Instant};

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::{KhaltiSettings, DEFAULT_KHALTI_PUBLIC_KEY, DEFAULT_KHALTI_SECRET_KEY};

use crate::common::{json_of, Harness, ALPHABET};

const INITIATE: &str = "khalti/api/v2/payment/initiate/";
const CONFIRM: &str = "khalti/api/v2/payment/confirm/";
const VERIFY: &str = "khalti/api/v2/payment/verify/";
const STATUS: &str = "khalti/api/v2/payment/status/";
const MINT: &str = "khalti/_sandbox/widget/tokens";

const BAD_CONFIRMATION: &str = "Confirmation code or transaction pin does not match.";

/// The widget's config and `checkout.show({amount, mobile})` (khalti.md §9.1, §9.2).
fn initiate_body(amount: i64) -> Value {
    json!({
        "public_key": DEFAULT_KHALTI_PUBLIC_KEY,
        "mobile": "9800000001",
        "transaction_pin": "1111",
        "amount": amount,
        "product_identity": "1234567890",
        "product_name": "Dragon",
        "product_url": "http://gameofthrones.wikia.com/wiki/Dragons",
    })
}

/// POST JSON without `Authorization` (the client-side calls carry the public key).
async fn public_post(h: &Harness, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = h.client.post(h.url(path)).json(body).send().await.unwrap();
    json_of(response).await
}

async fn initiate(h: &Harness, amount: i64) -> String {
    let (status, body) = public_post(h, INITIATE, &initiate_body(amount)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only a token: {body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn confirm(h: &Harness, token: &str, otp: &str, pin: &str) -> (StatusCode, Value) {
    public_post(
        h,
        CONFIRM,
        &json!({
            "public_key": DEFAULT_KHALTI_PUBLIC_KEY,
            "token": token,
            "confirmation_code": otp,
            "transaction_pin": pin,
        }),
    )
    .await
}

/// A token through initiate and confirm, ready to verify.
async fn confirmed(h: &Harness, amount: i64) -> String {
    let token = initiate(h, amount).await;
    let (status, body) = confirm(h, &token, "987654", "1111").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    token
}

async fn verify(h: &Harness, token: &str, amount: i64) -> (StatusCode, Value) {
    h.api(VERIFY, &json!({"token": token, "amount": amount}))
        .await
}

async fn legacy_status(h: &Harness, token: &str, amount: &str) -> (StatusCode, Value) {
    let response = h
        .client
        .get(h.url(STATUS))
        .query(&[("token", token), ("amount", amount)])
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    json_of(response).await
}

fn state_of(h: &Harness, token: &str) -> String {
    let record = h.sandbox.khalti().widget_transaction(token).unwrap();
    record["state"].as_str().unwrap().to_owned()
}

fn is_short_id(id: &str) -> bool {
    id.len() == 22 && id.chars().all(|c| ALPHABET.contains(c))
}

#[tokio::test]
async fn diy_initiate_confirm_verify_with_json() {
    let h = Harness::start().await;
    let token = initiate(&h, 1000).await;
    assert!(is_short_id(&token), "{token}");
    assert_eq!(state_of(&h, &token), "Initiated");

    let (status, confirmed) = confirm(&h, &token, "987654", "1111").await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let idx = confirmed["idx"].as_str().unwrap().to_owned();
    assert!(is_short_id(&idx) && idx != token, "{confirmed}");
    // khalti.md §9.2's fields, plus idx and product_url as in the §9.1 onSuccess payload.
    assert_eq!(
        confirmed,
        json!({
            "idx": idx,
            "token": token,
            "amount": 1000,
            "mobile": "98XXXXX001",
            "product_identity": "1234567890",
            "product_name": "Dragon",
            "product_url": "http://gameofthrones.wikia.com/wiki/Dragons",
        })
    );
    assert_eq!(state_of(&h, &token), "Confirmed");

    let (status, record) = verify(&h, &token, 1000).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    let created_on = record["created_on"].as_str().unwrap().to_owned();
    assert!(created_on.ends_with("+05:45"), "{created_on}");
    DateTime::parse_from_rfc3339(&created_on).unwrap();
    let user_idx = record["user"]["idx"].as_str().unwrap().to_owned();
    assert!(is_short_id(&user_idx), "{record}");
    // Exactly khalti.md §9.3's shape.
    assert_eq!(
        record,
        json!({
            "idx": idx,
            "type": { "idx": "e476BL6jt9kgagEmsakyTL", "name": "Wallet payment" },
            "state": { "idx": "DhvMj9hdRufLqkP8ZY4d8g", "name": "Completed", "template": "is complete" },
            "amount": 1000, "fee_amount": 30, "refunded": false,
            "created_on": created_on, "ebanker": null,
            "user": { "idx": user_idx, "name": "Test User", "mobile": "98XXXXXXX1" },
            "merchant": { "idx": "UM75Gm2gWmZvA4TPwkwZye", "name": "Test Merchant", "mobile": "testmerchant@khalti.com" }
        })
    );
    assert_eq!(state_of(&h, &token), "Completed");
    // The refund route knows the transaction by its idx.
    let (status, body) = h
        .api(
            &format!("khalti/api/merchant-transaction/{idx}/refund/"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(state_of(&h, &token), "Refunded");
}

#[tokio::test]
async fn verify_accepts_form_encoding() {
    let h = Harness::start().await;
    let token = confirmed(&h, 2000).await;
    let response = h
        .client
        .post(h.url(VERIFY))
        .header("Authorization", format!("key {DEFAULT_KHALTI_SECRET_KEY}"))
        .form(&[("token", token.as_str()), ("amount", "2000")])
        .send()
        .await
        .unwrap();
    let (status, record) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["amount"], 2000);
    assert_eq!(record["fee_amount"], 60);
    assert_eq!(record["state"]["name"], "Completed");
    assert_eq!(state_of(&h, &token), "Completed");

    // Form-encoded errors come back the same way.
    let response = h
        .client
        .post(h.url(VERIFY))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .form(&[("token", token.as_str()), ("amount", "lots")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"amount": ["A valid integer is required."]}));
}

#[tokio::test]
async fn verify_with_a_wrong_secret_key_is_401_and_changes_nothing() {
    let h = Harness::start().await;
    let token = h.sandbox.khalti().mint_widget_token(1000).unwrap();
    let cases: &[(Option<&str>, &str)] = &[
        (Some("Key wrong_key"), "Invalid token."),
        // The public key is not a secret key.
        (Some("Key test_public_key_tijori_sandbox"), "Invalid token."),
        (None, "Authentication credentials were not provided."),
    ];
    for (auth, detail) in cases {
        let mut request = h
            .client
            .post(h.url(VERIFY))
            .json(&json!({"token": token, "amount": 1000}));
        if let Some(auth) = auth {
            request = request.header("Authorization", *auth);
        }
        let (status, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body, json!({"detail": detail, "status_code": 401}));
    }
    assert_eq!(state_of(&h, &token), "Confirmed");
}

#[tokio::test]
async fn verify_unknown_token_is_the_documented_error() {
    let h = Harness::start().await;
    let (status, body) = verify(&h, "8xmeJnNXfoVjCvGcZiiGe7", 1000).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"token": ["Invalid token."]}));

    let (status, body) = h.api(VERIFY, &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"token": ["This field is required."], "amount": ["This field is required."]})
    );
}

#[tokio::test]
async fn verify_with_a_different_amount_is_refused() {
    let h = Harness::start().await;
    let token = confirmed(&h, 1000).await;
    for wrong in [999, 10000] {
        let (status, body) = verify(&h, &token, wrong).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"amount": ["Amount does not match the transaction amount."]})
        );
    }
    assert_eq!(state_of(&h, &token), "Confirmed", "the money did not move");
    let (status, _) = verify(&h, &token, 1000).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn verify_of_an_unconfirmed_token_is_refused() {
    let h = Harness::start().await;
    let token = initiate(&h, 1000).await;
    let (status, body) = verify(&h, &token, 1000).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"token": ["Transaction with state Initiated cannot be verified."]})
    );
    assert_eq!(state_of(&h, &token), "Initiated");
}

#[tokio::test]
async fn verifying_twice_returns_the_same_record() {
    let h = Harness::start().await;
    let token = confirmed(&h, 1500).await;
    let (status, first) = verify(&h, &token, 1500).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, second) = verify(&h, &token, 1500).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second, first);
    let record = h.sandbox.khalti().widget_transaction(&token).unwrap();
    assert_eq!(record["state"], "Completed");
    assert_eq!(record["verify_count"], 2);
    // Still not with another amount.
    let (status, _) = verify(&h, &token, 1000).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mint_control_over_http_then_verify() {
    let h = Harness::start().await;
    let response = h
        .client
        .post(h.url(MINT))
        .json(&json!({"amount": 2500, "mobile": "9800000003"}))
        .send()
        .await
        .unwrap();
    let (status, minted) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let idx = minted["idx"].as_str().unwrap().to_owned();
    assert!(is_short_id(&token) && is_short_id(&idx));
    assert_eq!(
        minted,
        json!({"token": token, "idx": idx, "amount": 2500, "mobile": "9800000003"})
    );
    assert_eq!(state_of(&h, &token), "Confirmed");

    let (status, record) = verify(&h, &token, 2500).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["idx"], idx.as_str());
    assert_eq!(record["user"]["mobile"], "98XXXXXXX3");

    // Inspect it by token and by idx.
    for key in [&token, &idx] {
        let response = h
            .client
            .get(h.url(&format!("{MINT}/{key}")))
            .send()
            .await
            .unwrap();
        let (status, record) = json_of(response).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(record["state"], "Completed");
        assert_eq!(record["minted"], true);
    }
    let (status, _) = h.get_text(&format!("{MINT}/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Without the trailing slash too; defaults to wallet 9800000001.
    let response = h
        .client
        .post(h.url(&format!("{MINT}/")))
        .json(&json!({"amount": 1000}))
        .send()
        .await
        .unwrap();
    let (status, minted) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(minted["mobile"], "9800000001");

    let response = h.client.get(h.url(MINT)).send().await.unwrap();
    let (_, list) = json_of(response).await;
    let tokens: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(
        tokens,
        [minted["token"].as_str().unwrap(), token.as_str()],
        "newest first"
    );

    for bad in [
        json!({"amount": 999}),
        json!({"amount": "1000"}),
        json!({}),
        json!({"amount": 1000, "mobile": "9812345678"}),
        json!({"amount": 1000, "mobile": 9800000001_u64}),
        json!({"amount": 1000, "amount_paisa": 1000}),
        json!([1000]),
    ] {
        let response = h.client.post(h.url(MINT)).json(&bad).send().await.unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(
        h.sandbox.khalti().recent_widget_transactions(20).len(),
        2,
        "rejected mints create nothing"
    );
}

#[tokio::test]
async fn mint_method_then_verify() {
    let h = Harness::start().await;
    let control = h.sandbox.khalti();
    let token = control.mint_widget_token(1000).unwrap();
    let record = control.widget_transaction(&token).unwrap();
    assert_eq!(record["state"], "Confirmed");
    assert_eq!(record["amount"], 1000);
    assert_eq!(record["mobile"], "9800000001");

    let (status, verified) = verify(&h, &token, 1000).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["idx"], record["idx"]);
    assert_eq!(state_of(&h, &token), "Completed");

    assert!(control.mint_widget_token(999).is_err());
    assert!(control.mint_widget_token(u64::MAX).is_err());
    assert!(control.widget_transaction("nope").is_none());
    assert_eq!(control.recent_widget_transactions(20).len(), 1);
}

#[tokio::test]
async fn status_reports_each_state() {
    let h = Harness::start().await;
    let token = initiate(&h, 2000).await;
    let (code, body) = legacy_status(&h, &token, "2000").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": true, "detail": "Transaciton initiated.", "state": "Initiated"})
    );

    let (_, confirmed) = confirm(&h, &token, "987654", "1111").await;
    let idx = confirmed["idx"].as_str().unwrap().to_owned();
    let (_, body) = legacy_status(&h, &token, "2000").await;
    assert_eq!(
        body,
        json!({"status": true, "detail": "Transaciton not verified.", "state": "Confirmed"})
    );

    verify(&h, &token, 2000).await;
    let complete = json!({"status": true, "detail": "Transaction complete.", "state": "Complete"});
    let (_, body) = legacy_status(&h, &token, "2000").await;
    assert_eq!(body, complete);
    // khalti.md §9.4: `token=<token|idx>`.
    let (_, body) = legacy_status(&h, &idx, "2000").await;
    assert_eq!(body, complete);

    let refund = format!("khalti/api/merchant-transaction/{idx}/refund/");
    let (code, _) = h.api(&refund, &json!({"amount": 500})).await;
    assert_eq!(code, StatusCode::OK);
    let (_, body) = legacy_status(&h, &token, "2000").await;
    assert_eq!(
        body,
        json!({"status": false, "detail": "Transaction partially refunded.", "state": "Partially refunded"})
    );
    let (code, _) = h.api(&refund, &json!({})).await;
    assert_eq!(code, StatusCode::OK);
    let (_, body) = legacy_status(&h, &token, "2000").await;
    assert_eq!(
        body,
        json!({"status": false, "detail": "Transaciton refunded.", "state": "Refunded"})
    );
    // A refunded transaction does not verify any more.
    let (code, body) = verify(&h, &token, 2000).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"token": ["Transaction with state Refunded cannot be verified."]})
    );

    let not_found = json!({"status": false, "state": "Error", "detail": "Transaction not found"});
    let (code, body) = legacy_status(&h, "8xmeJnNXfoVjCvGcZiiGe7", "2000").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, not_found);
    let (_, body) = legacy_status(&h, &token, "1000").await;
    assert_eq!(body, not_found, "another amount does not match");

    let response = h
        .client
        .get(h.url(STATUS))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    let (code, body) = json_of(response).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"token": ["This field is required."], "amount": ["This field is required."]})
    );

    let response = h
        .client
        .get(h.url(STATUS))
        .query(&[("token", token.as_str()), ("amount", "2000")])
        .send()
        .await
        .unwrap();
    let (code, body) = json_of(response).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["detail"],
        "Authentication credentials were not provided."
    );
}

#[tokio::test]
async fn wrong_mpin_or_otp_is_refused() {
    let h = Harness::start().await;
    let bad_wallet = json!({
        "detail": "Mobile or pin invalid.", "tries_remaining": "2", "error_key": "validation_error"
    });
    for (mobile, pin) in [("9800000001", "1234"), ("9841234567", "1111")] {
        let mut body = initiate_body(1000);
        body["mobile"] = json!(mobile);
        body["transaction_pin"] = json!(pin);
        let (status, body) = public_post(&h, INITIATE, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mobile} {pin}");
        assert_eq!(body, bad_wallet);
    }
    assert!(h.sandbox.khalti().recent_widget_transactions(20).is_empty());

    let token = initiate(&h, 1000).await;
    for (otp, pin) in [("123456", "1111"), ("987654", "1234")] {
        let (status, body) = confirm(&h, &token, otp, pin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{otp} {pin}");
        assert_eq!(
            body,
            json!({"detail": BAD_CONFIRMATION, "error_key": "validation_error"})
        );
    }
    assert_eq!(state_of(&h, &token), "Initiated");

    let (status, body) = confirm(&h, "8xmeJnNXfoVjCvGcZiiGe7", "987654", "1111").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"token": ["Invalid token."], "error_key": "validation_error"})
    );

    let (status, _) = confirm(&h, &token, "987654", "1111").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = confirm(&h, &token, "987654", "1111").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no second confirm");
    assert_eq!(
        body["detail"],
        "Transaction with state Confirmed cannot be confirmed."
    );
}

#[tokio::test]
async fn initiate_validates_fields_and_the_public_key() {
    let h = Harness::start().await;
    let (status, body) = public_post(
        &h,
        INITIATE,
        &json!({"public_key": DEFAULT_KHALTI_PUBLIC_KEY, "amount": 999, "product_name": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "mobile": ["This field is required."],
            "transaction_pin": ["This field is required."],
            "product_identity": ["This field is required."],
            "product_name": ["This field may not be blank."],
            "amount": ["Amount should be greater than Rs. 10, that is 1000 paisa."],
            "error_key": "validation_error",
        })
    );

    let mut body = initiate_body(1000);
    body["public_key"] = json!("test_public_key_someone_else");
    let (status, body) = public_post(&h, INITIATE, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"public_key": ["Invalid public key."], "error_key": "validation_error"})
    );

    // The public key is a setting; form encoding works as well.
    h.sandbox.khalti().set_settings(KhaltiSettings {
        public_key: "live_public_key_abc".into(),
        ..h.sandbox.khalti().settings()
    });
    let response = h
        .client
        .post(h.url(INITIATE))
        .form(&[
            ("public_key", "live_public_key_abc"),
            ("mobile", "9800000005"),
            ("transaction_pin", "1111"),
            ("amount", "1000"),
            ("product_identity", "p1"),
            ("product_name", "Product"),
            ("merchant_order", "42"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record = h
        .sandbox
        .khalti()
        .widget_transaction(body["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(record["mobile"], "9800000005");
    assert_eq!(record["merchant_extra"], json!({"merchant_order": "42"}));
    let (status, _) = public_post(&h, INITIATE, &initiate_body(1000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the old key is refused");
}

#[tokio::test]
async fn routes_answer_without_the_trailing_slash() {
    let h = Harness::start().await;
    let (status, body) =
        public_post(&h, INITIATE.trim_end_matches('/'), &initiate_body(1000)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, _) = public_post(
        &h,
        CONFIRM.trim_end_matches('/'),
        &json!({
            "public_key": DEFAULT_KHALTI_PUBLIC_KEY, "token": token,
            "confirmation_code": "987654", "transaction_pin": "1111",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .api(
            VERIFY.trim_end_matches('/'),
            &json!({"token": token, "amount": 1000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = h
        .client
        .get(h.url(STATUS.trim_end_matches('/')))
        .query(&[("token", token.as_str()), ("amount", "1000")])
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "Complete");
}

#[tokio::test]
async fn other_methods_are_405() {
    let h = Harness::start().await;
    let response = h
        .client
        .get(h.url(VERIFY))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = h.client.get(h.url(VERIFY)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "auth first");
    let response = h.client.get(h.url(INITIATE)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = h
        .client
        .post(h.url(STATUS))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD, OPTIONS");
}

#[tokio::test]
async fn latency_and_faults_apply_to_the_widget_routes() {
    let h = Harness::start().await;
    let token = h.sandbox.khalti().mint_widget_token(1000).unwrap();
    h.sandbox.khalti().set_settings(KhaltiSettings {
        fault: tijori_sandbox::Fault::ServerError,
        fault_count: 2,
        ..KhaltiSettings::default()
    });
    let response = h
        .client
        .post(h.url(VERIFY))
        .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
        .json(&json!({"token": token, "amount": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        state_of(&h, &token),
        "Confirmed",
        "a faulted verify does nothing"
    );
    let response = h
        .client
        .post(h.url(INITIATE))
        .json(&initiate_body(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = verify(&h, &token, 1000).await;
    assert_eq!(status, StatusCode::OK, "the fault count ran out");

    h.sandbox.khalti().set_settings(KhaltiSettings {
        latency_ms: 300,
        ..KhaltiSettings::default()
    });
    let started = Instant::now();
    let (status, _) = legacy_status(&h, &token, "1000").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn index_page_lists_widget_transactions() {
    let h = Harness::start().await;
    let (_, html) = h.get_text("").await;
    assert!(
        !html.contains("widget-transactions"),
        "no table while empty"
    );
    assert!(html.contains(DEFAULT_KHALTI_PUBLIC_KEY));
    let token = h.sandbox.khalti().mint_widget_token(1234).unwrap();
    let (status, html) = h.get_text("").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("widget-transactions"), "{html}");
    assert!(html.contains(&token), "{html}");
    assert!(html.contains("Rs. 12.34"), "{html}");
}
