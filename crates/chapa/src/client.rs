//! The HTTP client: sending calls and turning Chapa's answers into typed results.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use crate::config::{with_trailing_slash, Config};
use crate::error::{one_line, Error, RawAnswer};
use crate::fields::RawObject;
use crate::types::{
    InitializeRequest, Initialized, PaymentStatus, RefundRequest, Refunded, Verification,
};

/// Answers larger than this are not read to the end.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Chapa's answer for a transaction that exists but has not been paid (chapa.md §4.2).
const NOT_PAID_YET: &str = "Payment not paid yet";

/// A client for Chapa's v1 API.
///
/// Build it once and share it (cheap to clone). Every call is a single HTTP request with
/// no automatic retry; use [`Error::is_transient`] to decide what to retry.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    /// `Bearer <secret>`, marked sensitive so that reqwest/hyper never print it.
    auth: HeaderValue,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("secret_key", &"[REDACTED]")
            .finish()
    }
}

/// Which call an answer belongs to, for the meaning of a 404.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// A 404 on initialize is `Payments through API is disabled` (chapa.md §2.3): the
    /// merchant must act, nothing is "not found".
    Initialize,
    /// A 404 on verify/refund means the reference is unknown.
    Lookup,
}

impl Client {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// Fails with [`Error::InvalidInput`] when `base_url` is not an http(s) URL, or the
    /// secret key is empty or cannot go in an HTTP header.
    pub fn new(config: Config) -> Result<Client, Error> {
        let base_url = with_trailing_slash(config.base_url);
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(Error::InvalidInput {
                reason: format!("base_url must be an http(s) URL, got {base_url}"),
            });
        }
        let key = config.secret_key.expose_secret().trim();
        if key.is_empty() {
            return Err(Error::InvalidInput {
                reason: "the Chapa secret key is empty".into(),
            });
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| Error::InvalidInput {
                reason:
                    "the Chapa secret key holds characters that cannot be sent in an HTTP header"
                        .into(),
            })?;
        auth.set_sensitive(true);

