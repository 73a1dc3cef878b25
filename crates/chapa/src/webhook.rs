//! Webhooks: the signature check, and the typed event read only after it.
//!
//! Chapa signs a webhook with the *webhook secret* configured in its dashboard (the
//! "secret hash", chapa.md §5.1, §5.3; not the API secret key), in two headers:
//!
//! ```text
//! x-chapa-signature = hex(HMAC_SHA256(key = secret, message = raw body bytes))
//! chapa-signature   = hex(HMAC_SHA256(key = secret, message = secret))
//! ```
//!
//! The docs say either header is "sufficient", but `chapa-signature` is a constant that
//! does not depend on the body: anyone who has seen one delivery can replay it on a
//! forged body (chapa.md §5.3, Chapa-Et/chapa-cli issue #15). So here:
//!
//! - only `x-chapa-signature`, computed over the exact bytes received (never a
//!   re-serialisation of parsed JSON), authenticates a body;
//! - a `chapa-signature` equal to the constant HMAC(secret, secret) is recognised exactly
//!   as documented but never accepted on its own: it yields
//!   [`SignatureError::OnlyConstantSignature`] (the sender likely knows the secret, the
//!   body is still unauthenticated), and it cannot rescue a wrong `x-chapa-signature`;
//! - the one body-bound use of `chapa-signature` the reference documents, Chapa's
//!   "custom webhooks" whose `chapa-signature` is the HMAC of the payload (chapa.md
//!   §5.1), is accepted when `x-chapa-signature` is absent, because it does prove the body.
//!
//! Comparisons are constant-time (`hmac`'s `verify_slice`). Hex may be upper or lower
//! case. Even a valid signature only says the body came from Chapa: settle a payment on
//! [`Client::verify`](crate::Client::verify), never on the webhook body.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::Sha256;

use crate::amount::Amount;
use crate::fields::RawObject;
use crate::types::PaymentStatus;

type HmacSha256 = Hmac<Sha256>;

/// The body-bound signature header.
pub const X_CHAPA_SIGNATURE: &str = "x-chapa-signature";
/// The constant signature header (HMAC of the secret with itself).
pub const CHAPA_SIGNATURE: &str = "chapa-signature";

/// Why a webhook's signature was refused. Each case is distinct so the caller can log
/// what happened; all of them mean "do not trust this body".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The configured webhook secret is empty: an HMAC keyed with nothing proves nothing.
    #[error("the webhook secret is empty")]
    EmptySecret,
    /// Neither `x-chapa-signature` nor `chapa-signature` was sent.
    #[error("the webhook has no x-chapa-signature header")]
    Missing,
    /// Only `chapa-signature` was sent, and it is the documented constant
    /// HMAC(secret, secret): it says nothing about the body, so the body is refused.
    #[error("the webhook has only the constant chapa-signature, which does not cover the body")]
    OnlyConstantSignature,
    /// A signature header is not one value of 64 hex digits.
    #[error("the {header} header is not a hex HMAC-SHA256")]
    Malformed {
        /// Which header.
        header: &'static str,
    },
    /// The signature does not match the body and secret.
    #[error("the webhook signature does not match its body")]
    Mismatch,
}

