//! The `webhook-signature` header: how a message is signed, and the receiver's check.
//!
//! The signed content is `{msg_id}.{timestamp}.{body}`: the id and the time are signed
//! with the body so that a captured message cannot be replayed under another id (the
//! receiver's deduplication key) or at another time (the receiver's freshness check).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// How far a message's timestamp may be from the receiver's clock, the spec's default:
/// enough for clock skew and a slow network, short enough that a captured message
/// cannot be replayed much later.
pub const DEFAULT_TOLERANCE_SECS: u64 = 5 * 60;

/// The only signature scheme this crate writes or reads (symmetric HMAC-SHA256). Other
/// schemes a sender may list (`v1a`, asymmetric) are skipped by the check, as the spec
/// asks, so that a sender can add one without breaking receivers.
const VERSION: &str = "v1";

/// Why a received message is not accepted. A receiver answers all of them the same way
/// (reject); the variants exist so that a test or a log can say which check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The `webhook-timestamp` header is not a number of seconds.
    #[error("the webhook-timestamp header is not a Unix time in seconds")]
    TimestampHeader,
    /// The message was signed too long ago, or too far in the future: a replay, or a
    /// clock far off.
    #[error("the message's time {timestamp} is more than {tolerance_secs} s from now ({now})")]
    Timestamp {
        /// The message's time, from its header.
        timestamp: i64,
        /// The receiver's time.
        now: i64,
        /// The distance allowed.
        tolerance_secs: u64,
    },
    /// The `webhook-signature` header is empty, or an entry is not `version,signature`.
    #[error("the webhook-signature header is not a list of version,signature")]
    SignatureHeader,
    /// No `v1` signature in the header is the message's under any of the secrets: the
    /// message was altered, or signed with another secret.
    #[error("no signature matches the message")]
    Mismatch,
}