        let http = wallet_http::client(
            config.timeout,
            config.connect_timeout,
            concat!("chapa-rust/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| Error::InvalidInput {
            reason: format!("could not set up the HTTP client: {e}"),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth,
            }),
        })
    }

    /// Starts a hosted-checkout payment (`POST transaction/initialize`, chapa.md §2) and
    /// returns where to send the customer.
    ///
    /// Refusals (duplicate `tx_ref`, bad currency, validation errors, API disabled) are
    /// [`Error::Rejected`]. A zero amount, an empty currency or a `tx_ref` outside
    /// `[A-Za-z0-9_-]{1,100}` is refused before sending ([`Error::InvalidInput`]).
    pub async fn initialize(&self, request: &InitializeRequest) -> Result<Initialized, Error> {
        check_tx_ref(&request.tx_ref)?;
        if request.amount.minor() == 0 {
            return Err(Error::InvalidInput {
                reason: "the amount must be greater than zero".into(),
            });
        }
        if request.currency.trim().is_empty() {
            return Err(Error::InvalidInput {
                reason: "the currency is empty".into(),
            });
        }
        let url = self.endpoint(&["transaction", "initialize"])?;
        let body = serde_json::to_vec(request).map_err(|e| Error::InvalidInput {
            reason: format!("initialize request: {e}"),
        })?;
        let builder = self
            .inner
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let raw = self.send("POST", &url, builder).await?;
        interpret_initialize(raw)
    }

    /// Asks Chapa where a payment stands (`GET transaction/verify/{tx_ref}`, chapa.md §4).
    /// `tx_ref` is the merchant's reference. Safe to repeat.
    ///
    /// "Payment not paid yet" is an answer, not an error: Chapa documents it as HTTP 404
    /// with `status: null` (or the string `"null"`) for a transaction that was
    /// initialized but not paid (chapa.md §4.2), distinct from the 404 `Invalid
    /// transaction or Transaction not found` for an unknown `tx_ref`. It is returned as
    /// `Ok` with [`PaymentStatus::NotPaidYet`], and the unknown-`tx_ref` answer as
    /// [`Error::NotFound`], so the caller can keep waiting on the first and give up on
    /// the second. The undocumented alternative (HTTP 200 with `data.status: "pending"`)
    /// comes back as [`PaymentStatus::Pending`].
    ///
    /// An answer about another `tx_ref` is an [`Error::InvalidAnswer`]. Settle only when
    /// [`Verification::confirms`] holds.
    pub async fn verify(&self, tx_ref: &str) -> Result<Verification, Error> {
        check_reference("tx_ref", tx_ref)?;
        let url = self.endpoint(&["transaction", "verify", tx_ref])?;
        let builder = self.inner.http.get(url.clone());
        let raw = self.send("GET", &url, builder).await?;
        interpret_verify(raw, tx_ref)
    }

    /// Asks Chapa to refund a payment (`POST refund/{reference}`, form-encoded,
    /// chapa.md §6).
    ///
    /// `reference` should be the Chapa reference ([`Verification::reference`]): the docs'
    /// examples all use one, and whether a merchant `tx_ref` works is unconfirmed. Not
    /// safe to repeat blindly after a transient error: the first attempt may have been
    /// processed; set [`RefundRequest::reference`] to a unique id of your own.
    pub async fn refund(
        &self,
        reference: &str,
        request: &RefundRequest,
    ) -> Result<Refunded, Error> {
        check_reference("reference", reference)?;
        if request.amount.is_some_and(|a| a.minor() == 0) {
            return Err(Error::InvalidInput {
                reason: "a partial refund amount must be greater than zero".into(),
            });
        }
        let url = self.endpoint(&["refund", reference])?;
        let builder = self
            .inner
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(request.to_form());
        let raw = self.send("POST", &url, builder).await?;
        interpret_refund(raw)
    }

    /// `base_url` plus the segments, each percent-encoded as one path segment.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.inner.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidInput {
                reason: "base_url cannot take a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends one request and reads the whole answer, whatever its status code.
    async fn send(
        &self,
        method: &'static str,
        url: &Url,
        builder: reqwest::RequestBuilder,
    ) -> Result<RawAnswer, Error> {
        let path = url.path().to_string();
        let sent = builder
            .header(AUTHORIZATION, self.inner.auth.clone())
            .header(ACCEPT, "application/json");
        let call = wallet_http::Call {
            gateway: "chapa",
            method,
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

fn check_tx_ref(tx_ref: &str) -> Result<(), Error> {
    let ok = !tx_ref.is_empty()
        && tx_ref.len() <= 100
        && tx_ref
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            reason: format!("tx_ref {tx_ref:?} must match [A-Za-z0-9_-]{{1,100}}"),
        })
    }
}

fn check_reference(what: &str, reference: &str) -> Result<(), Error> {
    if matches!(reference.trim(), "" | "." | "..") {
        return Err(Error::InvalidInput {
            reason: format!("{reference:?} is not a usable {what}"),
        });
    }
    Ok(())
}

/// A timeout (including the connect timeout) is [`Error::Timeout`]; anything else that
/// kept an answer from arriving is [`Error::Unreachable`].
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

/// The envelope `message` as a trimmed string (string, or a list of strings).
fn message_text(object: &RawObject) -> Option<String> {
    match object.value("message")? {
        Value::String(s) => Some(one_line(&s)).filter(|s| !s.is_empty()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(one_line))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

/// The envelope `message` when it is an object of validation rules (chapa.md §1.1).
fn field_errors(object: &RawObject) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(map)) = object.value("message") {
        for (field, rules) in map {
            let rules: Vec<String> = match rules {
                Value::String(s) => vec![s.trim().to_string()],
                Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.trim().to_string(),
                        other => other.to_string(),
                    })
                    .collect(),
                other => vec![other.to_string()],
            };
            out.insert(field, rules);
        }
    }
    out
}

