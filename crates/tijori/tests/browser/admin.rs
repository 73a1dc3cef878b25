//! The operator's scenarios: customers pay over the API (as their apps would), then the
//! operator searches and exports the payments, refunds one from its page, and reads
//! the revenue, in the browser; every page of the operator's area at both sizes.

use anyhow::{ensure, Context as _};
use serde_json::{json, Value};
use url::Url;

use crate::harness::*;

/// A customer who paid for the first plan through Khalti's sandbox: their username
/// and the payment's id.
struct Paid {
    username: String,
    payment_id: String,
}

/// Registers `username`, subscribes to the first plan and pays on the sandbox's
/// checkout, all over HTTP, then verifies: a completed payment.
async fn customer_pays(base: &Url, username: &str) -> anyhow::Result<Paid> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let registered: Value = http
        .post(base.join("api/auth/register")?)
        .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse battery"}))
        .send()
        .await?
        .json()
        .await?;
    let token = registered["token"].as_str().context("no token")?.to_owned();
    let plans: Vec<Value> = http
        .get(base.join("api/subscriptions/plans/")?)
        .send()
        .await?
        .json()
        .await?;
    let plan = plans[0]["id"].as_str().context("no plan")?;
    let started: Value = http
        .post(base.join("api/subscriptions/initiate/")?)
        .header("Authorization", format!("Token {token}"))
        .json(&json!({"plan_id": plan}))
        .send()
        .await?
        .json()
        .await?;
    let pidx = started["pidx"].as_str().context("no pidx")?;
    let paid = http
        .post(base.join("sandbox/khalti/pay/")?)
        .form(&[
            ("pidx", pidx),
            ("khalti_id", crate::customer::KHALTI_ID),
            ("mpin", crate::customer::MPIN),
            ("otp", crate::customer::OTP),
            ("action", "pay"),
        ])
        .send()
        .await?;
    ensure!(
        paid.status() == 303,
        "the sandbox's checkout: {}",
        paid.status()
    );
    let verified = http
        .post(base.join("api/subscriptions/verify/")?)
        .header("Authorization", format!("Token {token}"))
        .json(&json!({"pidx": pidx}))
        .send()
        .await?;
    ensure!(verified.status() == 200, "verify: {}", verified.status());
    Ok(Paid {
        username: username.to_owned(),
        payment_id: started["payment_id"].as_str().context("no id")?.to_owned(),
    })
}

