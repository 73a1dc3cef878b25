//! The client: the merchant's key and code, the signed form and redirect, and the one HTTP
//! call eSewa offers.

use std::fmt;
use std::sync::Arc;

use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::callback::{verify_callback, Callback, CallbackError};
use crate::config::{with_trailing_slash, Config};
use crate::error::{Error, RawAnswer};
use crate::form::{sign_form, FormRequest, SignedForm};
use crate::paisa::Paisa;
use crate::status::{interpret_status, invalid, StatusAnswer};
use crate::transaction_uuid::TransactionUuid;

/// Answers larger than this are not read to the end: a status answer is about 150 bytes,
/// and a misrouted request must not make us buffer an arbitrary download.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The form's path under the form host (esewa.md §1.1).
const FORM_PATH: &str = "api/epay/main/v2/form";
/// The status API's path under the status host, with the docs' trailing slash (esewa.md
/// §1.1: whether eSewa also answers without it is unconfirmed).
const STATUS_PATH: &str = "api/epay/transaction/status/";

/// Hosts where the UAT key must never sign (esewa.md §1.2).
const PRODUCTION_HOSTS: [&str; 2] = ["epay.esewa.com.np", "esewa.com.np"];

/// A client for eSewa's ePay v2, for one merchant.
///
/// Build it once and share it (cheap to clone): it holds one connection pool and the
/// merchant's key. The form and the redirect are handled offline; only
/// [`Client::status`] talks to eSewa, once per call, with no automatic retry (use
/// [`Error::is_transient`]).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    form_url: Url,
    status_url: Url,
    product_code: String,
    /// The HMAC key, trimmed. Never logged, never sent.
    secret_key: SecretString,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("form_url", &self.inner.form_url.as_str())
            .field("status_url", &self.inner.status_url.as_str())
            .field("product_code", &self.inner.product_code)
            .field("secret_key", &"[REDACTED]")
            .finish()
    }
}

impl Client {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// Fails with [`Error::InvalidInput`] when a URL is not http(s), the product code is
    /// empty or holds a character that would change the signed message (`,` `=`,
    /// whitespace, controls), the key is empty, or the public UAT key is configured on a
    /// production host.
    pub fn new(config: Config) -> Result<Client, Error> {
        let invalid = |reason: String| Error::InvalidInput { reason };
        let base_url = with_trailing_slash(config.base_url);
        let status_base = with_trailing_slash(config.status_url);
        for (name, url) in [("base_url", &base_url), ("status_url", &status_base)] {
            if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
                return Err(invalid(format!("{name} must be an http(s) URL, got {url}")));
            }
        }
        let form_url = base_url
            .join(FORM_PATH)
            .map_err(|e| invalid(format!("cannot join {FORM_PATH} onto base_url: {e}")))?;
        let status_url = status_base
            .join(STATUS_PATH)
            .map_err(|e| invalid(format!("cannot join {STATUS_PATH} onto status_url: {e}")))?;

        let product_code = config.product_code.trim().to_string();
        let usable = !product_code.is_empty()
            && !product_code
                .chars()
                .any(|c| c == ',' || c == '=' || c.is_whitespace() || c.is_control());
        if !usable {
            return Err(invalid(format!(
                "the eSewa product code {product_code:?} is empty or holds ',', '=', spaces or control characters"
            )));
        }

        let key = config.secret_key.expose_secret().trim();
        if key.is_empty() {
            return Err(invalid("the eSewa secret key is empty".into()));
        }
        let on_production = [&base_url, &status_base].iter().any(|url| {
            url.host_str()
                .is_some_and(|h| PRODUCTION_HOSTS.contains(&h))
        });
        if on_production && key == Config::UAT_SECRET_KEY {
            return Err(invalid(
                "the public UAT secret key cannot sign on eSewa's production hosts".into(),
            ));
        }
        let secret_key = SecretString::from(key);

