//! The HTTP client: sending calls and turning Khalti's answers into typed results.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::{with_trailing_slash, Config};
use crate::error::{Error, RawAnswer};
use crate::paisa::{de_lenient_u64, Paisa};
use crate::types::{
    InitiateRequest, Initiated, Lookup, LookupStatus, RefundRequest, Refunded, WidgetVerification,
};

/// Answers larger than this are not read to the end: no Khalti answer comes close, and
/// a misrouted request must not make us buffer an arbitrary download.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A client for Khalti's merchant API.
///
/// Build it once and share it (it is cheap to clone): it holds one connection pool.
/// Every call is a single HTTP request with no automatic retry, because retrying an
/// initiate or a refund could create a second payment or refund; use
/// [`Error::is_transient`] to decide what to retry.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    refund_base: Url,
    /// `Key <secret>`, marked sensitive so that reqwest/hyper never print it.
    auth: HeaderValue,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("refund_base", &self.inner.refund_base.as_str())
            .field("secret_key", &"[REDACTED]")
            .finish()
    }
}

impl Client {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// Fails with [`Error::InvalidInput`] when `base_url` is not an http(s) URL, or the
    /// secret key is empty or holds characters that cannot go in an HTTP header.
    pub fn new(config: Config) -> Result<Client, Error> {
        let base_url = with_trailing_slash(config.base_url);
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(Error::InvalidInput {
                reason: format!("base_url must be an http(s) URL, got {base_url}"),
            });
        }
        let refund_base = refund_base(&base_url);

        let key = config.secret_key.expose_secret().trim();
        if key.is_empty() {
            return Err(Error::InvalidInput {
                reason: "the Khalti secret key is empty".into(),
            });
        }
        let mut auth =
            HeaderValue::from_str(&format!("Key {key}")).map_err(|_| Error::InvalidInput {
                reason:
                    "the Khalti secret key holds characters that cannot be sent in an HTTP header"
                        .into(),
            })?;
        auth.set_sensitive(true);

