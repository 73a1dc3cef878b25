//! The operator's area without JavaScript: who may see its pages, its forms' CSRF
//! checks, the lists' CSV exports matching their filters, the refund form refunding
//! once, and events resolved with a note and a name.

use reqwest::{Client, StatusCode};
use serde_json::Value;
use tijori_core::store::OperatorEventKind;
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{browser, csrf_token, TestApp, TestUser};

/// Every page of the operator's area.
const ADMIN_PAGES: [&str; 8] = [
    "/admin/",
    "/admin/payments/",
    "/admin/orders/",
    "/admin/customers/",
    "/admin/subscriptions/",
    "/admin/revenue/",
    "/admin/events/",
    "/admin/payments.csv",
];

/// A user with a paid Basic subscription (Khalti): (user, payment id, pidx).
async fn subscribed(app: &TestApp, name: &str) -> (TestUser, String, String) {
    let user = app.register(name).await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let pidx = started["pidx"].as_str().unwrap().to_owned();
    let (status, _) = app.verify(&user, &pidx).await;
    assert_eq!(status, StatusCode::OK);
    (
        user,
        started["payment_id"].as_str().unwrap().to_owned(),
        pidx,
    )
}

/// A browser signed in to the pages as `username` (made an operator first when
/// `operator`), and a CSRF token from a page.
async fn signed_in(app: &TestApp, username: &str, operator: bool) -> (Client, String) {
    if operator {
        app.admin(username).await;
    } else {
        app.register(username).await;
    }
    let b = browser();
    let res = b
        .post(app.url("/login"))
        .form(&[
            ("username", username),
            ("password", "correct horse battery"),
            ("next", "/account/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = b
        .get(app.url("/account/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (b, csrf_token(&html))
}

async fn get(b: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = b.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

async fn post(b: &Client, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    b.post(app.url(path)).form(form).send().await.unwrap()
}

/// The CSV's data rows (its header left out), each split into cells (the test's
/// values hold no commas or quotes).
fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

async fn only_operators_see_the_operators_area(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, payment, _) = subscribed(&app, "sita").await;
    let mut pages: Vec<String> = ADMIN_PAGES.iter().map(|p| p.to_string()).collect();
    pages.push(format!("/admin/payments/{payment}"));

    let stranger = browser();
    for page in &pages {
        let res = stranger.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{page}");
        let to = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/login?next="), "{page}: {to}");
    }
    let (customer, customer_csrf) = signed_in(&app, "hari", false).await;
    for page in &pages {
        let (status, _) = get(&customer, &app, page).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    }
    let refund = format!("/admin/payments/{payment}/refund");
    for path in [
        refund.clone(),
        format!("{refund}/review"),
        "/admin/events/1/resolve".to_owned(),
    ] {
        let res = post(&customer, &app, &path, &[("csrf_token", &customer_csrf)]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let (operator, _) = signed_in(&app, "boss", true).await;
    for page in &pages {
        let (status, body) = get(&operator, &app, page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
    }
    // Bad filters are explained; bad pages are the first page.
    let (status, body) = get(&operator, &app, "/admin/payments/?status=paid-ish").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("status"), "{body}");
    let (status, body) = get(&operator, &app, "/admin/orders/?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("from"), "{body}");
    let (status, _) = get(&operator, &app, "/admin/payments/?page=-1&gateway=").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&operator, &app, "/admin/customers/?page=99999999999999").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&operator, &app, "/admin/revenue/?days=7000").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&operator, &app, "/admin/payments/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_csv_export_holds_what_the_filter_shows(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, first, _) = subscribed(&app, "sita").await;
    let (_, second, pidx) = subscribed(&app, "hari").await;
    let hari = app.register("hari_two").await;
    // An open checkout: listed, but not completed.
    let open = app.initiate(&hari, &app.plan_id("Basic").await).await;
    let (operator, _) = signed_in(&app, "boss", true).await;

    let (_, csv) = get(&operator, &app, "/admin/payments.csv").await;
    assert!(
        csv.starts_with("id,created_at,status,gateway,amount"),
        "{csv}"
    );
    assert_eq!(csv_rows(&csv).len(), 3, "{csv}");

    let (_, csv) = get(&operator, &app, "/admin/payments.csv?status=completed").await;
    let rows = csv_rows(&csv);
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), 2, "{csv}");
    assert!(ids.contains(&first.as_str()) && ids.contains(&second.as_str()));
    assert!(rows.iter().all(|r| r[2] == "completed" && r[3] == "khalti"));

    let (_, csv) = get(&operator, &app, &format!("/admin/payments.csv?q={pidx}")).await;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 1, "{csv}");
    assert_eq!(rows[0][0], second);
    assert_eq!(rows[0][6], "hari");

    let (_, csv) = get(&operator, &app, "/admin/payments.csv?q=HARI_TWO").await;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 1, "{csv}");
    assert_eq!(rows[0][0], open["payment_id"].as_str().unwrap());

    let (_, csv) = get(&operator, &app, "/admin/payments.csv?gateway=chapa").await;
    assert!(csv_rows(&csv).is_empty(), "{csv}");

    // The page shows the same count, and links to the same filter's export.
    let (_, html) = get(&operator, &app, "/admin/payments/?status=completed").await;
    assert!(html.contains("<span id=\"total\">2</span>"), "{html}");
    assert!(
        html.contains("href=\"/admin/payments.csv?status=completed\""),
        "{html}"
    );
    // The customers list exports by the same search.
    let (_, csv) = get(&operator, &app, "/admin/customers.csv?q=hari").await;
    assert_eq!(csv_rows(&csv).len(), 2, "{csv}");
}

async fn the_refund_form_refunds_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, payment, _) = subscribed(&app, "sita").await;
    let (operator, csrf) = signed_in(&app, "boss", true).await;
    let here = format!("/admin/payments/{payment}");
    let (_, html) = get(&operator, &app, &here).await;
    assert!(html.contains("id=\"refund-form\""), "{html}");
    assert!(
        html.contains("initiate"),
        "the audit trail shows the answers: {html}"
    );

    // The review step needs a reason and a readable amount, and the CSRF token.
    let review = format!("{here}/refund/review");
    let res = post(
        &operator,
        &app,
        &review,
        &[("csrf_token", "wrong"), ("reason", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &operator,
        &app,
        &review,
        &[("csrf_token", &csrf), ("reason", "")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = post(
        &operator,
        &app,
        &review,
        &[("csrf_token", &csrf), ("reason", "r"), ("amount", "ten")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = post(
        &operator,
        &app,
        &review,
        &[
            ("csrf_token", &csrf),
            ("reason", "asked for it"),
            ("amount", "100"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let confirm = res.text().await.unwrap();
    assert!(confirm.contains("id=\"refund-confirm\""), "{confirm}");
    let key = confirm
        .split("name=\"key\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        app.payment(&user, &payment).await["status"],
        "completed",
        "a review refunds nothing"
    );

    let form = [
        ("csrf_token", csrf.as_str()),
        ("key", key.as_str()),
        ("amount", "100"),
        ("reason", "asked for it"),
    ];
    let res = post(
        &operator,
        &app,
        &format!("{here}/refund"),
        &[("csrf_token", "wrong"), ("key", &key), ("reason", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "CSRF");
    // The same form twice, as a double click sends it: one refund.
    let refund = format!("{here}/refund");
    let (a, b) = tokio::join!(
        post(&operator, &app, &refund, &form),
        post(&operator, &app, &refund, &form),
    );
    let statuses = [a.status(), b.status()];
    assert!(statuses.contains(&StatusCode::SEE_OTHER), "{statuses:?}");
    let again = post(&operator, &app, &refund, &form).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        again.headers()["location"].to_str().unwrap(),
        format!("{here}?refund=already")
    );
    let refunds: Vec<Value> = app
        .tijori
        .store()
        .refunds_of(&tijori_core::id::PaymentId::parse(&payment).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::json!({"amount": r.amount.minor(), "status": r.status.as_str()}))
        .collect();
    assert_eq!(
        refunds,
        vec![serde_json::json!({"amount": 10_000, "status": "succeeded"})]
    );
    assert_eq!(
        app.payment(&user, &payment).await["status"],
        "partially_refunded"
    );
    let (_, html) = get(&operator, &app, &format!("{here}?refund=made")).await;
    assert!(html.contains("The refund went through."), "{html}");
    assert!(html.contains("asked for it"), "{html}");
}

async fn an_event_is_resolved_with_a_note_and_a_name(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (operator, csrf) = signed_in(&app, "boss", true).await;
    app.tijori
        .store()
        .record_operator_event(
            OperatorEventKind::WebhookUnmatched,
            None,
            "a webhook for no payment",
            app.tijori.now(),
        )
        .await
        .unwrap();
    let id = app.tijori.operator_events(false).await.unwrap()[0].id;
    let resolve = format!("/admin/events/{id}/resolve");
    let res = post(
        &operator,
        &app,
        &resolve,
        &[("csrf_token", "wrong"), ("note", "x")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(
        &operator,
        &app,
        &resolve,
        &[
            ("csrf_token", &csrf),
            ("note", "a test from Chapa's dashboard"),
            ("back", "/admin/events/"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin/events/");
    let (_, html) = get(&operator, &app, "/admin/events/?all=1").await;
    assert!(html.contains("class=\"resolved-by\">boss<"), "{html}");
    assert!(
        html.contains("a test from Chapa&#x27;s dashboard"),
        "{html}"
    );
    // Elsewhere than the operator's area is no place to go back to.
    let res = post(
        &operator,
        &app,
        &resolve,
        &[("csrf_token", &csrf), ("back", "//evil.example/")],
    )
    .await;
    assert_eq!(res.headers()["location"], "/admin/");
}

test_both!(
    only_operators_see_the_operators_area,
    the_csv_export_holds_what_the_filter_shows,
    the_refund_form_refunds_once,
    an_event_is_resolved_with_a_note_and_a_name,
);