/// The operator's API token (for reading payments as the API shows them).
async fn operator_token(base: &Url) -> anyhow::Result<String> {
    let login: Value = reqwest::Client::new()
        .post(base.join("api/auth/login")?)
        .json(&json!({"username": OPERATOR_USERNAME, "password": OPERATOR_PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    Ok(login["token"].as_str().context("no token")?.to_owned())
}

/// A payment as the API shows it to the operator.
async fn api_payment(base: &Url, token: &str, id: &str) -> anyhow::Result<Value> {
    Ok(reqwest::Client::new()
        .get(base.join(&format!("api/payments/{id}/"))?)
        .header("Authorization", format!("Token {token}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// "500.00" as minor units.
fn minor(amount: &Value) -> anyhow::Result<i64> {
    let text = amount.as_str().context("an amount")?;
    let (whole, cents) = text.split_once('.').unwrap_or((text, "00"));
    Ok(whole.parse::<i64>()? * 100 + cents.parse::<i64>()?)
}

async fn sign_in_as_operator(b: &Browser, base: &Url) -> anyhow::Result<()> {
    b.goto(&base.join("login?next=/admin/")?).await?;
    b.fill("#username", OPERATOR_USERNAME).await?;
    b.fill("#password", OPERATOR_PASSWORD).await?;
    b.click("#login").await?;
    b.wait_for_url("the operator's overview", |u| u.path() == "/admin/")
        .await?;
    Ok(())
}

/// Fetches `href` (a page's link) with the browser's session cookie, as a download.
async fn download(b: &Browser, base: &Url, href: &str) -> anyhow::Result<String> {
    let cookie = b
        .client
        .get_named_cookie("tijori_session")
        .await
        .context("the browser holds no session")?;
    let res = reqwest::Client::new()
        .get(base.join(href)?)
        .header("Cookie", format!("tijori_session={}", cookie.value()))
        .send()
        .await?;
    ensure!(res.status() == 200, "{href}: {}", res.status());
    Ok(res.text().await?)
}

/// Payments of two customers; the operator searches for one, exports what is shown
/// (the file's rows match the filter), refunds part of the payment from its page
/// after confirming, and finds the revenue's numbers equal to the API's.
pub(crate) async fn operator_runs_the_shop(b: &Browser, base: &Url) -> anyhow::Result<()> {
    let sita = customer_pays(base, &fresh_name("sita")).await?;
    let hari = customer_pays(base, &fresh_name("hari")).await?;
    sign_in_as_operator(b, base).await?;
    b.at_both_sizes("admin-overview").await?;

    // Search, then export what is shown.
    b.click("#admin-nav-payments").await?;
    b.wait_for_url("the payments", |u| u.path() == "/admin/payments/")
        .await?;
    b.fill("#q", &hari.username).await?;
    b.select("#status", "completed").await?;
    b.click("#apply-filters").await?;
    b.wait_for_text("#summary", "1 found").await?;
    b.at_both_sizes("admin-payments").await?;
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css("#payments tbody tr"))
        .await?;
    ensure!(
        rows.len() == 1,
        "one payment of {}: {}",
        hari.username,
        rows.len()
    );
    let href = b
        .find("#export-csv")
        .await?
        .attr("href")
        .await?
        .context("the export has no link")?;
    ensure!(
        href.contains("status=completed") && href.contains(&hari.username),
        "{href}"
    );
    let csv = download(b, base, &href).await?;
    let lines: Vec<&str> = csv.lines().collect();
    ensure!(lines.len() == 2, "a header and one row: {csv}");
    let cells: Vec<&str> = lines[1].split(',').collect();
    ensure!(
        cells[0] == hari.payment_id && cells[2] == "completed" && cells[6] == hari.username,
        "the row is the payment shown: {csv}"
    );
    let everything = download(b, base, "/admin/payments.csv").await?;
    ensure!(
        everything.lines().count() == 3,
        "both payments: {everything}"
    );

    // Refund part of it from its page, with a confirmation.
    b.click(&format!(
        "#payments a[href='/admin/payments/{}']",
        hari.payment_id
    ))
    .await?;
    b.wait_for_text("#payment-status", "completed").await?;
    b.at_both_sizes("admin-payment").await?;
    b.fill("#refund-amount", "100").await?;
    b.fill("#refund-reason", "one week unused").await?;
    b.click("#refund-review").await?;
    b.wait_for_text("#confirm-summary", "Rs. 100.00").await?;
    b.at_both_sizes("admin-refund-confirm").await?;
    b.click("#refund-confirm").await?;
    b.wait_for_text("#notice", "The refund went through")
        .await?;
    b.wait_for_text("#payment-status", "partially refunded")
        .await?;
    b.wait_for_text("#refunds", "one week unused").await?;
    b.at_both_sizes("admin-payment-refunded").await?;

    // The revenue: numbers as the API tells the payments and the refund.
    let token = operator_token(base).await?;
    let mut collected = 0;
    for id in [&sita.payment_id, &hari.payment_id] {
        collected += minor(&api_payment(base, &token, id).await?["amount"])?;
    }
    let refunded = 10_000;
    b.click("#admin-nav-revenue").await?;
    b.wait_for_url("the revenue", |u| u.path() == "/admin/revenue/")
        .await?;
    let row = b.find("#total-khalti-NPR").await?;
    let read = |name: &'static str| {
        let row = row.clone();
        async move {
            row.attr(name)
                .await?
                .context(name)?
                .parse::<i64>()
                .context(name)
        }
    };
    let shown = (
        read("data-collected-minor").await?,
        read("data-refunded-minor").await?,
        read("data-net-minor").await?,
    );
    ensure!(
        shown == (collected, refunded, collected - refunded),
        "the revenue shows {shown:?}; the API says {collected} collected and {refunded} refunded"
    );
    b.find("#chart-khalti-NPR rect.collected").await?;
    b.find("#chart-khalti-NPR rect.refunded").await?;
    b.wait_for_text("#count-active", "2").await?;
    b.at_both_sizes("admin-revenue").await?;
    b.goto(&base.join("admin/revenue/?days=90")?).await?;
    b.at_both_sizes("admin-revenue-90").await?;

    // Every other page of the area fits a phone.
    for (page, name) in [
        ("admin/orders/", "admin-orders"),
        ("admin/customers/", "admin-customers"),
        ("admin/subscriptions/", "admin-subscriptions"),
        ("admin/events/?all=1", "admin-events"),
        ("admin/webhooks/", "admin-webhooks"),
    ] {
        b.goto(&base.join(page)?).await?;
        b.find("nav.admin").await?;
        b.at_both_sizes(name).await?;
    }
    Ok(())
}