        let http = wallet_http::client(
            config.timeout,
            config.connect_timeout,
            concat!("khalti-rust/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| Error::InvalidInput {
            reason: format!("could not set up the HTTP client: {e}"),
        })?;

        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                refund_base,
                auth,
            }),
        })
    }

    /// Starts a payment (`POST epayment/initiate/`, khalti.md §3) and returns where to
    /// send the payer.
    ///
    /// Not safe to repeat blindly after a transient error: the first attempt may have
    /// created a payment. Khalti answers 200 on success and 400 with field errors
    /// ([`Error::Rejected`]) when it refuses the request.
    pub async fn initiate(&self, request: &InitiateRequest) -> Result<Initiated, Error> {
        let url = self.endpoint("epayment/initiate/")?;
        let raw = self.post(url, &request.to_json()).await?;
        let (wire, raw) = expect_success::<InitiatedWire>(raw)?;
        if wire.pidx.trim().is_empty() {
            return Err(invalid(raw, "the answer has an empty pidx".into()));
        }
        Ok(Initiated {
            pidx: wire.pidx,
            payment_url: wire.payment_url,
            expires_at: wire.expires_at,
            expires_in: wire.expires_in,
            raw,
        })
    }

    /// Asks Khalti where a payment stands (`POST epayment/lookup/`, khalti.md §5).
    ///
    /// Expired and User canceled payments come back as `Ok` even though Khalti sends
    /// them with HTTP 400: the body, not the status code, decides (khalti.md §5.2, §8.5).
    /// An answer about a different `pidx` than the one asked for is an
    /// [`Error::InvalidAnswer`]. Safe to repeat.
    pub async fn lookup(&self, pidx: &str) -> Result<Lookup, Error> {
        let url = self.endpoint("epayment/lookup/")?;
        let raw = self.post(url, &serde_json::json!({ "pidx": pidx })).await?;
        interpret_lookup(raw, pidx)
    }

    /// Refunds a completed payment, fully or partly (khalti.md §6).
    ///
    /// `transaction_id` is [`Lookup::transaction_id`], not the `pidx`. Khalti documents
    /// this endpoint outside `/api/v2/`, at `{host}/api/merchant-transaction/{id}/refund/`;
    /// the URL is therefore derived from `base_url` by dropping its last segment when
    /// that segment is `v2` (`https://khalti.com/api/v2/` → `https://khalti.com/api/`).
    /// When `base_url` does not end in `v2/` (e.g. a simulator mounted elsewhere), the
    /// path is joined onto `base_url` itself. POST is assumed, as by every known client
    /// (khalti.md §6: the method is not documented). Not safe to repeat blindly.
    pub async fn refund(
        &self,
        transaction_id: &str,
        request: &RefundRequest,
    ) -> Result<Refunded, Error> {
        let url = self.refund_url(transaction_id)?;
        let body = serde_json::to_value(request).map_err(|e| Error::InvalidInput {
            reason: format!("refund request: {e}"),
        })?;
        let raw = self.post(url, &body).await?;
        let (wire, raw) = expect_success::<Value>(raw)?;
        let Some(object) = wire.as_object() else {
            return Err(invalid(raw, "the answer is not a JSON object".into()));
        };
        // The success body is documented only as {"detail": "Transaction refund
        // successful."} (khalti.md §6). A 2xx JSON object without `detail` is still a
        // success: reporting it as a failure could make the caller refund twice.
        let detail = object.get("detail").and_then(text_of).unwrap_or_default();
        Ok(Refunded { detail, raw })
    }

    /// Verifies (and thereby captures) a legacy KPG-1 widget payment
    /// (`POST payment/verify/`, khalti.md §9.3).
    ///
    /// The path is joined onto `base_url` like the KPG-2 calls. The body is sent as
    /// JSON `{"token", "amount"}`: the docs show form encoding, but their Node examples
    /// send JSON and Khalti's DRF backend accepts both (khalti.md §9.3). Khalti refuses a
    /// bad token with `{"token": ["Invalid token."]}` ([`Error::Rejected`]).
    pub async fn verify_widget(
        &self,
        token: &str,
        amount: Paisa,
    ) -> Result<WidgetVerification, Error> {
        let url = self.endpoint("payment/verify/")?;
        let body = serde_json::json!({ "token": token, "amount": amount.get() });
        let raw = self.post(url, &body).await?;
        let (wire, raw) = expect_success::<WidgetWire>(raw)?;
        Ok(WidgetVerification {
            idx: wire.idx,
            amount: wire.amount,
            fee_amount: wire.fee_amount,
            state_name: wire.state.name,
            type_name: wire.kind.and_then(|k| k.name),
            refunded: wire.refunded.unwrap_or(false),
            // Optional details must not turn a completed capture into an error.
            created_on: wire
                .created_on
                .as_deref()
                .and_then(|s| DateTime::<FixedOffset>::parse_from_rfc3339(s).ok()),
            user_mobile: wire.user.and_then(|u| u.mobile),
            raw,
        })
    }

    fn endpoint(&self, path: &str) -> Result<Url, Error> {
        self.inner
            .base_url
            .join(path)
            .map_err(|e| Error::InvalidInput {
                reason: format!("cannot join {path} onto base_url: {e}"),
            })
    }

    fn refund_url(&self, transaction_id: &str) -> Result<Url, Error> {
        if matches!(transaction_id.trim(), "" | "." | "..") {
            return Err(Error::InvalidInput {
                reason: format!("{transaction_id:?} is not a transaction id"),
            });
        }
        let mut url = self.inner.refund_base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidInput {
                reason: "base_url cannot take a path".into(),
            })?
            .pop_if_empty()
            // Pushed as a segment, so `/`, `?` or `#` in an id are percent-encoded.
            .extend(["merchant-transaction", transaction_id, "refund", ""]);
        Ok(url)
    }

    /// Sends one POST and reads the whole answer, whatever its status code.
    async fn post(&self, url: Url, body: &Value) -> Result<RawAnswer, Error> {
        let path = url.path().to_string();
        let sent = self
            .inner
            .http
            .post(url)
            .header(AUTHORIZATION, self.inner.auth.clone())
            .header(ACCEPT, "application/json")
            .json(body);
        let call = wallet_http::Call {
            gateway: "khalti",
            method: "POST",
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

/// `…/api/v2/` → `…/api/`, anything else unchanged (see [`Client::refund`]).
fn refund_base(base_url: &Url) -> Url {
    let mut url = base_url.clone();
    let path = url.path();
    if let Some(parent) = path.strip_suffix("v2/").filter(|p| p.ends_with('/')) {
        let parent = parent.to_string();
        url.set_path(&parent);
    }
    url
}

/// A reqwest failure, by what the caller can do about it. A timeout (including the
/// connect timeout) is [`Error::Timeout`], as the brief asks; anything else that kept
/// an answer from arriving is [`Error::Unreachable`].
fn transport_error(failure: wallet_http::Failure) -> Error {
    match failure {
        wallet_http::Failure::Timeout => Error::Timeout,
        wallet_http::Failure::Unreachable(source) => Error::Unreachable { source },
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn invalid(raw: RawAnswer, reason: String) -> Error {
    Error::InvalidAnswer {
        http_status: raw.http_status,
        reason,
        raw,
    }
}

/// A 2xx answer parsed into `W`; anything else classified as an error.
fn expect_success<W: DeserializeOwned>(raw: RawAnswer) -> Result<(W, RawAnswer), Error> {
    if !is_success(raw.http_status) {
        return Err(classify_failure(raw));
    }
    match serde_json::from_str::<W>(&raw.body) {
        Ok(wire) => Ok((wire, raw)),
        Err(e) => {
            let reason = describe_json_error(&e);
            Err(invalid(raw, reason))
        }
    }
}

fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("the body is not JSON ({error})")
        }
        Category::Data => format!("the body does not match Khalti's contract ({error})"),
    }
}

/// The lookup rule of khalti.md §8.5: read the body before the status code. A 2xx or
/// 4xx body that is a JSON object with a string `status` and a `pidx` is a lookup
/// answer (Expired and User canceled come with HTTP 400); anything else is classified
/// by status code and error envelope.
pub(crate) fn interpret_lookup(raw: RawAnswer, asked_pidx: &str) -> Result<Lookup, Error> {
    let status = raw.http_status;
    if !(is_success(status) || (400..500).contains(&status)) {
        return Err(classify_failure(raw));
    }
    let value = match serde_json::from_str::<Value>(&raw.body) {
        Ok(value) => value,
        Err(e) if is_success(status) => {
            let reason = describe_json_error(&e);
            return Err(invalid(raw, reason));
        }
        Err(_) => return Err(classify_failure(raw)),
    };
    let is_lookup_body = value.as_object().is_some_and(|object| {
        object.get("status").is_some_and(Value::is_string) && object.contains_key("pidx")
    });
    if !is_lookup_body {
        return Err(if is_success(status) {
            invalid(raw, "the body has no `status` and `pidx` fields".into())
        } else {
            classify_failure(raw)
        });
    }
    let wire = match serde_json::from_value::<LookupWire>(value) {
        Ok(wire) => wire,
        Err(e) => {
            let reason = format!("the body does not match Khalti's lookup contract ({e})");
            return Err(invalid(raw, reason));
        }
    };
    if wire.pidx != asked_pidx {
        let reason = format!(
            "the answer is about pidx {:?}, not the requested {asked_pidx:?}",
            wire.pidx
        );
        return Err(invalid(raw, reason));
    }
    Ok(Lookup {
        pidx: wire.pidx,
        total_amount: wire.total_amount,
        status: LookupStatus::parse(&wire.status),
        transaction_id: wire.transaction_id.filter(|t| !t.trim().is_empty()),
        fee: wire.fee.unwrap_or(Paisa::ZERO),
        refunded: wire.refunded.unwrap_or(false),
        raw,
    })
}

/// Classifies an answer that is not a success, by status code and error envelope
/// (khalti.md §2: `{detail, status_code}` or `{field: [msgs], error_key}`).
fn classify_failure(raw: RawAnswer) -> Error {
    let status = raw.http_status;
    let json = serde_json::from_str::<Value>(&raw.body).ok();
    let object = json.as_ref().and_then(Value::as_object);
    let detail = object.and_then(|o| o.get("detail")).and_then(text_of);
    match status {
        500..=599 => Error::ServerError {
            http_status: status,
            raw,
        },
        401 | 403 => Error::Unauthorized {
            detail: detail.unwrap_or_else(|| format!("HTTP {status} without an explanation")),
            raw,
        },
        // Only Khalti's own JSON envelope proves "no such payment"; see Error::NotFound.
        // khalti.md §2 and §12.1 leave open whether an unknown pidx is answered with 404
        // or 400. Both are read as NotFound when the body is DRF's exact not-found
        // envelope (`detail` "Not found." and no field errors), so the answer does not
        // depend on which one Khalti picks.
        400 if object.is_some_and(is_not_found_envelope) => Error::NotFound {
            detail: detail.unwrap_or_else(|| "Not found.".into()),
            raw,
        },
        404 if object.is_some() => Error::NotFound {
            detail: detail.unwrap_or_else(|| "Not found.".into()),
            raw,
        },
        400..=499 if json.is_some() => {
            let mut field_errors = BTreeMap::new();
            let mut error_key = None;
            let mut detail = detail;
            match json.as_ref() {
                Some(Value::Object(map)) => {
                    error_key = map.get("error_key").and_then(text_of);
                    for (key, value) in map {
                        if !matches!(key.as_str(), "detail" | "error_key" | "status_code") {
                            collect_field_errors(key, value, &mut field_errors);
                        }
                    }
                }
                // DRF sends a bare list (or string) for errors not tied to a field.
                Some(other) => detail = text_of(other),
                None => {}
            }
            Error::Rejected {
                http_status: status,
                detail,
                field_errors,
                error_key,
                raw,
            }
        }
        400..=499 => invalid(raw, format!("HTTP {status} with a body that is not JSON")),
        _ => invalid(raw, format!("unexpected HTTP status {status}")),
    }
}

/// `{"detail": "Not found.", "error_key": …}` with nothing else but `status_code`.
fn is_not_found_envelope(object: &serde_json::Map<String, Value>) -> bool {
    object.get("detail").and_then(Value::as_str) == Some("Not found.")
        && object
            .keys()
            .all(|k| matches!(k.as_str(), "detail" | "error_key" | "status_code"))
}

/// Flattens DRF's nested error shapes: `{"customer_info": {"email": [..]}}` becomes
/// `customer_info.email`, and `{"product_details": [{}, {"name": [..]}]}` becomes
/// `product_details[1].name`.
fn collect_field_errors(path: &str, value: &Value, out: &mut BTreeMap<String, Vec<String>>) {
    match value {
        Value::String(message) => out
            .entry(path.to_string())
            .or_default()
            .push(message.clone()),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                match item {
                    Value::String(message) => out
                        .entry(path.to_string())
                        .or_default()
                        .push(message.clone()),
                    Value::Object(_) | Value::Array(_) => {
                        collect_field_errors(&format!("{path}[{index}]"), item, out)
                    }
                    _ => {}
                }
            }
        }
        Value::Object(map) => {
            for (key, nested) in map {
                collect_field_errors(&format!("{path}.{key}"), nested, out);
            }
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => {}
    }
}