/// The envelope's top-level `status` as text; JSON `null` and absent are `None`.
fn envelope_status(object: &RawObject) -> Option<String> {
    object.string("status").map(|s| s.trim().to_string())
}

fn is_failed_envelope(object: &RawObject) -> bool {
    envelope_status(object).is_some_and(|s| s.eq_ignore_ascii_case("failed"))
}

/// Classifies an answer that is not a success, by status code and envelope.
fn classify_failure(raw: RawAnswer, call: Call) -> Error {
    let status = raw.http_status;
    let object = RawObject::parse(&raw.body);
    let message = object.as_ref().and_then(message_text);
    match status {
        500..=599 => Error::ServerError {
            http_status: status,
            raw,
        },
        401 | 403 => Error::Unauthorized {
            message: message.unwrap_or_else(|| format!("HTTP {status} without an explanation")),
            raw,
        },
        // Only Chapa's own JSON envelope proves "no such transaction": an HTML 404 from
        // a misrouted request must not make a payment look nonexistent.
        404 if call == Call::Lookup && object.is_some() => Error::NotFound {
            message: message.unwrap_or_else(|| "not found".into()),
            raw,
        },
        400..=499 if object.is_some() => Error::Rejected {
            http_status: status,
            message,
            field_errors: object.as_ref().map(field_errors).unwrap_or_default(),
            raw,
        },
        400..=499 => invalid(
            raw,
            format!("HTTP {status} with a body that is not a JSON object"),
        ),
        _ => invalid(raw, format!("unexpected HTTP status {status}")),
    }
}

/// A 2xx answer that is a JSON object; a 2xx `"status": "failed"` envelope is a refusal.
fn success_object(raw: &RawAnswer) -> Result<RawObject, Option<String>> {
    RawObject::parse(&raw.body).ok_or_else(|| {
        Some(match serde_json::from_str::<Value>(&raw.body) {
            Ok(_) => "the body is not a JSON object".to_string(),
            Err(e) => format!("the body is not JSON ({e})"),
        })
    })
}

fn interpret_initialize(raw: RawAnswer) -> Result<Initialized, Error> {
    if !is_success(raw.http_status) {
        return Err(classify_failure(raw, Call::Initialize));
    }
    let object = match success_object(&raw) {
        Ok(object) => object,
        Err(reason) => return Err(invalid(raw, reason.unwrap_or_default())),
    };
    let checkout_url = object.object("data").and_then(|d| d.text("checkout_url"));
    let Some(checkout_url) = checkout_url else {
        if is_failed_envelope(&object) {
            return Err(Error::Rejected {
                http_status: raw.http_status,
                message: message_text(&object),
                field_errors: field_errors(&object),
                raw,
            });
        }
        return Err(invalid(raw, "the answer has no `data.checkout_url`".into()));
    };
    let checkout_url = match Url::parse(&checkout_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => {
            let reason = format!("`data.checkout_url` {checkout_url:?} is not an http(s) URL");
            return Err(invalid(raw, reason));
        }
    };
    Ok(Initialized {
        checkout_url,
        message: message_text(&object),
        raw,
    })
}

