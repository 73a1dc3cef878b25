//! Money in paisa, and eSewa's rupee text.

use std::fmt;

/// An amount in paisa (1 NPR = 100 paisa), never a float.
///
/// eSewa speaks **rupees as decimal text** (`"100"`, `"110.5"`, `"1000.0"`), not paisa
/// (esewa.md §6): a merchant that posts paisa charges 100×. This type keeps the integer
/// count of paisa so nothing is ever rounded, and converts at the edge only:
/// [`Paisa::to_rupees`] writes the text put in a form (and signed), [`Paisa::from_rupees`]
/// reads eSewa's text back exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Paisa(u64);

impl Paisa {
    /// Zero paisa (the `tax_amount` and charges of a payment that has none).
    pub const ZERO: Paisa = Paisa(0);

    /// Wraps a number of paisa: `Paisa::new(11050)` is Rs. 110.50.
    pub const fn new(paisa: u64) -> Self {
        Paisa(paisa)
    }

    /// The number of paisa.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The rupee text eSewa's docs use: whole rupees without decimals (`10000` → `"100"`,
    /// as in every request sample, esewa.md §3.2), otherwise the fewest decimals that say
    /// the amount exactly (`11050` → `"110.5"`, `1999` → `"19.99"`, `5` → `"0.05"`).
    ///
    /// Whatever the format, the form must carry and sign the same text (esewa.md §6);
    /// this one is used for both, and for the status check's query.
    pub fn to_rupees(self) -> String {
        let (whole, fraction) = (self.0 / 100, self.0 % 100);
        if fraction == 0 {
            whole.to_string()
        } else if fraction % 10 == 0 {
            format!("{whole}.{}", fraction / 10)
        } else {
            format!("{whole}.{fraction:02}")
        }
    }

    /// Reads a non-negative rupee decimal exactly: `100`, `110.5`, `1000.0`, `19.99`,
    /// `100.00`. Digits past the second decimal must be zeros (`12.000` is fine, `12.005`
    /// is not a number of paisa). Signs, exponents, spaces and thousands separators are
    /// refused: money is not guessed (see [`Paisa::from_callback_rupees`] for the one
    /// place separators occur).
    pub fn from_rupees(text: &str) -> Result<Paisa, ParseAmountError> {
        parse_decimal(text, false)
    }

    /// Reads the `total_amount` of a success redirect, which eSewa has been seen to
    /// render with thousands separators (`"2,700.0"`, esewa.md §4.2 step 5): commas in
    /// the whole part are dropped, then the text is read as [`Paisa::from_rupees`] does.
    pub fn from_callback_rupees(text: &str) -> Result<Paisa, ParseAmountError> {
        let (whole, rest) = match text.find('.') {
            Some(at) => text.split_at(at),
            None => (text, ""),
        };
        if !whole.contains(',') {
            return parse_decimal(text, false);
        }
        // Separators only between digits: `,100`, `1,,000` and `100,` are not amounts.
        if whole.starts_with(',') || whole.ends_with(',') || whole.contains(",,") {
            return Err(ParseAmountError::new("misplaced thousands separator", text));
        }
        let plain: String = whole.chars().filter(|&c| c != ',').collect();
        parse_decimal(&format!("{plain}{rest}"), false)
            .map_err(|_| ParseAmountError::new("expected a rupee amount", text))
    }

    /// Reads the exact text of a JSON number in rupees, as the status API sends
    /// `total_amount` (`100.0`, `100`). Exponents are accepted because a Java back end
    /// writes large doubles as `1.0E7` (esewa.md §6: eSewa's amounts look like Java's
    /// `Double.toString`); the value is still computed exactly, without an f64.
    pub(crate) fn from_json_number(text: &str) -> Result<Paisa, ParseAmountError> {
        parse_decimal(text, true)
    }
}

impl TryFrom<i64> for Paisa {
    type Error = ParseAmountError;

    /// tijori's money is `i64` minor units; a negative amount cannot be paid.
    fn try_from(minor: i64) -> Result<Self, Self::Error> {
        u64::try_from(minor)
            .map(Paisa)
            .map_err(|_| ParseAmountError::new("a negative amount", &minor.to_string()))
    }
}

impl fmt::Display for Paisa {
    /// Rupee text, as [`Paisa::to_rupees`]: what eSewa would show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rupees())
    }
}

/// Why a text is not an exact amount of paisa.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {text:?}")]
pub struct ParseAmountError {
    what: &'static str,
    text: String,
}

impl ParseAmountError {
    fn new(what: &'static str, text: &str) -> Self {
        ParseAmountError {
            what,
            // Bounded: the text may come from a hostile redirect.
            text: text.chars().take(40).collect(),
        }
    }
}

/// The most an exponent may move the decimal point; far beyond any amount of money,
/// small enough that `1e999999999` cannot make us build a huge string.
const MAX_EXPONENT: i64 = 30;

