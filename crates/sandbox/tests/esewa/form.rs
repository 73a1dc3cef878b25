//! The payment form: what eSewa accepts and how it refuses the rest.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{fresh_uuid, location, parse, Form, Harness, FORM, PRODUCT, SECRET};

async fn refused(h: &Harness, form: &Form) -> Value {
    let response = h.post_form(form).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{form:?}");
    parse(&response.text().await.unwrap())
}

fn envelope(body: &Value) -> (Value, String) {
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only code and error_message: {body}"
    );
    (
        body["code"].clone(),
        body["error_message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_docs_sample_form_goes_to_the_hosted_page() {
    let h = Harness::start().await;
    // esewa.md §3.2, byte for byte, with the published signature (vector V1).
    let form = Form(
        [
            ("amount", "100"),
            ("tax_amount", "10"),
            ("total_amount", "110"),
            ("transaction_uuid", "241028"),
            ("product_code", "EPAYTEST"),
            ("product_service_charge", "0"),
            ("product_delivery_charge", "0"),
            ("success_url", "https://developer.esewa.com.np/success"),
            ("failure_url", "https://developer.esewa.com.np/failure"),
            (
                "signed_field_names",
                "total_amount,transaction_uuid,product_code",
            ),
            ("signature", "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let response = h.post_form(&form).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let page = location(&response);
    assert_eq!(page, h.checkout_url("241028"));

    let response = h.client.get(&page).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    for needle in [
        "Rs. 110.00",
        "241028",
        "name=\"esewa_id\"",
        "name=\"password\"",
        "name=\"token\"",
        "id=\"pay\"",
        "id=\"cancel\"",
        "9806800001",
        "Nepal@123",
        "123456",
    ] {
        assert!(html.contains(needle), "missing {needle:?} in\n{html}");
    }
    let record = h.sandbox.esewa().payment("241028").unwrap();
    assert_eq!(record["status"], "PENDING");
    assert_eq!(record["total_amount"], "110");
    assert_eq!(record["total_paisa"], 11_000);
}

#[tokio::test]
async fn a_multipart_form_is_accepted_too() {
    let h = Harness::start().await;
    let uuid = fresh_uuid();
    let form = Form::sample(&uuid);
    let boundary = "----tijoriTestBoundary7MA4YWxk";
    let mut body = String::new();
    for (name, value) in &form.0 {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let response = h
        .client
        .post(h.url(FORM))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(location(&response), h.checkout_url(&uuid));
}

#[tokio::test]
async fn a_bad_signature_is_es104() {
    let h = Harness::start().await;
    let uuid = fresh_uuid();
    let expected = json!({"code": "ES104", "error_message": "Invalid payload signature"});

    // Tampered after signing.
    let tampered =
        Form::sample(&uuid).set("signature", "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME=");
    assert_eq!(refused(&h, &tampered).await, expected);
    // The same total written differently is another message (esewa.md §6).
    let reformatted = Form::sample(&uuid)
        .set("total_amount", "110.00")
        .set("amount", "100.00");
    assert_eq!(refused(&h, &reformatted).await, expected);
    // The UAT key as some READMEs copy it, with the docs' `(` (esewa.md §1.2).
    let mut wrong_key = Form::sample(&uuid);
    wrong_key.sign("8gBm/:&EnhH.1/q(");
    assert_eq!(refused(&h, &wrong_key).await, expected);
    // Values only, no names (esewa.md §10 item 6).
    let values_only = Form::sample(&uuid).set(
        "signature",
        &crate::common::hmac_b64(SECRET, &format!("110,{uuid},EPAYTEST")),
    );
    assert_eq!(refused(&h, &values_only).await, expected);
    let not_base64 = Form::sample(&uuid).set("signature", "%%%");
    assert_eq!(refused(&h, &not_base64).await, expected);
    assert!(h.sandbox.esewa().payment(&uuid).is_none(), "nothing stored");

    // The raw body's byte-exact envelope, `code` first.
    let response = h.post_form(&tampered).await;
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"code":"ES104","error_message":"Invalid payload signature"}"#
    );
}

#[tokio::test]
async fn a_total_that_is_not_the_sum_is_refused() {
    let h = Harness::start().await;
    let uuid = fresh_uuid();
    for form in [
        Form::new(&uuid, "100", "10", "100"),
        Form::new(&uuid, "100", "10", "110.01"),
        Form::sample(&uuid)
            .set("product_delivery_charge", "5")
            .signed(),
    ] {
        let (code, message) = envelope(&refused(&h, &form).await);
        assert_eq!(code, 0);
        assert!(message.contains("total_amount must equal"), "{message}");
    }
    // Charges count: 100 + 10 + 2.5 + 7.5 = 120.
    let good = Form::new(&uuid, "100", "10", "120")
        .set("product_service_charge", "2.5")
        .set("product_delivery_charge", "7.50")
        .signed();
    assert_eq!(h.post_form(&good).await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_bad_transaction_uuid_is_refused() {
    let h = Harness::start().await;
    for uuid in [
        "order_1",
        "order.1",
        "order/1",
        "order 1",
        "ордер",
        &"a".repeat(101),
    ] {
        let (code, message) = envelope(&refused(&h, &Form::sample(uuid)).await);
        assert_eq!(code, 0, "{uuid}");
        assert_eq!(
            message, "transaction_uuid supports alphanumeric and hyphen(-) only",
            "{uuid}"
        );
    }
    // A UUID v4 with hyphens and 100 characters are fine (esewa.md §7, §11 q19).
    for uuid in ["3c709af7-23b9-4083-b89c-1a6d50480004", &"a".repeat(100)] {
        let response = h.post_form(&Form::sample(uuid)).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{uuid}");
    }
}

#[tokio::test]
async fn missing_fields_bad_amounts_and_urls_are_refused() {
    let h = Harness::start().await;
    let uuid = fresh_uuid();

    let (code, message) = envelope(&refused(&h, &Form::sample(&uuid).without("tax_amount")).await);
    assert_eq!(code, 0);
    assert!(message.contains("tax_amount"), "{message}");
    let (_, message) =
        envelope(&refused(&h, &Form::sample(&uuid).set("product_service_charge", "")).await);
    assert!(message.contains("product_service_charge"), "{message}");
    let (_, message) = envelope(&refused(&h, &Form(Vec::new())).await);
    assert!(message.contains("signature"), "{message}");

    for (field, value) in [
        ("amount", "1,000"),
        ("amount", "-100"),
        ("tax_amount", "10.001"),
        ("total_amount", "1e2"),
        ("total_amount", "Rs. 110"),
    ] {
        let form = Form::sample(&uuid).set(field, value).signed();
        let (code, message) = envelope(&refused(&h, &form).await);
        assert_eq!(code, 0);
        assert!(message.contains(field), "{field}={value}: {message}");
    }
    for (field, value) in [
        ("success_url", "merchant.example/ok"),
        ("failure_url", "ftp://x.example/"),
    ] {
        let form = Form::sample(&uuid).set(field, value);
        let (_, message) = envelope(&refused(&h, &form).await);
        assert!(message.contains(field), "{message}");
    }
    let form = Form::sample(&uuid)
        .set("signed_field_names", "transaction_uuid,product_code")
        .signed();
    let (_, message) = envelope(&refused(&h, &form).await);
    assert!(message.contains("total_amount"), "{message}");
    assert!(h.sandbox.esewa().payment(&uuid).is_none(), "nothing stored");
}

#[tokio::test]
async fn an_unknown_merchant_cannot_fetch_its_key() {
    let h = Harness::start().await;
    let form = Form::sample(&fresh_uuid())
        .set("product_code", "NOSUCHMERCHANT")
        .signed();
    let response = h.post_form(&form).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // esewa.md §3.3, as reported: `error_message` first.
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error_message":"Unable to fetch merchant key. Please try again later.","code":0}"#
    );
    assert_eq!(PRODUCT, "EPAYTEST");
}

#[tokio::test]
async fn extra_fields_and_other_signed_fields_are_allowed() {
    let h = Harness::start().await;
    // The "try it" form's copies post the secret (esewa.md §3.2); it is ignored.
    let form = Form::sample(&fresh_uuid()).set("secret", SECRET);
    assert_eq!(h.post_form(&form).await.status(), StatusCode::FOUND);
    // More signed names than the mandatory three, in another order.
    let form = Form::sample(&fresh_uuid())
        .set(
            "signed_field_names",
            "amount,total_amount,transaction_uuid,product_code,success_url",
        )
        .signed();
    assert_eq!(h.post_form(&form).await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_uuid_is_reused_only_to_repost_the_same_open_payment() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    // The same form again (a reload): the same page.
    let again = h.post_form(&Form::sample(&uuid)).await;
    assert_eq!(again.status(), StatusCode::FOUND);
    assert_eq!(location(&again), h.checkout_url(&uuid));
    // Another amount under the same uuid.
    let (_, message) = envelope(&refused(&h, &Form::new(&uuid, "200", "0", "200")).await);
    assert!(message.contains("Duplicate transaction_uuid"), "{message}");
    // After the payer acted, the uuid is spent.
    h.submit(&uuid, "", "", "", "cancel").await;
    let (_, message) = envelope(&refused(&h, &Form::sample(&uuid)).await);
    assert!(message.contains("Duplicate transaction_uuid"), "{message}");
    assert_eq!(
        h.sandbox.esewa().payment(&uuid).unwrap()["status"],
        "CANCELED"
    );
}