pub(crate) fn interpret_verify(raw: RawAnswer, asked_tx_ref: &str) -> Result<Verification, Error> {
    let status = raw.http_status;
    let object = RawObject::parse(&raw.body);
    // "Payment not paid yet": documented as 404 with status null / "null" and data null
    // (chapa.md §4.2). Recognised by its message, on a 404 or a 2xx, as long as there is
    // no data object: see Client::verify for why this is an answer.
    if let Some(object) = &object {
        let not_paid = message_text(object).is_some_and(|m| m.eq_ignore_ascii_case(NOT_PAID_YET));
        let no_data = object.object("data").is_none();
        if (status == 404 || is_success(status)) && not_paid && no_data {
            return Ok(Verification {
                status: PaymentStatus::NotPaidYet,
                envelope_status: envelope_status(object).filter(|s| s != "null"),
                tx_ref: asked_tx_ref.to_string(),
                amount: None,
                currency: None,
                charge: None,
                reference: None,
                mode: None,
                method: None,
                kind: None,
                first_name: None,
                last_name: None,
                email: None,
                customization: None,
                meta: None,
                created_at: None,
                updated_at: None,
                message: message_text(object),
                raw,
            });
        }
    }
    if !is_success(status) {
        return Err(classify_failure(raw, Call::Lookup));
    }
    let object = match success_object(&raw) {
        Ok(object) => object,
        Err(reason) => return Err(invalid(raw, reason.unwrap_or_default())),
    };
    let Some(data) = object.object("data") else {
        return Err(invalid(raw, "the answer has no `data` object".into()));
    };
    let Some(payment_status) = data.text("status") else {
        return Err(invalid(raw, "`data.status` is missing".into()));
    };
    let Some(tx_ref) = data.text("tx_ref") else {
        return Err(invalid(raw, "`data.tx_ref` is missing".into()));
    };
    if tx_ref != asked_tx_ref {
        let reason =
            format!("the answer is about tx_ref {tx_ref:?}, not the requested {asked_tx_ref:?}");
        return Err(invalid(raw, reason));
    }
    let amount = match data.amount("amount") {
        Ok(Some(amount)) => amount,
        Ok(None) => return Err(invalid(raw, "`data.amount` is missing".into())),
        Err(reason) => return Err(invalid(raw, reason)),
    };
    let Some(currency) = data.text("currency") else {
        return Err(invalid(raw, "`data.currency` is missing".into()));
    };
    // The fee decides nothing: an unreadable one is dropped rather than failing a
    // verification that may confirm a payment.
    let charge = data.amount("charge").unwrap_or_else(|reason| {
        tracing::warn!(%reason, "chapa verify: ignoring an unreadable charge");
        None
    });
    Ok(Verification {
        status: PaymentStatus::parse(&payment_status),
        envelope_status: envelope_status(&object),
        tx_ref,
        amount: Some(amount),
        currency: Some(currency),
        charge,
        reference: data.text("reference"),
        mode: data.text("mode"),
        method: data.text("method"),
        kind: data.text("type"),
        first_name: data.string("first_name"),
        last_name: data.string("last_name"),
        email: data.string("email"),
        customization: data.value("customization").filter(|v| !v.is_null()),
        meta: data.value("meta").filter(|v| !v.is_null()),
        created_at: data.timestamp("created_at"),
        updated_at: data.timestamp("updated_at"),
        message: message_text(&object),
        raw,
    })
}