        let http = wallet_http::client(
            config.timeout,
            config.connect_timeout,
            concat!("esewa-rust/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| invalid(format!("could not set up the HTTP client: {e}")))?;

        Ok(Client {
            inner: Arc::new(Inner {
                http,
                form_url,
                status_url,
                product_code,
                secret_key,
            }),
        })
    }

    /// The merchant code this client signs for.
    pub fn product_code(&self) -> &str {
        &self.inner.product_code
    }

    /// Where the payer's browser posts the form: `<base_url>api/epay/main/v2/form`.
    pub fn form_url(&self) -> &Url {
        &self.inner.form_url
    }

    /// Builds the form for the payer's browser and signs it (esewa.md §3): every amount
    /// as rupee text, `total_amount` the sum of the parts, and the signature over
    /// `total_amount,transaction_uuid,product_code` with the exact text posted.
    ///
    /// Offline: nothing is sent. Refuses ([`Error::InvalidInput`]) a zero amount, a total
    /// that does not fit, or a non-http(s) return URL.
    pub fn sign_form(&self, request: &FormRequest) -> Result<SignedForm, Error> {
        sign_form(
            request,
            self.inner.form_url.clone(),
            &self.inner.product_code,
            self.inner.secret_key.expose_secret().as_bytes(),
        )
    }

    /// Decodes and verifies a success redirect's `data` (esewa.md §4.2): base64 JSON
    /// whose signature, over the fields its `signed_field_names` lists, with the values
    /// as received, must match this merchant's key (compared in constant time), and whose
    /// `product_code` must be this merchant's.
    ///
    /// `data` is the query parameter's value, percent-encoded or not (see
    /// [`callback_data_from_query`](crate::callback_data_from_query)). Offline. A valid
    /// callback is evidence only: check [`Callback::confirms`], then ask
    /// [`Client::status`] and act on that.
    pub fn verify_callback(&self, data: &str) -> Result<Callback, CallbackError> {
        verify_callback(
            data,
            &self.inner.product_code,
            self.inner.secret_key.expose_secret().as_bytes(),
        )
    }

    /// Asks eSewa where a payment stands (esewa.md §5):
    /// `GET <status_url>api/epay/transaction/status/?product_code=…&total_amount=…&transaction_uuid=…`.
    ///
    /// `total_amount` is the payment's own total as stored by the merchant, never the
    /// redirect's (esewa.md §10.10); it is sent as the same rupee text as the form. Every
    /// status is an answer ([`StatusAnswer`]), including `NOT_FOUND`; eSewa's outage
    /// envelope is [`Error::Unavailable`]. Safe to repeat.
    pub async fn status(
        &self,
        transaction_uuid: &TransactionUuid,
        total_amount: Paisa,
    ) -> Result<StatusAnswer, Error> {
        let mut url = self.inner.status_url.clone();
        url.query_pairs_mut()
            .append_pair("product_code", &self.inner.product_code)
            .append_pair("total_amount", &total_amount.to_rupees())
            .append_pair("transaction_uuid", transaction_uuid.as_str());
        let raw = self.get(url).await?;
        interpret_status(raw, transaction_uuid.as_str(), &self.inner.product_code)
    }

    /// Sends one GET and reads the whole answer, whatever its status code.
    async fn get(&self, url: Url) -> Result<RawAnswer, Error> {
        let path = url.path().to_string();
        let sent = self.inner.http.get(url).header(ACCEPT, "application/json");
        let call = wallet_http::Call {
            gateway: "esewa",
            method: "GET",
            path: &path,
        };
        let answer = wallet_http::exchange(sent, call, MAX_ANSWER_BYTES)
            .await
            .map_err(|(failure, _)| transport_error(failure))?;
        let (http_status, too_large) = (answer.http_status, answer.too_large);
        let raw = RawAnswer {
            http_status,
            body: answer.body,
        };
        if too_large {
            return Err(invalid(
                raw,
                format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
            ));
        }
        Ok(raw)
    }
}

/// A timeout (including the connect timeout) is [`Error::Timeout`]; anything else that
/// kept an answer from arriving is [`Error::Unreachable`].
fn transport_error(failure: wallet_http::Failure) -> Error {
    match failure {
        wallet_http::Failure::Timeout => Error::Timeout,
        wallet_http::Failure::Unreachable(source) => Error::Unreachable { source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str, status: &str, code: &str, key: &str) -> Config {
        Config::new(
            base.parse().unwrap(),
            status.parse().unwrap(),
            code,
            SecretString::from(key),
        )
    }

    #[test]
    fn endpoints_keep_a_mount_path() {
        let mut c = config("http://x/", "http://x/", "EPAYTEST", "k");
        // Bypass Config::new's normalisation: Client::new must normalise too.
        c.base_url = "http://127.0.0.1:8000/sandbox/esewa".parse().unwrap();
        c.status_url = "http://127.0.0.1:8000/sandbox/esewa".parse().unwrap();
        let client = Client::new(c).unwrap();
        assert_eq!(
            client.form_url().as_str(),
            "http://127.0.0.1:8000/sandbox/esewa/api/epay/main/v2/form"
        );
        assert_eq!(
            client.inner.status_url.as_str(),
            "http://127.0.0.1:8000/sandbox/esewa/api/epay/transaction/status/"
        );
        let uat = Client::new(Config::uat()).unwrap();
        assert_eq!(
            uat.form_url().as_str(),
            "https://rc-epay.esewa.com.np/api/epay/main/v2/form"
        );
        assert_eq!(
            uat.inner.status_url.as_str(),
            "https://rc.esewa.com.np/api/epay/transaction/status/"
        );
    }

    #[test]
    fn new_refuses_bad_config_without_echoing_the_key() {
        let https = "https://rc-epay.esewa.com.np/";
        for bad in [
            config("ftp://x/", https, "EPAYTEST", "k"),
            config(https, "mailto:a@b", "EPAYTEST", "k"),
            config(https, https, "", "k"),
            config(https, https, "EPAY,TEST", "k"),
            config(https, https, "EPAY=TEST", "k"),
            config(https, https, "EPAY TEST", "k"),
            config(https, https, "EPAYTEST", " \n"),
            Config::production("SHOP", SecretString::from(Config::UAT_SECRET_KEY)),
            config(
                https,
                "https://esewa.com.np/",
                "SHOP",
                Config::UAT_SECRET_KEY,
            ),
        ] {
            let err = Client::new(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
            assert!(!format!("{err:?} {err}").contains(Config::UAT_SECRET_KEY));
        }
        assert!(Client::new(Config::production("SHOP", SecretString::from("live-key"))).is_ok());
    }

    #[test]
    fn the_key_is_trimmed_and_hidden() {
        let mut c = Config::uat();
        c.secret_key = SecretString::from(format!("{}\n", Config::UAT_SECRET_KEY));
        let client = Client::new(c).unwrap();
        assert_eq!(
            client.inner.secret_key.expose_secret(),
            Config::UAT_SECRET_KEY
        );
        let shown = format!("{client:?}");
        assert!(!shown.contains(Config::UAT_SECRET_KEY), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        assert!(shown.contains("EPAYTEST"), "{shown}");
    }
}
