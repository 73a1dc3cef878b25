//! Idempotency keys on the money-moving requests: a client that retries a request
//! (a timeout, a double click) with the same `Idempotency-Key` gets the first answer
//! again instead of a second order or a second checkout.

use chrono::Duration;
use sha2::{Digest, Sha256};

use crate::account::{invalid, InvalidField};

/// How long a key is remembered. A client retrying later than this is making a new
/// request.
pub fn retention() -> Duration {
    Duration::hours(24)
}

/// A client-chosen key: 1 to 255 visible ASCII characters (a UUID, typically).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(IdempotencyKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request is, for telling "the same request again" from "another request
/// under a reused key": the route and the exact body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// The answer kept for a key, replayed byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: go ahead, then `complete` (or `release`) the key.
    New,
    /// The same request was answered before: send this again.
    Replay(StoredResponse),
    /// The same request is being handled right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_tell_bodies_and_routes_apart() {
        let a = fingerprint("POST", "/api/orders/", br#"{"items":[]}"#);
        assert_eq!(a, fingerprint("POST", "/api/orders/", br#"{"items":[]}"#));
        assert_ne!(a, fingerprint("POST", "/api/orders/", br#"{"items":[1]}"#));
        assert_ne!(
            a,
            fingerprint("POST", "/api/payments/initialize/", br#"{"items":[]}"#)
        );
    }
}
