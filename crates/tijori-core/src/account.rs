//! Users, their credentials, API tokens and browser sessions.

use std::borrow::Cow;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::id::UserId;

/// A signed-up account, a customer's or an operator's (`is_admin`). Its password hash
/// is kept apart (`Store::user_credentials`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// What the user's payments, orders and paid periods point at.
    pub id: UserId,
    /// Unique (see `Username`); what the user signs in with, and the customer name sent
    /// to the gateway with a checkout.
    pub username: Username,
    /// Unique among users; sent to the gateway with each checkout.
    pub email: Email,
    /// An operator: may refund, use the admin API and pages, and see every customer's
    /// orders and payments.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// The zone the customer chose (one of [`crate::mail::TIME_ZONES`]); pages and
    /// mail show times in it.
    pub time_zone: Option<String>,
}

/// A request field that breaks a rule: answered as a 400 `validation_error` that
/// reads `field: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field as the client named it (`items[2].product_id`, or a header such as
    /// `Idempotency-Key`).
    pub field: Cow<'static, str>,
    /// What is wrong, worded to follow the field's name ("must not be empty").
    pub message: Cow<'static, str>,
}

/// Shorthand for an `InvalidField`, from static or formatted text.
pub fn invalid(
    field: impl Into<Cow<'static, str>>,
    message: impl Into<Cow<'static, str>>,
) -> InvalidField {
    InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// 3–32 characters of letters, digits, `.`, `_`, `-`; compared case-insensitively by
/// storing it lowercased, so "Ram" and "ram" cannot both register.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Trims and lowercases, then checks the rules above; the error names `username`.
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        let s = s.trim().to_lowercase();
        if !(3..=32).contains(&s.chars().count()) {
            return Err(invalid("username", "must be 3 to 32 characters long"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "username",
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Username(s))
    }

    /// For a username read back from the store: checked when stored, so not again.
    pub fn from_trusted(s: String) -> Self {
        Username(s)
    }

    /// The lowercased form, as stored and looked up at sign-in.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plausible e-mail address, lowercased. Deliverability is the mailer's business.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Trims and lowercases; wants something before one `@` and a dotted domain after
    /// it, no whitespace, and at most 254 bytes. The error names `email`.
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        let s = s.trim().to_lowercase();
        let bad = || invalid("email", "must be an e-mail address like name@example.com");
        if s.len() > 254 || s.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(bad());
        }
        Ok(Email(s))
    }

    /// For an address read back from the store: checked when stored, so not again.
    pub fn from_trusted(s: String) -> Self {
        Email(s)
    }

    /// The lowercased form, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as submitted; only ever hashed, never stored or logged.
pub struct Password(String);

impl Password {
    /// Taken as typed (not trimmed): at least 8 characters and at most 1024 bytes.
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        if s.chars().count() < 8 {
            return Err(invalid("password", "must be at least 8 characters long"));
        }
        if s.len() > 1024 {
            return Err(invalid("password", "must be at most 1024 bytes long"));
        }
        Ok(Password(s.to_owned()))
    }

    /// Argon2id with the crate's defaults (19 MiB, 2 passes). CPU-heavy: call it off
    /// the async runtime (`spawn_blocking`).
    pub fn hash(&self) -> PasswordHashString {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .expect("argon2 with default parameters cannot fail");
        PasswordHashString(hash.to_string())
    }

    /// Constant-time check against a stored hash. CPU-heavy, like `hash`.
    pub fn verify(&self, stored: &PasswordHashString) -> bool {
        match PasswordHash::new(&stored.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(self.0.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A PHC-format argon2 hash as stored in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHashString(pub String);

/// A bearer secret (API token, session id): 32 random bytes, base64url. Only its
/// SHA-256 is stored, so a leaked database does not leak working credentials.
pub struct SecretToken(String);

impl SecretToken {
    /// A fresh secret from the OS's random source (43 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretToken(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A secret as a client sent it (header or cookie), to hash and look up. Unchecked.
    pub fn from_presented(s: &str) -> Self {
        SecretToken(s.to_owned())
    }

    /// The secret itself, to give its owner once (in the response or a cookie); keep it
    /// out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hex SHA-256 the store keeps, and looks the secret up by.
    pub fn hash(&self) -> TokenHash {
        TokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// A `SecretToken`'s SHA-256 in hex: all the store ever holds of an API token or a
/// session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(pub String);

/// A signed-in browser. The CSRF token is bound to the session: a state-changing
/// request that rides on the session cookie must echo it.
#[derive(Clone, Debug)]
pub struct Session {
    /// The signed-in user, read from `users` with the session on every lookup.
    pub user: User,
    /// Handed to the page at sign-in; compared in constant time with the `X-CSRF-Token`
    /// header or a form's `csrf_token` field.
    pub csrf_token: String,
    /// Fixed at sign-in, `SESSION_LIFETIME_DAYS` later; from then on the store no longer
    /// finds the session.
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Ram.K ").unwrap().as_str(), "ram.k");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse("ram<script>").is_err());
    }

    #[test]
    fn emails_are_checked() {
        assert_eq!(
            Email::parse("Sita@Example.COM").unwrap().as_str(),
            "sita@example.com"
        );
        for bad in [
            "",
            "nobody",
            "a@b",
            "@x.com",
            "a@@x.com",
            "a b@x.com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_hash_verifies_only_the_same_password() {
        let pw = Password::parse("correct horse").unwrap();
        let hash = pw.hash();
        assert!(pw.verify(&hash));
        assert!(!Password::parse("wrong horse!").unwrap().verify(&hash));
        assert!(!pw.verify(&PasswordHashString("not a hash".into())));
        assert!(Password::parse("short").is_err());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = SecretToken::generate();
        let b = SecretToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 43);
        assert_eq!(a.hash(), SecretToken::from_presented(a.expose()).hash());
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
