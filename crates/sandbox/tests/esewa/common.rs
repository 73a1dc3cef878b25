use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;
use tijori_sandbox::{EsewaSettings, Sandbox, SandboxConfig};

/// eSewa's UAT secret, written out here rather than taken from the crate, so a wrong
/// constant there fails these tests.
pub const SECRET: &str = "8gBm/:&EnhH.1/q";
pub const PRODUCT: &str = "EPAYTEST";
pub const SUCCESS_URL: &str = "https://merchant.example/esewa/success";
pub const FAILURE_URL: &str = "https://merchant.example/esewa/failure";

pub const FORM: &str = "esewa/api/epay/main/v2/form";
pub const STATUS: &str = "esewa/api/epay/transaction/status/";
pub const SETTINGS: &str = "esewa/_sandbox/settings";

pub struct Harness {
    /// Sandbox root, ends with `/`.
    pub base: String,
    pub sandbox: Sandbox,
    pub client: reqwest::Client,
}

/// base64(HMAC-SHA256(secret, message)), computed here independently of the sandbox.
pub fn hmac_b64(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

pub fn fresh_uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "T-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A form's fields, in order, as a merchant builds them.
#[derive(Clone, Debug)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// amount + tax = total, no charges, signed with [`SECRET`].
    pub fn new(uuid: &str, amount: &str, tax: &str, total: &str) -> Form {
        let mut form = Form(
            [
                ("amount", amount),
                ("tax_amount", tax),
                ("total_amount", total),
                ("transaction_uuid", uuid),
                ("product_code", PRODUCT),
                ("product_service_charge", "0"),
                ("product_delivery_charge", "0"),
                ("success_url", SUCCESS_URL),
                ("failure_url", FAILURE_URL),
                (
                    "signed_field_names",
                    "total_amount,transaction_uuid,product_code",
                ),
                ("signature", ""),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        form.sign(SECRET);
        form
    }

    /// The default test form: Rs. 100 + 10 tax.
    pub fn sample(uuid: &str) -> Form {
        Form::new(uuid, "100", "10", "110")
    }

    pub fn get(&self, name: &str) -> &str {
        &self.0.iter().find(|(k, _)| k == name).unwrap().1
    }

    /// Replaces (or adds) a field, without re-signing.
    pub fn set(mut self, name: &str, value: &str) -> Form {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    pub fn without(mut self, name: &str) -> Form {
        self.0.retain(|(k, _)| k != name);
        self
    }

    /// Signs over `signed_field_names` with `secret`.
    pub fn sign(&mut self, secret: &str) {
        let names = self.get("signed_field_names").to_owned();
        let message = names
            .split(',')
            .map(|n| format!("{n}={}", self.get(n)))
            .collect::<Vec<_>>()
            .join(",");
        let signature = hmac_b64(secret, &message);
        *self = self.clone().set("signature", &signature);
    }

    pub fn signed(mut self) -> Form {
        self.sign(SECRET);
        self
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(EsewaSettings::default()).await
    }

    pub async fn with(settings: EsewaSettings) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}/");
        let sandbox = Sandbox::new(SandboxConfig::new(base.parse().unwrap())).with_esewa(settings);
        let router = sandbox.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Harness {
            base,
            sandbox,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn checkout_url(&self, uuid: &str) -> String {
        self.url(&format!("esewa/checkout/{uuid}"))
    }

    /// Posts a form, urlencoded, as a browser does.
    pub async fn post_form(&self, form: &Form) -> reqwest::Response {
        self.client
            .post(self.url(FORM))
            .form(&form.0)
            .send()
            .await
            .unwrap()
    }

    /// Posts the sample form for a fresh uuid; asserts it reached the hosted page.
    pub async fn new_payment(&self) -> String {
        let uuid = fresh_uuid();
        let response = self.post_form(&Form::sample(&uuid)).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(location(&response), self.checkout_url(&uuid));
        uuid
    }

    /// Submits the hosted page's form.
    pub async fn submit(
        &self,
        uuid: &str,
        esewa_id: &str,
        password: &str,
        token: &str,
        action: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.checkout_url(uuid))
            .form(&[
                ("esewa_id", esewa_id),
                ("password", password),
                ("token", token),
                ("action", action),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Pays with test ID 9806800001 and the right password and token.
    pub async fn pay(&self, uuid: &str) -> reqwest::Response {
        self.submit(uuid, "9806800001", "Nepal@123", "123456", "pay")
            .await
    }

    /// The status API's answer, as text.
    pub async fn status_text(&self, query: &[(&str, &str)]) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(STATUS))
            .query(query)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// The status API's answer for the sample form's product and total.
    pub async fn status(&self, uuid: &str) -> (StatusCode, Value) {
        let (status, text) = self
            .status_text(&[
                ("product_code", PRODUCT),
                ("total_amount", "110"),
                ("transaction_uuid", uuid),
            ])
            .await;
        (status, parse(&text))
    }

    pub async fn put_settings(&self, changes: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .put(self.url(SETTINGS))
            .json(&changes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, parse(&response.text().await.unwrap()))
    }

    pub async fn control(&self, uuid: &str, action: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(&format!("esewa/_sandbox/payments/{uuid}/{action}")))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, parse(&response.text().await.unwrap()))
    }
}

pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
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

/// A success redirect taken apart: the JSON text inside `data`, parsed.
pub struct SuccessData {
    pub json: Value,
    pub text: String,
}

/// Splits `success_url?data=…`, percent-decodes and base64-decodes `data`, and checks
/// its signature with an HMAC computed here over the fields its `signed_field_names`
/// lists, in order, from the exact text received (a grouped total without its commas).
pub fn success_data(location: &str, success_url: &str, secret: &str) -> SuccessData {
    let encoded = location
        .strip_prefix(&format!("{success_url}?data="))
        .unwrap_or_else(|| panic!("{location} is not {success_url}?data=…"));
    assert!(
        !encoded.contains(['+', '/', '=']),
        "base64 is percent-encoded: {encoded}"
    );
    let b64: String = url::form_urlencoded::parse(format!("d={encoded}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let text = String::from_utf8(STANDARD.decode(&b64).unwrap()).unwrap();
    let json = parse(&text);
    let names = json["signed_field_names"].as_str().unwrap();
    assert_eq!(
        names,
        "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names"
    );
    let message = names
        .split(',')
        .map(|n| {
            let value = json[n].as_str().unwrap();
            // esewa.md §4.2 step 5: a grouped total is signed without its commas.
            let value = if n == "total_amount" {
                value.replace(',', "")
            } else {
                value.to_owned()
            };
            format!("{n}={value}")
        })
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        json["signature"].as_str().unwrap(),
        hmac_b64(secret, &message),
        "signature over {message}"
    );
    SuccessData { json, text }
}
