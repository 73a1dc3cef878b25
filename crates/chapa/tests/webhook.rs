//! Webhook signatures (chapa.md §5.3) and the typed event (§5.2).
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use chapa::{
    parse_webhook, verify_webhook_signature, Amount, EventKind, PaymentStatus, SignatureError,
    WebhookError,
};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::Sha256;

const WEBHOOK_SECRET: &[u8] = b"my-dashboard-secret-hash-7f3a";

const CHARGE_SUCCESS: &str = r#"{"event":"charge.success","first_name":"","last_name":"","email":null,"mobile":"25190000000","currency":"ETB","amount":"400.00","charge":"12.00","status":"success","mode":"live","reference":"AP634JFwEbxd","created_at":"2023-08-27T19:21:18.000000Z","updated_at":"2023-08-27T19:21:27.000000Z","type":"API","tx_ref":"4FGFF4FFGD3","payment_method":"telebirr","customization":{"title":null,"description":null,"logo":"https:\/\/shop.example\/logo.png"},"meta":null}"#;

const PAYOUT_SUCCESS: &str = r#"{"event":"payout.success","type":"Payout","account_name":"Customer Name","account_number":"25190000000","bank_id":855,"bank_name":"telebirr","amount":"2000.00","charge":"60.00","currency":"ETB","status":"success","reference":"MYMER3434989","chapa_reference":"2o10dfs332U","bank_reference":"GT3412w3","created_at":"2023-08-27T19:23:22.000000Z","updated_at":"2023-08-27T19:23:23.000000Z"}"#;

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// Both headers as Chapa sends them.
fn signed(body: &[u8]) -> HeaderMap {
    headers(&[
        ("x-chapa-signature", &hmac_hex(WEBHOOK_SECRET, body)),
        ("chapa-signature", &hmac_hex(WEBHOOK_SECRET, WEBHOOK_SECRET)),
    ])
}

#[test]
fn a_known_hmac_vector_is_accepted() {
    // RFC 4231 test case 2, independent of the hmac crate used by the tests.
    let h = headers(&[(
        "x-chapa-signature",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    )]);
    assert_eq!(
        verify_webhook_signature(b"Jefe", b"what do ya want for nothing?", &h),
        Ok(())
    );
    assert_eq!(
        verify_webhook_signature(b"Jefe", b"what do ya want for nothing!", &h),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_valid_signature_is_accepted() {
    let body = CHARGE_SUCCESS.as_bytes();
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &signed(body)),
        Ok(())
    );
    // x-chapa-signature alone suffices.
    let only_x = headers(&[("X-Chapa-Signature", &hmac_hex(WEBHOOK_SECRET, body))]);
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &only_x),
        Ok(())
    );
}

#[test]
fn uppercase_hex_is_accepted() {
    let body = CHARGE_SUCCESS.as_bytes();
    let upper = hmac_hex(WEBHOOK_SECRET, body).to_ascii_uppercase();
    assert!(upper.chars().any(|c| c.is_ascii_uppercase()));
    let h = headers(&[("x-chapa-signature", &upper)]);
    assert_eq!(verify_webhook_signature(WEBHOOK_SECRET, body, &h), Ok(()));
}

#[test]
fn one_tampered_byte_is_refused() {
    let body = CHARGE_SUCCESS.as_bytes();
    let h = signed(body);
    let tampered = CHARGE_SUCCESS.replace("400.00", "900.00");
    assert_eq!(tampered.len(), body.len());
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, tampered.as_bytes(), &h),
        Err(SignatureError::Mismatch)
    );
    // Every single-byte flip is caught, e.g. the last byte.
    let mut flipped = body.to_vec();
    *flipped.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, &flipped, &h),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_wrong_secret_is_refused() {
    let body = CHARGE_SUCCESS.as_bytes();
    assert_eq!(
        verify_webhook_signature(b"another-secret", body, &signed(body)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_missing_header_is_refused() {
    let body = CHARGE_SUCCESS.as_bytes();
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &HeaderMap::new()),
        Err(SignatureError::Missing)
    );
    let unrelated = headers(&[("content-type", "application/json")]);
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &unrelated),
        Err(SignatureError::Missing)
    );
}

