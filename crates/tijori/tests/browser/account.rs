//! Account basics in a real browser: "Forgot your password?" from the sign-in page,
//! the link read from the outbox (as an operator without SMTP reads it), a new
//! password set through it and signed in with, then the settings page, and the
//! pages in Nepali.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use url::Url;

use crate::harness::*;

/// An app like `start_app`'s, with its service at hand so the scenario can read the
/// outbox the reset mail lands in.
async fn start_app_with_outbox(dir: &Path) -> anyhow::Result<(Url, tijori_core::Tijori)> {
    let config = tijori::Config {
        gateway_timeout: Duration::from_secs(5),
        ..tijori::Config::embedded(&format!("sqlite://{}", dir.join("account.db").display()))
    };
    let app = tijori::Application::build(&config).await?;
    let base = app.public_url().clone();
    let tijori = app.tijori().clone();
    tokio::spawn(app.run_until_stopped());
    Ok((base, tijori))
}

/// The link in the reset mail to `to`, once it is in the outbox.
async fn reset_link(tijori: &tijori_core::Tijori, to: &str) -> anyhow::Result<Url> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let mail = tijori
            .outbox(50)
            .await?
            .into_iter()
            .find(|m| m.to == to && m.subject == "Reset your password");
        if let Some(mail) = mail {
            let link = mail
                .body
                .lines()
                .find(|l| l.starts_with("http"))
                .with_context(|| format!("no link in the mail: {}", mail.body))?;
            return Ok(Url::parse(link)?);
        }
        if Instant::now() > deadline {
            bail!("no reset mail to {to} in the outbox");
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) async fn reset_a_forgotten_password(b: &Browser, dir: &Path) -> anyhow::Result<()> {
    let (base, tijori) = start_app_with_outbox(dir).await?;
    let name = fresh_name("hana");
    let email = format!("{name}@example.com");
    b.goto(&base.join("register")?).await?;
    b.fill("#username", &name).await?;
    b.fill("#email", &email).await?;
    b.fill("#password", "the first password").await?;
    b.click("#register").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;
    // Another device, signed out, that has forgotten the password.
    b.client.delete_all_cookies().await?;

    // 1. From the sign-in page to "Forgot your password?".
    b.goto(&base.join("login")?).await?;
    b.click("#forgot-password").await?;
    b.wait_for_url("the forgotten password page", |u| {
        u.path() == "/forgot-password"
    })
    .await?;
    b.at_both_sizes("forgot-password").await?;
    b.fill("#email", &email).await?;
    b.click("#send-reset").await?;
    b.wait_for_text("#reset-sent", "we have sent it a link")
        .await?;
    b.at_both_sizes("forgot-password-sent").await?;

    // 2. The mail's link, from the outbox: a new password.
    let link = reset_link(&tijori, &email).await?;
    anyhow::ensure!(
        link.origin() == base.origin() && link.path() == "/reset-password",
        "the link should open this tijori's reset page: {link}"
    );
    b.goto(&link).await?;
    b.find("#set-password").await?;
    b.at_both_sizes("reset-password").await?;
    b.fill("#password", "a brand new password").await?;
    b.click("#set-password").await?;
    b.wait_for_url("the sign-in page", |u| u.path() == "/login")
        .await?;
    b.wait_for_text("#login-notice", "sign in with your new password")
        .await?;

    // 3. The link worked once.
    b.goto(&link).await?;
    b.wait_for_text("#reset-dead", "expired or was used")
        .await?;
    b.at_both_sizes("reset-password-used").await?;

    // 4. Signing in with the new password, then the settings page.
    b.goto(&base.join("login?next=%2Faccount%2F")?).await?;
    b.fill("#username", &name).await?;
    b.fill("#password", "a brand new password").await?;
    b.click("#login").await?;
    b.wait_for_url("the account page", |u| u.path() == "/account/")
        .await?;
    b.click("#settings-link").await?;
    b.wait_for_url("the settings page", |u| u.path() == "/account/settings/")
        .await?;
    b.at_both_sizes("settings").await?;
    // A wrong current password: the error sits beside its field, tied to it.
    b.fill("#pw-current", "not the password").await?;
    b.fill("#pw-new", "yet another password").await?;
    b.click("#change-password").await?;
    b.wait_for_text("#pw-current-error", "not your current password")
        .await?;
    let field = b.find("#pw-current").await?;
    anyhow::ensure!(
        field.attr("aria-invalid").await?.as_deref() == Some("true")
            && field.attr("aria-describedby").await?.as_deref() == Some("pw-current-error"),
        "the current-password field should be marked invalid and described by its error"
    );
    b.at_both_sizes("settings-error").await?;
    b.fill("#pw-current", "a brand new password").await?;
    b.fill("#pw-new", "yet another password").await?;
    b.click("#change-password").await?;
    b.wait_for_text("#settings-done", "password has been changed")
        .await?;

    // 5. In Nepali, chosen in the footer: the page comes back in it, Devanagari
    // fits a phone's width, and the choice holds on the next page.
    b.goto(&base.join("account/")?).await?;
    b.click("#language-ne").await?;
    b.wait_for_text("h1", "तपाईंको खाता").await?;
    b.at_both_sizes("account-ne").await?;
    b.goto(&base.join("shop/")?).await?;
    b.wait_for_text("h1", "पसल").await?;
    b.at_both_sizes("shop-ne").await?;
    b.click("#language-en").await?;
    b.wait_for_text("h1", "Shop").await?;
    Ok(())
}