/// Checks that `raw_body`, exactly as received, was signed by Chapa with `secret` (the
/// dashboard webhook secret). See the module docs for the rules.
///
/// `headers` is the request's header map (`http::HeaderMap`, as used by axum and
/// hyper); header names are case-insensitive there.
pub fn verify_webhook_signature(
    secret: &[u8],
    raw_body: &[u8],
    headers: &HeaderMap,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    if let Some(signature) = single_hex(headers, X_CHAPA_SIGNATURE)? {
        // A wrong x-chapa-signature is final, whatever chapa-signature says.
        return if hmac_matches(secret, raw_body, &signature) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        };
    }
    let Some(signature) = single_hex(headers, CHAPA_SIGNATURE)? else {
        return Err(SignatureError::Missing);
    };
    if hmac_matches(secret, raw_body, &signature) {
        // Custom webhooks: chapa-signature is the HMAC of the payload (chapa.md §5.1).
        Ok(())
    } else if hmac_matches(secret, secret, &signature) {
        Err(SignatureError::OnlyConstantSignature)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The decoded value of a header that must appear at most once and hold 64 hex digits.
fn single_hex(headers: &HeaderMap, name: &'static str) -> Result<Option<Vec<u8>>, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = SignatureError::Malformed { header: name };
    if values.next().is_some() {
        return Err(malformed);
    }
    let text = value.to_str().map_err(|_| malformed.clone())?.trim();
    if text.len() != 64 {
        return Err(malformed);
    }
    hex::decode(text).map(Some).map_err(|_| malformed)
}

/// Constant-time comparison of `expected` with HMAC-SHA256(secret, message).
fn hmac_matches(secret: &[u8], message: &[u8], expected: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.verify_slice(expected).is_ok()
}

/// Why [`parse_webhook`] refused a webhook.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature check failed: the body was not parsed at all.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is signed but is not a webhook Chapa documents (not a JSON object, no
    /// `event`).
    #[error("the webhook body is not a Chapa event: {0}")]
    Malformed(String),
}

/// The `event` of a webhook (chapa.md §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `charge.success`.
    ChargeSuccess,
    /// `charge.refunded`.
    ChargeRefunded,
    /// `charge.reversed`.
    ChargeReversed,
    /// `charge.failed/cancelled`, and also `charge.failed` or `charge.cancelled`
    /// (whether live splits them is unconfirmed).
    ChargeFailedOrCancelled,
    /// `payout.success`.
    PayoutSuccess,
    /// `payout.failed/cancelled` (or split forms).
    PayoutFailedOrCancelled,
    /// Anything else, verbatim.
    Other(String),
}

impl EventKind {
    /// Reads the `event` text (trimmed, case-insensitive).
    pub fn parse(text: &str) -> EventKind {
        match text.trim().to_ascii_lowercase().as_str() {
            "charge.success" => EventKind::ChargeSuccess,
            "charge.refunded" => EventKind::ChargeRefunded,
            "charge.reversed" => EventKind::ChargeReversed,
            "charge.failed/cancelled"
            | "charge.failed"
            | "charge.cancelled"
            | "charge.canceled" => EventKind::ChargeFailedOrCancelled,
            "payout.success" => EventKind::PayoutSuccess,
            "payout.failed/cancelled"
            | "payout.failed"
            | "payout.cancelled"
            | "payout.canceled" => EventKind::PayoutFailedOrCancelled,
            _ => EventKind::Other(text.to_string()),
        }
    }
}

/// A webhook delivery, read after its signature was checked.
///
/// Fields are read from the flat payload Chapa documents, falling back to a nested
/// `data` object (an older docs version, chapa.md §5.2). Beware the naming: in charge
/// events `reference` is Chapa's and `tx_ref` is yours; in payout events `reference` is
/// yours and `chapa_reference` is Chapa's. [`WebhookEvent::merchant_reference`] and
/// [`WebhookEvent::chapa_reference`] sort this out.
#[derive(Clone, Debug)]
pub struct WebhookEvent {
    /// `event`.
    pub event: EventKind,
    /// `type`: `API`, `Payout`, …
    pub kind: Option<String>,
    /// `status`.
    pub status: Option<PaymentStatus>,
    /// `tx_ref` (charge events).
    pub tx_ref: Option<String>,
    /// `reference` (Chapa's in charge events, the merchant's in payout events).
    pub reference: Option<String>,
    /// `chapa_reference` (payout events).
    pub chapa_reference_field: Option<String>,
    /// `bank_reference` (payout events).
    pub bank_reference: Option<String>,
    /// Amount in minor units, read exactly from `"400.00"` or `400`.
    pub amount: Option<Amount>,
    /// Chapa's fee in minor units.
    pub charge: Option<Amount>,
    /// Currency.
    pub currency: Option<String>,
    /// `test` / `live`.
    pub mode: Option<String>,
    /// `payment_method` (e.g. `telebirr`).
    pub payment_method: Option<String>,
    /// Customer email.
    pub email: Option<String>,
    /// Customer mobile.
    pub mobile: Option<String>,
    /// `created_at`.
    pub created_at: Option<DateTime<Utc>>,
    /// `updated_at`.
    pub updated_at: Option<DateTime<Utc>>,
    /// `meta` echoed back.
    pub meta: Option<Value>,
    /// The whole body, parsed, for anything not typed above.
    pub body: Value,
}