#[test]
fn the_constant_chapa_signature_alone_is_refused() {
    let body = CHARGE_SUCCESS.as_bytes();
    let constant = hmac_hex(WEBHOOK_SECRET, WEBHOOK_SECRET);
    let h = headers(&[("chapa-signature", &constant)]);
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &h),
        Err(SignatureError::OnlyConstantSignature)
    );
    // Replayed on a forged body, it must not help either.
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, br#"{"event":"charge.success"}"#, &h),
        Err(SignatureError::OnlyConstantSignature)
    );
    assert!(matches!(
        parse_webhook(WEBHOOK_SECRET, body, &h),
        Err(WebhookError::Signature(
            SignatureError::OnlyConstantSignature
        ))
    ));
}

#[test]
fn a_valid_chapa_signature_cannot_rescue_a_wrong_x_chapa_signature() {
    let body = CHARGE_SUCCESS.as_bytes();
    let h = headers(&[
        (
            "x-chapa-signature",
            &hmac_hex(WEBHOOK_SECRET, b"some other body"),
        ),
        ("chapa-signature", &hmac_hex(WEBHOOK_SECRET, WEBHOOK_SECRET)),
    ]);
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &h),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_wrong_constant_chapa_signature_alone_is_a_mismatch() {
    let body = CHARGE_SUCCESS.as_bytes();
    let h = headers(&[("chapa-signature", &hmac_hex(b"other", b"other"))]);
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &h),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_custom_webhook_chapa_signature_over_the_body_is_accepted() {
    // chapa.md §5.1: custom webhooks put HMAC(secret, payload) in chapa-signature.
    let body = CHARGE_SUCCESS.as_bytes();
    let h = headers(&[("chapa-signature", &hmac_hex(WEBHOOK_SECRET, body))]);
    assert_eq!(verify_webhook_signature(WEBHOOK_SECRET, body, &h), Ok(()));
}

#[test]
fn malformed_signatures_are_refused_as_malformed() {
    let body = CHARGE_SUCCESS.as_bytes();
    let good = hmac_hex(WEBHOOK_SECRET, body);
    let not_hex = format!("{}zz", &good[..62]);
    for bad in [
        "",
        "abc",
        not_hex.as_str(),
        &good[..63],
        &format!("{good}00"),
        &format!("sha256={good}"),
    ] {
        let h = headers(&[("x-chapa-signature", bad)]);
        assert_eq!(
            verify_webhook_signature(WEBHOOK_SECRET, body, &h),
            Err(SignatureError::Malformed {
                header: "x-chapa-signature"
            }),
            "{bad:?}"
        );
    }
    let twice = headers(&[("x-chapa-signature", &good), ("x-chapa-signature", &good)]);
    assert!(matches!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &twice),
        Err(SignatureError::Malformed { .. })
    ));
}

#[test]
fn an_empty_secret_is_refused() {
    let body = CHARGE_SUCCESS.as_bytes();
    let h = headers(&[("x-chapa-signature", &hmac_hex(b"", body))]);
    assert_eq!(
        verify_webhook_signature(b"", body, &h),
        Err(SignatureError::EmptySecret)
    );
}

#[test]
fn the_signature_covers_raw_bytes_not_reserialised_json() {
    // The body escapes `/` as `\/` (Laravel's default). A signature over the compact
    // re-serialisation of the parsed body differs, and is refused; the one over the
    // bytes as received is accepted.
    let body = CHARGE_SUCCESS.as_bytes();
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap()).unwrap();
    assert_ne!(reserialised, body);
    let h = headers(&[(
        "x-chapa-signature",
        &hmac_hex(WEBHOOK_SECRET, &reserialised),
    )]);
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &h),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_webhook_signature(WEBHOOK_SECRET, body, &signed(body)),
        Ok(())
    );
}

