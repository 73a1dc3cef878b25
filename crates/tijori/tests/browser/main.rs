//! A customer's path through the real app in a real browser.
//!
//! Headless Chromium, driven over WebDriver (chromedriver + fantoccini), uses the app
//! exactly as production serves it: `tijori::Application` on port 0, a fresh SQLite
//! file, the built-in Khalti sandbox (no secret key) and the demo plans. It registers,
//! picks a plan, pays on the sandbox's hosted checkout page, comes back to the return
//! page (which looks the payment up at the gateway before it says anything) and finds
//! the subscription and the payment on the account page. A second customer cancels on
//! the checkout page and gets no subscription. A third shops: puts the demo coffee in
//! the cart, places the ETB order, pays it on the Chapa sandbox's checkout page, and
//! finds the order paid and the stock taken. Pages written as the Django tutorial's are
//! (tests/tutorial/), served from tijori's origin, subscribe and verify with Django's
//! CSRF convention.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them).
//! Without them the test fails, unless `TIJORI_SKIP_BROWSER=1`, which skips it.
//! `TIJORI_CHROMIUM` and `TIJORI_CHROMEDRIVER` point at other binaries.
//!
//! On a failure the screenshot and page source are saved under
//! `<target dir>/browser-artifacts/` and the panic message names them. A passing run
//! leaves `<target dir>/browser-success.png`, `browser-canceled.png` and
//! `browser-chapa-success.png` for a human. The tests take turns: one Chromium at a
//! time.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod account;
mod admin;
mod customer;
mod harness;

use anyhow::Context as _;

use customer::*;
use harness::BrowserRun;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_subscribes_and_another_cancels_in_a_real_browser() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = async {
        subscribe_and_pay(&run.browser, &run.base)
            .await
            .context("scenario 1 (register, subscribe, pay)")?;
        run.browser.client.delete_all_cookies().await?;
        cancel_at_checkout(&run.browser, &run.base)
            .await
            .context("scenario 2 (register, subscribe, cancel)")?;
        anyhow::Ok(())
    }
    .await;
    run.finish(outcome, &["browser-success.png", "browser-canceled.png"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_orders_coffee_and_pays_with_chapa_in_a_real_browser() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = order_and_pay_with_chapa(&run.browser, &run.base)
        .await
        .context("scenario 3 (register, shop, order, pay with Chapa)");
    run.finish(outcome, &["browser-chapa-success.png"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_subscribes_with_esewa_in_a_real_browser() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = subscribe_with_esewa(&run.browser, &run.base)
        .await
        .context("scenario (register, subscribe, pay with eSewa)");
    run.finish(outcome, &["browser-esewa-success.png"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_django_tutorials_pages_subscribe_and_verify_against_tijori() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = tutorial_pages(&run.browser, &run.base)
        .await
        .context("scenario (the tutorial's plans and return pages, Django's CSRF)");
    run.finish(outcome, &["browser-tutorial.png"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_return_page_updates_live_when_the_outcome_arrives_later() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = live_update(&run.browser, &run.base)
        .await
        .context("scenario 4 (Khalti says Pending on return; the outcome is pushed)");
    run.finish(outcome, &["browser-live.png"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_searches_exports_refunds_and_reads_the_revenue_in_a_real_browser() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = admin::operator_runs_the_shop(&run.browser, &run.base)
        .await
        .context("scenario (the operator's area: search, export, refund, revenue)");
    run.finish(outcome, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_through_the_outbox_in_a_real_browser() {
    let Some(run) = BrowserRun::start().await else {
        return;
    };
    let outcome = account::reset_a_forgotten_password(&run.browser, run._work.path())
        .await
        .context("scenario (forgot the password, reset it by the mailed link, sign in)");
    run.finish(outcome, &["screenshots/reset-password-390x844.png"])
        .await;
}
