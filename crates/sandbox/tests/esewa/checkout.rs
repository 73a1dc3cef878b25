//! The hosted page: Pay, Cancel, the redirects and the outcome switch.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    hmac_b64, location, success_data, Form, Harness, FAILURE_URL, PRODUCT, SECRET, SUCCESS_URL,
};

#[tokio::test]
async fn pay_redirects_to_success_url_with_signed_data() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    let response = h.pay(&uuid).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let data = success_data(&location(&response), SUCCESS_URL, SECRET);

    let record = h.sandbox.esewa().payment(&uuid).unwrap();
    let code = record["ref_id"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 7);
    assert!(code.starts_with('0'));
    assert!(code
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
    // Compact JSON, eSewa's key order, every value a string (esewa.md §4.2).
    let signature = data.json["signature"].as_str().unwrap();
    assert_eq!(
        data.text,
        format!(
            r#"{{"transaction_code":"{code}","status":"COMPLETE","total_amount":"110.0","transaction_uuid":"{uuid}","product_code":"EPAYTEST","signed_field_names":"transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names","signature":"{signature}"}}"#
        )
    );
    // Signed with the merchant's secret only.
    assert_ne!(
        signature,
        hmac_b64(
            "another secret",
            &format!("transaction_code={code},status=COMPLETE,total_amount=110.0,transaction_uuid={uuid},product_code={PRODUCT},signed_field_names=transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names")
        )
    );
    assert_eq!(record["status"], "COMPLETE");
    assert_eq!(record["payer"], "9806800001");

    // The status API agrees, with the same reference.
    let (status, body) = h.status(&uuid).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["ref_id"], code.as_str());

    // The page now says so, and cannot be paid again.
    let html = h
        .client
        .get(h.checkout_url(&uuid))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("already been completed"), "{html}");
    assert!(!html.contains("name=\"token\""));
    let again = h.pay(&uuid).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(
        h.sandbox.esewa().payment(&uuid).unwrap()["ref_id"],
        code.as_str()
    );
}

#[tokio::test]
async fn every_test_id_can_pay_and_amounts_are_written_as_esewa_does() {
    let h = Harness::start().await;
    for (i, id) in [
        "9806800001",
        "9806800002",
        "9806800003",
        "9806800004",
        "9806800005",
    ]
    .into_iter()
    .enumerate()
    {
        let uuid = crate::common::fresh_uuid();
        // 1000 rupees posted as "1000" come back as "1000.0"; 19.99 as "19.99";
        // 133.50 as "133.5" (esewa.md §6, §11 q7).
        let (total, shown) = [
            ("1000", "1000.0"),
            ("19.99", "19.99"),
            ("133.50", "133.5"),
            ("5", "5.0"),
            ("0.05", "0.05"),
        ][i];
        let form = Form::new(&uuid, total, "0", total);
        assert_eq!(h.post_form(&form).await.status(), StatusCode::FOUND);
        let response = h.submit(&uuid, id, "Nepal@123", "123456", "pay").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{id}");
        let data = success_data(&location(&response), SUCCESS_URL, SECRET);
        assert_eq!(data.json["total_amount"], shown);
        assert_eq!(data.json["transaction_uuid"], uuid.as_str());
        assert_eq!(h.sandbox.esewa().payment(&uuid).unwrap()["payer"], id);
    }
}

#[tokio::test]
async fn wrong_credentials_change_nothing() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    for (id, password, token, error) in [
        (
            "9806800006",
            "Nepal@123",
            "123456",
            "Invalid eSewa ID or password.",
        ),
        (
            "9806800001",
            "nepal@123",
            "123456",
            "Invalid eSewa ID or password.",
        ),
        ("9806800001", "Nepal@123", "654321", "Invalid token."),
        ("9806800001", "Nepal@123", "", "Invalid token."),
    ] {
        let response = h.submit(&uuid, id, password, token, "pay").await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.unwrap();
        assert!(html.contains(error), "{id}/{password}/{token}: {html}");
        assert!(html.contains("name=\"token\""), "the form is shown again");
    }
    let record = h.sandbox.esewa().payment(&uuid).unwrap();
    assert_eq!(record["status"], "PENDING");
    assert_eq!(record["redirect_url"], json!(null));
    assert_eq!(record["ref_id"], json!(null));
}

