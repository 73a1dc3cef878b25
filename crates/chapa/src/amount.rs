//! Money in minor units (santim for ETB, cents for USD), never a float.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// An amount in minor units: 1 ETB = 100 santim, 1 USD = 100 cents.
///
/// Chapa speaks major units with decimals (`"500.50"`), in strings or in JSON numbers
/// depending on the endpoint (chapa.md §1 "Money values"). This type keeps the integer
/// count of minor units so that nothing is ever rounded: it is written as the decimal
/// string Chapa's docs use for requests ([`Amount::from_minor`]`(50050)` → `"500.50"`)
/// and read from the exact decimal text of an answer, with no `f64` in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// Wraps a number of minor units: `Amount::from_minor(50050)` is 500.50.
    pub const fn from_minor(minor: u64) -> Self {
        Amount(minor)
    }

    /// The number of minor units.
    pub const fn minor(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Amount {
    /// Major units with exactly two decimals, as sent to Chapa: `500.50`, `10.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Amount {
    /// A JSON string (`"500.50"`), the type Chapa's docs use for `amount` (chapa.md §2.1).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a decimal could not be read as an [`Amount`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseAmountError(String);

impl FromStr for Amount {
    type Err = ParseAmountError;

    /// Reads a non-negative decimal in major units: `100`, `3.5`, `400.00`, `12.000`.
    /// Digits beyond the second decimal must be zeros (`12.000` is fine, `12.005` is
    /// refused, since it cannot be expressed in minor units). Signs, exponents, spaces
    /// and separators are refused: money is not guessed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |why: &str| ParseAmountError(format!("{why}: {s:?}"));
        let (whole, fraction) = match s.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (s, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("expected a non-negative decimal amount"));
        }
        if s.contains('.') && fraction.is_empty() {
            return Err(fail("expected digits after the decimal point"));
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("expected a non-negative decimal amount"));
        }
        let (cents, rest) = fraction.split_at(fraction.len().min(2));
        if rest.bytes().any(|b| b != b'0') {
            return Err(fail("the amount has more than two decimals"));
        }
        let whole: u64 = whole.parse().map_err(|_| fail("the amount is too large"))?;
        let cents: u64 = match cents.len() {
            0 => 0,
            1 => u64::from(cents.as_bytes()[0] - b'0') * 10,
            _ => cents.parse().map_err(|_| fail("bad decimals"))?,
        };
        whole
            .checked_mul(100)
            .and_then(|m| m.checked_add(cents))
            .map(Amount)
            .ok_or_else(|| fail("the amount is too large"))
    }
}

/// Reads an amount from the exact JSON text of a value: a number (`100`, `3.5`) or a
/// string holding one (`"400.00"`). `Ok(None)` for `null`.
pub(crate) fn amount_from_json(raw: &str) -> Result<Option<Amount>, ParseAmountError> {
    let raw = raw.trim();
    if raw == "null" {
        return Ok(None);
    }
    if raw.starts_with('"') {
        let text: String = serde_json::from_str(raw)
            .map_err(|_| ParseAmountError(format!("not a JSON string: {raw}")))?;
        return text.trim().parse().map(Some);
    }
    raw.parse().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Amount::from_minor(50050).to_string(), "500.50");
        assert_eq!(Amount::from_minor(1000).to_string(), "10.00");
        assert_eq!(Amount::from_minor(5).to_string(), "0.05");
        assert_eq!(Amount::ZERO.to_string(), "0.00");
        assert_eq!(
            serde_json::to_string(&Amount::from_minor(50050)).unwrap(),
            r#""500.50""#
        );
    }

    #[test]
    fn parses_decimals_exactly() {
        let cases = [
            ("100", 10000),
            ("3.5", 350),
            ("400.00", 40000),
            ("12.000", 1200),
            ("0.01", 1),
            ("1311.00", 131100),
            ("9999999.99", 999999999),
        ];
        for (text, minor) in cases {
            assert_eq!(text.parse::<Amount>().unwrap().minor(), minor, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            "12.005",
            "1,000",
            " 1",
            "1.",
            ".5",
            "abc",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Amount>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reads_json_numbers_and_strings() {
        assert_eq!(
            amount_from_json("3.5").unwrap(),
            Some(Amount::from_minor(350))
        );
        assert_eq!(
            amount_from_json(r#""400.00""#).unwrap(),
            Some(Amount::from_minor(40000))
        );
        assert_eq!(amount_from_json("null").unwrap(), None);
        assert!(amount_from_json("true").is_err());
        assert!(amount_from_json("1.5e2").is_err());
    }
}
