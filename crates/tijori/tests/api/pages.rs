//! What every page shares: the error and 404 pages, the way to sign in and back, and
//! what a failed form offers.

use reqwest::StatusCode;
use serde_json::Value;
use tijori_sandbox::{Fault, KhaltiSettings};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{browser, client, csrf_token, location, TestApp};

async fn an_unknown_address_gets_a_page_and_the_api_its_envelope(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("asha").await;
    let (browser, _) = app.sign_in_browser(&user).await;
    let res = browser.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Page not found"), "{html}");
    assert!(
        html.contains("Sign out") && html.contains("asha"),
        "the layout knows the visitor: {html}"
    );

    let res = client()
        .get(app.url("/api/no-such-thing/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_endpoint");
}

async fn signing_out_and_an_ended_session_say_so_and_come_back(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("bikash").await;
    let (signed_in, _) = app.sign_in_browser(&user).await;
    let account = signed_in
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = signed_in
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf_token(&account))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert_eq!(to, "/login?next=%2F&notice=signed_out");
    let login = signed_in
        .get(app.url(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("You have signed out."), "{login}");

    // A cookie whose session is gone: the sign-in page says the session ended, and
    // signing in goes back to the page they asked for.
    let stale = browser();
    let res = stale
        .get(app.url("/orders/ord_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d/"))
        .header("cookie", "tijori_session=gone")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/login?next=%2Forders%2Ford_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d%2F&notice=session_ended"
    );
    let login = stale
        .get(app.url(&location(&res)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("Your session has ended"), "{login}");

    // Never signed in: no notice, and a form's POST comes back to its page.
    let res = client()
        .post(app.url("/cart/checkout"))
        .form(&[("currency", "ETB"), ("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/login?next=%2Fcart%2F");
}

/// The gateway is down when the customer presses Subscribe: the page says so and
/// offers "Try again" as a link back to the plans (pressing it does not re-post).
async fn a_gateway_outage_offers_try_again_without_a_re_post(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("chaltu").await;
    let (browser, _) = app.sign_in_browser(&user).await;
    let home = browser
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let khalti = app.sandbox().khalti();
    khalti.set_settings(KhaltiSettings {
        fault: Fault::ServerError,
        fault_count: 10,
        ..khalti.settings()
    });
    let res = browser
        .post(app.url("/subscribe"))
        .header("referer", app.url("/").as_str())
        .form(&[
            ("csrf_token", csrf_token(&home).as_str()),
            ("plan_id", app.plan_id("Basic").await.as_str()),
            ("gateway", "khalti"),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_server_error(), "{}", res.status());
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"<a class="button" href="&#x2f;" id="try-again">Try again</a>"#),
        "{html}"
    );
}

/// A field's error sits beside it and is tied to it for a screen reader.
async fn a_registration_error_is_tied_to_its_field(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.register("taken").await;
    let res = browser()
        .post(app.url("/register"))
        .form(&[
            ("username", "taken"),
            ("email", "other@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"aria-invalid="true" aria-describedby="username-error""#)
            && html.contains(r#"<p class="field-error" id="username-error">"#),
        "{html}"
    );
    let res = browser()
        .post(app.url("/register"))
        .form(&[
            ("username", "fresh"),
            ("email", "not-an-address"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="email-error""#), "{html}");
}

/// The pages speak the visitor's language: what their browser asks for, or what they
/// chose in the footer (which goes first). The operator's pages, which no catalog
/// covers yet, stay English; and the choice cannot send anyone off the site.
async fn pages_speak_the_visitors_language(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let html_of = |res: reqwest::Response| async move {
        let lang = res.headers()["content-language"]
            .to_str()
            .unwrap()
            .to_owned();
        (lang, res.text().await.unwrap())
    };

    let res = client()
        .get(app.url("/"))
        .header("accept-language", "ne-NP,ne;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap();
    let (lang, html) = html_of(res).await;
    assert_eq!(lang, "ne");
    assert!(html.contains(r#"<html lang="ne">"#), "{html}");
    assert!(
        html.contains("साइन इन गर्नुहोस्"),
        "Sign in, in Nepali: {html}"
    );
    assert!(!html.contains(">Sign in<"), "{html}");

    let (lang, html) = html_of(client().get(app.url("/")).send().await.unwrap()).await;
    assert_eq!(lang, "en");
    assert!(
        html.contains(">Sign in<") && html.contains(r#"id="language-ne""#),
        "{html}"
    );

    // Chosen in the footer: remembered, and back to the page it was chosen on.
    let admin = app.admin("operator").await;
    let (browser, _) = app.sign_in_browser(&admin).await;
    let res = browser
        .get(app.url("/language?set=ne&next=%2Fshop%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/shop/");
    let cookie = crate::helpers::set_cookie(&res, "tijori_lang").expect("the choice is kept");
    assert!(
        cookie.starts_with("tijori_lang=ne;") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let res = browser
        .get(app.url("/shop/"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(html_of(res).await.0, "ne");
    let res = browser.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        html_of(res).await.0,
        "en",
        "no catalog covers the operator's pages"
    );

    // A language we do not have changes nothing; `next` stays on the site.
    for (query, to) in [
        ("set=xx&next=%2Fshop%2F", "/shop/"),
        ("set=ne&next=https%3A%2F%2Fevil.example%2F", "/account/"),
    ] {
        let res = client()
            .get(app.url(&format!("/language?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(location(&res), to, "{query}");
        assert_eq!(
            crate::helpers::set_cookie(&res, "tijori_lang").is_some(),
            query.starts_with("set=ne"),
            "{query}"
        );
    }

    // The API's words stay English: a merchant's server reads them.
    let res = client()
        .get(app.url("/api/no-such-thing/"))
        .header("accept-language", "ne")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["detail"]
        .as_str()
        .unwrap()
        .starts_with("there is no such"));
}

test_both!(
    pages_speak_the_visitors_language,
    a_registration_error_is_tied_to_its_field,
    an_unknown_address_gets_a_page_and_the_api_its_envelope,
    signing_out_and_an_ended_session_say_so_and_come_back,
    a_gateway_outage_offers_try_again_without_a_re_post,
);
