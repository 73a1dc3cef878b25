//! The real application on port 0, a fresh database per test, and a customer's moves.

use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tijori::{Application, Config};
use tijori_sandbox::Sandbox;
use tijori_testkit::TestDatabase;
use url::Url;

pub struct TestApp {
    pub base: Url,
    pub sandbox: Option<Sandbox>,
    pub tijori: tijori_core::Tijori,
    /// The database this app owns (None for a second app sharing another's).
    pub db: Option<TestDatabase>,
    /// Stops the server when the test ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub struct TestUser {
    pub id: tijori_core::id::UserId,
    pub username: String,
    pub token: String,
}

/// The test app's configuration: the production defaults, except that the suite,
/// which registers and signs in many users from one address (127.0.0.1), may do so.
/// (The limits themselves are tested with their own settings, in abuse.rs.)
pub fn config(database_url: &str) -> Config {
    Config {
        gateway_timeout: Duration::from_secs(2),
        signup_limit: 1_000_000,
        signin_address_limit: 1_000_000,
        ..Config::embedded(database_url)
    }
}

/// A client that follows no redirects, so tests see where they point.
pub fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// A browser-like client: keeps cookies, follows no redirects.
pub fn browser() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

impl TestApp {
    /// The app on its built-in sandbox, with demo plans.
    pub async fn spawn(db: TestDatabase) -> TestApp {
        let config = config(&db.url);
        Self::spawn_with(db, config).await
    }

    pub async fn spawn_with(db: TestDatabase, config: Config) -> TestApp {
        let mut app = Self::start(config).await;
        app.db = Some(db);
        app
    }

    /// Another tijori process on the same database as `self`, configured as given.
    pub async fn sibling(&self, configure: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = config(&self.db.as_ref().expect("owns its database").url);
        configure(&mut config);
        Self::start(config).await
    }

    /// The app on a clock the test moves, with no background worker: the test runs
    /// the due jobs itself (`tijori.run_due_jobs`).
    pub async fn spawn_with_clock(
        db: TestDatabase,
        clock: std::sync::Arc<tijori_core::clock::ManualClock>,
    ) -> TestApp {
        Self::spawn_with_clock_and(db, clock, |_| {}).await
    }

    /// `spawn_with_clock`, with the configuration changed first.
    pub async fn spawn_with_clock_and(
        db: TestDatabase,
        clock: std::sync::Arc<tijori_core::clock::ManualClock>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = config(&db.url);
        config.worker = false;
        configure(&mut config);
        let mut app = Self::start_with_clock(config, clock).await;
        app.db = Some(db);
        app
    }

    async fn start(config: Config) -> TestApp {
        Self::start_with_clock(config, std::sync::Arc::new(tijori_core::clock::SystemClock)).await
    }

    async fn start_with_clock(
        config: Config,
        clock: std::sync::Arc<dyn tijori_core::clock::Clock>,
    ) -> TestApp {
        let app = Application::build_with_clock(&config, clock)
            .await
            .expect("the app builds");
        if config.demo() {
            tijori::demo::seed(app.tijori())
                .await
                .expect("demo data seeds");
        }
        let base = app.public_url().clone();
        let sandbox = app.sandbox().cloned();
        let tijori = app.tijori().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            sandbox,
            tijori,
            db: None,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> Url {
        self.base.join(path.trim_start_matches('/')).unwrap()
    }

    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox.as_ref().expect("this app runs on its sandbox")
    }