#[test]
fn a_charge_event_is_parsed_after_the_check() {
    let body = CHARGE_SUCCESS.as_bytes();
    let event = parse_webhook(WEBHOOK_SECRET, body, &signed(body)).unwrap();
    assert_eq!(event.event, EventKind::ChargeSuccess);
    assert_eq!(event.status, Some(PaymentStatus::Success));
    assert_eq!(event.amount, Some(Amount::from_minor(40000)));
    assert_eq!(event.charge, Some(Amount::from_minor(1200)));
    assert_eq!(event.currency.as_deref(), Some("ETB"));
    assert_eq!(event.tx_ref.as_deref(), Some("4FGFF4FFGD3"));
    assert_eq!(event.merchant_reference(), Some("4FGFF4FFGD3"));
    assert_eq!(event.chapa_reference(), Some("AP634JFwEbxd"));
    assert_eq!(event.mode.as_deref(), Some("live"));
    assert_eq!(event.payment_method.as_deref(), Some("telebirr"));
    assert_eq!(event.email, None);
    assert!(!event.is_payout());
    assert_eq!(
        event.body["customization"]["logo"],
        "https://shop.example/logo.png"
    );
}

#[test]
fn a_payout_event_swaps_the_references() {
    let body = PAYOUT_SUCCESS.as_bytes();
    let event = parse_webhook(WEBHOOK_SECRET, body, &signed(body)).unwrap();
    assert_eq!(event.event, EventKind::PayoutSuccess);
    assert!(event.is_payout());
    assert_eq!(event.merchant_reference(), Some("MYMER3434989"));
    assert_eq!(event.chapa_reference(), Some("2o10dfs332U"));
    assert_eq!(event.bank_reference.as_deref(), Some("GT3412w3"));
    assert_eq!(event.amount, Some(Amount::from_minor(200000)));
    assert_eq!(event.charge, Some(Amount::from_minor(6000)));
}

#[test]
fn event_names_and_money_types_vary() {
    for (name, kind, status) in [
        (
            "charge.failed/cancelled",
            EventKind::ChargeFailedOrCancelled,
            "failed/cancelled",
        ),
        (
            "charge.failed",
            EventKind::ChargeFailedOrCancelled,
            "failed",
        ),
        ("charge.refunded", EventKind::ChargeRefunded, "refunded"),
        ("charge.reversed", EventKind::ChargeReversed, "reversed"),
        (
            "charge.dispute.create",
            EventKind::Other("charge.dispute.create".into()),
            "x",
        ),
    ] {
        let body = format!(
            r#"{{"event":"{name}","status":"{status}","amount":400.5,"charge":12,"tx_ref":"t1"}}"#
        );
        let event =
            parse_webhook(WEBHOOK_SECRET, body.as_bytes(), &signed(body.as_bytes())).unwrap();
        assert_eq!(event.event, kind, "{name}");
        assert_eq!(event.status, Some(PaymentStatus::parse(status)));
        assert_eq!(event.amount, Some(Amount::from_minor(40050)));
        assert_eq!(event.charge, Some(Amount::from_minor(1200)));
    }
    assert!(PaymentStatus::parse("failed/cancelled").is_failure());
}

#[test]
fn the_older_nested_shape_is_read_too() {
    let body = br#"{"event":"charge.success","data":{"tx_ref":"t9","reference":"APx","amount":"10.00","currency":"USD","status":"success"}}"#;
    let event = parse_webhook(WEBHOOK_SECRET, body, &signed(body)).unwrap();
    assert_eq!(event.tx_ref.as_deref(), Some("t9"));
    assert_eq!(event.chapa_reference(), Some("APx"));
    assert_eq!(event.amount, Some(Amount::from_minor(1000)));
    assert_eq!(event.currency.as_deref(), Some("USD"));
}

#[test]
fn a_signed_body_that_is_not_an_event_is_malformed() {
    for body in [&b"not json"[..], b"[1,2]", br#"{"status":"success"}"#] {
        assert!(
            matches!(
                parse_webhook(WEBHOOK_SECRET, body, &signed(body)),
                Err(WebhookError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn an_unsigned_body_is_never_parsed() {
    // Garbage with a bad signature reports the signature, not the garbage.
    let h = headers(&[("x-chapa-signature", &hmac_hex(b"wrong", b"x"))]);
    assert_eq!(
        parse_webhook(WEBHOOK_SECRET, b"not json", &h).unwrap_err(),
        WebhookError::Signature(SignatureError::Mismatch)
    );
}
