use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode as AxumStatus, Uri};
use hmac::{Hmac, Mac};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use tijori_sandbox::{ChapaSettings, Sandbox, SandboxConfig, DEFAULT_CHAPA_SECRET_KEY};
use tokio::sync::{mpsc, Mutex};

pub struct Harness {
    /// Sandbox root, ends with `/`.
    pub base: String,
    pub sandbox: Sandbox,
    pub client: reqwest::Client,
}

/// The documented initialize sample (chapa.md §2.1), with a fresh tx_ref.
pub fn sample(tx_ref: &str) -> Value {
    json!({
        "amount": "100",
        "currency": "ETB",
        "email": "abebech_bekele@gmail.com",
        "first_name": "Bilen",
        "last_name": "Gizachew",
        "phone_number": "0912345678",
        "tx_ref": tx_ref,
        "return_url": "https://merchant.example/return?order=7",
        "customization": {
            "title": "Payment for my favourite merchant",
            "description": "I love online payments"
        },
        "meta": { "invoices": [ {"key": "Paracetamol", "value": "2pcs"} ] }
    })
}

pub fn fresh_ref() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "TX-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(ChapaSettings::default()).await
    }

    pub async fn with(settings: ChapaSettings) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}/");
        let sandbox = Sandbox::with_chapa(SandboxConfig::new(base.parse().unwrap()), settings);
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

    pub fn bearer() -> String {
        format!("Bearer {DEFAULT_CHAPA_SECRET_KEY}")
    }

    pub async fn initialize(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url("chapa/v1/transaction/initialize"))
            .header("Authorization", Harness::bearer())
            .json(body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    pub async fn verify(&self, tx_ref: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(&format!("chapa/v1/transaction/verify/{tx_ref}")))
            .header("Authorization", Harness::bearer())
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    pub async fn refund(&self, reference: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(&format!("chapa/v1/refund/{reference}")))
            .header("Authorization", Harness::bearer())
            .form(form)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// Initializes the sample with `changes` merged in; returns (tx_ref, checkout_url).
    pub async fn new_payment(&self, changes: Value) -> (String, String) {
        let tx_ref = fresh_ref();
        let mut body = sample(&tx_ref);
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, json) = self.initialize(&body).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let url = json["data"]["checkout_url"].as_str().unwrap().to_owned();
        (body["tx_ref"].as_str().unwrap().to_owned(), url)
    }

    /// Submits the checkout form of `checkout_url` with `action`.
    pub async fn submit(&self, checkout_url: &str, action: &str) -> reqwest::Response {
        self.client
            .post(checkout_url)
            .form(&[("action", action)])
            .send()
            .await
            .unwrap()
    }

    pub async fn put_settings(&self, changes: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .put(self.url("chapa/_sandbox/settings"))
            .json(&changes)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// The sandbox record, polled until `pred` holds (webhook logs fill in async).
    pub async fn record_until(&self, tx_ref: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let chapa = self.sandbox.chapa();
        for _ in 0..200 {
            let record = chapa.payment(tx_ref).unwrap();
            if pred(&record) {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("condition never held: {}", chapa.payment(tx_ref).unwrap());
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

pub fn hmac_hex(key: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: std::time::Instant,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub fn query(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(self.uri.query().unwrap_or_default()).unwrap()
    }
}

/// A tiny HTTP server that records every request; it answers 500 to the first
/// `fail_first` requests, then 200.
pub struct Receiver {
    pub base: String,
    rx: Mutex<mpsc::UnboundedReceiver<Hit>>,
}

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Hit>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = ReceiverState {
            tx,
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
        };
        let app = axum::Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            base: format!("http://{addr}/"),
            rx: Mutex::new(rx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next request, within 5 s.
    pub async fn next(&self) -> Hit {
        tokio::time::timeout(Duration::from_secs(5), self.rx.lock().await.recv())
            .await
            .expect("no request within 5 s")
            .unwrap()
    }

    /// Asserts that no request arrives within `ms`.
    pub async fn none_within(&self, ms: u64) {
        let got =
            tokio::time::timeout(Duration::from_millis(ms), self.rx.lock().await.recv()).await;
        if let Ok(hit) = got {
            panic!("unexpected request: {hit:?}");
        }
    }
}

async fn record(
    State(state): State<ReceiverState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let _ = state.tx.send(Hit {
        method,
        uri,
        headers,
        body,
        at: std::time::Instant::now(),
    });
    let failing = state
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::OK
    }
}

/// Settings with a webhook receiver and a fast retry schedule.
pub fn webhook_settings(receiver: &Receiver) -> ChapaSettings {
    ChapaSettings {
        webhook_url: Some(receiver.url("webhooks/chapa")),
        webhook_retry_ms: vec![30, 30, 30],
        ..ChapaSettings::default()
    }
}
