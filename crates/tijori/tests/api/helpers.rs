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

pub fn config(database_url: &str) -> Config {
    Config {
        gateway_timeout: Duration::from_secs(2),
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

    async fn start(config: Config) -> TestApp {
        let app = Application::build(&config).await.expect("the app builds");
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

    /// A browser client signed in as `user` (session cookie), and its CSRF token.
    pub async fn sign_in_browser(&self, user: &TestUser) -> (Client, String) {
        let browser = browser();
        let res = browser
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": user.username, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        (browser, body["csrf_token"].as_str().unwrap().to_owned())
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
