//! Outgoing events (issue 12): what the merchant's own systems hear, delivered to a
//! real local receiver that checks each delivery's signature with its own reading of
//! the Standard Webhooks specification (not tijori's signing code).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use base64::Engine as _;
use chrono::Duration;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use tijori_core::clock::{Clock, ManualClock, SystemClock};
use tijori_testkit::{test_both, TestDatabase};

use crate::helpers::{client, error_code, TestApp, TestUser};

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }
}

/// A merchant's receiver on 127.0.0.1: keeps every delivery and answers with the
/// statuses it is told to, then 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let (kept, scripted) = (got.clone(), answers.clone());
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (kept, scripted) = (kept.clone(), scripted.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    kept.lock().unwrap().push(Delivery {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body,
                    });
                    let status = scripted.lock().unwrap().pop_front().unwrap_or(200);
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        format!("answered {status}"),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got, answers }
    }

    fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    fn answer(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses);
    }
}

/// The receiver's check, written from the specification: HMAC-SHA256 keyed with
/// the base64-decoded secret after `whsec_`, over `{id}.{timestamp}.{body}`, in
/// base64 after `v1,`; any one signature of the space-separated list may match; a
/// timestamp more than five minutes from `now` is refused (a replay).
fn verify(secret: &str, d: &Delivery, now: i64) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("no whsec_ prefix")?)
        .map_err(|e| e.to_string())?;
    let ts: i64 = d.timestamp.parse().map_err(|_| "bad timestamp")?;
    if (now - ts).abs() > 300 {
        return Err(format!("timestamp {ts} is too far from {now}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", d.id, d.timestamp, d.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    d.signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
        .then_some(())
        .ok_or_else(|| "no signature matches".to_owned())
}

/// The app on a clock the test moves (no worker: the test runs the jobs), with
/// endpoints on 127.0.0.1 allowed.
async fn app_with_clock(db: TestDatabase) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_with_clock_and(db, clock.clone(), |c| {
        c.webhook_allow_private = true;
    })
    .await;
    (app, clock)
}

/// An app on a manual clock, an operator, and an endpoint of theirs (every event
/// type) posting to a local receiver.
struct Listening {
    app: TestApp,
    clock: Arc<ManualClock>,
    receiver: Receiver,
    admin: TestUser,
    endpoint: String,
    secret: String,
}

async fn listening(db: TestDatabase) -> Listening {
    let (app, clock) = app_with_clock(db).await;
    let receiver = Receiver::start().await;
    let admin = app.admin("ops").await;
    let (endpoint, secret) = create_endpoint(&app, &admin, json!({"url": receiver.url})).await;
    Listening {
        app,
        clock,
        receiver,
        admin,
        endpoint,
        secret,
    }
}

/// Registers an endpoint through the admin API; returns its id and secret.
async fn create_endpoint(app: &TestApp, admin: &TestUser, body: Value) -> (String, String) {
    let res = app.post(admin, "/api/admin/webhook-endpoints", body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .unwrap();
    assert_eq!(key.len(), 32, "32 random bytes");
    (created["id"].as_str().unwrap().to_owned(), secret)
}

/// A customer pays for the Basic plan on the Khalti sandbox; returns the payment's id.
async fn pay_for_basic(app: &TestApp, user: &TestUser) -> String {
    let plan = app.plan_id("Basic").await;
    let started = app.initiate(user, &plan).await;
    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let (status, body) = app.verify(user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    started["payment_id"].as_str().unwrap().to_owned()
}

async fn request(
    app: &TestApp,
    user: &TestUser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = client()
        .request(method, app.url(path))
        .bearer_auth(&user.token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn a_paid_subscription_is_told_once(db: TestDatabase) {
    let (app, clock) = app_with_clock(db).await;
    let receiver = Receiver::start().await;
    let admin = app.admin("ops").await;
    let (endpoint, secret) = create_endpoint(
        &app,
        &admin,
        json!({"url": receiver.url, "description": "CRM"}),
    )
    .await;
    let user = app.register("asha").await;
    let payment = pay_for_basic(&app, &user).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    // Again, and a second verify: nothing more is sent.
    let pidx = app.payment(&user, &payment).await["provider_ref"].clone();
    let (status, _) = app.verify(&user, pidx.as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    app.tijori.run_due_jobs("test", 8).await.unwrap();

    let got = receiver.got();
    let mut kinds: Vec<_> = got.iter().map(Delivery::kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["payment.completed", "subscription.activated"],
        "once each"
    );
    for d in &got {
        verify(&secret, d, clock.now().timestamp()).unwrap();
        let body = d.json();
        assert_eq!(body["id"], d.id, "webhook-id is the event's id");
        assert!(d.id.starts_with("evt_"));
        assert!(body["timestamp"].is_string());
    }
    let completed = got
        .iter()
        .find(|d| d.kind() == "payment.completed")
        .unwrap()
        .json();
    assert_eq!(completed["data"]["id"], payment.as_str());
    assert_eq!(completed["data"]["status"], "completed");
    assert_eq!(completed["data"]["amount"], "500.00");
    assert_eq!(completed["data"]["customer"]["username"], "asha");
    let activated = got
        .iter()
        .find(|d| d.kind() == "subscription.activated")
        .unwrap()
        .json();
    assert_eq!(activated["data"]["subscription"]["plan"]["name"], "Basic");
    assert_eq!(activated["data"]["subscription"]["is_active"], true);
    assert_eq!(activated["data"]["payment"]["id"], payment.as_str());

    // Every try is recorded, with the receiver's answer.
    let res = app
        .get(
            &admin,
            &format!("/api/admin/webhook-endpoints/{endpoint}/attempts"),
        )
        .await;
    let attempts: Value = res.json().await.unwrap();
    assert_eq!(attempts.as_array().unwrap().len(), 2);
    assert_eq!(attempts[0]["http_status"], 200);
    assert_eq!(attempts[0]["delivered"], true);
    assert_eq!(attempts[0]["response"], "answered 200");

    // The entitlement check answers what the customer sees.
    let mine: Value = app
        .get(&user, "/api/subscriptions/me/")
        .await
        .json()
        .await
        .unwrap();
    let res = app.get(&admin, "/api/admin/users/asha/subscription").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), mine);
    let res = app
        .get(&admin, "/api/admin/users/nobody/subscription")
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(&res.json().await.unwrap()), "user_not_found");
    let res = app
        .get(&admin, "/api/admin/users/not%20a%20name/subscription")
        .await;
    assert_eq!(error_code(&res.json().await.unwrap()), "user_not_found");
    app.register("hari").await;
    let res = app.get(&admin, "/api/admin/users/hari/subscription").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        error_code(&res.json().await.unwrap()),
        "not_found",
        "a customer without a plan"
    );
    let res = app.get(&user, "/api/admin/users/asha/subscription").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "for operators only");
}

async fn a_failing_receiver_gets_the_event_on_the_fourth_try(db: TestDatabase) {
    let (app, clock) = app_with_clock(db).await;
    let receiver = Receiver::start().await;
    let admin = app.admin("ops").await;
    let (endpoint, secret) = create_endpoint(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["payment.completed"]}),
    )
    .await;
    receiver.answer(&[500, 500, 500]);
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    assert_eq!(receiver.got().len(), 1, "the first try");
    // 5 s, 5 min and 30 min after each failure (each up to a tenth earlier or later):
    // nothing before the earliest a retry may come, and the retry by the latest.
    for (tries, too_early, wait) in [
        (2, Duration::seconds(4), Duration::seconds(2)),
        (3, Duration::minutes(4), Duration::minutes(2)),
        (4, Duration::minutes(26), Duration::minutes(8)),
    ] {
        clock.advance(too_early);
        app.tijori.run_due_jobs("test", 8).await.unwrap();
        assert_eq!(receiver.got().len(), tries - 1, "not before its time");
        clock.advance(wait);
        app.tijori.run_due_jobs("test", 8).await.unwrap();
        assert_eq!(receiver.got().len(), tries, "retried on time");
    }
    let got = receiver.got();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got
        .iter()
        .all(|d| d.kind() == "payment.completed" && d.id == got[0].id));
    assert!(
        got.iter().all(|d| d.body == got[0].body),
        "every try sends the same body"
    );
    let last = &got[3];
    verify(&secret, last, clock.now().timestamp()).unwrap();
    clock.advance(Duration::hours(10));
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    assert_eq!(receiver.got().len(), 4, "delivered: not sent again");
    let attempts: Value = app
        .get(
            &admin,
            &format!("/api/admin/webhook-endpoints/{endpoint}/attempts"),
        )
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<_> = attempts
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| a["http_status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let numbers: Vec<_> = attempts
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let endpoint: Value = app
        .get(&admin, &format!("/api/admin/webhook-endpoints/{endpoint}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        endpoint["failing_since"],
        Value::Null,
        "a delivery ends the run of failures"
    );
}

async fn a_tampered_or_replayed_delivery_does_not_verify(db: TestDatabase) {
    let Listening {
        app,
        clock,
        receiver,
        secret,
        ..
    } = listening(db).await;
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    let d = receiver.got().remove(0);
    let now = clock.now().timestamp();
    verify(&secret, &d, now).unwrap();
    let tampered = Delivery {
        body: d.body.replace("500.00", "5.00"),
        ..d.clone()
    };
    assert_ne!(tampered.body, d.body);
    assert!(verify(&secret, &tampered, now).is_err(), "a changed body");
    // The same delivery replayed an hour later is refused by its timestamp, and a
    // fresh timestamp does not match the signature (the timestamp is signed).
    assert!(
        verify(&secret, &d, now + 3_600).is_err(),
        "an old timestamp"
    );
    let restamped = Delivery {
        timestamp: (now + 3_600).to_string(),
        ..d.clone()
    };
    assert!(
        verify(&secret, &restamped, now + 3_600).is_err(),
        "a new timestamp"
    );
    let other = Delivery {
        id: "evt_someotherid".into(),
        ..d.clone()
    };
    assert!(verify(&secret, &other, now).is_err(), "another webhook-id");
}

async fn a_rotation_signs_with_both_secrets_for_a_day(db: TestDatabase) {
    let Listening {
        app,
        clock,
        receiver,
        admin,
        endpoint,
        secret: old,
        ..
    } = listening(db).await;
    let res = app
        .post(
            &admin,
            &format!("/api/admin/webhook-endpoints/{endpoint}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let new = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    let d = receiver.got().remove(0);
    assert_eq!(d.signature.split(' ').count(), 2, "{}", d.signature);
    let now = clock.now().timestamp();
    verify(&old, &d, now).unwrap();
    verify(&new, &d, now).unwrap();

    clock.advance(Duration::hours(25));
    let other = app.register("bina").await;
    pay_for_basic(&app, &other).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    let later = receiver.got().pop().unwrap();
    assert_eq!(later.signature.split(' ').count(), 1, "{}", later.signature);
    let now = clock.now().timestamp();
    verify(&new, &later, now).unwrap();
    assert!(
        verify(&old, &later, now).is_err(),
        "the old secret signs no more"
    );
}

async fn a_disabled_endpoint_gets_nothing_until_it_asks_again(db: TestDatabase) {
    let Listening {
        app,
        receiver,
        admin,
        endpoint,
        ..
    } = listening(db).await;
    let path = format!("/api/admin/webhook-endpoints/{endpoint}");
    let res = request(
        &app,
        &admin,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["enabled"], false);
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    assert!(receiver.got().is_empty(), "disabled: nothing sent");
    let res = app
        .post(
            &admin,
            &format!("{path}/redeliver"),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT, "enable it first");

    // Enabled again, it asks for what it missed.
    let res = request(
        &app,
        &admin,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .post(
            &admin,
            &format!("{path}/redeliver"),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap()["queued"], 2);
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    assert_eq!(receiver.got().len(), 2);
    // One event again, by its id, delivered or not.
    let event = receiver.got()[0].id.clone();
    let res = app
        .post(
            &admin,
            &format!("{path}/redeliver"),
            json!({"event_id": event}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["queued"], 1);
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].id, event);
    assert_eq!(got[2].body, got[0].body);
    // Deleted, it is gone.
    let res = request(&app, &admin, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&admin, &path).await.status(), StatusCode::NOT_FOUND);
}

async fn three_days_of_failures_disable_the_endpoint(db: TestDatabase) {
    let (app, clock) = app_with_clock(db).await;
    let receiver = Receiver::start().await;
    let admin = app.admin("ops").await;
    let (endpoint, _) = create_endpoint(
        &app,
        &admin,
        json!({"url": receiver.url, "events": ["payment.completed"]}),
    )
    .await;
    receiver.answer(&[503; 20]);
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;
    app.tijori.run_due_jobs("test", 8).await.unwrap();
    for wait in tijori_core::events::RETRY_AFTER_SECS {
        clock.advance(Duration::seconds(wait + wait / 10 + 1));
        app.tijori.run_due_jobs("test", 8).await.unwrap();
    }
    assert_eq!(receiver.got().len(), 11, "every try, then no more");
    let e: Value = app
        .get(&admin, &format!("/api/admin/webhook-endpoints/{endpoint}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["enabled"], false);
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("HTTP 503"),
        "{e}"
    );
    let events = app.operator_events().await;
    assert!(
        events.iter().any(|ev| ev.kind
            == tijori_core::store::OperatorEventKind::WebhookEndpointDisabled
            && ev.detail.contains(&endpoint)),
        "{events:?}"
    );
}

async fn events_wait_in_the_outbox_for_a_restart(db: TestDatabase) {
    // A process that changes state and dies before delivering: its events are in
    // the database, and the next process delivers them.
    let receiver = Receiver::start().await;
    let mut config = crate::helpers::config(&db.url);
    config.worker = false;
    config.webhook_allow_private = true;
    let first = TestApp::spawn_with(db, config).await;
    let admin = first.admin("ops").await;
    create_endpoint(&first, &admin, json!({"url": receiver.url})).await;
    let user = first.register("asha").await;
    pay_for_basic(&first, &user).await;
    assert!(
        receiver.got().is_empty(),
        "no worker: nothing delivered yet"
    );
    let next = first
        .sibling(|c| {
            c.worker = true;
            c.webhook_allow_private = true;
        })
        .await;
    for _ in 0..100 {
        if receiver.got().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut kinds: Vec<_> = receiver.got().iter().map(Delivery::kind).collect();
    kinds.sort();
    assert_eq!(kinds, ["payment.completed", "subscription.activated"]);
    drop(next);
}

async fn private_addresses_and_bad_endpoints_are_refused(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("ops").await;
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "ftp://merchant.example/hooks",
        "https://user:pass@merchant.example/hooks",
        "not a url",
    ] {
        let res = app
            .post(&admin, "/api/admin/webhook-endpoints", json!({"url": url}))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{url}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(error_code(&body), "validation_error", "{url}: {body}");
    }
    let res = app
        .post(
            &admin,
            "/api/admin/webhook-endpoints",
            json!({"url": "https://merchant.example/hooks", "events": ["payment.paid"]}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "an unknown event type"
    );
    let res = app
        .post(
            &admin,
            "/api/admin/webhook-endpoints",
            json!({"url": "https://merchant.example/hooks", "events": ["order.paid"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["events"], json!(["order.paid"]));
    let id = created["id"].as_str().unwrap();
    // A change to a private URL is refused too.
    let res = request(
        &app,
        &admin,
        reqwest::Method::PATCH,
        &format!("/api/admin/webhook-endpoints/{id}"),
        Some(json!({"url": "http://192.168.1.1/"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // The list shows no secret.
    let list: Value = app
        .get(&admin, "/api/admin/webhook-endpoints")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none());
    // Customers may not.
    let user = app.register("asha").await;
    let res = app
        .post(
            &user,
            "/api/admin/webhook-endpoints",
            json!({"url": "https://merchant.example/"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// The URL of a receiver that takes every connection and never answers.
async fn hanging_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    url
}

/// A receiver that takes every connection and never answers holds a delivery for
/// 15 s a try. Deliveries get at most half of a worker's slots, so the worker's other
/// jobs (here a mail, due after four such deliveries) still run meanwhile: a merchant's
/// broken receiver cannot hold up the look-ups that grant what customers paid for.
async fn a_hanging_receiver_does_not_hold_up_other_jobs(db: TestDatabase) {
    use tijori_core::jobs::{DeliverMail, JobStatus, NewJob};
    let (app, clock) = app_with_clock(db).await;
    let url = hanging_receiver().await;
    let admin = app.admin("ops").await;
    create_endpoint(&app, &admin, json!({"url": url})).await;
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;
    pay_for_basic(&app, &user).await;
    let mail = NewJob::of(
        &DeliverMail {
            mail: "mail_that_is_not_there".into(),
        },
        clock.now(),
    );
    app.tijori
        .store()
        .enqueue_job(&mail, clock.now())
        .await
        .unwrap();

    let worker = tijori_core::service::Worker::new(app.tijori.clone(), 2)
        .with_poll_interval(std::time::Duration::from_millis(20));
    let running = tokio::spawn(worker.run(std::future::pending()));
    let mut tried = false;
    for _ in 0..250 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let jobs = app.tijori.store().jobs(None, 100).await.unwrap();
        let mail = jobs
            .iter()
            .find(|j| j.payload.contains("mail_that_is_not_there"))
            .unwrap();
        if mail.attempts > 0 && mail.status != JobStatus::Running {
            tried = true;
            break;
        }
    }
    // The worker would wait for the hanging deliveries to time out.
    running.abort();
    assert!(
        tried,
        "the mail waited behind deliveries to a receiver that hangs"
    );
}

/// A worker whose every slot is held by a delivery to a receiver that hangs still goes
/// round its loop (claiming nothing), so it does not read as stuck on /readyz while a
/// merchant's receiver is slow.
async fn a_worker_held_up_by_a_hanging_receiver_still_goes_round(db: TestDatabase) {
    use tijori_core::jobs::{JobKind, JobStatus};
    let (app, clock) = app_with_clock(db).await;
    let url = hanging_receiver().await;
    let admin = app.admin("ops").await;
    create_endpoint(&app, &admin, json!({"url": url})).await;
    let user = app.register("asha").await;
    pay_for_basic(&app, &user).await;

    // One slot: the first delivery takes it and hangs (15 s a try).
    let worker = tijori_core::service::Worker::new(app.tijori.clone(), 1)
        .with_poll_interval(std::time::Duration::from_millis(20));
    let running = tokio::spawn(worker.run(std::future::pending()));
    let mut delivering = false;
    for _ in 0..250 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let jobs = app.tijori.store().jobs(None, 100).await.unwrap();
        if jobs
            .iter()
            .any(|j| j.kind == JobKind::DeliverEvent && j.status == JobStatus::Running)
        {
            delivering = true;
            break;
        }
    }
    assert!(delivering, "a delivery never started");
    clock.advance(chrono::Duration::minutes(10));
    let moved = clock.now();
    let mut seen = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        seen = app.tijori.worker_last_seen();
        if seen.is_some_and(|at| at >= moved - chrono::Duration::seconds(1)) {
            break;
        }
    }
    running.abort();
    assert!(
        seen.is_some_and(|at| at >= moved - chrono::Duration::seconds(1)),
        "the worker stopped going round while its slot was held: last seen {seen:?}, now {moved}"
    );
}

/// A subscription's whole life, told: a canceled checkout (`payment.failed`), the
/// payment and its activation, the reminder (`subscription.expiring`) and the end
/// (`subscription.expired`, with nothing left); and another customer's subscription
/// refunded (`subscription.revoked`, `payment.refunded`, `refund.succeeded`).
async fn a_subscription_is_told_from_checkout_to_its_end(db: TestDatabase) {
    let Listening {
        app,
        clock,
        receiver,
        secret,
        ..
    } = listening(db).await;
    let sita = app.register("sita").await;
    let plan = app.plan_id("Basic").await;
    let canceled = app.initiate(&sita, &plan).await;
    app.pay_on_checkout(canceled["payment_url"].as_str().unwrap(), "cancel")
        .await;
    let (status, _) = app.verify(&sita, canceled["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    pay_for_basic(&app, &sita).await;
    app.tijori.run_due_jobs("test", 1).await.unwrap();

    // Basic is 30 days; the reminder goes 3 days before the end, the notice after it.
    clock.advance(Duration::days(27) + Duration::minutes(1));
    app.tijori.queue_notices().await.unwrap();
    app.tijori.run_due_jobs("test", 1).await.unwrap();
    clock.advance(Duration::days(3));
    app.tijori.queue_notices().await.unwrap();
    app.tijori.run_due_jobs("test", 1).await.unwrap();

    // Tokens last 30 days: the operator signs in again.
    let admin = app.admin("ops-again").await;
    let hari = app.register("hari").await;
    let payment = pay_for_basic(&app, &hari).await;
    let res = app
        .post(
            &admin,
            &format!("/api/payments/{payment}/refund/"),
            json!({"reason": "asked for it back"}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    app.tijori.run_due_jobs("test", 1).await.unwrap();

    let got = receiver.got();
    for d in &got {
        // Each as it arrived: they went out over a month.
        verify(&secret, d, d.timestamp.parse().unwrap()).unwrap();
    }
    let told = |username: &str| -> Vec<(String, Value)> {
        got.iter()
            .map(Delivery::json)
            .filter(|e| {
                let data = &e["data"];
                data["customer"]["username"] == username
            })
            .map(|e| (e["type"].as_str().unwrap().to_owned(), e["data"].clone()))
            .collect()
    };
    let sita_heard = told("sita");
    let kinds: Vec<_> = sita_heard.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "payment.failed",
            "payment.completed",
            "subscription.activated",
            "subscription.expiring",
            "subscription.expired"
        ],
        "in the order they happened (delivered one at a time here)"
    );
    assert_eq!(sita_heard[0].1["status"], "canceled");
    let expiring = &sita_heard[3].1;
    assert_eq!(expiring["subscription"]["plan"]["name"], "Basic");
    assert_eq!(expiring["payment"], Value::Null);
    let expired = &sita_heard[4].1;
    assert_eq!(expired["payment"], Value::Null);
    assert_eq!(expired["subscription"]["is_active"], false);

    let hari_heard = told("hari");
    let mut kinds: Vec<_> = hari_heard.iter().map(|(k, _)| k.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "payment.completed",
            "payment.refunded",
            "refund.succeeded",
            "subscription.activated",
            "subscription.revoked"
        ]
    );
    let revoked = &hari_heard
        .iter()
        .find(|(k, _)| k == "subscription.revoked")
        .unwrap()
        .1;
    assert_eq!(revoked["payment"]["id"], payment.as_str());
    assert_eq!(revoked["payment"]["status"], "refunded");
}

test_both!(
    a_paid_subscription_is_told_once,
    a_failing_receiver_gets_the_event_on_the_fourth_try,
    a_tampered_or_replayed_delivery_does_not_verify,
    a_rotation_signs_with_both_secrets_for_a_day,
    a_disabled_endpoint_gets_nothing_until_it_asks_again,
    three_days_of_failures_disable_the_endpoint,
    events_wait_in_the_outbox_for_a_restart,
    private_addresses_and_bad_endpoints_are_refused,
    a_hanging_receiver_does_not_hold_up_other_jobs,
    a_worker_held_up_by_a_hanging_receiver_still_goes_round,
    a_subscription_is_told_from_checkout_to_its_end,
);

async fn the_admin_page_manages_endpoints(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let admin = app.admin("ops").await;
    let (browser, csrf) = app.sign_in_browser(&admin).await;
    let page = browser
        .get(app.url("/admin/webhooks/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("id=\"no-endpoints\""));
    let res = browser
        .post(app.url("/admin/webhooks/"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("url", "https://merchant.example/events"),
            ("description", "warehouse"),
            ("event:order.paid", "on"),
            ("event:refund.succeeded", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("id=\"secret\">whsec_"),
        "the secret, shown once"
    );
    let list: Value = app
        .get(&admin, "/api/admin/webhook-endpoints")
        .await
        .json()
        .await
        .unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["events"], json!(["order.paid", "refund.succeeded"]));
    assert_eq!(list[0]["description"], "warehouse");
    // Shown once: the page does not show it again.
    let again = browser
        .get(app.url("/admin/webhooks/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains("whsec_"));
    assert!(again.contains(&id));
    let res = browser
        .post(app.url(&format!("/admin/webhooks/{id}/disable")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let e: Value = app
        .get(&admin, &format!("/api/admin/webhook-endpoints/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["enabled"], false);
    // Without the CSRF token, nothing changes.
    let res = browser
        .post(app.url(&format!("/admin/webhooks/{id}/delete")))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&admin, &format!("/api/admin/webhook-endpoints/{id}"))
            .await
            .status(),
        StatusCode::OK
    );
    // A customer may not see the page.
    let user = app.register("asha").await;
    let (customer, _) = app.sign_in_browser(&user).await;
    let res = customer
        .get(app.url("/admin/webhooks/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

test_both!(the_admin_page_manages_endpoints);

async fn an_order_paid_then_refunded_is_told_in_its_words(db: TestDatabase) {
    let Listening {
        app,
        clock,
        receiver,
        admin,
        secret,
        ..
    } = listening(db).await;
    app.chapa_settings(|s| {
        s.webhook_url = None;
        s.send_callbacks = false;
    });
    let user = app.register("abebe").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 5).await;
    let order = app.order_of(&user, &coffee, 2).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap();
    app.sandbox().chapa().pay(tx_ref).unwrap();
    let res = app
        .post(
            &user,
            "/api/subscriptions/verify/",
            json!({"tx_ref": tx_ref}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let payment = checkout["payment_id"].as_str().unwrap();
    let res = app
        .post(
            &admin,
            &format!("/api/payments/{payment}/refund/"),
            json!({"amount": "500", "reason": "one bag broke"}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    // An unpaid order that runs out of time.
    let late = app.order_of(&user, &coffee, 1).await;
    clock.advance(Duration::minutes(31));
    app.tijori.expire_due_orders().await.unwrap();
    app.tijori.run_due_jobs("test", 8).await.unwrap();

    let got = receiver.got();
    let now = clock.now().timestamp();
    for d in &got {
        verify(&secret, d, now).unwrap();
    }
    let of = |kind: &str| -> Vec<Value> {
        got.iter()
            .filter(|d| d.kind() == kind)
            .map(Delivery::json)
            .collect()
    };
    let mut kinds: Vec<_> = got.iter().map(Delivery::kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "order.expired",
            "order.paid",
            "payment.completed",
            "payment.refunded",
            "refund.succeeded"
        ],
    );
    let paid = &of("order.paid")[0]["data"];
    assert_eq!(paid["id"], order.as_str());
    assert_eq!(paid["items"][0]["quantity"], 2);
    assert_eq!(paid["payment"]["id"], payment);
    assert_eq!(paid["customer"]["username"], "abebe");
    let refunded = &of("refund.succeeded")[0]["data"];
    assert_eq!(refunded["amount"], "500.00");
    assert_eq!(refunded["currency"], "ETB");
    assert_eq!(refunded["reason"], "one bag broke");
    assert_eq!(refunded["payment"]["status"], "partially_refunded");
    assert_eq!(
        of("payment.refunded")[0]["data"]["status"],
        "partially_refunded"
    );
    let expired = &of("order.expired")[0]["data"];
    assert_eq!(expired["id"], late.as_str());
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["payment"], Value::Null);
}

test_both!(an_order_paid_then_refunded_is_told_in_its_words);