/// A human message from a JSON value: a string, a list of strings, or a number.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(text_of).collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct InitiatedWire {
    pidx: String,
    payment_url: Url,
    expires_at: DateTime<FixedOffset>,
    #[serde(deserialize_with = "de_lenient_u64")]
    expires_in: u64,
}

#[derive(Deserialize)]
struct LookupWire {
    pidx: String,
    total_amount: Paisa,
    status: String,
    #[serde(default)]
    transaction_id: Option<String>,
    // Documented as always present (khalti.md §5.1), but neither decides anything the
    // status does not: tolerate their absence rather than fail a lookup over them.
    #[serde(default)]
    fee: Option<Paisa>,
    #[serde(default)]
    refunded: Option<bool>,
}

#[derive(Deserialize)]
struct WidgetWire {
    idx: String,
    amount: Paisa,
    #[serde(default)]
    fee_amount: Option<Paisa>,
    state: NamedWire,
    #[serde(default, rename = "type")]
    kind: Option<OptionalNameWire>,
    #[serde(default)]
    refunded: Option<bool>,
    #[serde(default)]
    created_on: Option<String>,
    #[serde(default)]
    user: Option<UserWire>,
}

#[derive(Deserialize)]
struct NamedWire {
    name: String,
}

#[derive(Deserialize)]
struct OptionalNameWire {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct UserWire {
    #[serde(default)]
    mobile: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn client(base: &str) -> Client {
        Client::new(Config::new(
            base.parse().unwrap(),
            SecretString::from("test_secret_key_abc"),
        ))
        .unwrap()
    }