    pub async fn register(&self, username: &str) -> TestUser {
        let res = client()
            .post(self.url("/api/auth/register"))
            .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "register {username}");
        let body: Value = res.json().await.unwrap();
        TestUser {
            id: tijori_core::id::UserId::parse(body["id"].as_str().unwrap()).unwrap(),
            username: username.to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A browser client signed in as `user` (session cookie), and its CSRF token. It
    /// signs in as a browser's script does: same-origin fetch, which a browser marks
    /// with `Sec-Fetch-*` headers.
    pub async fn sign_in_browser(&self, user: &TestUser) -> (Client, String) {
        let (browser, res) = self.browser_login(user).await;
        let body: Value = res.json().await.unwrap();
        (browser, body["csrf_token"].as_str().unwrap().to_owned())
    }

    /// `sign_in_browser`'s sign-in, answered (its cookies are in the headers).
    pub async fn browser_login(&self, user: &TestUser) -> (Client, Response) {
        let browser = browser();
        let res = browser
            .post(self.url("/api/auth/login"))
            .header("sec-fetch-mode", "cors")
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"username": user.username, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        (browser, res)
    }

    /// Signs in over the API again: a second, independent token for the same user.
    pub async fn issue_second_token(&self, user: &TestUser) -> String {
        let res = client()
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": user.username, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn plans(&self) -> Vec<Value> {
        let res = client()
            .get(self.url("/api/subscriptions/plans/"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Vec<Value>>().await.unwrap()
    }

    pub async fn plan_id(&self, name: &str) -> String {
        self.plans()
            .await
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no plan {name}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn post(&self, user: &TestUser, path: &str, body: Value) -> Response {
        client()
            .post(self.url(path))
            .header("Authorization", format!("Token {}", user.token))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `post` under an `Idempotency-Key`.
    pub async fn post_keyed(
        &self,
        user: &TestUser,
        path: &str,
        key: &str,
        body: Value,
    ) -> Response {
        client()
            .post(self.url(path))
            .header("Authorization", format!("Token {}", user.token))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, user: &TestUser, path: &str) -> Response {
        client()
            .get(self.url(path))
            .header("Authorization", format!("Token {}", user.token))
            .send()
            .await
            .unwrap()
    }

    /// Initiates a subscription to `plan` and returns the answer's body.
    pub async fn initiate(&self, user: &TestUser, plan_id: &str) -> Value {
        let res = self
            .post(
                user,
                "/api/subscriptions/initiate/",
                json!({"plan_id": plan_id}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "initiate");
        res.json().await.unwrap()
    }

    pub async fn verify(&self, user: &TestUser, pidx: &str) -> (StatusCode, Value) {
        let res = self
            .post(user, "/api/subscriptions/verify/", json!({"pidx": pidx}))
            .await;
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    /// Pays on the sandbox's hosted checkout page as a customer does (the form with
    /// the test Khalti ID, MPIN and OTP) and returns where Khalti redirects to.
    pub async fn pay_on_checkout(&self, payment_url: &str, action: &str) -> Url {
        let pidx = Url::parse(payment_url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "pidx")
            .unwrap()
            .1
            .into_owned();
        let page = client().get(payment_url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the checkout page opens");
        let res = client()
            .post(self.url("/sandbox/khalti/pay/"))
            .form(&[
                ("pidx", pidx.as_str()),
                ("khalti_id", "9800000001"),
                ("mpin", "1111"),
                ("otp", "987654"),
                ("action", action),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "the checkout redirects back"
        );
        Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
    }

    pub async fn subscription(&self, user: &TestUser) -> Option<Value> {
        let res = self.get(user, "/api/subscriptions/me/").await;
        match res.status() {
            StatusCode::OK => Some(res.json().await.unwrap()),
            StatusCode::NOT_FOUND => None,
            other => panic!("me: unexpected {other}"),
        }
    }

    pub async fn payment(&self, user: &TestUser, id: &str) -> Value {
        let res = self.get(user, &format!("/api/payments/{id}/")).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// Every answer the gateway gave about this payment, as the store kept them.
    pub async fn gateway_answers(
        &self,
        payment_id: &str,
    ) -> Vec<tijori_core::store::GatewayAnswerRecord> {
        let id = tijori_core::id::PaymentId::parse(payment_id).unwrap();
        self.tijori.store().answers(&id).await.unwrap()
    }
}

/// Days between two RFC 3339 timestamps in a JSON body.
pub fn days_between(from: &Value, to: &Value) -> i64 {
    let f = chrono::DateTime::parse_from_rfc3339(from.as_str().unwrap()).unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(to.as_str().unwrap()).unwrap();
    (t - f).num_days()
}

/// The error envelope's code.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error envelope: {body}"))
}

/// The `Set-Cookie` of `name` in an answer, whole (value and attributes): a session
/// sets two cookies (the session's and Django's `csrftoken`), in no set order.
pub fn set_cookie(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// A page as a browser gets it: its status and its HTML.
pub async fn page(browser: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = browser.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    (status, res.text().await.unwrap())
}

/// A form sent as a browser sends it.
pub async fn post_form(
    browser: &Client,
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> Response {
    browser.post(app.url(path)).form(form).send().await.unwrap()
}

/// Where a redirect points.
pub fn location(res: &Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// The CSRF token a signed-in page carries in its `<meta name="csrf-token">`.
pub fn csrf_token(html: &str) -> String {
    let after = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no csrf-token meta tag in the page: {html}"));
    after.split('"').next().unwrap().to_owned()
}

/// A port on which nothing listens.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// The shop and Chapa ------------------------------------------------------------------

impl TestApp {
    pub async fn products(&self) -> Vec<Value> {
        let res = client()
            .get(self.url("/api/products/"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    pub async fn product(&self, id: &str) -> Value {
        self.products()
            .await
            .into_iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no product {id}"))
    }

    /// The id of the first demo product in `currency`.
    pub async fn product_in(&self, currency: &str) -> String {
        self.products()
            .await
            .into_iter()
            .find(|p| p["currency"] == currency)
            .unwrap_or_else(|| panic!("no product in {currency}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A new product (through the core, as `tijori product create` does).
    pub async fn new_product(&self, name: &str, price: &str, currency: &str, stock: u32) -> String {
        let currency = currency.parse().unwrap();
        self.tijori
            .create_product(tijori_core::shop::NewProduct {
                name: name.into(),
                description: String::new(),
                price: tijori_core::money::Money::parse_major(price, currency).unwrap(),
                stock,
            })
            .await
            .unwrap()
            .id
            .to_string()
    }

    pub async fn order(&self, user: &TestUser, items: Value) -> (StatusCode, Value) {
        let res = self
            .post(user, "/api/orders/", json!({ "items": items }))
            .await;
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    /// A pending order for `quantity` of `product`; returns its id.
    pub async fn order_of(&self, user: &TestUser, product: &str, quantity: i64) -> String {
        let (status, body) = self
            .order(user, json!([{"product_id": product, "quantity": quantity}]))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn initialize(
        &self,
        user: &TestUser,
        order_id: &str,
        gateway: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut body = json!({ "order_id": order_id });
        if let Some(g) = gateway {
            body["gateway"] = json!(g);
        }
        let res = self.post(user, "/api/payments/initialize/", body).await;
        let status = res.status();
        (status, res.json().await.unwrap())
    }

    pub async fn order_json(&self, user: &TestUser, order_id: &str) -> Value {
        let res = self.get(user, &format!("/api/orders/{order_id}/")).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// Waits (up to 10 s) until the order reaches `status`.
    pub async fn wait_for_order(&self, user: &TestUser, order_id: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let order = self.order_json(user, order_id).await;
            if order["status"] == status {
                return order;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "order {order_id} never became {status}: {order}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Changes the built-in Chapa sandbox's behaviour.
    pub fn chapa_settings(&self, change: impl FnOnce(&mut tijori_sandbox::ChapaSettings)) {
        let control = self.sandbox().chapa();
        let mut settings = control.settings();
        change(&mut settings);
        control.set_settings(settings);
    }

    /// POSTs a webhook body to the Chapa endpoint with the given signature headers.
    pub async fn chapa_webhook(&self, body: &[u8], headers: &[(&str, String)]) -> Response {
        let mut req = client()
            .post(self.url("/api/payments/chapa/webhook/"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().await.unwrap()
    }

    pub async fn operator_events(&self) -> Vec<tijori_core::store::OperatorEvent> {
        self.tijori.operator_events(true).await.unwrap()
    }

    pub async fn webhook_deliveries(&self) -> Vec<tijori_core::store::WebhookDelivery> {
        self.tijori.webhook_deliveries().await.unwrap()
    }
}

/// `hex(HMAC-SHA256(secret, message))`, as Chapa signs (chapa.md §5.3).
pub fn chapa_hmac(secret: &str, message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// A webhook body as Chapa sends it for a charge (chapa.md §5.2).
pub fn chapa_charge_body(tx_ref: &str, event: &str, status: &str, amount: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": event,
        "type": "API",
        "status": status,
        "tx_ref": tx_ref,
        "reference": "APfake123",
        "amount": amount,
        "charge": "0.00",
        "currency": "ETB",
        "mode": "test",
        "email": "someone@example.com",
        "created_at": "2026-11-21T10:00:00.000000Z",
        "updated_at": "2026-11-21T10:00:01.000000Z"
    }))
    .unwrap()
}

/// The headers of a properly signed delivery of `body`.
pub fn chapa_signed(body: &[u8]) -> Vec<(&'static str, String)> {
    let secret = tijori_sandbox::DEFAULT_CHAPA_WEBHOOK_SECRET;
    vec![
        ("x-chapa-signature", chapa_hmac(secret, body)),
        ("chapa-signature", chapa_hmac(secret, secret.as_bytes())),
    ]
}

impl TestApp {
    /// An administrator, signed in over the API.
    pub async fn admin(&self, username: &str) -> TestUser {
        let user = self
            .tijori
            .create_user(
                username,
                &format!("{username}@example.com"),
                "correct horse battery",
                true,
            )
            .await
            .unwrap();
        let res = client()
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": username, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        TestUser {
            id: user.id,
            username: username.to_owned(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }
}

/// A mail server that takes every message and keeps it (SMTP's happy path, enough
/// for lettre without TLS or authentication): what reached it, as raw DATA.
pub struct SmtpSink {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 sink ESMTP\r\n").await.ok()?;
                    while let Some(line) = lines.next_line().await.ok()? {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let answer: &[u8] = match verb.as_str() {
                            "DATA" => {
                                write.write_all(b"354 go on\r\n").await.ok()?;
                                let mut data = String::new();
                                while let Some(l) = lines.next_line().await.ok()? {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(&l);
                                    data.push('\n');
                                }
                                kept.lock().unwrap().push(data);
                                b"250 kept\r\n"
                            }
                            "QUIT" => {
                                write.write_all(b"221 bye\r\n").await.ok()?;
                                return Some(());
                            }
                            _ => b"250 ok\r\n",
                        };
                        write.write_all(answer).await.ok()?;
                    }
                    Some(())
                });
            }
        });
        SmtpSink { url, received }
    }
}
