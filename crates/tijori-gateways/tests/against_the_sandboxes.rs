//! Each adapter against its gateway's sandbox: the client crates and the sandbox were
//! written independently from the same public contracts, so agreement here is a check
//! on both.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::sync::Arc;

use secrecy::SecretString;
use tijori_core::gateway::{CheckoutRequest, Gateway, GatewayError, GatewayStatus};
use tijori_core::id::PaymentId;
use tijori_core::money::{Currency, Money};
use tijori_gateways::{ChapaGateway, EsewaGateway, KhaltiGateway};
use tijori_sandbox::{Sandbox, SandboxConfig};
use url::Url;

async fn sandbox() -> (Sandbox, Url) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let sandbox = Sandbox::new(SandboxConfig::new(base.clone()));
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (sandbox, base)
}

fn checkout(amount: Money) -> CheckoutRequest {
    CheckoutRequest {
        payment_id: PaymentId::generate(),
        amount,
        description: "Basic subscription (30 days)".into(),
        return_url: "http://shop.example/payment-success/".into(),
        website_url: "http://shop.example/".into(),
        customer_name: "sita".into(),
        customer_email: "sita@example.com".into(),
    }
}

fn chapa(sandbox_base: &Url) -> Arc<dyn Gateway> {
    let config = chapa::Config::new(
        sandbox_base.join("chapa/v1/").unwrap(),
        SecretString::from(tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY),
    );
    let callback = Url::parse("http://shop.example/api/payments/chapa/callback/").unwrap();
    Arc::new(ChapaGateway::new(
        chapa::Client::new(config).unwrap(),
        callback,
    ))
}

#[tokio::test]
async fn chapa_checkout_then_each_outcome() {
    let (sandbox, base) = sandbox().await;
    let gw = chapa(&base);
    assert!(
        gw.supports(Currency::Etb) && gw.supports(Currency::Usd) && !gw.supports(Currency::Npr)
    );

    let paid = checkout(Money::parse_major("500.50", Currency::Etb).unwrap());
    let opened = gw.initiate(&paid).await.unwrap();
    assert_eq!(opened.provider_ref, paid.payment_id.as_str());
    assert!(
        opened
            .payment_url
            .starts_with(base.join("chapa/checkout/").unwrap().as_str()),
        "{}",
        opened.payment_url
    );
    let record = sandbox.chapa().payment(&opened.provider_ref).unwrap();
    assert!(
        record.to_string().contains("tx_ref="),
        "the return URL names the payment: {record}"
    );

    let before = gw.lookup(&opened.provider_ref, paid.amount).await.unwrap();
    assert_eq!(before.status, GatewayStatus::Unpaid, "{}", before.raw.body);

    sandbox.chapa().pay(&opened.provider_ref).unwrap();
    let after = gw.lookup(&opened.provider_ref, paid.amount).await.unwrap();
    assert_eq!(after.status, GatewayStatus::Paid, "{}", after.raw.body);
    assert_eq!(
        after.amount_minor, 50_050,
        "the exact amount, no float on the way"
    );
    assert_eq!(after.currency, Some(Currency::Etb));
    assert!(
        after.transaction_id.is_some(),
        "Chapa's reference, needed for refunds"
    );

    let failed = gw
        .initiate(&checkout(Money::parse_major("10", Currency::Usd).unwrap()))
        .await
        .unwrap();
    sandbox.chapa().fail(&failed.provider_ref).unwrap();
    assert_eq!(
        gw.lookup(
            &failed.provider_ref,
            Money::parse_major("10", Currency::Usd).unwrap()
        )
        .await
        .unwrap()
        .status,
        GatewayStatus::Failed
    );

    let canceled = gw
        .initiate(&checkout(Money::parse_major("10", Currency::Etb).unwrap()))
        .await
        .unwrap();
    sandbox.chapa().cancel(&canceled.provider_ref).unwrap();
    // Verify knows only success, pending and failed (chapa.md §4.1): a canceled
    // checkout reads as failed, and like any failure it is never fulfilled.
    assert_eq!(
        gw.lookup(
            &canceled.provider_ref,
            Money::parse_major("10", Currency::Etb).unwrap()
        )
        .await
        .unwrap()
        .status,
        GatewayStatus::Failed
    );

    match gw
        .lookup(
            "pay_unknown",
            Money::parse_major("10", Currency::Etb).unwrap(),
        )
        .await
    {
        Err(GatewayError::NotFound { raw: Some(raw), .. }) => assert_eq!(raw.http_status, 404),
        other => panic!("an unknown tx_ref is NotFound with its answer kept, got {other:?}"),
    }
}

