//! The customer's scenarios: each drives the browser through one path and checks what the pages say.

use anyhow::Context as _;
use fantoccini::Locator;
use std::time::{Duration, Instant};
use url::Url;

use crate::harness::*;

/// The sandbox's test wallet (sandbox README / khalti.md §4).
pub(crate) const KHALTI_ID: &str = "9800000001";
pub(crate) const MPIN: &str = "1111";
pub(crate) const OTP: &str = "987654";

/// Scenario 4: Khalti still says Pending when the customer comes back, so the page
/// shows "Confirming…"; the outcome is then settled elsewhere (here: an API verify,
/// as the reconciler or a webhook would) and pushed to the open page, which updates
/// well before its own next poll.
pub(crate) async fn live_update(b: &Browser, base: &Url) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let settings = base.join("sandbox/khalti/_sandbox/settings")?;
    let res = http
        .put(settings)
        .json(&serde_json::json!({"pending_lookups": 1}))
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "sandbox settings: {}",
        res.status()
    );

    let username = fresh_name("live");
    b.goto(&base.join("register")?).await?;
    b.fill("#username", &username).await?;
    b.fill("#email", "live@example.com").await?;
    b.fill("#password", "correct horse battery").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;
    b.goto(base).await?;
    b.click("button.subscribe").await?;
    let checkout = b
        .wait_for_url("the sandbox's Khalti checkout", |u| {
            u.as_str().contains("/sandbox/khalti/pay/?pidx=")
        })
        .await?;
    let pidx = checkout
        .query_pairs()
        .find(|(k, _)| k == "pidx")
        .map(|(_, v)| v.into_owned())
        .context("no pidx")?;
    b.fill("#khalti_id", KHALTI_ID).await?;
    b.fill("#mpin", MPIN).await?;
    b.fill("#otp", OTP).await?;
    b.click("#pay").await?;
    b.wait_for_url("the return page", |u| u.path() == "/payment-success/")
        .await?;
    b.wait_for_text("#headline", "Confirming your payment")
        .await?;
    b.at_both_sizes("return-pending").await?;

    // Settled from outside the page.
    let login: serde_json::Value = http
        .post(base.join("api/auth/login")?)
        .json(&serde_json::json!({"username": username, "password": "correct horse battery"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().context("no token")?;
    let pushed = Instant::now();
    let res = http
        .post(base.join("api/subscriptions/verify/")?)
        .header("Authorization", format!("Token {token}"))
        .json(&serde_json::json!({"pidx": pidx}))
        .send()
        .await?;
    anyhow::ensure!(res.status() == 200, "verify: {}", res.status());
    // Announced to a screen reader: the headline sits in the page's live region.
    b.wait_for_text("[aria-live=polite] #headline", "Payment successful")
        .await?;
    anyhow::ensure!(
        pushed.elapsed() < Duration::from_millis(1_500),
        "the page should update on the push, not on its next poll (3 s): took {:?}",
        pushed.elapsed()
    );
    b.save_screenshot("browser-live.png").await?;
    Ok(())
}

/// Scenario 1. Returns the plan's name.
pub(crate) async fn subscribe_and_pay(b: &Browser, base: &Url) -> anyhow::Result<String> {
    // 1. Register: a new account is signed in and sent to its (empty) account page.
    b.goto(&base.join("register")?).await?;
    b.at_both_sizes("register").await?;
    b.fill("#username", &fresh_name("asha")).await?;
    b.fill("#email", "asha@example.com").await?;
    b.fill("#password", "correct horse battery").await?;
    b.select("#time_zone", "Asia/Kathmandu").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;
    b.wait_for_text("#subscription", "You have no subscription yet")
        .await?;

    // 2. Pick the first plan: the browser goes to Khalti's hosted checkout.
    b.goto(base).await?;
    b.at_both_sizes("plans").await?;
    let plan = b.text(".plan h2").await?;
    anyhow::ensure!(!plan.is_empty(), "the first plan has no name");
    b.click("button.subscribe").await?;
    let checkout = b
        .wait_for_url("the sandbox's Khalti checkout", |u| {
            u.as_str().contains("/sandbox/khalti/pay/?pidx=")
        })
        .await?;
    b.wait_for_text("#order-name", &plan).await?;

    // 3. Pay: Khalti sends the browser back; the page speaks after a server lookup.
    b.fill("#khalti_id", KHALTI_ID).await?;
    b.fill("#mpin", MPIN).await?;
    b.fill("#otp", OTP).await?;
    b.click("#pay").await?;
    let back = b
        .wait_for_url("the return page", |u| {
            u.as_str()
                .starts_with(base.join("payment-success/").unwrap().as_str())
        })
        .await?;
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let pidx = checkout
        .query_pairs()
        .find(|(k, _)| k == "pidx")
        .map(|(_, v)| v.into_owned());
    anyhow::ensure!(
        param("pidx") == pidx.as_deref() && param("status") == Some("Completed"),
        "Khalti's redirect should carry the pidx {pidx:?} and status=Completed: {back}"
    );
    b.wait_for_text("#headline", "Payment successful").await?;
    b.wait_for_text("#outcome", &plan).await?;
    b.save_screenshot("browser-success.png").await?;
    b.at_both_sizes("return-success").await?;

    // The receipt: numbered, the amount as people read it, Khalti's own transaction
    // id (what the customer's app shows), not the pidx.
    b.click("#receipt-link").await?;
    b.wait_for_url("the receipt", |u| u.path().ends_with("/receipt/"))
        .await?;
    b.wait_for_text("#receipt-number", "R-").await?;
    let amount = b.wait_for_text("#receipt-amount", "Rs. ").await?;
    anyhow::ensure!(amount.ends_with(".00"), "a formatted amount: {amount:?}");
    let transaction = b.text("#receipt-transaction").await?;
    anyhow::ensure!(
        !transaction.is_empty() && Some(transaction.as_str()) != pidx.as_deref(),
        "Khalti's transaction id, not the pidx {pidx:?}: {transaction:?}"
    );
    b.at_both_sizes("receipt").await?;

    // 4. The account shows the active subscription and the completed payment.
    b.goto(&base.join("account/")?).await?;
    let card = b.wait_for_text("#subscription", &plan).await?;
    anyhow::ensure!(
        card.contains("active"),
        "the subscription card should say active: {card:?}"
    );
    // In the zone chosen at registration, whatever the browser's own.
    anyhow::ensure!(
        card.contains("(Nepal Time)"),
        "the dates should be in Nepal time: {card:?}"
    );
    let payments = b.wait_for_text("#payments tbody", "paid").await?;
    b.at_both_sizes("account").await?;
    let rows = b
        .client
        .find_all(Locator::Css("#payments tbody tr"))
        .await?;
    anyhow::ensure!(
        rows.len() == 1,
        "one payment expected, the table shows {}: {payments:?}",
        rows.len()
    );
    Ok(plan)
}

/// The tutorial's pages (tests/tutorial/), served from tijori's origin: the plans
/// page subscribes with `X-CSRFToken` from the `csrftoken` cookie, and the return page
/// verifies the pidx Khalti's redirect carries.
pub(crate) async fn tutorial_pages(b: &Browser, base: &Url) -> anyhow::Result<()> {
    b.goto(&base.join("register")?).await?;
    b.fill("#username", &fresh_name("tutorial")).await?;
    b.fill("#email", "tutorial@example.com").await?;
    b.fill("#password", "correct horse battery").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;

    b.goto(&base.join(TUTORIAL_PLANS)?).await?;
    b.wait_for_text("#plans", "Subscribe").await?;
    b.click(".plan-card button").await?;
    b.wait_for_url("the sandbox's Khalti checkout", |u| {
        u.as_str().contains("/sandbox/khalti/pay/?pidx=")
    })
    .await?;
    b.fill("#khalti_id", KHALTI_ID).await?;
    b.fill("#mpin", MPIN).await?;
    b.fill("#otp", OTP).await?;
    b.click("#pay").await?;
    let back = b
        .wait_for_url("the return URL", |u| u.path() == "/payment-success/")
        .await?;

    // The merchant's return page, with the query Khalti's redirect brought.
    let mut theirs = base.join(TUTORIAL_RETURN)?;
    theirs.set_query(back.query());
    b.goto(&theirs).await?;
    b.wait_for_text("#message", "Payment Successful!").await?;
    b.save_screenshot("browser-tutorial.png").await?;
    Ok(())
}

pub(crate) const TUTORIAL_PLANS: &str = "tutorial/subscription/";
pub(crate) const TUTORIAL_RETURN: &str = "tutorial/payment-success/";

/// The tutorial's two pages, as a merchant would serve them beside tijori.
pub(crate) fn tutorial_routes() -> axum::Router {
    use axum::response::Html;
    use axum::routing::get;
    axum::Router::new()
        .route(
            &format!("/{TUTORIAL_PLANS}"),
            get(|| async { Html(include_str!("../tutorial/subscription.html")) }),
        )
        .route(
            &format!("/{TUTORIAL_RETURN}"),
            get(|| async { Html(include_str!("../tutorial/payment_success.html")) }),
        )
}

/// A new customer subscribes with eSewa: tijori's page posts the signed form to the
/// sandbox's eSewa, the customer pays with a test eSewa ID, and eSewa's signed
/// redirect brings them back to a page that speaks after the status check.
pub(crate) async fn subscribe_with_esewa(b: &Browser, base: &Url) -> anyhow::Result<()> {
    b.goto(&base.join("register")?).await?;
    b.fill("#username", &fresh_name("sabin")).await?;
    b.fill("#email", "sabin@example.com").await?;
    b.fill("#password", "a long esewa password").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;

    b.goto(base).await?;
    let plan = b.text(".plan h2").await?;
    b.click("button.subscribe-esewa").await?;
    b.wait_for_url("the sandbox's eSewa page", |u| {
        u.as_str().contains("/sandbox/esewa/checkout/")
    })
    .await?;
    b.fill("#esewa_id", "9806800001").await?;
    b.fill("#password", "Nepal@123").await?;
    b.fill("#token", "123456").await?;
    b.click("#pay").await?;
    let back = b
        .wait_for_url("the return page", |u| u.path() == "/payment-success/")
        .await?;
    anyhow::ensure!(
        back.query().is_some_and(|q| q.contains("data=")),
        "eSewa's redirect should carry its signed data: {back}"
    );
    b.wait_for_text("#headline", "Payment successful").await?;
    b.wait_for_text("#outcome", &plan).await?;
    b.save_screenshot("browser-esewa-success.png").await?;

    b.goto(&base.join("account/")?).await?;
    let card = b.wait_for_text("#subscription", &plan).await?;
    anyhow::ensure!(card.contains("active"), "{card:?}");
    Ok(())
}

/// Scenario 2: a new customer cancels on the checkout page.
pub(crate) async fn cancel_at_checkout(b: &Browser, base: &Url) -> anyhow::Result<()> {
    b.goto(&base.join("login")?).await?;
    b.at_both_sizes("login").await?;
    b.goto(&base.join("register")?).await?;
    b.fill("#username", &fresh_name("bikash")).await?;
    b.fill("#email", "bikash@example.com").await?;
    b.fill("#password", "another long password").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;
    b.wait_for_text("#subscription", "You have no subscription yet")
        .await?;

    b.goto(base).await?;
    b.click("button.subscribe").await?;
    b.wait_for_url("the sandbox's Khalti checkout", |u| {
        u.as_str().contains("/sandbox/khalti/pay/?pidx=")
    })
    .await?;
    b.click("#cancel").await?;
    let back = b
        .wait_for_url("the return page", |u| u.path() == "/payment-success/")
        .await?;
    anyhow::ensure!(
        back.query_pairs()
            .any(|(k, v)| k == "status" && v == "User canceled"),
        "Khalti's redirect should say status=User canceled: {back}"
    );
    b.wait_for_text("#headline", "Payment canceled").await?;
    // A canceled attempt leads back to paying, with a fresh checkout for the plan.
    b.wait_for_text("#try-again", "Try again with Khalti")
        .await?;
    b.save_screenshot("browser-canceled.png").await?;
    b.at_both_sizes("return-canceled").await?;

    b.goto(&base.join("account/")?).await?;
    let card = b
        .wait_for_text("#subscription", "You have no subscription yet")
        .await?;
    anyhow::ensure!(
        !card.contains("active"),
        "no subscription should be active: {card:?}"
    );
    let payments = b.wait_for_text("#payments tbody", "canceled").await?;
    anyhow::ensure!(
        !payments.contains("paid"),
        "the canceled payment must not show as completed: {payments:?}"
    );
    Ok(())
}

/// Scenario 3: a new customer buys two bags of the demo coffee (ETB) and pays with
/// Chapa. Returns nothing; checks the order, the cart and the stock on the way.
pub(crate) async fn order_and_pay_with_chapa(b: &Browser, base: &Url) -> anyhow::Result<()> {
    b.goto(&base.join("register")?).await?;
    b.fill("#username", &fresh_name("chaltu")).await?;
    b.fill("#email", "chaltu@example.com").await?;
    b.fill("#password", "a third long password").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;

    // 1. The shop: the first ETB product is the demo coffee.
    let coffee = first_product_in(base, "ETB").await?;
    let (id, name, stock_before) = (&coffee.id, &coffee.name, coffee.stock);
    anyhow::ensure!(
        stock_before >= 2,
        "the demo coffee should be in stock: {coffee:?}"
    );
    b.goto(&base.join("shop/")?).await?;
    b.wait_for_text(&format!("#product-{id}"), name).await?;
    b.at_both_sizes("shop").await?;
    b.fill(&format!("#qty-{id}"), "2").await?;
    b.click(&format!("#add-{id}")).await?;

    // 2. The cart: one ETB group, two bags, at today's price.
    b.wait_for_url("the cart", |u| u.path() == "/cart/").await?;
    b.wait_for_text("#cart-ETB", name).await?;
    let total = format!("ETB {}", coffee.times(2));
    b.wait_for_text("#total-ETB", &total).await?;
    b.at_both_sizes("cart").await?;
    b.click("#place-order-ETB").await?;

    // 3. The order: pending, its stock reserved, one Pay button per gateway for ETB.
    let order_url = b
        .wait_for_url("the new order's page", |u| {
            u.path().starts_with("/orders/ord_")
        })
        .await?;
    b.wait_for_text("#order-status", "waiting for payment")
        .await?;
    b.wait_for_text("#order-total", &total).await?;
    b.at_both_sizes("order").await?;
    let reserved = first_product_in(base, "ETB").await?.stock;
    anyhow::ensure!(
        reserved == stock_before - 2,
        "placing the order should reserve 2 of {stock_before}, stock is now {reserved}"
    );
    b.click("#pay-chapa").await?;

    // 4. Chapa's hosted checkout (the sandbox's): pay.
    b.wait_for_url("the sandbox's Chapa checkout", |u| {
        u.path().starts_with("/sandbox/chapa/checkout/")
    })
    .await?;
    b.wait_for_text("#amount", "ETB").await?;
    b.click("#pay").await?;

    // 5. Back on the return page, which says nothing until the server has checked.
    let back = b
        .wait_for_url("the return page", |u| u.path() == "/payment-success/")
        .await?;
    anyhow::ensure!(
        back.query_pairs()
            .any(|(k, v)| k == "tx_ref" && !v.is_empty()),
        "Chapa's return should carry the tx_ref: {back}"
    );
    b.wait_for_text("#headline", "Payment successful").await?;
    b.wait_for_text("#order", "is paid").await?;
    b.save_screenshot("browser-chapa-success.png").await?;

    // 6. The order is paid; nothing is left to pay.
    b.click("#order-link").await?;
    b.wait_for_url("the order's page", |u| u.path() == order_url.path())
        .await?;
    b.wait_for_text("#order-status", "paid").await?;
    anyhow::ensure!(
        b.client.find(Locator::Css("#pay-chapa")).await.is_err(),
        "a paid order offers no Pay button"
    );

    // 7. The stock went down by what was bought, once; the cart is empty; the
    //    account lists the paid order.
    let stock_after = first_product_in(base, "ETB").await?.stock;
    anyhow::ensure!(
        stock_after == stock_before - 2,
        "stock should be {} after buying 2 of {stock_before}, is {stock_after}",
        stock_before - 2
    );
    b.goto(&base.join("cart/")?).await?;
    b.wait_for_text("#cart-empty", "Your cart is empty").await?;
    b.goto(&base.join("account/")?).await?;
    b.wait_for_text("#orders", "paid").await?;
    Ok(())
}

/// A product as `GET /api/products/` shows it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ApiProduct {
    id: String,
    name: String,
    price: String,
    stock: u64,
    currency: String,
}

impl ApiProduct {
    /// `quantity` × the price, as the pages print it ("850.00" × 2 = "1,700.00").
    fn times(&self, quantity: i64) -> String {
        let (units, cents) = self.price.split_once('.').unwrap_or((&self.price, "00"));
        let minor = (units.parse::<i64>().unwrap_or(0) * 100 + cents.parse::<i64>().unwrap_or(0))
            * quantity;
        // Grouped in threes, as the pages print amounts ("1,700.00").
        let units = (minor / 100).to_string();
        let mut grouped = String::new();
        for (i, digit) in units.chars().enumerate() {
            if i > 0 && (units.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        format!("{grouped}.{:02}", minor % 100)
    }
}

/// The first product on sale in `currency`, over the JSON API.
pub(crate) async fn first_product_in(base: &Url, currency: &str) -> anyhow::Result<ApiProduct> {
    let products: Vec<ApiProduct> = reqwest::get(base.join("api/products/")?)
        .await?
        .error_for_status()?
        .json()
        .await?;
    products
        .into_iter()
        .find(|p| p.currency == currency)
        .with_context(|| format!("no product in {currency}"))
}
