//! Issue 9, items 9 to 13: one client must not hurt the others. Throttled sign-in and
//! sign-up, a bounded password-hashing queue, per-user bounds on every path that
//! calls a gateway or writes rows, Chapa's anonymous callback, caps on unpaid stock,
//! bounded connections, bodies and WebSocket messages, and tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori::Config;
use tijori_core::clock::{Clock, ManualClock};
use tijori_testkit::{test_both, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{client, error_code, TestApp};

async fn app_with(db: TestDatabase, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = crate::helpers::config(&db.url);
    configure(&mut config);
    TestApp::spawn_with(db, config).await
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    client()
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A 429 that says how long to wait.
async fn assert_throttled(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3_600).contains(&wait), "{what}: Retry-After {wait}");
    assert_eq!(
        error_code(&res.json().await.unwrap()),
        "rate_limited",
        "{what}"
    );
}

// Item 9: sign-in and sign-up ------------------------------------------------------------

async fn failed_sign_ins_are_throttled_per_account(db: TestDatabase) {
    let app = app_with(db, |c| c.signin_limit = 3).await;
    app.register("sushila").await;
    for _ in 0..3 {
        let res = login(&app, "sushila", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        login(&app, "sushila", "wrong password!").await,
        "a 4th guess",
    )
    .await;
    assert_throttled(
        login(&app, "Sushila", "correct horse battery").await,
        "even the right password, while throttled (no oracle)",
    )
    .await;
    // An unknown account is throttled the same way: a 429 tells nothing about which
    // accounts exist.
    for _ in 0..3 {
        assert_eq!(
            login(&app, "nobody", "x-wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_throttled(login(&app, "nobody", "x-wrong-password").await, "unknown").await;
    // Another account is not held up.
    app.register("ram").await;
    assert_eq!(
        login(&app, "ram", "correct horse battery").await.status(),
        StatusCode::OK
    );
    // The sign-in page shares the account's allowance.
    let res = crate::helpers::browser()
        .post(app.url("/login"))
        .form(&[
            ("username", "sushila"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}

async fn sign_ins_are_throttled_per_address(db: TestDatabase) {
    let app = app_with(db, |c| c.signin_address_limit = 5).await;
    for i in 0..5 {
        let res = login(&app, &format!("guess{i}"), "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        login(&app, "guess-another", "wrong password!").await,
        "a 6th account from one address",
    )
    .await;
}

async fn sign_ups_are_throttled_per_address(db: TestDatabase) {
    let app = app_with(db, |c| c.signup_limit = 3).await;
    for name in ["addr1", "addr2", "addr3"] {
        app.register(name).await;
    }
    let res = client()
        .post(app.url("/api/auth/register"))
        .json(&json!({"username": "addr4", "email": "addr4@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_throttled(res, "a 4th sign-up in the hour").await;
    // The sign-up page shares the address's allowance.
    let res = crate::helpers::browser()
        .post(app.url("/register"))
        .form(&[
            ("username", "addr5"),
            ("email", "addr5@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}

/// Behind a trusted proxy, the client is the address the proxy saw, not the proxy:
/// two clients behind it have their own allowances, and what a client writes in
/// X-Forwarded-For itself is not believed.
async fn behind_a_trusted_proxy_each_client_has_its_own_allowance(db: TestDatabase) {
    let app = app_with(db, |c| {
        c.signup_limit = 1;
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let register = |name: &str, forwarded: &str| {
        client()
            .post(app.url("/api/auth/register"))
            .header("x-forwarded-for", forwarded.to_owned())
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"}))
            .send()
    };
    assert_eq!(
        register("client1", "203.0.113.1").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register("client2", "203.0.113.2").await.unwrap().status(),
        StatusCode::CREATED,
        "another client behind the proxy"
    );
    assert_eq!(
        register("client3", "198.51.100.7, 203.0.113.1")
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a made-up address at the front changes nothing"
    );
}

/// A flood of sign-ins does not queue for the password hash without end: beyond a
/// few hashes' worth per core, an attempt is refused at once with 503 + Retry-After.
async fn a_flood_of_sign_ins_is_refused_quickly_not_queued(db: TestDatabase) {
    let app = app_with(db, |c| {
        c.signin_limit = 1_000_000;
        c.hash_queue = Some(4);
    })
    .await;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let client = client();
    let attempts = (0..(cores + 4) * 8).map(|i| {
        let client = client.clone();
        let url = app.url("/api/auth/login");
        async move {
            let started = Instant::now();
            let res = client
                .post(url)
                .json(&json!({"username": format!("flood{i}"), "password": "wrong password!"}))
                .send()
                .await
                .unwrap();
            let retry = res.headers().get("retry-after").cloned();
            (res.status(), retry, started.elapsed())
        }
    });
    let answers = join_all(attempts).await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !refused.is_empty(),
        "{} hashes at once must not all queue: {:?}",
        answers.len(),
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(refused.iter().all(|(_, retry, _)| retry.is_some()));
    // Refused at once, not after waiting in the queue: a refusal is quicker than the
    // slowest attempt that waited for its hash. (Relative, since this machine's speed
    // is not ours to know.)
    let mut refusals: Vec<Duration> = refused.iter().map(|(_, _, t)| *t).collect();
    refusals.sort();
    let median_refusal = refusals[refusals.len() / 2];
    let slowest_hashed = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .map(|(_, _, t)| *t)
        .max()
        .unwrap();
    assert!(
        median_refusal < slowest_hashed,
        "refused at once: {median_refusal:?}, vs {slowest_hashed:?} for a hash that waited"
    );
    assert!(answers
        .iter()
        .all(|(s, _, _)| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE));
    // Once the flood passes, signing in works.
    app.register("after").await;
}

// Item 10: paths that call a gateway or write rows ------------------------------------

async fn every_checkout_path_is_bounded_per_user(db: TestDatabase) {
    let app = app_with(db, |c| c.checkout_limit = 2).await;
    let user = app.register("abebe").await;
    let basic = app.plan_id("Basic").await;
    let coffee = app.product_in("ETB").await;

    for _ in 0..2 {
        app.initiate(&user, &basic).await;
    }
    let res = app
        .post(
            &user,
            "/api/subscriptions/initiate/",
            json!({"plan_id": basic}),
        )
        .await;
    assert_throttled(res, "a 3rd initiate in the minute").await;
    // Refused under an Idempotency-Key, the key is not spent on the refusal: the
    // retry the client makes after its Retry-After is weighed again, not replayed.
    for attempt in ["first", "retry"] {
        let res = app
            .post_keyed(
                &user,
                "/api/subscriptions/initiate/",
                "initiate-4",
                json!({"plan_id": basic}),
            )
            .await;
        assert!(
            res.headers().get("idempotent-replayed").is_none(),
            "the {attempt} 429 is not a replay"
        );
        assert_throttled(res, "an initiate under a key, in the minute").await;
    }

    let first = app.order_of(&user, &coffee, 1).await;
    app.order_of(&user, &coffee, 1).await;
    let res = app
        .post(
            &user,
            "/api/orders/",
            json!({"items": [{"product_id": coffee, "quantity": 1}]}),
        )
        .await;
    assert_throttled(res, "a 3rd order in the minute").await;

    for _ in 0..2 {
        let (status, body) = app.initialize(&user, &first, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let res = app
        .post(
            &user,
            "/api/payments/initialize/",
            json!({"order_id": first}),
        )
        .await;
    assert_throttled(res, "a 3rd initialize in the minute").await;

    for _ in 0..2 {
        let res = app
            .post(
                &user,
                "/api/payments/khalti/widget/verify/",
                json!({"token": "nope", "amount": 100, "plan_id": basic}),
            )
            .await;
        assert_ne!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let res = app
        .post(
            &user,
            "/api/payments/khalti/widget/verify/",
            json!({"token": "nope", "amount": 100, "plan_id": basic}),
        )
        .await;
    assert_throttled(res, "a 3rd widget verify in the minute").await;

    // Another customer is not held up.
    let other = app.register("kebede").await;
    app.initiate(&other, &basic).await;
    app.order_of(&other, &coffee, 1).await;
}

async fn callback(app: &TestApp, client: &reqwest::Client, trx_ref: &str) -> reqwest::Response {
    client
        .get(app.url(&format!(
            "/api/payments/chapa/callback/?trx_ref={trx_ref}&status=success"
        )))
        .send()
        .await
        .unwrap()
}

async fn limiter_keys(app: &TestApp, limiter: &str) -> u64 {
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("tijori_rate_limiter_keys{{limiter=\"{limiter}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in {metrics}"))
        .parse()
        .unwrap()
}

/// The idempotency layer stands outside the rate limit: the retry a client makes under
/// the same key is answered from the first answer and spends nothing, so a client
/// that retries a lost answer is not throttled for it.
async fn a_replay_spends_no_allowance(db: TestDatabase) {
    let app = app_with(db, |c| c.checkout_limit = 1).await;
    let user = app.register("hanna").await;
    let basic = app.plan_id("Basic").await;
    let coffee = app.product_in("ETB").await;
    // Keys are the user's, not the path's (the same key on another path is a reused
    // key), so each path gets keys of its own.
    for (path, key, other_key, body, created) in [
        (
            "/api/subscriptions/initiate/",
            "initiate-1",
            "initiate-2",
            json!({"plan_id": basic}),
            StatusCode::OK,
        ),
        (
            "/api/orders/",
            "order-1",
            "order-2",
            json!({"items": [{"product_id": coffee, "quantity": 1}]}),
            StatusCode::CREATED,
        ),
    ] {
        let first = app.post_keyed(&user, path, key, body.clone()).await;
        assert_eq!(
            first.status(),
            created,
            "{path}: the first, within the limit"
        );
        for _ in 0..3 {
            let again = app.post_keyed(&user, path, key, body.clone()).await;
            assert_eq!(again.status(), created, "{path}: a replay is not throttled");
            assert_eq!(again.headers()["idempotent-replayed"], "true", "{path}");
        }
        // The allowance (one a minute) was spent once, by the first.
        assert_throttled(app.post_keyed(&user, path, other_key, body).await, path).await;
    }
}

/// Chapa's callback is anonymous: one answer whether the reference is known or not,
/// a bound per client address (not per made-up trx_ref), and memory that stays put
/// however many references are sent.
async fn the_chapa_callback_says_nothing_and_is_bounded_per_address(db: TestDatabase) {
    let app = app_with(db, |c| c.callback_limit = 100).await;
    app.chapa_settings(|s| {
        s.send_callbacks = false;
        s.webhook_url = None;
    });
    let user = app.register("almaz").await;
    let coffee = app.product_in("ETB").await;
    let order = app.order_of(&user, &coffee, 1).await;
    let (_, checkout) = app.initialize(&user, &order, Some("chapa")).await;
    let tx_ref = checkout["tx_ref"].as_str().unwrap().to_owned();
    let http = client();

    let known = callback(&app, &http, &tx_ref).await;
    let (known_status, known_body) = (known.status(), known.text().await.unwrap());
    let unknown = callback(&app, &http, "no-such-reference").await;
    let (unknown_status, unknown_body) = (unknown.status(), unknown.text().await.unwrap());
    assert_eq!(known_status, StatusCode::OK);
    assert_eq!(
        (unknown_status, unknown_body),
        (known_status, known_body),
        "known and unknown references get the same answer"
    );

    // 10,000 callbacks, each with a new reference, from one address.
    let answers: Vec<StatusCode> = futures::stream::iter(0..10_000)
        .map(|i| {
            let (app, http) = (&app, &http);
            async move { callback(app, http, &format!("made-up-{i}")).await.status() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let throttled = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        throttled > 9_000,
        "one address gets its allowance, not one per reference: {throttled} throttled"
    );
    assert_throttled(callback(&app, &http, "one-more").await, "still throttled").await;
    assert!(
        limiter_keys(&app, "chapa_callback").await <= 1,
        "the limiter remembers the address, not the references"
    );
}

// Item 11: unpaid stock --------------------------------------------------------------

/// The pending-order cap is checked in the transaction that reserves: twenty orders
/// at once cannot pass it (they did when it was counted beforehand).
async fn twenty_orders_at_once_cannot_pass_the_unpaid_orders_cap(db: TestDatabase) {
    let app = app_with(db, |c| c.checkout_limit = 1_000).await;
    let user = app.register("hoarder").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 100).await;
    let orders = (0..20).map(|_| app.order(&user, json!([{"product_id": coffee, "quantity": 1}])));
    let answers = join_all(orders).await;
    let made = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(made, 5, "{answers:?}");
    assert!(answers.iter().all(|(s, b)| *s == StatusCode::CREATED
        || (*s == StatusCode::CONFLICT && error_code(b) == "too_many_pending_orders")));
    assert_eq!(app.product(&coffee).await["stock"], 95);
}

async fn units_of_one_product_held_unpaid_are_capped(db: TestDatabase) {
    let app = app_with(db, |c| c.max_unpaid_units_per_product = 10).await;
    let user = app.register("hoarder").await;
    let coffee = app.new_product("Coffee", "850", "ETB", 100).await;
    app.order_of(&user, &coffee, 8).await;
    let (status, body) = app
        .order(&user, json!([{"product_id": coffee, "quantity": 3}]))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "too_many_units");
    assert_eq!(app.product(&coffee).await["stock"], 92);
    app.order_of(&user, &coffee, 2).await;
    // Twenty at once cannot pass it either.
    let tea = app.new_product("Tea", "300", "ETB", 100).await;
    let orders = (0..20).map(|_| app.order(&user, json!([{"product_id": tea, "quantity": 4}])));
    let made = join_all(orders)
        .await
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(made, 2, "8 of at most 10 units");
    // Someone else may still buy.
    let other = app.register("buyer").await;
    app.order_of(&other, &coffee, 10).await;
}

// Item 12: connections, bodies, messages ------------------------------------------------

async fn the_websocket_refuses_big_client_messages(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("abebe").await;
    let coffee = app.product_in("ETB").await;
    let order = app.order_of(&user, &coffee, 1).await;
    let (_, checkout) = app.initialize(&user, &order, None).await;
    let payment = checkout["payment_id"].as_str().unwrap();
    let mut url = app.url(&format!("/ws/payments/{payment}"));
    url.set_scheme("ws").unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Token {}", user.token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = socket.next().await.unwrap().unwrap();
    assert!(matches!(first, Message::Text(_)), "{first:?}");
    // A small message is fine (and ignored).
    socket.send(Message::Text("hello".into())).await.unwrap();
    socket
        .send(Message::Text("x".repeat(64 * 1024).into()))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a 64 KB message closes the socket");
}

/// Sends `head` and part of a body, then waits; returns what the server answered.
async fn send_slowly(app: &TestApp, head: &str, part: &[u8], wait: Duration) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.base.socket_addrs(|| None).unwrap()[0])
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(part).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, stream.read(&mut answer))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

async fn a_body_that_trickles_in_gets_408(db: TestDatabase) {
    let app = app_with(db, |c| c.body_timeout = Duration::from_millis(500)).await;
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n",
        app.base.authority()
    );
    let started = Instant::now();
    let answer = send_slowly(&app, &head, b"{\"username\":", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A body that arrives in time is served as ever.
    app.register("prompt").await;
}

/// Once a connection place is free again, a new connection is served within 5 s.
async fn served_again_within_5_s(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = send_slowly(
            app,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"",
            Duration::from_secs(5),
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(Instant::now() < deadline, "never served again: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open_connections_are_capped(db: TestDatabase) {
    let app = app_with(db, |c| c.max_connections = 3).await;
    let address = app.base.socket_addrs(|| None).unwrap()[0];
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
        // Each is served: a keep-alive request answered, the connection kept.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let answer = send_slowly(
        &app,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("retry-after: 1") || answer.contains("Retry-After: 1"));
    assert!(answer.contains("too_many_connections"), "{answer}");
    // One closes; a new connection is served again.
    drop(held.pop());
    served_again_within_5_s(&app).await;
}

/// A WebSocket outlives the HTTP connection it was upgraded from: it still holds its
/// place under the cap until it closes.
async fn open_websockets_count_against_the_connection_cap(db: TestDatabase) {
    let shop = TestApp::spawn(db).await;
    let user = shop.register("abebe").await;
    let coffee = shop.product_in("ETB").await;
    let order = shop.order_of(&user, &coffee, 1).await;
    let (_, checkout) = shop.initialize(&user, &order, None).await;
    let payment = checkout["payment_id"].as_str().unwrap().to_owned();
    // Another tijori on the same database, whose only connections are this test's
    // (the first one keeps connections to its own built-in sandbox).
    let app = shop.sibling(|c| c.max_connections = 2).await;
    let open = || async {
        let mut url = app.url(&format!("/ws/payments/{payment}"));
        url.set_scheme("ws").unwrap();
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Token {}", user.token).parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request).await
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sockets = Vec::new();
    while sockets.len() < 2 {
        match open().await {
            Ok((mut socket, _)) => {
                socket.next().await.unwrap().unwrap();
                sockets.push(socket);
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("could not open two sockets: {e}"),
        }
    }
    let answer = send_slowly(
        &app,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    let mut closing = sockets.pop().unwrap();
    closing.close(None).await.unwrap();
    while let Some(Ok(_)) = closing.next().await {}
    served_again_within_5_s(&app).await;
}

// Item 13: tokens ------------------------------------------------------------------------

async fn get_with_token(app: &TestApp, path: &str, token: &str) -> StatusCode {
    client()
        .get(app.url(path))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap()
        .status()
}

const PUBLIC: [&str; 4] = [
    "/api/subscriptions/plans/",
    "/api/products/",
    "/healthz",
    "/",
];

async fn a_bad_token_is_401_on_every_endpoint(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("abebe").await;
    for path in PUBLIC {
        assert_eq!(
            get_with_token(&app, path, &user.token).await,
            StatusCode::OK,
            "{path} with a good token"
        );
        assert_eq!(
            get_with_token(&app, path, "not-a-token").await,
            StatusCode::UNAUTHORIZED,
            "{path} with an unknown token"
        );
    }
    // Revoked by signing out.
    let res = client()
        .post(app.url("/api/auth/logout"))
        .header("authorization", format!("Token {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for path in PUBLIC {
        assert_eq!(
            get_with_token(&app, path, &user.token).await,
            StatusCode::UNAUTHORIZED,
            "{path} with a revoked token"
        );
    }
    // Another scheme (a proxy's Basic authentication) is not ours to judge.
    let res = client()
        .get(app.url("/api/products/"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn an_expired_token_is_401_and_pruned_by_the_job(db: TestDatabase) {
    let clock = Arc::new(ManualClock::new(tijori_core::clock::SystemClock.now()));
    let app = TestApp::spawn_with_clock_and(db, clock.clone(), |c| {
        c.signup_limit = 1_000_000;
    })
    .await;
    app.tijori.schedule_recurring_jobs().await.unwrap();
    let user = app.register("abebe").await;
    let (browser, _) = app.sign_in_browser(&user).await;
    let issued = clock.now();
    clock.advance(chrono::Duration::days(31));
    for path in PUBLIC {
        assert_eq!(
            get_with_token(&app, path, &user.token).await,
            StatusCode::UNAUTHORIZED,
            "{path} with an expired token"
        );
    }
    let hash = tijori_core::account::SecretToken::from_presented(&user.token).hash();
    let store = app.tijori.store();
    assert!(
        store
            .user_by_api_token(&hash, issued)
            .await
            .unwrap()
            .is_some(),
        "expired, but still stored"
    );
    app.tijori.run_due_jobs("test", 4).await.unwrap();
    assert!(
        store
            .user_by_api_token(&hash, issued)
            .await
            .unwrap()
            .is_none(),
        "the pruning job deleted it"
    );
    let jobs = app.tijori.jobs(None).await.unwrap();
    assert!(jobs
        .iter()
        .any(|j| j.kind == tijori_core::jobs::JobKind::PruneCredentials));
    // The browser's session (14 days) went too: its cookie signs nobody in.
    let res = browser
        .get(app.url("/api/subscriptions/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn login_issues_a_token_or_a_session_not_both(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("abebe").await;

    // An API client: DESIGN §4's {token}, and no cookie.
    let res = login(&app, "abebe", "correct horse battery").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session for an API client"
    );
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(body.get("csrf_token").is_none(), "{body}");

    // A browser (its fetch carries Sec-Fetch-Mode): a session, and no token.
    let browser = crate::helpers::browser();
    let res = browser
        .post(app.url("/api/auth/login"))
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"username": "abebe", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(crate::helpers::set_cookie(&res, "tijori_session").is_some());
    let body: Value = res.json().await.unwrap();
    assert!(body.get("token").is_none(), "{body}");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    // Either can ask for the other explicitly.
    let res = client()
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "abebe", "password": "correct horse battery", "session": true}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("set-cookie").is_some());

    // Signing out ends what was used, and only that.
    let res = browser
        .post(app.url("/api/auth/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let me = browser
        .get(app.url("/api/subscriptions/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "the session ended");
    assert_eq!(
        get_with_token(&app, "/api/subscriptions/me/", &token).await,
        StatusCode::NOT_FOUND,
        "the token still works (no subscription yet)"
    );
    assert_eq!(
        get_with_token(&app, "/api/subscriptions/me/", &user.token).await,
        StatusCode::NOT_FOUND
    );
}

test_both!(
    failed_sign_ins_are_throttled_per_account,
    sign_ins_are_throttled_per_address,
    sign_ups_are_throttled_per_address,
    behind_a_trusted_proxy_each_client_has_its_own_allowance,
    a_flood_of_sign_ins_is_refused_quickly_not_queued,
    every_checkout_path_is_bounded_per_user,
    a_replay_spends_no_allowance,
    the_chapa_callback_says_nothing_and_is_bounded_per_address,
    twenty_orders_at_once_cannot_pass_the_unpaid_orders_cap,
    units_of_one_product_held_unpaid_are_capped,
    the_websocket_refuses_big_client_messages,
    a_body_that_trickles_in_gets_408,
    open_connections_are_capped,
    open_websockets_count_against_the_connection_cap,
    a_bad_token_is_401_on_every_endpoint,
    an_expired_token_is_401_and_pruned_by_the_job,
    login_issues_a_token_or_a_session_not_both,
);
