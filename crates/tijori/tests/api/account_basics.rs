//! Account basics (issue 13, item 7) through the pages and the API: changing the
//! password, e-mail address and time zone; a password reset by e-mail link, read from
//! the outbox; and canceling an unpaid order.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{
    browser, client, csrf_token, error_code, location, page, post_form, TestApp, TestUser,
};

const PASSWORD: &str = "correct horse battery";

/// A browser signed in through the sign-in form.
async fn signed_in(app: &TestApp, username: &str, password: &str) -> Client {
    let b = browser();
    let res = post_form(
        &b,
        app,
        "/login",
        &[
            ("username", username),
            ("password", password),
            ("next", "/account/"),
        ],
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "signing in as {username}"
    );
    assert_eq!(location(&res), "/account/");
    b
}

/// The status of an API sign-in.
async fn api_login(app: &TestApp, username: &str, password: &str) -> StatusCode {
    client()
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

/// The reset mails sent to `to`, newest first.
async fn reset_mails(app: &TestApp, to: &str) -> Vec<tijori_core::mail::OutboxMail> {
    app.tijori
        .outbox(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to == to && m.subject == "Reset your password")
        .collect()
}

/// The link in the newest reset mail to `to`, as a local path with its query (the
/// form answers before the mail is written, so wait for it a little).
async fn reset_link(app: &TestApp, to: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(mail) = reset_mails(app, to).await.first() {
            let link = mail
                .body
                .lines()
                .find(|l| l.starts_with("http"))
                .unwrap_or_else(|| panic!("no link in {}", mail.body));
            let url = url::Url::parse(link).unwrap();
            assert_eq!(
                url.origin(),
                app.base.origin(),
                "the link uses the public URL"
            );
            return format!("{}?{}", url.path(), url.query().unwrap());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reset mail to {to}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn changing_the_password_signs_out_everything_else(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let asha = app.register("asha").await;
    let here = signed_in(&app, "asha", PASSWORD).await;
    let elsewhere = signed_in(&app, "asha", PASSWORD).await;

    let (status, settings) = page(&here, &app, "/account/settings/").await;
    assert_eq!(status, StatusCode::OK);
    let (_, account) = page(&here, &app, "/account/").await;
    assert!(account.contains("href=\"/account/settings/\""), "{account}");
    let csrf = csrf_token(&settings);

    let password = "/account/settings/password";
    let res = post_form(
        &here,
        &app,
        password,
        &[
            ("current_password", PASSWORD),
            ("new_password", "a new secret"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");

    let change = |current: &'static str, new: &'static str| {
        [
            ("current_password", current),
            ("new_password", new),
            ("csrf_token", csrf.as_str()),
        ]
    };
    let res = post_form(
        &here,
        &app,
        password,
        &change("not my password", "a new secret"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"pw-current-error\"")
            && html.contains("id=\"pw-current-error\">Is not your current password."),
        "{html}"
    );
    let res = post_form(&here, &app, password, &change(PASSWORD, "short")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"pw-new-error\">Must be at least 8"),
        "{html}"
    );
    assert_eq!(
        api_login(&app, "asha", PASSWORD).await,
        StatusCode::OK,
        "unchanged"
    );

    let good = change(PASSWORD, "a new secret");
    let res = post_form(&here, &app, "/account/settings/password", &good).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/account/settings/?done=password");
    let (status, done) = page(&here, &app, "/account/settings/?done=password").await;
    assert_eq!(status, StatusCode::OK, "this browser stays signed in");
    assert!(done.contains("id=\"settings-done\""), "{done}");

    // The other browser's session and the API token ended.
    let res = elsewhere.get(app.url("/account/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/login?next=%2Faccount%2F&notice=session_ended"
    );
    let res = app.get(&asha, "/api/orders/").await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the API token ended"
    );
    assert_eq!(
        api_login(&app, "asha", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_login(&app, "asha", "a new secret").await,
        StatusCode::OK
    );
}

async fn the_email_and_time_zone_change_with_checks(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.register("asha").await;
    app.register("bikash").await;
    let b = signed_in(&app, "asha", PASSWORD).await;
    let (_, settings) = page(&b, &app, "/account/settings/").await;
    assert!(
        settings.contains("id=\"current-email\">asha@example.com<"),
        "{settings}"
    );
    let csrf = csrf_token(&settings);

    let email = |address: &'static str, password: &'static str| {
        vec![
            ("email", address),
            ("current_password", password),
            ("csrf_token", csrf.as_str()),
        ]
    };
    let res = post_form(
        &b,
        &app,
        "/account/settings/email",
        &email("asha@new.example", "wrong password"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("aria-describedby=\"email-password-error\""),
        "{html}"
    );
    let res = post_form(
        &b,
        &app,
        "/account/settings/email",
        &email("not an address", PASSWORD),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"email-error\">Must be an e-mail address")
            && html.contains("value=\"not an address\""),
        "{html}"
    );
    let res = post_form(
        &b,
        &app,
        "/account/settings/email",
        &email("BIKASH@example.com", PASSWORD),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("id=\"email-error\">another account"));
    let (_, settings) = page(&b, &app, "/account/settings/").await;
    assert!(
        settings.contains("id=\"current-email\">asha@example.com<"),
        "unchanged"
    );

    let res = post_form(
        &b,
        &app,
        "/account/settings/email",
        &email("Asha@New.Example", PASSWORD),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, settings) = page(&b, &app, "/account/settings/?done=email").await;
    assert!(
        settings.contains("id=\"current-email\">asha@new.example<"),
        "{settings}"
    );

    let res = post_form(
        &b,
        &app,
        "/account/settings/time-zone",
        &[("time_zone", "Mars/Olympus"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = post_form(
        &b,
        &app,
        "/account/settings/time-zone",
        &[("time_zone", "Africa/Addis_Ababa"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, settings) = page(&b, &app, "/account/settings/").await;
    assert!(
        settings.contains("<option value=\"Africa&#x2f;Addis_Ababa\" selected>"),
        "{settings}"
    );

    // Signed out, the settings page (and its forms) ask to sign in first and come back.
    let res = browser()
        .get(app.url("/account/settings/"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/login?next=%2Faccount%2Fsettings%2F");
    let res = post_form(
        &browser(),
        &app,
        "/account/settings/email",
        &email("x@y.example", PASSWORD),
    )
    .await;
    assert_eq!(location(&res), "/login?next=%2Faccount%2Fsettings%2F");
}

/// "Forgot your password?" for `address`: the answer's status and page, with the
/// address as typed taken out of it.
async fn ask_for_link(app: &TestApp, address: &str) -> (StatusCode, String) {
    let res = post_form(&browser(), app, "/forgot-password", &[("email", address)]).await;
    (
        res.status(),
        res.text().await.unwrap().replace(address, "ADDRESS"),
    )
}

async fn a_password_is_reset_through_the_mailed_link_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.register("asha").await;
    let before = signed_in(&app, "asha", PASSWORD).await;
    let (_, login) = page(&browser(), &app, "/login").await;
    assert!(login.contains("href=\"/forgot-password\""), "{login}");
    let (status, _) = page(&browser(), &app, "/forgot-password").await;
    assert_eq!(status, StatusCode::OK);

    // Known or not, the answer reads the same (but for the address echoed).
    let known = ask_for_link(&app, "Asha@Example.com").await;
    let unknown = ask_for_link(&app, "nobody@example.com").await;
    assert_eq!(known.0, StatusCode::OK);
    assert_eq!(known, unknown);
    assert!(known.1.contains("id=\"reset-sent\""), "{}", known.1);
    let (status, html) = ask_for_link(&app, "not an address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("aria-describedby=\"email-error\""), "{html}");

    let link = reset_link(&app, "asha@example.com").await;
    assert!(reset_mails(&app, "nobody@example.com").await.is_empty());
    let res = browser().get(app.url(&link)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"set-password\""), "{html}");
    let token = link.split("token=").nth(1).unwrap().to_owned();

    // A new password that breaks the rules changes nothing and keeps the link.
    let res = post_form(
        &browser(),
        &app,
        "/reset-password",
        &[("token", &token), ("password", "short")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("aria-describedby=\"password-error\""));
    let res = post_form(
        &browser(),
        &app,
        "/reset-password",
        &[
            ("token", &format!("{token}x")),
            ("password", "brand new secret"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a wrong token");
    assert!(res.text().await.unwrap().contains("id=\"reset-dead\""));

    let res = post_form(
        &browser(),
        &app,
        "/reset-password",
        &[("token", &token), ("password", "brand new secret")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/login?next=%2Faccount%2F&notice=password_reset"
    );
    let (_, login) = page(&browser(), &app, &location(&res)).await;
    assert!(login.contains("Sign in with your new password"), "{login}");

    // Once.
    let res = post_form(
        &browser(),
        &app,
        "/reset-password",
        &[("token", &token), ("password", "another new one")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (_, html) = page(&browser(), &app, &link).await;
    assert!(html.contains("id=\"reset-dead\""), "{html}");
    assert_eq!(
        api_login(&app, "asha", "another new one").await,
        StatusCode::UNAUTHORIZED
    );

    // Every session ended; the old password no longer works, the new one does.
    let res = before.get(app.url("/account/")).send().await.unwrap();
    assert_eq!(
        location(&res),
        "/login?next=%2Faccount%2F&notice=session_ended"
    );
    assert_eq!(
        api_login(&app, "asha", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_login(&app, "asha", "brand new secret").await,
        StatusCode::OK
    );
}

/// Asking for links is limited per address asked, known or not, so the limit says
/// nothing about who has an account.
async fn reset_requests_are_limited(db: TestDatabase) {
    let config = tijori::Config {
        reset_limit: 2,
        ..crate::helpers::config(&db.url)
    };
    let app = TestApp::spawn_with(db, config).await;
    app.register("asha").await;
    for address in ["asha@example.com", "nobody@example.com"] {
        for _ in 0..2 {
            let res = post_form(&browser(), &app, "/forgot-password", &[("email", address)]).await;
            assert_eq!(res.status(), StatusCode::OK, "{address}");
        }
        let res = post_form(&browser(), &app, "/forgot-password", &[("email", address)]).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{address}");
        assert!(res.headers().contains_key("retry-after"));
    }
    // At most two links were made for the known address.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(reset_mails(&app, "asha@example.com").await.len() <= 2);
}

/// With SMTP, the reset mail leaves by mail, and the outbox's copy keeps no secret:
/// the link then exists only in the customer's inbox and as its hash.
async fn a_mailed_reset_link_leaves_no_secret_in_the_outbox(db: TestDatabase) {
    let sink = crate::helpers::SmtpSink::start().await;
    let clock = std::sync::Arc::new(tijori_core::clock::ManualClock::new(
        tijori_core::clock::Clock::now(&tijori_core::clock::SystemClock),
    ));
    let app = TestApp::spawn_with_clock_and(db, clock, |c| {
        c.smtp_url = Some(sink.url.clone().into());
    })
    .await;
    app.register("asha").await;
    let res = post_form(
        &browser(),
        &app,
        "/forgot-password",
        &[("email", "asha@example.com")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let queued = reset_link(&app, "asha@example.com").await;
    assert!(queued.contains("token="), "{queued}");
    for _ in 0..3 {
        app.tijori.run_due_jobs("worker", 8).await.unwrap();
    }
    let mail = reset_mails(&app, "asha@example.com").await.remove(0);
    assert_eq!(mail.status, "sent", "{mail:?}");
    assert!(
        mail.body
            .contains("/reset-password?token=(removed once sent)"),
        "{}",
        mail.body
    );
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].contains("Subject: Reset your password"),
        "{}",
        received[0]
    );
    assert!(received[0].contains("reset-password"), "{}", received[0]);
}

async fn stock_of(app: &TestApp, product: &str) -> u64 {
    app.product(product).await["stock"].as_u64().unwrap()
}

async fn cancel_api(app: &TestApp, user: &TestUser, order: &str) -> (StatusCode, Value) {
    let res = app
        .post(user, &format!("/api/orders/{order}/cancel/"), json!({}))
        .await;
    let status = res.status();
    (status, res.json().await.unwrap())
}

async fn an_unpaid_order_is_canceled_by_its_customer_only(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let asha = app.register("asha").await;
    let bikash = app.register("bikash").await;
    let coffee = app.product_in("ETB").await;
    let stock = stock_of(&app, &coffee).await;

    // On its page, with the CSRF token.
    let order = app.order_of(&asha, &coffee, 2).await;
    assert_eq!(stock_of(&app, &coffee).await, stock - 2);
    let b = signed_in(&app, "asha", PASSWORD).await;
    let path = format!("/orders/{order}/");
    let (_, html) = page(&b, &app, &path).await;
    assert!(html.contains("id=\"cancel\""), "{html}");
    let csrf = csrf_token(&html);
    let res = post_form(
        &b,
        &app,
        &format!("{path}cancel"),
        &[("csrf_token", "wrong")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let other = signed_in(&app, "bikash", PASSWORD).await;
    let (_, other_html) = page(&other, &app, "/account/").await;
    let res = post_form(
        &other,
        &app,
        &format!("{path}cancel"),
        &[("csrf_token", &csrf_token(&other_html))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "not theirs");
    let (status, body) = cancel_api(&app, &bikash, &order).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(stock_of(&app, &coffee).await, stock - 2);

    // The API on the browser's session wants its CSRF header too.
    let (session, api_csrf) = app.sign_in_browser(&asha).await;
    let res = session
        .post(app.url(&format!("/api/orders/{order}/cancel/")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no X-CSRF-Token");
    assert!(!api_csrf.is_empty());
    assert_eq!(stock_of(&app, &coffee).await, stock - 2);

    let res = post_form(&b, &app, &format!("{path}cancel"), &[("csrf_token", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), path);
    assert_eq!(stock_of(&app, &coffee).await, stock, "the stock is back");
    let (_, html) = page(&b, &app, &path).await;
    assert!(
        html.contains("id=\"order-status\">canceled<") && !html.contains("id=\"cancel\""),
        "{html}"
    );
    assert_eq!(app.order_json(&asha, &order).await["status"], "canceled");
    let (status, body) = cancel_api(&app, &asha, &order).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "order_not_pending")
    );
    let res = post_form(&b, &app, &format!("{path}cancel"), &[("csrf_token", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(stock_of(&app, &coffee).await, stock, "returned once");

    // Over the API.
    let order = app.order_of(&asha, &coffee, 1).await;
    let (status, body) = cancel_api(&app, &asha, &order).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "canceled");
    assert_eq!(stock_of(&app, &coffee).await, stock);

    // A paid order is not canceled.
    let order = app.order_of(&asha, &coffee, 1).await;
    let (status, body) = app.initialize(&asha, &order, Some("chapa")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.sandbox()
        .chapa()
        .pay(body["tx_ref"].as_str().unwrap())
        .unwrap();
    app.wait_for_order(&asha, &order, "paid").await;
    let (status, body) = cancel_api(&app, &asha, &order).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "order_not_pending")
    );
    assert_eq!(app.order_json(&asha, &order).await["status"], "paid");
    assert_eq!(stock_of(&app, &coffee).await, stock - 1);
}

test_both!(
    changing_the_password_signs_out_everything_else,
    the_email_and_time_zone_change_with_checks,
    a_password_is_reset_through_the_mailed_link_once,
    reset_requests_are_limited,
    a_mailed_reset_link_leaves_no_secret_in_the_outbox,
    an_unpaid_order_is_canceled_by_its_customer_only,
);
