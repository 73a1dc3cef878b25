//! Live status: Server-Sent Events and the WebSocket push each status change to the
//! payment's owner, and on PostgreSQL a change settled by one tijori process reaches
//! a listener connected to another.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tijori_testkit::{test_both, TestDatabase};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{client, TestApp, TestUser};

/// Reads `status` events off an SSE response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, user: &TestUser, payment: &str) -> Events {
        let res = client()
            .get(app.url(&format!("/api/payments/{payment}/events")))
            .header("Authorization", format!("Token {}", user.token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Events {
            response: res,
            buffer: String::new(),
        }
    }

    /// The next status event's payment, within 10 s.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let data = frame
                        .lines()
                        .find_map(|l| l.strip_prefix("data:"))
                        .map(str::trim);
                    if frame.contains("event: status") {
                        return serde_json::from_str(data.unwrap()).unwrap();
                    }
                    continue; // a keep-alive comment
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream ended");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("no status event within 10 s")
    }
}

async fn sse_pushes_each_change_to_the_owner_only(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("sita").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let payment = started["payment_id"].as_str().unwrap();

    let mut events = Events::open(&app, &user, payment).await;
    assert_eq!(
        events.next().await["status"],
        "initiated",
        "the state it is in"
    );

    app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
        .await;
    let (status, _) = app.verify(&user, started["pidx"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let now = events.next().await;
    assert_eq!(now["status"], "completed");
    assert_eq!(now["id"], payment);

    // Not for anyone else, and not without signing in.
    let other = app.register("hari").await;
    let res = client()
        .get(app.url(&format!("/api/payments/{payment}/events")))
        .header("Authorization", format!("Token {}", other.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = client()
        .get(app.url(&format!("/api/payments/{payment}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn the_websocket_pushes_each_change(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("abebe").await;
    app.chapa_settings(|s| s.send_callbacks = false);
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
    assert_eq!(next_message(&mut socket).await["status"], "initiated");
    // Paid on Chapa's page; the signed webhook settles it, and the socket hears.
    app.sandbox()
        .chapa()
        .pay(checkout["tx_ref"].as_str().unwrap())
        .unwrap();
    assert_eq!(next_message(&mut socket).await["status"], "completed");

    // Another site's page cannot open it with the visitor's credentials.
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Token {}", user.token).parse().unwrap(),
    );
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a foreign Origin is refused");

    // Nor can another customer, nor anyone without credentials.
    let other = app.register("kebede").await;
    for (who, auth, status) in [
        ("another user", Some(format!("Token {}", other.token)), 404),
        ("no one", None, 401),
    ] {
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(auth) = auth {
            request
                .headers_mut()
                .insert("authorization", auth.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status().as_u16(), status, "{who}")
            }
            other => panic!("{who} was not refused: {other:?}"),
        }
    }
}

/// The next text message's JSON, within 10 s.
async fn next_message<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .unwrap();
    match message {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// One account holds a few live-status streams at most (8), so it cannot take every
/// connection place; another account is not held up, and a closed stream frees its
/// place.
async fn one_account_holds_a_few_live_streams_at_most(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let user = app.register("sita").await;
    let other = app.register("ram").await;
    let started = app.initiate(&user, &app.plan_id("Basic").await).await;
    let payment = started["payment_id"].as_str().unwrap();
    let theirs = app.initiate(&other, &app.plan_id("Basic").await).await;

    let mut open = Vec::new();
    for _ in 0..8 {
        let mut events = Events::open(&app, &user, payment).await;
        assert_eq!(events.next().await["status"], "initiated");
        open.push(events);
    }
    let refused = client()
        .get(app.url(&format!("/api/payments/{payment}/events")))
        .header("Authorization", format!("Token {}", user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");

    let mut others = Events::open(&app, &other, theirs["payment_id"].as_str().unwrap()).await;
    assert_eq!(others.next().await["status"], "initiated");

    drop(open.pop());
    // The server sees the stream end when it next writes to it: within its 15 s
    // keep-alive at the latest.
    let reopened = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let res = client()
                .get(app.url(&format!("/api/payments/{payment}/events")))
                .header("Authorization", format!("Token {}", user.token))
                .send()
                .await
                .unwrap();
            if res.status() == StatusCode::OK {
                return res;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a closed stream gives its place back");
}

test_both!(
    sse_pushes_each_change_to_the_owner_only,
    the_websocket_pushes_each_change,
    one_account_holds_a_few_live_streams_at_most,
);

/// Two tijori processes on one PostgreSQL: the browser listens to one, the payment
/// is settled by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_one_process_reaches_a_listener_on_another() {
    if tijori_testkit::postgres_skipped() {
        eprintln!("skipped: no PostgreSQL");
        return;
    }
    tijori_testkit::run(async {
        let app = TestApp::spawn(TestDatabase::postgres().await).await;
        let user = app.register("ram").await;
        let started = app.initiate(&user, &app.plan_id("Basic").await).await;
        let payment = started["payment_id"].as_str().unwrap();

        // The second process reaches the same Khalti sandbox (the first one's).
        let sandbox_api = app.url("/sandbox/khalti/api/v2/");
        let other = app
            .sibling(|c| {
                c.khalti_secret_key = Some(tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY.into());
                c.khalti_base_url = Some(sandbox_api);
                c.demo = Some(false);
                c.worker = false;
            })
            .await;
        let mut events = Events::open(&other, &user, payment).await;
        assert_eq!(events.next().await["status"], "initiated");

        app.pay_on_checkout(started["payment_url"].as_str().unwrap(), "pay")
            .await;
        let (status, _) = app.verify(&user, started["pidx"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            events.next().await["status"],
            "completed",
            "settled by the first process, heard by the second"
        );
    })
    .await;
}