    #[test]
    fn refund_url_drops_v2() {
        let c = client("https://dev.khalti.com/api/v2/");
        assert_eq!(
            c.refund_url("GFq9PFS7b2iYvL8Lir9oXe").unwrap().as_str(),
            "https://dev.khalti.com/api/merchant-transaction/GFq9PFS7b2iYvL8Lir9oXe/refund/"
        );
        let c = client("https://khalti.com/api/v2");
        assert_eq!(
            c.refund_url("T1").unwrap().as_str(),
            "https://khalti.com/api/merchant-transaction/T1/refund/"
        );
    }

    #[test]
    fn refund_url_without_v2_joins_onto_base() {
        let c = client("http://127.0.0.1:8000/sandbox/khalti/");
        assert_eq!(
            c.refund_url("T1").unwrap().as_str(),
            "http://127.0.0.1:8000/sandbox/khalti/merchant-transaction/T1/refund/"
        );
        // "xv2/" is not the v2 segment.
        let c = client("http://h/api/xv2/");
        assert_eq!(
            c.refund_url("T1").unwrap().as_str(),
            "http://h/api/xv2/merchant-transaction/T1/refund/"
        );
    }

    #[test]
    fn refund_url_encodes_the_id_as_one_segment() {
        let c = client("https://khalti.com/api/v2/");
        assert_eq!(
            c.refund_url("a/b?c#d").unwrap().as_str(),
            "https://khalti.com/api/merchant-transaction/a%2Fb%3Fc%23d/refund/"
        );
        for bad in ["", " ", ".", ".."] {
            assert!(matches!(c.refund_url(bad), Err(Error::InvalidInput { .. })));
        }
    }

