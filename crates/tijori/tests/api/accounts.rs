//! Registering and signing in.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{browser, client, csrf_token, error_code, TestApp};

async fn register_and_login(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let register = app.url("/api/auth/register");
    let res = client()
        .post(register.clone())
        .json(&json!({"username": "Sushila", "email": "Sushila@Example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["username"], "sushila");
    assert_eq!(body["email"], "sushila@example.com");
    assert!(body["id"].as_str().unwrap().starts_with("usr_"));
    assert!(body["token"].as_str().unwrap().len() >= 40);

    for (body, code, status) in [
        (
            json!({"username": "SUSHILA", "email": "x@example.com", "password": "correct horse battery"}),
            "username_taken",
            StatusCode::CONFLICT,
        ),
        (
            json!({"username": "other", "email": "sushila@example.com", "password": "correct horse battery"}),
            "username_taken",
            StatusCode::CONFLICT,
        ),
        (
            json!({"username": "other", "email": "not-an-email", "password": "correct horse battery"}),
            "validation_error",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"username": "other", "email": "o@example.com", "password": "short"}),
            "validation_error",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"username": "a b", "email": "o@example.com", "password": "correct horse battery"}),
            "validation_error",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = client()
            .post(register.clone())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
        assert_eq!(error_code(&res.json().await.unwrap()), code, "{body}");
    }

    let login = app.url("/api/auth/login");
    for (username, password) in [
        ("sushila", "wrong password!"),
        ("nobody", "correct horse battery"),
        ("", ""),
    ] {
        let res = client()
            .post(login.clone())
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&res.json().await.unwrap()), "bad_credentials");
    }
    // A browser's sign-in (its fetch carries Sec-Fetch-Mode) gets the session cookie;
    // an API client gets its token alone (issue 9, item 13: not both every time).
    let res = client()
        .post(login.clone())
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"username": "Sushila", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = crate::helpers::set_cookie(&res, "tijori_session").expect("a session cookie");
    assert!(
        cookie.starts_with("tijori_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let res = client()
        .post(login.clone())
        .json(&json!({"username": "Sushila", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = client()
        .get(app.url("/api/subscriptions/me/"))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::NOT_FOUND,
        "authenticated; no subscription yet"
    );
}

async fn the_sign_in_pages_work_without_javascript(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let browser = browser();
    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("username", "demo"),
            ("password", "wrong"),
            ("next", "/account/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = res.text().await.unwrap();
    assert!(page.contains("wrong username or password"), "{page}");

    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("username", "demo"),
            ("password", tijori::demo::DEMO_PASSWORD),
            ("next", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/account/", "no open redirect");
    let account = browser
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(account.contains("Signed in as demo"));

    let csrf = csrf_token(&account);
    let res = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = browser.get(app.url("/account/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "signed out");
}

async fn pages_show_dates_in_the_zone_chosen_at_registration(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let browser = browser();
    let res = browser
        .post(app.url("/register"))
        .form(&[
            ("username", "bishnu"),
            ("email", "bishnu@example.com"),
            ("password", "correct horse battery"),
            ("time_zone", "Mars/Olympus"),
            ("next", "/account/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = res.text().await.unwrap();
    assert!(page.contains("time_zone: must be one of"), "{page}");

    let res = browser
        .post(app.url("/register"))
        .form(&[
            ("username", "bishnu"),
            ("email", "bishnu@example.com"),
            ("password", "correct horse battery"),
            ("time_zone", "Asia/Kathmandu"),
            ("next", "/account/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the bad zone made no account"
    );
    let account = browser
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        // (HTML-escaped: the browser reads "Asia/Kathmandu")
        account.contains(r#"data-time-zone="Asia&#x2f;Kathmandu""#),
        "{account}"
    );

    // Without a choice, pages leave dates to the browser's own zone.
    let user = app.register("ram").await;
    let (other, _) = app.sign_in_browser(&user).await;
    let account = other
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!account.contains("data-time-zone"), "{account}");
}

async fn signing_out_revokes_exactly_what_signed_in(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("leaver").await;
    let other = app.issue_second_token(&user).await;
    let me = |token: &str| {
        client()
            .get(app.url("/api/subscriptions/me/"))
            .header("Authorization", format!("Token {token}"))
            .send()
    };

    let res = client()
        .post(app.url("/api/auth/logout"))
        .header("Authorization", format!("Token {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = me(&user.token).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the revoked token no longer works"
    );
    let res = me(&other).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "another token of hers still does"
    );

    // A browser session signs out with its CSRF token, and only then.
    let (browser, csrf) = app.sign_in_browser(&user).await;
    let res = browser
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser
        .post(app.url("/api/auth/logout"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = browser
        .get(app.url("/api/subscriptions/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the session is over"
    );
}

test_both!(
    pages_show_dates_in_the_zone_chosen_at_registration,
    register_and_login,
    the_sign_in_pages_work_without_javascript,
    signing_out_revokes_exactly_what_signed_in,
);
