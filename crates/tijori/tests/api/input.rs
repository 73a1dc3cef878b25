//! Bad input gets a clear 4xx in the error envelope, never a 500, and changes nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{browser, client, csrf_token, error_code, set_cookie, TestApp};

async fn send_raw(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut req = client()
        .post(app.url(path))
        .header("Authorization", format!("Token {token}"))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn malformed_bodies_are_400_413_415(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("input").await;
    let json = Some("application/json");
    let path = "/api/subscriptions/initiate/";

    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            json,
            "{\"plan_id\":".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            json,
            "not json".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            json,
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json,
            "{\"plan_id\": 7}".into(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json,
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json,
            format!("{{\"plan_id\":\"{}\"}}", "x".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            None,
            "{\"plan_id\":\"x\"}".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("text/plain"),
            "{\"plan_id\":\"x\"}".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            json,
            "{\"plan_id\":\"plan_nope\"}".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json,
            "{\"plan_id\":\"plan_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d\"}".into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (ct, body, want_status, want_code) in cases {
        let shown = body.chars().take(40).collect::<String>();
        let (status, answer) = send_raw(&app, &user.token, path, ct, body).await;
        assert_eq!(status, want_status, "{shown}: {answer}");
        assert_eq!(error_code(&answer), want_code, "{shown}");
        assert_eq!(answer["error"]["status_code"], want_status.as_u16());
        assert!(!answer["error"]["detail"].as_str().unwrap().is_empty());
    }

    let plan = app.plan_id("Basic").await;
    let res = app
        .post(&user, path, json!({"plan_id": plan, "gateway": "paypal"}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("unknown gateway"));
    let res = app
        .post(&user, path, json!({"plan_id": plan, "gateway": "chapa"}))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "Chapa is not configured yet"
    );

    for body in [json!({}), json!({"pidx": "a", "payment_id": "b"})] {
        let res = app.post(&user, "/api/subscriptions/verify/", body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    for body in [
        json!({"pidx": "unknown"}),
        json!({"payment_id": "pay_nope"}),
        json!({"tx_ref": "x"}),
    ] {
        let res = app
            .post(&user, "/api/subscriptions/verify/", body.clone())
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{body}");
    }
    // A malformed id in a path names nothing: the same 404, in JSON, as an unknown one.
    let admin = app.admin("root").await;
    for (who, method, path) in [
        (&user, "GET", "/api/payments/not-an-id/"),
        (&user, "GET", "/api/payments/pay_1/events"),
        (&user, "POST", "/api/payments/ord_0193/refresh/"),
        (&user, "GET", "/api/orders/not-an-order/"),
        (&admin, "POST", "/api/payments/x/refund/"),
        (&admin, "POST", "/api/admin/refunds/pay_0/recheck/"),
    ] {
        let res = if method == "GET" {
            app.get(who, path).await
        } else {
            app.post(
                who,
                path,
                json!({"amount": "1", "status": "failed", "reason": "x"}),
            )
            .await
        };
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "not_found",
            "{method} {path}: {body}"
        );
    }

    // None of it created a payment.
    assert!(app
        .tijori
        .payment_history(&user.id, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn requests_without_valid_credentials_are_401(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("creds").await;
    let plans = app.url("/api/subscriptions/me/");
    for auth in [
        None,
        Some("Token nope".to_owned()),
        Some("Basic Zm9vOmJhcg==".to_owned()),
        Some("Token".to_owned()),
    ] {
        let mut req = client().get(plans.clone());
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(res.headers().contains_key("www-authenticate"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(error_code(&body), "unauthenticated");
    }
    for scheme in ["Token", "Bearer", "bearer"] {
        let res = client()
            .get(plans.clone())
            .header("Authorization", format!("{scheme} {}", user.token))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{scheme}: authenticated, and has no subscription"
        );
    }
}

async fn cookie_sessions_need_the_csrf_token(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("csrf").await;
    let (browser, csrf) = app.sign_in_browser(&user).await;
    let plan = app.plan_id("Basic").await;
    let initiate = app.url("/api/subscriptions/initiate/");

    // Reading needs no token.
    let res = browser
        .get(app.url("/api/subscriptions/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let res = browser
        .post(initiate.clone())
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&res.json().await.unwrap()), "csrf_failed");
    let res = browser
        .post(initiate.clone())
        .header("X-CSRF-Token", "wrong")
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        app.tijori
            .payment_history(&user.id, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing was created"
    );

    let res = browser
        .post(initiate.clone())
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A request another site makes the browser send is refused, token or not.
    let res = browser
        .post(initiate.clone())
        .header("X-CSRF-Token", &csrf)
        .header("Sec-Fetch-Site", "cross-site")
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser
        .post(app.url("/login"))
        .header("Origin", "https://evil.example")
        .form(&[("username", "csrf"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "login CSRF is refused too"
    );
    let res = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser.get(app.url("/account/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "still signed in");
}

/// Pages written for Django (the tutorial's) read the `csrftoken` cookie and send it
/// back as `X-CSRFToken`: a session started on tijori gives them both, bound to the
/// session, and signing out takes the cookie away.
async fn django_pages_prove_their_origin_with_csrftoken(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("django").await;
    let (browser, res) = app.browser_login(&user).await;
    let cookie = set_cookie(&res, "csrftoken").expect("a csrftoken cookie");
    let body: Value = res.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap();
    assert!(
        cookie.starts_with(&format!("csrftoken={csrf};")),
        "the cookie holds the session's token: {cookie}"
    );
    assert!(
        !cookie.to_ascii_lowercase().contains("httponly"),
        "the page's script must be able to read it: {cookie}"
    );
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");

    let plan = app.plan_id("Basic").await;
    let initiate = app.url("/api/subscriptions/initiate/");
    let res = browser
        .post(initiate.clone())
        .header("X-CSRFToken", "wrong")
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&res.json().await.unwrap()), "csrf_failed");
    // Another user's token is no better than a wrong one: it is bound to its session.
    let other = app.register("other").await;
    let (_, theirs) = app.sign_in_browser(&other).await;
    let res = browser
        .post(initiate.clone())
        .header("X-CSRFToken", &theirs)
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser
        .post(initiate.clone())
        .header("X-CSRFToken", csrf)
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );

    let res = browser
        .post(app.url("/api/auth/logout"))
        .header("X-CSRFToken", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let gone = set_cookie(&res, "csrftoken").expect("signing out clears csrftoken");
    assert!(gone.contains("Max-Age=0"), "{gone}");

    // Signing in on tijori's own page sets it too, to the token its pages carry.
    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("username", user.username.as_str()),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let cookie = set_cookie(&res, "csrftoken").expect("a csrftoken cookie");
    let account = browser
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        cookie.starts_with(&format!("csrftoken={};", csrf_token(&account))),
        "{cookie}"
    );
}

async fn the_subscribe_button_sends_the_browser_to_khalti(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let browser = browser();
    let res = browser
        .post(app.url("/register"))
        .form(&[
            ("username", "button"),
            ("email", "button@example.com"),
            ("password", "correct horse battery"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/");
    let home = browser
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_token(&home);
    let res = browser
        .post(app.url("/subscribe"))
        .form(&[
            ("plan_id", app.plan_id("Basic").await.as_str()),
            ("gateway", "khalti"),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/sandbox/khalti/pay/?pidx="));
}

test_both!(
    malformed_bodies_are_400_413_415,
    requests_without_valid_credentials_are_401,
    cookie_sessions_need_the_csrf_token,
    django_pages_prove_their_origin_with_csrftoken,
    the_subscribe_button_sends_the_browser_to_khalti,
);
