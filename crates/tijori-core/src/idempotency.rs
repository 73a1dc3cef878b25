//! Idempotency keys on the money-moving requests: a client that retries a request
//! (a timeout, a double click) with the same `Idempotency-Key` gets the first answer
//! again instead of a second order or a second checkout.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::account::{invalid, InvalidField};
use crate::id::{OrderId, PaymentId, UserId};

/// How long a key is remembered. A client retrying later than this is making a new
/// request.
pub fn retention() -> Duration {
    Duration::hours(24)
}

/// A client-chosen key: 1 to 255 visible ASCII characters (a UUID, typically).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads the `Idempotency-Key` header as sent (not trimmed); the error names it.
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(IdempotencyKey(s.to_owned()))
    }

    /// The key as the client sent it, and as stored (keys are per user).
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
    /// The HTTP status; the web layer keeps no 5xx (a server error releases the key).
    pub status: u16,
    /// As the handler set it; `application/json` if it set none.
    pub content_type: String,
    /// Must be UTF-8: the stores keep it as text.
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: go ahead, then `complete` (or `release`) the key.
    New,
    /// The request that held the key is gone (its process died, or it outlived its
    /// lease) without an answer: go ahead in its place, reusing or closing what it
    /// left half done.
    TakenOver(Leftover),
    /// The same request was answered before: send this again.
    Replay(StoredResponse),
    /// The same request is being handled right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

// Who holds a key -----------------------------------------------------------------------
//
// A claim records its holder (the tijori process handling the request) and a lease.
// Every process notes that it is alive every few seconds (a row per process, its
// heartbeat); a holder not heard from for a while is gone, and its keys are taken
// over at once rather than answering "in progress" until the lease runs out. A live
// holder keeps its key for the lease, however long its request takes.

/// One running tijori process, as the holder of the keys it is handling. Each
/// process picks a fresh one when it starts, so one that restarts is a new holder
/// and the old one's heartbeat simply stops.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// A fresh id: the host (to recognise it in the database) and a random part.
    pub fn generate() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tijori".into());
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        InstanceId(format!(
            "{host}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// An id read back from the database (or named by a test).
    pub fn from_trusted(id: impl Into<String>) -> Self {
        InstanceId(id.into())
    }

    /// The id as stored (the `instances` table, a key's `owner`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How often a process notes that it is alive.
pub const HEARTBEAT_EVERY_SECS: i64 = 5;

/// A holder not heard from for this long is gone (killed, or cut off from the
/// database): several missed heartbeats, so one busy moment is not taken for death.
pub const HOLDER_GONE_AFTER_SECS: i64 = 20;

/// How long a live holder keeps a key it has not answered: a request still running
/// after five minutes has long been given up by its client, which may then retry.
pub const LEASE_SECS: i64 = 300;

/// A process's heartbeat row is forgotten after this long without one.
pub const FORGET_INSTANCE_AFTER_HOURS: i64 = 24;

/// Who asks for a key, and until when it will hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    /// The process handling the request: the key's `owner` while it holds it.
    pub instance: InstanceId,
    /// From `new`: `now` plus `LEASE_SECS`. After it another request may take the key
    /// over, its holder alive or not.
    pub lease_until: DateTime<Utc>,
}

impl Claimant {
    /// `instance`, asking at `now`, to hold the key for the standard lease.
    pub fn new(instance: InstanceId, now: DateTime<Utc>) -> Self {
        Claimant {
            instance,
            lease_until: now + Duration::seconds(LEASE_SECS),
        }
    }
}

/// What the store knows of an unanswered key's holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    /// `None` for a claim written before holders were recorded.
    pub owner: Option<InstanceId>,
    /// When the lease ends; a claim with none recorded gets its `created_at` plus
    /// `LEASE_SECS`.
    pub lease_until: DateTime<Utc>,
    /// The owner's last heartbeat; `None` when it has none (never beat, or forgotten).
    pub owner_heartbeat: Option<DateTime<Utc>>,
}

/// Whether a process last heard from at `last_beat` is gone by `now`.
pub fn holder_gone(last_beat: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - last_beat > Duration::seconds(HOLDER_GONE_AFTER_SECS)
}

/// Whether a new request may take an unanswered key over: its lease ran out, or its
/// holder is gone. A claim from before holders were recorded waits for its lease (its
/// process may be an older tijori still at work).
pub fn may_take_over(hold: &Hold, now: DateTime<Utc>) -> bool {
    if now >= hold.lease_until {
        return true;
    }
    match (&hold.owner, hold.owner_heartbeat) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(beat)) => holder_gone(beat, now),
    }
}

/// What a request under a key had created when it stopped, noted on the key in the
/// same transaction as the thing itself: the next holder reuses it (an order and its
/// stock, a checkout already open) or closes it, instead of making a second.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    /// A payment it created: its checkout is handed back if it opened, otherwise closed.
    pub payment: Option<PaymentId>,
    /// An order it created (its stock reserved): the answer again, not a second order.
    pub order: Option<OrderId>,
}

/// The request holding a key, handed to the use-case it runs: what it creates is
/// noted on the key, and what a previous holder left is in `left`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Keys are per user: the same key from two users is two keys.
    pub user: UserId,
    /// With `user`, names the key row the request's work is noted on.
    pub key: IdempotencyKey,
    /// This process: what the request creates is noted on the key only while it still
    /// holds it.
    pub holder: InstanceId,
    /// What a previous holder created; empty (`Default`) on a first use.
    pub left: Leftover,
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
    fn a_key_is_taken_over_when_its_holder_is_gone_or_its_lease_ran_out() {
        let now = chrono::Utc::now();
        let hold = |owner: Option<&str>, lease_left: i64, beat_ago: Option<i64>| Hold {
            owner: owner.map(InstanceId::from_trusted),
            lease_until: now + Duration::seconds(lease_left),
            owner_heartbeat: beat_ago.map(|s| now - Duration::seconds(s)),
        };
        // A live holder within its lease keeps the key.
        assert!(!may_take_over(&hold(Some("a"), 60, Some(1)), now));
        assert!(!may_take_over(
            &hold(Some("a"), 60, Some(HOLDER_GONE_AFTER_SECS)),
            now
        ));
        // Its lease ran out: taken over, alive or not.
        assert!(may_take_over(&hold(Some("a"), 0, Some(1)), now));
        // A dead holder (heartbeat stale, or none) loses it at once.
        assert!(may_take_over(
            &hold(Some("a"), 290, Some(HOLDER_GONE_AFTER_SECS + 1)),
            now
        ));
        assert!(may_take_over(&hold(Some("a"), 290, None), now));
        // A claim from before holders were recorded waits for its lease.
        assert!(!may_take_over(&hold(None, 60, None), now));
        assert!(may_take_over(&hold(None, -1, None), now));
    }

    #[test]
    fn instances_are_told_apart() {
        assert_ne!(InstanceId::generate(), InstanceId::generate());
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