#[tokio::test]
async fn cancel_goes_to_failure_url_unchanged() {
    let h = Harness::start().await;
    let uuid = h.new_payment().await;
    // Cancel needs no credentials.
    let response = h.submit(&uuid, "", "", "", "cancel").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), FAILURE_URL, "nothing appended");
    let (_, body) = h.status(&uuid).await;
    assert_eq!(body["status"], "CANCELED");
    assert!(body["ref_id"].is_string(), "{body}");
    let html = h
        .client
        .get(h.checkout_url(&uuid))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("canceled"), "{html}");
    assert_eq!(h.pay(&uuid).await.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn data_is_appended_blindly_to_a_success_url_with_a_query() {
    let h = Harness::start().await;
    let uuid = crate::common::fresh_uuid();
    let success = "https://merchant.example/return?payment=42";
    let form = Form::sample(&uuid).set("success_url", success);
    assert_eq!(h.post_form(&form).await.status(), StatusCode::FOUND);
    let response = h.pay(&uuid).await;
    // esewa.md §11 q8: `?data=` even after an existing `?`.
    let data = success_data(&location(&response), success, SECRET);
    assert_eq!(data.json["status"], "COMPLETE");
}

#[tokio::test]
async fn an_unknown_payment_has_no_page() {
    let h = Harness::start().await;
    let response = h.client.get(h.checkout_url("nope")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("Payment not found"));
    assert_eq!(h.pay("nope").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_outcome_switch_forces_the_next_payments() {
    let h = Harness::start().await;
    for (outcome, status, ref_is_set) in [
        ("pending", "PENDING", false),
        ("ambiguous", "AMBIGUOUS", true),
        ("canceled", "CANCELED", true),
        ("not_found", "NOT_FOUND", false),
    ] {
        let (code, _) = h
            .put_settings(json!({"outcome": outcome, "outcome_count": 1}))
            .await;
        assert_eq!(code, StatusCode::OK);
        let uuid = h.new_payment().await;
        let response = h.pay(&uuid).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{outcome}");
        assert_eq!(location(&response), FAILURE_URL, "{outcome}");
        let (_, body) = h.status(&uuid).await;
        assert_eq!(body["status"], status, "{outcome}: {body}");
        assert_eq!(body["ref_id"].is_string(), ref_is_set, "{outcome}: {body}");
        // The page does not take it again.
        assert_eq!(
            h.pay(&uuid).await.status(),
            StatusCode::CONFLICT,
            "{outcome}"
        );
        // outcome_count 1: the next payment completes.
        let next = h.new_payment().await;
        let response = h.pay(&next).await;
        success_data(&location(&response), SUCCESS_URL, SECRET);
        assert_eq!(
            h.sandbox.esewa().settings().outcome,
            tijori_sandbox::EsewaOutcome::Complete
        );
    }
}

#[tokio::test]
async fn a_pending_payment_can_still_complete_after_the_failure_redirect() {
    let h = Harness::start().await;
    h.put_settings(json!({"outcome": "pending"})).await;
    let uuid = h.new_payment().await;
    let response = h.pay(&uuid).await;
    assert_eq!(location(&response), FAILURE_URL);
    let html = h
        .client
        .get(h.checkout_url(&uuid))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("being processed"), "{html}");
    // esewa.md §5.5: a failure redirect does not mean failed.
    let record = h.sandbox.esewa().complete(&uuid).unwrap();
    assert_eq!(record["status"], "COMPLETE");
    success_data(
        record["redirect_url"].as_str().unwrap(),
        SUCCESS_URL,
        SECRET,
    );
    let (_, body) = h.status(&uuid).await;
    assert_eq!(body["status"], "COMPLETE");
}

#[tokio::test]
async fn grouped_thousands_are_shown_but_not_signed() {
    let h = Harness::start().await;
    h.put_settings(json!({"group_thousands": true})).await;
    let uuid = crate::common::fresh_uuid();
    let form = Form::new(&uuid, "2500", "200", "2700");
    assert_eq!(h.post_form(&form).await.status(), StatusCode::FOUND);
    let response = h.pay(&uuid).await;
    let data = success_data(&location(&response), SUCCESS_URL, SECRET);
    assert_eq!(data.json["total_amount"], "2,700.0");
    // esewa.md §4.2 step 5: the signature covers 2700.0, not the text shown.
    let code = data.json["transaction_code"].as_str().unwrap();
    let over_shown = format!("transaction_code={code},status=COMPLETE,total_amount=2,700.0,transaction_uuid={uuid},product_code=EPAYTEST,signed_field_names=transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names");
    assert_ne!(
        data.json["signature"],
        hmac_b64(SECRET, &over_shown).as_str()
    );
}