fn interpret_refund(raw: RawAnswer) -> Result<Refunded, Error> {
    if !is_success(raw.http_status) {
        return Err(classify_failure(raw, Call::Lookup));
    }
    let object = match success_object(&raw) {
        Ok(object) => object,
        Err(reason) => return Err(invalid(raw, reason.unwrap_or_default())),
    };
    if is_failed_envelope(&object) {
        return Err(Error::Rejected {
            http_status: raw.http_status,
            message: message_text(&object),
            field_errors: field_errors(&object),
            raw,
        });
    }
    let data = object.object("data");
    let field = |name: &str| data.as_ref().and_then(|d| d.text(name));
    // Money here decides nothing either (the refund is already accepted).
    let amount = data
        .as_ref()
        .and_then(|d| d.amount("amount").ok())
        .flatten();
    Ok(Refunded {
        message: message_text(&object),
        status: field("status"),
        id: field("id"),
        refund_reference: field("ref").or_else(|| field("ref_id")),
        chapa_reference: field("chapa_reference"),
        bank_reference: field("bank_reference"),
        merchant_reference: field("merchant_reference"),
        amount,
        currency: field("currency"),
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn client(base: &str) -> Client {
        Client::new(Config::new(
            base.parse().unwrap(),
            SecretString::from("CHASECK_TEST-abcdefghijklmnop"),
        ))
        .unwrap()
    }

    fn raw(status: u16, body: &str) -> RawAnswer {
        RawAnswer {
            http_status: status,
            body: body.into(),
        }
    }

    #[test]
    fn endpoints_keep_v1_and_encode_references() {
        for base in ["https://api.chapa.co/v1", "https://api.chapa.co/v1/"] {
            let mut config = Config::production(SecretString::from("k"));
            config.base_url = base.parse().unwrap();
            let c = Client::new(config).unwrap();
            assert_eq!(
                c.endpoint(&["transaction", "verify", "tx-1"])
                    .unwrap()
                    .as_str(),
                "https://api.chapa.co/v1/transaction/verify/tx-1"
            );
        }
        let c = client("https://api.chapa.co/v1/");
        assert_eq!(
            c.endpoint(&["refund", "a/b?c#d"]).unwrap().as_str(),
            "https://api.chapa.co/v1/refund/a%2Fb%3Fc%23d"
        );
    }

    #[test]
    fn new_refuses_bad_config_without_echoing_the_key() {
        assert!(matches!(
            Client::new(Config::new(
                "ftp://api.chapa.co/v1/".parse().unwrap(),
                SecretString::from("k")
            )),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            Client::new(Config::production(SecretString::from(" \n"))),
            Err(Error::InvalidInput { .. })
        ));
        let err =
            Client::new(Config::production(SecretString::from("secret\u{7}bell"))).unwrap_err();
        assert!(!format!("{err:?} {err}").contains("bell"));
    }

    #[test]
    fn client_debug_hides_the_key() {
        let shown = format!("{:?}", client("https://api.chapa.co/v1/"));
        assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
        assert!(shown.contains("api.chapa.co/v1/"), "{shown}");
    }

    #[test]
    fn tx_ref_rules() {
        assert!(check_tx_ref("TX-JHBUVLM7HYMSWDA_1").is_ok());
        for bad in ["", "a b", "a/b", "é", &"x".repeat(101)] {
            assert!(check_tx_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn html_404_is_not_a_missing_transaction() {
        let err = interpret_verify(raw(404, "<html>nginx 404</html>"), "t");
        assert!(
            matches!(
                err,
                Err(Error::InvalidAnswer {
                    http_status: 404,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn redirect_is_an_invalid_answer() {
        let err = interpret_initialize(raw(302, ""));
        assert!(
            matches!(
                err,
                Err(Error::InvalidAnswer {
                    http_status: 302,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn initialize_404_is_a_rejection_not_a_missing_transaction() {
        let body = r#"{"message":"Payments through API is disabled, please contact us","status":"failed","data":null}"#;
        match interpret_initialize(raw(404, body)) {
            Err(Error::Rejected {
                http_status: 404,
                message,
                ..
            }) => assert_eq!(
                message.as_deref(),
                Some("Payments through API is disabled, please contact us")
            ),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn a_200_failed_envelope_on_initialize_is_a_rejection() {
        let body = r#"{"message":"User can't receive payments","status":"failed","data":null}"#;
        assert!(matches!(
            interpret_initialize(raw(200, body)),
            Err(Error::Rejected {
                http_status: 200,
                ..
            })
        ));
    }

    #[test]
    fn verify_without_amount_is_invalid() {
        let body = r#"{"message":"Payment details","status":"success","data":{"status":"success","tx_ref":"t","currency":"ETB"}}"#;
        assert!(matches!(
            interpret_verify(raw(200, body), "t"),
            Err(Error::InvalidAnswer { .. })
        ));
    }
}