#[tokio::test]
async fn chapa_rejections_and_bad_keys_are_told_apart() {
    let (_sandbox, base) = sandbox().await;
    let gw = chapa(&base);
    let request = checkout(Money::parse_major("25", Currency::Etb).unwrap());
    gw.initiate(&request).await.unwrap();
    match gw.initiate(&request).await {
        Err(GatewayError::Rejected { reason, .. }) => {
            assert!(reason.to_lowercase().contains("used before"), "{reason}")
        }
        other => panic!("a reused tx_ref is rejected, got {other:?}"),
    }

    let wrong_key = chapa::Config::new(
        base.join("chapa/v1/").unwrap(),
        SecretString::from("CHASECK_TEST-wrong"),
    );
    let gw = ChapaGateway::new(chapa::Client::new(wrong_key).unwrap(), base.clone());
    let request = checkout(Money::parse_major("25", Currency::Etb).unwrap());
    assert!(matches!(
        gw.initiate(&request).await,
        Err(GatewayError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn khalti_checkout_then_payment() {
    let (sandbox, base) = sandbox().await;
    let config = khalti::Config::new(
        base.join("khalti/api/v2/").unwrap(),
        SecretString::from(tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY),
    );
    let gw = KhaltiGateway::new(khalti::Client::new(config).unwrap());
    assert!(gw.supports(Currency::Npr) && !gw.supports(Currency::Etb));
    let opened = gw
        .initiate(&checkout(Money::parse_major("500", Currency::Npr).unwrap()))
        .await
        .unwrap();
    assert!(opened.expires_at.is_some());
    assert_eq!(
        gw.lookup(
            &opened.provider_ref,
            Money::parse_major("500", Currency::Npr).unwrap()
        )
        .await
        .unwrap()
        .status,
        GatewayStatus::Unpaid
    );
    sandbox.khalti().complete(&opened.provider_ref).unwrap();
    let paid = gw
        .lookup(
            &opened.provider_ref,
            Money::parse_major("500", Currency::Npr).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (paid.status, paid.amount_minor),
        (GatewayStatus::Paid, 50_000)
    );
}

fn esewa(sandbox_base: &Url) -> Arc<dyn Gateway> {
    let host = sandbox_base.join("esewa/").unwrap();
    let config = esewa::Config::new(
        host.clone(),
        host,
        tijori_sandbox::DEFAULT_ESEWA_PRODUCT_CODE,
        SecretString::from(tijori_sandbox::DEFAULT_ESEWA_SECRET_KEY),
    );
    Arc::new(EsewaGateway::new(esewa::Client::new(config).unwrap()))
}

#[tokio::test]
async fn esewa_form_then_each_outcome() {
    let (sandbox, base) = sandbox().await;
    let gw = esewa(&base);
    assert!(gw.supports(Currency::Npr) && !gw.supports(Currency::Etb));
    let amount = Money::parse_major("110.50", Currency::Npr).unwrap();
    let request = checkout(amount);
    let opened = gw.initiate(&request).await.unwrap();
    assert_eq!(
        opened.provider_ref,
        request.payment_id.as_str().replace('_', "-"),
        "eSewa takes letters, digits and '-' only"
    );
    assert_eq!(
        opened.payment_url,
        format!("http://shop.example/payments/{}/esewa/", request.payment_id)
    );
    let form = gw.checkout_form(&request).unwrap();
    assert_eq!(
        form.action,
        base.join("esewa/api/epay/main/v2/form").unwrap().as_str(),
        "the form is posted to eSewa's form endpoint"
    );
    let field = |name: &str| {
        form.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field("total_amount"), "110.5");
    assert_eq!(field("success_url"), "http://shop.example/payment-success/");
    assert!(field("failure_url").contains(&opened.provider_ref));

    // Before the browser posts the form, eSewa knows nothing of it: open, not closed.
    let before = gw.lookup(&opened.provider_ref, amount).await.unwrap();
    assert_eq!(before.status, GatewayStatus::Unpaid);

    // The browser posts the signed form; the sandbox accepts it only if it verifies.
    let posted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&form.action)
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_redirection(), "{}", posted.status());
    sandbox.esewa().complete(&opened.provider_ref).unwrap();
    let paid = gw.lookup(&opened.provider_ref, amount).await.unwrap();
    assert_eq!(paid.status, GatewayStatus::Paid);
    assert_eq!(paid.amount_minor, 11_050);
    assert!(paid.transaction_id.is_some());

    sandbox.esewa().refund(&opened.provider_ref).unwrap();
    let refunded = gw.lookup(&opened.provider_ref, amount).await.unwrap();
    assert_eq!(refunded.status, GatewayStatus::Refunded);
}
