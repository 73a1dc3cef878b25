//! Health, metrics, and the OpenAPI document staying true to the routes.

use reqwest::StatusCode;
use serde_json::Value;
use tijori_testkit::{test_both, Backend, TestDatabase};

use crate::helpers::{client, TestApp};

async fn health_and_metrics(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let res = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The counts themselves are checked in tests/metrics.rs (a process of its own).
    assert!(
        metrics.contains(
            "tijori_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"2xx\"}"
        ),
        "{metrics}"
    );
    let res = client().get(app.url("/livez")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let home = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(
        home.headers()["x-frame-options"],
        "DENY",
        "no framing by other sites"
    );
    assert_eq!(
        home.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let sandbox = client().get(app.url("/sandbox/")).send().await.unwrap();
    assert!(
        sandbox.status().is_redirection(),
        "/sandbox/ leads to the sandbox's index"
    );
}

/// Every documented path answers from a real handler: not the router's 404
/// (`unknown_endpoint`) or a 405. Path parameters get a placeholder; the handlers' own
/// 404 (a JSON envelope with another code) counts as routed.
async fn every_documented_route_exists(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let doc: Value = client()
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["webhooks"].as_object().unwrap().len(), 13);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 37);
    for (path, ops) in paths {
        let concrete = path.replace("{id}", "pay_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d");
        for method in ops.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = client()
                .request(method.clone(), app.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                status != StatusCode::NOT_FOUND
                    || (body.contains("\"error\"") && !body.contains("unknown_endpoint")),
                "{method} {path} is not routed"
            );
        }
    }
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let res = client().get(app.url("/readyz")).send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

/// Runs `sql` on the test's database, on a connection of its own.
async fn run_sql(db: &TestDatabase, sql: &str) {
    use sqlx::Connection as _;
    match db.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    }
}

/// Ready means: the database answers and holds this build's migrations, and the
/// worker goes round. Each gateway's last call is shown, and a failing one does not
/// make the process unready.
async fn readiness_follows_the_database(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["worker"]["ok"], true, "{body}");
    let khalti = body["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"] == "khalti")
        .unwrap()
        .clone();
    assert!(khalti["last_outcome"].is_null(), "no call yet: {khalti}");

    // A gateway call shows, failed or not, without changing readiness.
    let user = app.register("ready").await;
    let khalti_sandbox = app.sandbox().khalti();
    khalti_sandbox.set_settings(tijori_sandbox::KhaltiSettings {
        fault: tijori_sandbox::Fault::ServerError,
        fault_count: 1,
        ..khalti_sandbox.settings()
    });
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            serde_json::json!({"plan_id": app.plan_id("Basic").await}),
        )
        .await;
    assert!(!res.status().is_success());
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let khalti = body["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"] == "khalti")
        .unwrap()
        .clone();
    assert_eq!(khalti["last_operation"], "initiate", "{khalti}");
    assert_ne!(khalti["last_outcome"], "ok", "{khalti}");

    // Behind this build's migrations (as when a new binary starts before `tijori
    // migrate`): not ready, and says why; ready again once it is migrated.
    let db = app.db.as_ref().unwrap();
    let latest = "(SELECT MAX(version) FROM _sqlx_migrations)";
    run_sql(
        db,
        &format!("UPDATE _sqlx_migrations SET success = false WHERE version = {latest}"),
    )
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    assert!(
        body["database"]["detail"]
            .as_str()
            .unwrap()
            .contains("tijori migrate"),
        "{body}"
    );
    run_sql(
        db,
        &format!("UPDATE _sqlx_migrations SET success = true WHERE version = {latest}"),
    )
    .await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    // PostgreSQL away (connections refused, the open ones cut), then back.
    if db.backend() == Backend::Postgres {
        let on_server = |sql: String| async move {
            use sqlx::Connection as _;
            let mut admin = url::Url::parse(&db.url).unwrap();
            admin.set_path("/postgres");
            let mut c = sqlx::PgConnection::connect(admin.as_str()).await.unwrap();
            sqlx::query(&sql).execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        };
        let name = url::Url::parse(&db.url)
            .unwrap()
            .path()
            .trim_start_matches('/')
            .to_owned();
        on_server(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
        on_server(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await;
        let (status, body) = readyz(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["database"]["ok"], false, "{body}");
        on_server(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, body) = readyz(&app).await;
            if status == StatusCode::OK {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never ready again: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// `/api/docs` renders the document with Swagger UI from files tijori serves itself:
/// the page and every script and style sheet it names answer from this server (no
/// CDN), the page reads `/api/openapi.json`, and the Content-Security-Policy leaves
/// scripts alone (it only forbids framing).
async fn api_docs_are_served_from_local_files(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let bare = client().get(app.url("/api/docs")).send().await.unwrap();
    assert!(bare.status().is_redirection(), "{}", bare.status());
    assert_eq!(bare.headers()["location"], "/api/docs/");
    let page = client().get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let html = page.text().await.unwrap();
    let base = app.url("/api/docs/");
    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let link = &rest[..rest.find('"').unwrap()];
            assert!(
                !link.starts_with("http") && !link.starts_with("//"),
                "the docs page loads {link} from elsewhere"
            );
            assets.push(base.join(link).unwrap());
        }
    }
    assert!(
        assets.iter().any(|a| a.path().ends_with(".js")),
        "no script on the page: {html}"
    );
    assert!(assets.iter().any(|a| a.path().ends_with(".css")));
    for asset in &assets {
        let res = client().get(asset.clone()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        assert!(!res.bytes().await.unwrap().is_empty(), "{asset} is empty");
    }
    let init = client()
        .get(base.join("swagger-initializer.js").unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/openapi.json"), "{init}");
}

test_both!(
    health_and_metrics,
    every_documented_route_exists,
    readiness_follows_the_database,
    api_docs_are_served_from_local_files
);

async fn check_payment_status_is_rate_limited_per_user(db: TestDatabase) {
    let mut config = crate::helpers::config(&db.url);
    config.refresh_limit = 3;
    let app = TestApp::spawn_with(db, config).await;
    let user = app.register("impatient").await;
    let other = app.register("patient").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let path = format!(
        "/api/payments/{}/refresh/",
        started["payment_id"].as_str().unwrap()
    );
    for _ in 0..3 {
        let res = app.post(&user, &path, serde_json::json!({})).await;
        assert_eq!(res.status(), reqwest::StatusCode::OK);
    }
    let res = app.post(&user, &path, serde_json::json!({})).await;
    assert_eq!(res.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(crate::helpers::error_code(&body), "rate_limited");
    // Someone else's checks are not held up (their own payment).
    let theirs = app.initiate(&other, &app.plan_id("Basic").await).await;
    let res = app
        .post(
            &other,
            &format!(
                "/api/payments/{}/refresh/",
                theirs["payment_id"].as_str().unwrap()
            ),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
}

test_both!(check_payment_status_is_rate_limited_per_user);
