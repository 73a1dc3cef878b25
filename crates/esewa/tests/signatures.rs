//! eSewa's signature vectors through the public API (esewa.md §2.2): the form sample (V1)
//! and the success-redirect sample (V2) from eSewa's docs, and a real UAT redirect (V4).
//! The docs' stand-alone example (V3) does not reproduce and is a doc bug; it is pinned
//! as such in the crate's unit tests.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use esewa::{
    callback_data_from_query, CallbackError, Client, Config, FormRequest, Paisa, Status,
    TransactionUuid,
};

fn uat() -> Client {
    Client::new(Config::uat()).unwrap()
}

#[test]
fn v1_the_docs_form_sample() {
    let mut request = FormRequest::new(
        Paisa::new(10000),
        TransactionUuid::new("241028").unwrap(),
        "https://developer.esewa.com.np/success".parse().unwrap(),
        "https://developer.esewa.com.np/failure".parse().unwrap(),
    );
    request.tax_amount = Paisa::new(1000);
    let form = uat().sign_form(&request).unwrap();
    assert_eq!(
        form.action.as_str(),
        "https://rc-epay.esewa.com.np/api/epay/main/v2/form"
    );
    // Every field of the docs' sample form-data (esewa.md §3.2), in its order.
    assert_eq!(
        form.fields.pairs(),
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
                "total_amount,transaction_uuid,product_code"
            ),
            ("signature", "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="),
        ]
    );
}

/// The docs' success sample as it travels: compact JSON, every value a string.
const V2_JSON: &str = r#"{"transaction_code":"000AWEO","status":"COMPLETE","total_amount":"1000.0","transaction_uuid":"250610-162413","product_code":"EPAYTEST","signed_field_names":"transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names","signature":"62GcfZTmVkzhtUeh+QJ1AqiJrjoWWGof3U+eTPTZ7fA="}"#;

#[test]
fn v2_the_docs_success_redirect() {
    let data = STANDARD.encode(V2_JSON);
    let callback = uat().verify_callback(&data).unwrap();
    assert_eq!(callback.transaction_code, "000AWEO");
    assert_eq!(callback.status, Status::Complete);
    assert_eq!(callback.total_amount_text, "1000.0");
    assert_eq!(callback.total_amount, Paisa::new(100000));
    assert_eq!(callback.transaction_uuid, "250610-162413");
    assert_eq!(callback.product_code, "EPAYTEST");
    assert_eq!(callback.json, V2_JSON);
    assert!(callback.confirms("250610-162413", Paisa::new(100000)));

    // As a browser brings it onto a success_url that already had a query (esewa.md §4.2).
    let query = format!("payment=42?data={data}");
    let found = callback_data_from_query(&query).unwrap();
    assert_eq!(uat().verify_callback(found).unwrap(), callback);
}

#[test]
fn v4_a_real_uat_redirect() {
    // mukezhz/pay-np esewa/esewa_test.go, "Real sandbox callback" (esewa.md §2.2).
    let json = r#"{"transaction_code":"0006TY3","status":"COMPLETE","total_amount":"133.0","transaction_uuid":"1234567890","product_code":"EPAYTEST","signed_field_names":"transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names","signature":"MFEcMZ/30WVezanVZHH4H1nIV8pGwyzZxggtkye2VXw="}"#;
    let callback = uat().verify_callback(&STANDARD.encode(json)).unwrap();
    assert_eq!(callback.total_amount, Paisa::new(13300));
    assert_eq!(callback.transaction_code, "0006TY3");
}

#[test]
fn forged_redirects_grant_nothing() {
    // A COMPLETE with a made-up signature, and the genuine one with its amount changed.
    let made_up = V2_JSON.replace(
        "62GcfZTmVkzhtUeh+QJ1AqiJrjoWWGof3U+eTPTZ7fA=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let cheaper = V2_JSON.replace(r#""total_amount":"1000.0""#, r#""total_amount":"10.0""#);
    for forged in [made_up, cheaper] {
        assert_eq!(
            uat().verify_callback(&STANDARD.encode(forged)),
            Err(CallbackError::BadSignature)
        );
    }
    // Signed with another merchant's key.
    let other = Client::new(Config::new(
        Config::UAT_BASE_URL.parse().unwrap(),
        Config::UAT_STATUS_URL.parse().unwrap(),
        "EPAYTEST",
        secrecy::SecretString::from("another-merchant-key"),
    ))
    .unwrap();
    assert_eq!(
        other.verify_callback(&STANDARD.encode(V2_JSON)),
        Err(CallbackError::BadSignature)
    );
}