    #[test]
    fn endpoints_keep_v2_with_or_without_trailing_slash() {
        for base in [
            "https://dev.khalti.com/api/v2",
            "https://dev.khalti.com/api/v2/",
        ] {
            let mut config = Config::new(
                "https://x.invalid/".parse().unwrap(),
                SecretString::from("k"),
            );
            // Bypass Config::new's normalisation: Client::new must normalise too.
            config.base_url = base.parse().unwrap();
            let c = Client::new(config).unwrap();
            assert_eq!(
                c.endpoint("epayment/lookup/").unwrap().as_str(),
                "https://dev.khalti.com/api/v2/epayment/lookup/"
            );
        }
    }

    #[test]
    fn new_refuses_bad_config_without_echoing_the_key() {
        let bad_scheme = Client::new(Config::new(
            "ftp://khalti.com/api/v2/".parse().unwrap(),
            SecretString::from("k"),
        ));
        assert!(matches!(bad_scheme, Err(Error::InvalidInput { .. })));

        let empty = Client::new(Config::new(
            "https://khalti.com/api/v2/".parse().unwrap(),
            SecretString::from("  \n"),
        ));
        assert!(matches!(empty, Err(Error::InvalidInput { .. })));

        let err = Client::new(Config::new(
            "https://khalti.com/api/v2/".parse().unwrap(),
            SecretString::from("secret\u{7}bell"),
        ))
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }));
        assert!(!format!("{err:?} {err}").contains("bell"));
    }

    #[test]
    fn client_debug_hides_the_key() {
        let c = client("https://khalti.com/api/v2/");
        let shown = format!("{c:?}");
        assert!(!shown.contains("test_secret_key_abc"), "{shown}");
        assert!(shown.contains("khalti.com/api/v2/"), "{shown}");
    }

    #[test]
    fn nested_field_errors_are_flattened() {
        let raw = RawAnswer {
            http_status: 400,
            body: r#"{"customer_info":{"email":["Enter a valid email address."]},
                      "product_details":[{},{"name":["This field may not be blank."]}],
                      "error_key":"validation_error"}"#
                .into(),
        };
        match classify_failure(raw) {
            Error::Rejected {
                field_errors,
                error_key,
                ..
            } => {
                assert_eq!(error_key.as_deref(), Some("validation_error"));
                assert_eq!(
                    field_errors["customer_info.email"],
                    vec!["Enter a valid email address."]
                );
                assert_eq!(
                    field_errors["product_details[1].name"],
                    vec!["This field may not be blank."]
                );
                assert_eq!(field_errors.len(), 2);
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn html_404_is_not_a_missing_payment() {
        let raw = RawAnswer {
            http_status: 404,
            body: "<html><body>nginx 404</body></html>".into(),
        };
        assert!(matches!(
            classify_failure(raw),
            Error::InvalidAnswer {
                http_status: 404,
                ..
            }
        ));
    }

    #[test]
    fn redirect_is_an_invalid_answer() {
        let raw = RawAnswer {
            http_status: 301,
            body: String::new(),
        };
        assert!(matches!(
            classify_failure(raw),
            Error::InvalidAnswer {
                http_status: 301,
                ..
            }
        ));
    }
}
