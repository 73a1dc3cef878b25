//! Integer money in paisa.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An amount in paisa (1 NPR = 100 paisa), the only unit Khalti's API speaks.
///
/// It is a newtype rather than a bare `u64` so that rupees can never be passed where
/// paisa are expected (khalti.md §8.1: the most common integration bug undercharges
/// 100×), and it is never a float so that no amount is ever rounded.
///
/// On the wire it is written as a JSON integer. When read, it also accepts a string
/// holding an integer (`"1000"`), because Khalti's own docs use both forms (khalti.md
/// §3.1); fractions, negatives and anything else are refused with a message that says
/// why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Paisa(u64);

impl Paisa {
    /// Zero paisa (the `fee` Khalti reports in every documented sample).
    pub const ZERO: Paisa = Paisa(0);

    /// Wraps a number of paisa. Callers holding rupees multiply by 100 themselves, on
    /// purpose: the conversion must be visible where it happens.
    pub const fn new(paisa: u64) -> Self {
        Paisa(paisa)
    }

    /// The number of paisa.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<Paisa> for u64 {
    fn from(value: Paisa) -> Self {
        value.0
    }
}

impl fmt::Display for Paisa {
    /// Writes the bare integer, as Khalti would send it (no unit, no decimals).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a value could not be read as [`Paisa`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParsePaisaError(String);

impl FromStr for Paisa {
    type Err = ParsePaisaError;

    /// Accepts only plain decimal digits: `"1000"`. A sign, a decimal point or spaces
    /// are refused, because `"10.00"` is ambiguous (rupees or paisa?) and money must
    /// not be guessed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParsePaisaError(
                "expected a whole number of paisa, got an empty string".into(),
            ));
        }
        if s.starts_with('-') {
            return Err(ParsePaisaError(format!(
                "expected a whole number of paisa, got the negative amount {s:?}"
            )));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            let what = if s.contains('.') {
                "a fractional amount"
            } else {
                "a non-numeric string"
            };
            return Err(ParsePaisaError(format!(
                "expected a whole number of paisa, got {what} {s:?}"
            )));
        }
        s.parse::<u64>().map(Paisa).map_err(|_| {
            ParsePaisaError(format!("amount {s:?} is too large to be a number of paisa"))
        })
    }
}

impl Serialize for Paisa {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Paisa {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(WholeNumberVisitor("a whole number of paisa"))
            .map(Paisa)
    }
}

/// Deserializes a non-negative integer that may arrive as a JSON number or as a string
/// of digits. Shared by [`Paisa`] and plain counters such as `expires_in`.
pub(crate) fn de_lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(WholeNumberVisitor("a whole non-negative number"))
}

struct WholeNumberVisitor(&'static str);

impl Visitor<'_> for WholeNumberVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (an integer or a string of digits)", self.0)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("expected {}, got the negative number {v}", self.0)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // A JSON number written with a decimal point but no fraction (`1000.0`) is the
        // same integer; DRF's IntegerField, which Khalti uses, accepts it too (khalti.md
        // §3.1). Anything with a real fraction is refused.
        const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        if !v.is_finite() || v.fract() != 0.0 {
            return Err(E::custom(format!(
                "expected {}, got the fractional number {v}",
                self.0
            )));
        }
        if v < 0.0 {
            return Err(E::custom(format!(
                "expected {}, got the negative number {v}",
                self.0
            )));
        }
        if v > MAX_EXACT {
            return Err(E::custom(format!(
                "expected {}, got {v}, too large to be exact",
                self.0
            )));
        }
        Ok(v as u64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.parse::<Paisa>()
            .map(Paisa::get)
            .map_err(|e| E::custom(e.0.replace("a whole number of paisa", self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Paisa, String> {
        serde_json::from_str::<Paisa>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_integers_and_integer_strings() {
        assert_eq!(parse("1000"), Ok(Paisa::new(1000)));
        assert_eq!(parse("0"), Ok(Paisa::ZERO));
        assert_eq!(parse("\"1000\""), Ok(Paisa::new(1000)));
        assert_eq!(parse("\"0\""), Ok(Paisa::ZERO));
        assert_eq!(parse("18446744073709551615"), Ok(Paisa::new(u64::MAX)));
    }

    #[test]
    fn reads_a_whole_float_as_the_same_integer() {
        assert_eq!(parse("1000.0"), Ok(Paisa::new(1000)));
    }

    #[test]
    fn refuses_fractions_with_a_clear_error() {
        let err = parse("1000.5").unwrap_err();
        assert!(err.contains("fractional"), "{err}");
        let err = parse("\"10.50\"").unwrap_err();
        assert!(err.contains("fractional"), "{err}");
        // Ambiguous even though it has no real fraction: rupees or paisa?
        assert!(parse("\"10.00\"").is_err());
    }

    #[test]
    fn refuses_negatives_with_a_clear_error() {
        let err = parse("-5").unwrap_err();
        assert!(err.contains("negative"), "{err}");
        let err = parse("\"-5\"").unwrap_err();
        assert!(err.contains("negative"), "{err}");
        let err = parse("-5.0").unwrap_err();
        assert!(err.contains("negative"), "{err}");
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "\"\"",
            "\" 1000\"",
            "\"1000 \"",
            "\"+1000\"",
            "\"1e3\"",
            "\"abc\"",
            "null",
            "true",
            "[1000]",
            "{}",
            "\"99999999999999999999999\"",
            "1e300",
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn writes_a_json_integer() {
        assert_eq!(serde_json::to_string(&Paisa::new(1300)).unwrap(), "1300");
    }

    #[test]
    fn from_str_and_display_round_trip() {
        let p: Paisa = "1300".parse().unwrap();
        assert_eq!(p.get(), 1300);
        assert_eq!(p.to_string(), "1300");
        assert_eq!(u64::from(p), 1300);
        assert!("13.00".parse::<Paisa>().is_err());
    }
}
