//! An endpoint's signing secret, in the form the Standard Webhooks libraries read:
//! `whsec_` and the standard base64 of the key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// The prefix every secret carries: it tells a merchant (and a secret scanner) what the
/// string is, and the receiver libraries strip it before decoding.
pub const PREFIX: &str = "whsec_";

/// How many random bytes a new secret has: the spec's recommended key size for
/// HMAC-SHA256 (a longer key adds nothing, HMAC hashes it down to 32 bytes anyway).
const GENERATED_BYTES: usize = 32;

/// The key sizes the spec allows. Fewer than 24 bytes is guessable in principle, and
/// more than 64 is more than an HMAC-SHA256 block: both point at a mistyped secret.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// An endpoint's signing secret. The text is kept (it is what is stored and shown to
/// the merchant once) along with the decoded key (what signing needs), and both are
/// wiped from memory when dropped.
#[derive(Clone)]
pub struct Secret {
    text: SecretString,
    key: SecretSlice<u8>,
}

/// Why a string is not a signing secret. It never repeats the string: an almost-right
/// secret is still mostly a secret, and errors end up in logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The `whsec_` prefix is missing: most likely another kind of key pasted in.
    #[error("a webhook secret starts with {PREFIX}")]
    Prefix,
    /// What follows the prefix is not standard base64.
    #[error("a webhook secret is {PREFIX} followed by standard base64")]
    Base64,
    /// The key has a size the spec does not allow.
    #[error("a webhook secret's key is 24 to 64 bytes, this one is {0}")]
    Length(usize),
}

impl Secret {
    /// A new secret from the operating system's CSPRNG, for a new endpoint or a
    /// rotation.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; GENERATED_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = format!("{PREFIX}{}", STANDARD.encode(&key));
        Secret {
            text: text.into(),
            key: key.into(),
        }
    }

    /// Reads a stored secret (or one a merchant pasted into a receiver).
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Secret {
            text: text.into(),
            key: key.into(),
        })
    }

    /// The secret as text, to store it or show it to the merchant once. Named so that
    /// every place the secret leaves this type is easy to find.
    pub fn expose(&self) -> &str {
        self.text.expose_secret()
    }

    /// The HMAC key: the decoded bytes, not the text (the spec's receivers decode it,
    /// so signing with the text would never verify).
    pub(crate) fn key(&self) -> &[u8] {
        self.key.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(whsec_[redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_parses_back_to_the_same_key() {
        let secret = Secret::generate();
        assert!(secret.expose().starts_with(PREFIX));
        assert_eq!(secret.key().len(), 32);
        let parsed = Secret::parse(secret.expose()).unwrap();
        assert_eq!(parsed.key(), secret.key());
        assert_ne!(Secret::generate().key(), secret.key());
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let secret = Secret::generate();
        let shown = format!("{secret:?}");
        let encoded = &secret.expose()[PREFIX.len()..];
        assert!(!shown.contains(encoded), "{shown}");
    }

    #[test]
    fn a_malformed_secret_says_what_is_wrong() {
        let key24 = STANDARD.encode([7u8; 24]);
        let key64 = STANDARD.encode([7u8; 64]);
        assert!(Secret::parse(&format!("whsec_{key24}")).is_ok());
        assert!(Secret::parse(&format!("whsec_{key64}")).is_ok());
        assert_eq!(
            Secret::parse(&key24).unwrap_err(),
            SecretError::Prefix,
            "no prefix"
        );
        assert_eq!(
            Secret::parse("whsec_not base64!").unwrap_err(),
            SecretError::Base64
        );
        assert_eq!(
            Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 23]))).unwrap_err(),
            SecretError::Length(23)
        );
        assert_eq!(
            Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 65]))).unwrap_err(),
            SecretError::Length(65)
        );
        assert_eq!(Secret::parse("whsec_").unwrap_err(), SecretError::Length(0));
    }
}