fn mac(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.key()).expect("HMAC accepts a key of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature, `v1,<base64 of the HMAC>`: the value of `webhook-signature` when the
/// endpoint has one secret.
pub fn sign(secret: &Secret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let tag = mac(secret, msg_id, timestamp_secs, body)
        .finalize()
        .into_bytes();
    format!("{VERSION},{}", STANDARD.encode(tag))
}

/// The `webhook-signature` value for all of an endpoint's current secrets, space
/// separated. During a rotation the message is signed with the old and the new secret,
/// so that the receiver accepts it whichever one it has configured yet.
pub fn signature_header(
    secrets: &[&Secret],
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The receiver's check, written from the spec and sharing no code with [`sign`] but
/// the HMAC primitive: the timestamp is within `tolerance_secs` of `now_secs`, and at least one
/// `v1` signature in the header is the message's HMAC under one of `secrets` (compared
/// in constant time). tijori's tests check what it sends with this, as a merchant's
/// receiver would.
pub fn verify(
    secrets: &[&Secret],
    msg_id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    // Digits only: `+5` or ` 5` parse as numbers in some languages and not in others,
    // and a receiver that reads the time differently from the signer is a bug waiting.
    if timestamp_header.is_empty() || !timestamp_header.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::TimestampHeader);
    }
    let timestamp: i64 = timestamp_header
        .parse()
        .map_err(|_| VerifyError::TimestampHeader)?;
    if now_secs.abs_diff(timestamp) > tolerance_secs {
        return Err(VerifyError::Timestamp {
            timestamp,
            now: now_secs,
            tolerance_secs,
        });
    }

    if signature_header.trim().is_empty() {
        return Err(VerifyError::SignatureHeader);
    }
    let mut candidates = Vec::new();
    for entry in signature_header.split_ascii_whitespace() {
        let (version, encoded) = entry.split_once(',').ok_or(VerifyError::SignatureHeader)?;
        if version != VERSION {
            continue;
        }
        // A v1 entry that is not base64 cannot be anyone's signature; it is not a
        // reason to reject the others (the spec accepts any one match).
        if let Ok(tag) = STANDARD.decode(encoded) {
            candidates.push(tag);
        }
    }

    // The signed content is rebuilt here from the headers as received (the timestamp's
    // text, not a number formatted again), the way a receiver library does, instead of
    // through the helper `sign` uses: a mistake in that helper cannot hide itself.
    let mut signed = Vec::with_capacity(msg_id.len() + timestamp_header.len() + body.len() + 2);
    signed.extend_from_slice(msg_id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp_header.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    for secret in secrets {
        for tag in &candidates {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.key())
                .expect("HMAC accepts a key of any length");
            mac.update(&signed);
            // verify_slice compares in constant time: an early exit on the first
            // differing byte would let a forger find a valid tag byte by byte.
            if mac.verify_slice(tag).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    fn vector_secret() -> Secret {
        Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    /// The test vector of the Standard Webhooks reference libraries
    /// (github.com/standard-webhooks/standard-webhooks,
    /// libraries/python/tests/test_webhooks.py, `test_sign_function`; svix's own
    /// libraries test the same values). Matching it is what says a merchant's
    /// off-the-shelf receiver will accept what we sign.
    #[test]
    fn the_reference_test_vector() {
        let secret = vector_secret();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign(&secret, id, 1614265330, body), expected);
        verify(
            &[&secret],
            id,
            "1614265330",
            expected,
            body,
            1614265330,
            300,
        )
        .unwrap();
        // The same library's "invalid signature" case: the last character changed.
        assert_eq!(
            verify(
                &[&secret],
                id,
                "1614265330",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
                body,
                1614265330,
                300
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_and_either_verifies() {
        let old = vector_secret();
        let new = Secret::generate();
        let header = signature_header(&[&old, &new], "msg_1", NOW, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                sign(&old, "msg_1", NOW, b"{}"),
                sign(&new, "msg_1", NOW, b"{}")
            ]
        );
        for secret in [&old, &new] {
            verify(
                &[secret],
                "msg_1",
                &NOW.to_string(),
                &header,
                b"{}",
                NOW,
                300,
            )
            .unwrap();
        }
        let other = Secret::generate();
        assert_eq!(
            verify(
                &[&other],
                "msg_1",
                &NOW.to_string(),
                &header,
                b"{}",
                NOW,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        // The receiver holding both secrets accepts a message signed with either.
        let only_new = sign(&new, "msg_1", NOW, b"{}");
        verify(
            &[&old, &new],
            "msg_1",
            &NOW.to_string(),
            &only_new,
            b"{}",
            NOW,
            300,
        )
        .unwrap();
    }

    #[test]
    fn other_versions_and_bad_entries_are_skipped_but_an_unparsable_header_is_refused() {
        let secret = vector_secret();
        let good = sign(&secret, "msg_1", NOW, b"{}");
        let ts = NOW.to_string();
        let header = format!("v1a,AAAA v1,not-base64! v2,{} {good}", &good[3..]);
        verify(&[&secret], "msg_1", &ts, &header, b"{}", NOW, 300).unwrap();
        for bad in ["", "   ", "v1", &format!("{good} garbage")] {
            assert_eq!(
                verify(&[&secret], "msg_1", &ts, bad, b"{}", NOW, 300),
                Err(VerifyError::SignatureHeader),
                "{bad:?}"
            );
        }
        // Only other versions: nothing to match.
        assert_eq!(
            verify(&[&secret], "msg_1", &ts, "v1a,AAAA", b"{}", NOW, 300),
            Err(VerifyError::Mismatch)
        );
        // The id and the time are signed, not only the body.
        assert_eq!(
            verify(&[&secret], "msg_2", &ts, &good, b"{}", NOW, 300),
            Err(VerifyError::Mismatch)
        );
        let later = (NOW + 1).to_string();
        assert_eq!(
            verify(&[&secret], "msg_1", &later, &good, b"{}", NOW, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&[], "msg_1", &ts, &good, b"{}", NOW, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn the_timestamp_must_be_seconds_and_within_the_tolerance() {
        let secret = vector_secret();
        for (offset, ok) in [
            (0, true),
            (300, true),
            (-300, true),
            (301, false),
            (-301, false),
        ] {
            let ts = NOW + offset;
            let header = sign(&secret, "msg_1", ts, b"{}");
            let result = verify(
                &[&secret],
                "msg_1",
                &ts.to_string(),
                &header,
                b"{}",
                NOW,
                300,
            );
            if ok {
                assert_eq!(result, Ok(()), "{offset}");
            } else {
                assert!(
                    matches!(result, Err(VerifyError::Timestamp { timestamp, .. }) if timestamp == ts),
                    "{offset}: {result:?}"
                );
            }
        }
        let header = sign(&secret, "msg_1", NOW, b"{}");
        for bad in [
            "",
            "hello",
            "+1700000000",
            " 1700000000",
            "1700000000.5",
            "-5",
            "99999999999999999999",
        ] {
            assert_eq!(
                verify(&[&secret], "msg_1", bad, &header, b"{}", NOW, 300),
                Err(VerifyError::TimestampHeader),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_timestamp_is_checked_as_the_text_that_was_sent() {
        let secret = vector_secret();
        let header = sign(&secret, "msg_1", NOW, b"{}");
        // The same number, spelled differently: not what was signed.
        assert_eq!(
            verify(
                &[&secret],
                "msg_1",
                &format!("0{NOW}"),
                &header,
                b"{}",
                NOW,
                300
            ),
            Err(VerifyError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn what_is_signed_verifies_and_any_changed_byte_does_not(
            id in "[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 1..512),
            ts in 0i64..4_000_000_000,
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let secret = Secret::generate();
            let header = sign(&secret, &id, ts, &body);
            let ts_header = ts.to_string();
            prop_assert_eq!(verify(&[&secret], &id, &ts_header, &header, &body, ts, 0), Ok(()));
            let mut changed = body.clone();
            changed[at.index(body.len())] ^= flip;
            prop_assert_eq!(
                verify(&[&secret], &id, &ts_header, &header, &changed, ts, 0),
                Err(VerifyError::Mismatch)
            );
        }
    }
}