impl WebhookEvent {
    /// Whether this is about a payout (transfer) rather than a charge.
    pub fn is_payout(&self) -> bool {
        matches!(
            self.event,
            EventKind::PayoutSuccess | EventKind::PayoutFailedOrCancelled
        ) || self
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("payout"))
    }

    /// The merchant's own reference: `tx_ref` for charges, `reference` for payouts.
    pub fn merchant_reference(&self) -> Option<&str> {
        if self.is_payout() {
            self.reference.as_deref()
        } else {
            self.tx_ref.as_deref()
        }
    }

    /// Chapa's reference: `reference` for charges, `chapa_reference` for payouts.
    pub fn chapa_reference(&self) -> Option<&str> {
        if self.is_payout() {
            self.chapa_reference_field.as_deref()
        } else {
            self.reference.as_deref()
        }
    }
}

/// Checks the signature ([`verify_webhook_signature`]) and only then parses the body.
pub fn parse_webhook(
    secret: &[u8],
    raw_body: &[u8],
    headers: &HeaderMap,
) -> Result<WebhookEvent, WebhookError> {
    verify_webhook_signature(secret, raw_body, headers)?;
    parse_event(raw_body)
}

fn parse_event(raw_body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let text = std::str::from_utf8(raw_body)
        .map_err(|_| WebhookError::Malformed("the body is not UTF-8".into()))?;
    let top = RawObject::parse(text)
        .ok_or_else(|| WebhookError::Malformed("the body is not a JSON object".into()))?;
    let nested = top.object("data");
    let lookup = |name: &str| -> Option<&RawObject> {
        if top.has(name) {
            Some(&top)
        } else {
            nested.as_ref().filter(|d| d.has(name))
        }
    };
    let text_of = |name: &str| lookup(name).and_then(|o| o.text(name));
    let amount_of = |name: &str| {
        lookup(name).and_then(|o| {
            o.amount(name).unwrap_or_else(|reason| {
                tracing::warn!(%reason, "chapa webhook: ignoring an unreadable amount");
                None
            })
        })
    };
    let event = text_of("event")
        .ok_or_else(|| WebhookError::Malformed("the body has no `event`".into()))?;
    let body: Value = serde_json::from_str(text)
        .map_err(|e| WebhookError::Malformed(format!("the body is not JSON ({e})")))?;
    Ok(WebhookEvent {
        event: EventKind::parse(&event),
        kind: text_of("type"),
        status: text_of("status").map(|s| PaymentStatus::parse(&s)),
        tx_ref: text_of("tx_ref"),
        reference: text_of("reference"),
        chapa_reference_field: text_of("chapa_reference"),
        bank_reference: text_of("bank_reference"),
        amount: amount_of("amount"),
        charge: amount_of("charge"),
        currency: text_of("currency"),
        mode: text_of("mode"),
        payment_method: text_of("payment_method"),
        email: text_of("email"),
        mobile: text_of("mobile"),
        created_at: lookup("created_at").and_then(|o| o.timestamp("created_at")),
        updated_at: lookup("updated_at").and_then(|o| o.timestamp("updated_at")),
        meta: lookup("meta")
            .and_then(|o| o.value("meta"))
            .filter(|v| !v.is_null()),
        body,
    })
}