/// `digits[.digits][e[+-]digits]` (the exponent only when `exponent` is allowed), read
/// exactly into paisa.
fn parse_decimal(text: &str, exponent: bool) -> Result<Paisa, ParseAmountError> {
    let fail = |what| ParseAmountError::new(what, text);
    let (mantissa, shift) = match text.find(['e', 'E']) {
        Some(at) if exponent => {
            let digits = &text[at + 1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("expected a rupee amount"));
            }
            let magnitude = unsigned
                .parse::<i64>()
                .ok()
                .filter(|m| *m <= MAX_EXPONENT)
                .ok_or_else(|| fail("the exponent is out of range"))?;
            let shift = if digits.starts_with('-') {
                -magnitude
            } else {
                magnitude
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(fail("expected a rupee amount"));
    }
    if mantissa.contains('.') && fraction.is_empty() {
        return Err(fail("expected digits after the decimal point"));
    }
    // The digits, and where the point falls once moved two places right (paisa).
    let digits = format!("{whole}{fraction}");
    let point =
        i64::try_from(whole.len()).map_err(|_| fail("the amount is too large"))? + shift + 2;
    let point = usize::try_from(point.max(0)).map_err(|_| fail("the amount is too large"))?;
    let (integer, rest) = if point >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point - digits.len())),
            String::new(),
        )
    } else {
        (digits[..point].to_string(), digits[point..].to_string())
    };
    if rest.bytes().any(|b| b != b'0') {
        return Err(fail("the amount has more than two decimals"));
    }
    let integer = integer.trim_start_matches('0');
    if integer.is_empty() {
        return Ok(Paisa::ZERO);
    }
    integer
        .parse::<u64>()
        .map(Paisa)
        .map_err(|_| fail("the amount is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn writes_the_docs_rupee_text() {
        let cases = [
            (10000, "100"),
            (11000, "110"),
            (0, "0"),
            (11050, "110.5"),
            (1999, "19.99"),
            (5, "0.05"),
            (50, "0.5"),
            (100000, "1000"),
            (u64::MAX, "184467440737095516.15"),
        ];
        for (paisa, text) in cases {
            assert_eq!(Paisa::new(paisa).to_rupees(), text, "{paisa}");
        }
    }

    #[test]
    fn reads_rupee_text_exactly() {
        let cases = [
            ("100", 10000),
            ("100.0", 10000),
            ("1000.0", 100000),
            ("110.5", 11050),
            ("19.99", 1999),
            ("100.00", 10000),
            ("12.000", 1200),
            ("0.01", 1),
            ("0", 0),
            ("007", 700),
        ];
        for (text, paisa) in cases {
            assert_eq!(Paisa::from_rupees(text), Ok(Paisa::new(paisa)), "{text}");
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
            "1 ",
            "1.",
            ".5",
            "abc",
            "1.2.3",
            "NaN",
            "184467440737095516.16",
        ] {
            assert!(Paisa::from_rupees(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn json_numbers_may_carry_an_exponent() {
        let cases = [
            ("100.0", 10000),
            ("100", 10000),
            ("1.0E7", 1_000_000_000),
            ("1.5e2", 15000),
            ("1E+2", 10000),
            ("12345E-2", 12345),
            ("0.0E0", 0),
        ];
        for (text, paisa) in cases {
            assert_eq!(
                Paisa::from_json_number(text),
                Ok(Paisa::new(paisa)),
                "{text}"
            );
        }
        for bad in [
            "1E-3",
            "1e",
            "1e+",
            "1e99999999999",
            "1e31",
            "-1.0",
            "1.0E7.5",
        ] {
            assert!(Paisa::from_json_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn callback_amounts_may_group_thousands() {
        assert_eq!(
            Paisa::from_callback_rupees("2,700.0"),
            Ok(Paisa::new(270000))
        );
        assert_eq!(
            Paisa::from_callback_rupees("1,234,567"),
            Ok(Paisa::new(123456700))
        );
        assert_eq!(
            Paisa::from_callback_rupees("1000.0"),
            Ok(Paisa::new(100000))
        );
        for bad in [",100", "100,", "1,,000", "1.000,5", "1,0x0"] {
            assert!(Paisa::from_callback_rupees(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn negative_i64_is_refused() {
        assert_eq!(Paisa::try_from(11050i64), Ok(Paisa::new(11050)));
        assert!(Paisa::try_from(-1i64).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// paisa → the text put in a form → paisa is the identity, for every amount.
        #[test]
        fn rupee_text_round_trips(paisa in any::<u64>()) {
            let text = Paisa::new(paisa).to_rupees();
            prop_assert_eq!(Paisa::from_rupees(&text), Ok(Paisa::new(paisa)));
            prop_assert_eq!(Paisa::from_callback_rupees(&text), Ok(Paisa::new(paisa)));
            prop_assert_eq!(Paisa::from_json_number(&text), Ok(Paisa::new(paisa)));
        }

        /// The text is the shortest exact one: no trailing zero after a point, at most
        /// two decimals, so `"110"` and `"110.0"` are never both produced for one amount.
        #[test]
        fn rupee_text_is_canonical(paisa in any::<u64>()) {
            let text = Paisa::new(paisa).to_rupees();
            if let Some((_, fraction)) = text.split_once('.') {
                prop_assert!(!fraction.is_empty() && fraction.len() <= 2);
                prop_assert!(!fraction.ends_with('0'));
            }
        }

        /// eSewa's own renderings of an amount (`1000.0`, `1000.00`, `1,000.0`) read as
        /// the same paisa.
        #[test]
        fn other_renderings_read_the_same(rupees in 0u64..100_000_000, paisa in 0u64..100) {
            let expected = Paisa::new(rupees * 100 + paisa);
            let two = format!("{rupees}.{paisa:02}");
            prop_assert_eq!(Paisa::from_rupees(&two), Ok(expected));
            let grouped = group_thousands(rupees);
            prop_assert_eq!(Paisa::from_callback_rupees(&format!("{grouped}.{paisa:02}")), Ok(expected));
        }
    }

    fn group_thousands(n: u64) -> String {
        let digits = n.to_string();
        let (head, rest) = digits.split_at(digits.len() % 3);
        let mut groups: Vec<&str> = rest
            .as_bytes()
            .chunks(3)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        if !head.is_empty() {
            groups.insert(0, head);
        }
        groups.join(",")
    }
}
