//! The merchant's reference for one payment attempt.

use std::fmt;
use std::str::FromStr;

/// A `transaction_uuid`: the merchant-chosen id of one payment attempt, signed into the
/// form and used to ask the status API.
///
/// eSewa allows "alphanumeric and hyphen(-) only" (esewa.md §7): an `_`, `.`, `/` or
/// space makes the payment fail silently (esewa.md §10.8), so the rule is checked here,
/// before anything is signed. A UUID in its usual hyphenated form fits.
///
/// Open question (esewa.md §14.8): the maximum length is undocumented. 100 characters are
/// allowed, the bound the reference's simulator uses (esewa.md §11 row 19); 50 are known
/// to work in UAT.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionUuid(String);

impl TransactionUuid {
    /// The longest `transaction_uuid` accepted.
    pub const MAX_LEN: usize = 100;

    /// Checks `text` against `[A-Za-z0-9-]{1,100}`.
    pub fn new(text: &str) -> Result<TransactionUuid, InvalidTransactionUuid> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(TransactionUuid(text.to_string()))
        } else {
            Err(InvalidTransactionUuid {
                text: text.chars().take(Self::MAX_LEN + 1).collect(),
            })
        }
    }

    /// The text, as signed and sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TransactionUuid {
    type Err = InvalidTransactionUuid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TransactionUuid::new(s)
    }
}

impl fmt::Display for TransactionUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TransactionUuid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a text cannot be a `transaction_uuid`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transaction_uuid {text:?} must be 1 to 100 letters, digits or '-'")]
pub struct InvalidTransactionUuid {
    text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_examples_and_uuids_pass() {
        for good in [
            "241028",
            "11-201-13",
            "250610-162413",
            "123",
            "1733133399321-3c709af7-23b9-4083-b89c-1a6d50480004",
            "0191c3b4-6a0e-7cc1-9f3b-5c2b8f6e2a11",
            &"a".repeat(100),
        ] {
            assert_eq!(TransactionUuid::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn other_characters_are_refused() {
        for bad in [
            "",
            "a_b",
            "a.b",
            "a/b",
            "a b",
            "é",
            "a,b",
            "a=b",
            &"a".repeat(101),
        ] {
            assert!(TransactionUuid::new(bad).is_err(), "{bad:?}");
        }
        // `,` and `=` would let a uuid forge another field of the signed message.
        assert!("1,product_code=X".parse::<TransactionUuid>().is_err());
    }
}
