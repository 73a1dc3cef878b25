use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tijori_sandbox::{KhaltiSettings, Sandbox, SandboxConfig, DEFAULT_KHALTI_SECRET_KEY};

pub const ALPHABET: &str = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

pub struct Harness {
    /// Sandbox root, ends with `/`.
    pub base: String,
    pub sandbox: Sandbox,
    pub client: reqwest::Client,
}

/// The documented initiate sample (khalti.md §3.1).
pub fn sample() -> Value {
    json!({
        "return_url": "https://example.com/payment/",
        "website_url": "https://example.com/",
        "amount": 1300,
        "purchase_order_id": "test12",
        "purchase_order_name": "test",
        "customer_info": { "name": "Khalti Bahadur", "email": "example@gmail.com", "phone": "9800000123" },
        "amount_breakdown": [ { "label": "Mark Price", "amount": 1000 }, { "label": "VAT", "amount": 300 } ],
        "product_details": [ { "identity": "1234567890", "name": "Khalti logo", "total_price": 1300, "quantity": 1, "unit_price": 1300 } ],
        "merchant_username": "merchant_name",
        "merchant_extra": "merchant_extra"
    })
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(KhaltiSettings::default()).await
    }

    pub async fn with(settings: KhaltiSettings) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}/");
        let sandbox = Sandbox::new(SandboxConfig {
            public_url: base.parse().unwrap(),
            khalti: settings,
        });
        let router = sandbox.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Harness {
            base,
            sandbox,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST JSON to an API path with `Authorization: Key <default secret>`.
    pub async fn api(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("Authorization", format!("Key {DEFAULT_KHALTI_SECRET_KEY}"))
            .json(body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    pub async fn initiate(&self, body: &Value) -> (StatusCode, Value) {
        self.api("khalti/api/v2/epayment/initiate/", body).await
    }

    pub async fn lookup(&self, pidx: &str) -> (StatusCode, Value) {
        self.api("khalti/api/v2/epayment/lookup/", &json!({ "pidx": pidx }))
            .await
    }

    /// Initiates the documented sample with `changes` merged in; returns the pidx.
    pub async fn new_payment(&self, changes: Value) -> String {
        let mut body = sample();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, json) = self.initiate(&body).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        json["pidx"].as_str().unwrap().to_owned()
    }

    /// Submits the checkout form.
    pub async fn submit(
        &self,
        pidx: &str,
        khalti_id: &str,
        mpin: &str,
        otp: &str,
        action: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("khalti/pay/"))
            .form(&[
                ("pidx", pidx),
                ("khalti_id", khalti_id),
                ("mpin", mpin),
                ("otp", otp),
                ("action", action),
            ])
            .send()
            .await
            .unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
    (status, json)
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}
