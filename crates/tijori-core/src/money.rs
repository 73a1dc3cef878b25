//! Money as integer minor units. A float never holds an amount anywhere in tijori.
//!
//! An amount is written two ways: the wire form, "1200.00" (`Money::to_major_string`),
//! that the API, the database and the gateways read; and the people form, "Rs.
//! 1,200.00" (`Money::for_people`), for pages, mail and receipts, which only eyes read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The currencies the gateways we support can take (Khalti: NPR; Chapa: ETB, USD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// Nepalese rupee, counted in paisa; Khalti takes it.
    Npr,
    /// Ethiopian birr, counted in santim; Chapa takes it.
    Etb,
    /// US dollar, counted in cents; Chapa takes it.
    Usd,
}

impl Currency {
    /// Every currency tijori takes: the ones `FromStr` accepts.
    pub const ALL: [Currency; 3] = [Currency::Npr, Currency::Etb, Currency::Usd];

    /// The ISO 4217 code: what the database stores, the API shows and Chapa is sent.
    /// `FromStr` reads it back, in any case.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Npr => "NPR",
            Currency::Etb => "ETB",
            Currency::Usd => "USD",
        }
    }

    /// Digits after the decimal point; all three have two (paisa, santim, cent).
    pub fn exponent(self) -> u32 {
        2
    }

    /// The sign people read before an amount, as [`Money::for_people`] writes it; also
    /// for a label beside a field that takes an amount ("Price (Rs.)").
    pub fn symbol(self) -> &'static str {
        match self {
            // "Rs." with the point: how eSewa writes rupees to its customers ("Rs.
            // 1,000" on its tariff page) and Khalti mostly does ("Rs. 100", beside "Rs
            // 50,000", on its limits page). "NPR" reads as a bank code, and "रू" would
            // be the only non-Latin text on an English page.
            Currency::Npr => "Rs.",
            // "ETB", not "Br": a Chapa shop may list the same plan in birr and in US
            // dollars, and "ETB 1,700.00" next to "US$ 12.50" cannot be misread, where
            // "Br" is not recognised by every customer (and is Belarus's rouble too).
            // Chapa itself names the currency ETB in its documentation and limits.
            Currency::Etb => "ETB",
            // "US$", not "$": Chapa's customers pay in birr and dollars side by side, so
            // the dollar says whose it is; and it keeps the same "sign, space, number"
            // shape as the other two, so amounts line up in a list.
            Currency::Usd => "US$",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A currency code that is not NPR, ETB or USD; holds the text as it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?}: expected one of NPR, ETB, USD")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "NPR" => Ok(Currency::Npr),
            "ETB" => Ok(Currency::Etb),
            "USD" => Ok(Currency::Usd),
            _ => Err(UnknownCurrency(s.to_owned())),
        }
    }
}

/// An amount in a currency's minor unit (paisa for NPR). Never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// Why an amount was refused by `Money::from_minor` or `Money::parse_major`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not digits with an optional `.` and fraction: "1e3", ".5", "5." and "+5" are refused.
    #[error("amount {0:?} is not a decimal number like \"500\" or \"500.00\"")]
    Malformed(String),
    /// More digits after the point than the currency's minor unit has ("500.005" in NPR).
    #[error("amount {0:?} has more than two decimal places")]
    TooPrecise(String),
    /// A leading minus sign (even "-0"), or a negative count of minor units.
    #[error("amount must not be negative")]
    Negative,
    /// More minor units than an `i64` holds.
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl Money {
    /// Wraps an amount already in minor units, as the store keeps it; refuses a negative one.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { minor, currency })
    }

    /// Parses a price in major units as a person writes it ("500", "500.5", "1200.00").
    pub fn parse_major(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let s = text.trim();
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let minor = unsigned_minor(s, text, currency)?;
        let minor = i64::try_from(minor).map_err(|_| MoneyError::TooLarge(text.to_owned()))?;
        Ok(Money { minor, currency })
    }

    /// The amount in minor units: 50000 is NPR 500.00.
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency `minor` counts in.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// "500.00": the decimal string the HTTP API shows prices as.
    pub fn to_major_string(self) -> String {
        let scale = 10i64.pow(self.currency.exponent());
        format!(
            "{}.{:0width$}",
            self.minor / scale,
            self.minor % scale,
            width = self.currency.exponent() as usize
        )
    }

    /// "Rs. 1,200.00": the amount as a customer or an operator reads it, in pages, mail
    /// and receipts. Never for the API or the database, which keep
    /// [`Money::to_major_string`]'s "1200.00" (a machine parses that; this is for eyes).
    pub fn for_people(self) -> String {
        // `minor` is never negative; `unsigned_abs` is its u64 without a cast.
        people_form(false, self.minor.unsigned_abs(), self.currency)
    }
}

/// A signed count of minor units as people read it: "-Rs. 50.00" for `-5000` in NPR.
/// `Money` is never negative, but a refund line on a receipt and a day's net revenue
/// (refunds larger than takings) are; every `i64` is written, `i64::MIN` included.
pub fn minor_for_people(minor: i64, currency: Currency) -> String {
    people_form(minor < 0, minor.unsigned_abs(), currency)
}

/// The people form of an amount that is already in its wire form: a major-unit decimal
/// string ("1200.00", as the API and the page views carry it, or "-50.00" for a refund
/// line) and a currency code ("NPR", in any case). `None` when either does not parse,
/// or the amount does not fit in an `i64` of minor units, so a template can show the
/// raw value instead of a wrong one. This is what the web templates' filter calls.
pub fn major_for_people(major: &str, currency: &str) -> Option<String> {
    let currency: Currency = currency.parse().ok()?;
    let s = major.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let magnitude = unsigned_minor(digits, major, currency).ok()?;
    // The same range `minor_for_people` takes: up to i64::MAX, down to i64::MIN.
    if magnitude > i64::MAX.unsigned_abs() + u64::from(negative) {
        return None;
    }
    Some(people_form(negative, magnitude, currency))
}

/// Minor units in `s`, digits with an optional point and fraction and no sign, as
/// `Money::parse_major` accepts them; `text` is what the caller was given, for errors.
/// The one parser of major-unit amounts, so the people form's filter reads exactly
/// what the API accepts (with a sign in front, for refund lines).
fn unsigned_minor(s: &str, text: &str, currency: Currency) -> Result<u64, MoneyError> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(MoneyError::Malformed(text.to_owned()));
    }
    let exp = currency.exponent() as usize;
    if frac.len() > exp {
        return Err(MoneyError::TooPrecise(text.to_owned()));
    }
    let scale = 10u64.pow(exp as u32);
    let too_large = || MoneyError::TooLarge(text.to_owned());
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let frac_minor: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<exp$}").parse().map_err(|_| too_large())?
    };
    whole
        .checked_mul(scale)
        .and_then(|m| m.checked_add(frac_minor))
        .ok_or_else(too_large)
}

/// Writes `magnitude` minor units of `currency` for people, after a minus when
/// `negative` (and not zero: no "-Rs. 0.00"). The one place the people form is made.
///
/// The whole part is grouped in threes from the decimal point ("1,234,567.00"), the
/// western grouping. Nepal also writes lakh grouping ("12,34,567.00", ne-NP in CLDR),
/// and eSewa's own tariff page uses both ("Rs. 50,001 – 100,000" beside "Rs.
/// 1,00,000"), while Khalti's limits page writes "Rs 50,000" and spells the larger
/// amounts in words ("Rs 2 Lakhs"); glibc's ne_NP locale groups in threes. So there is
/// no single Nepali practice to follow; threes are read by everyone, are what Chapa
/// prints for birr ("50,000 per transaction and 200,000 daily"), and let an operator
/// compare an NPR column with an ETB one. A Nepali translation may choose lakh grouping.
///
/// Works on the magnitude as a `u64` so `i64::MIN` has one: nothing here can overflow.
fn people_form(negative: bool, magnitude: u64, currency: Currency) -> String {
    let exp = currency.exponent();
    let scale = 10u64.pow(exp);
    let whole = (magnitude / scale).to_string();
    let fraction = magnitude % scale;
    let mut out = String::with_capacity(whole.len() * 4 / 3 + 12);
    if negative && magnitude != 0 {
        out.push('-');
    }
    out.push_str(currency.symbol());
    // An ordinary space, so the text is what a person would type or search for; a
    // page that must keep "Rs." and its number on one line says so in its CSS.
    out.push(' ');
    // The first group is what is left over from the threes counted from the point.
    let mut until_separator = match whole.len() % 3 {
        0 => 3,
        short => short,
    };
    for digit in whole.chars() {
        if until_separator == 0 {
            out.push(',');
            until_separator = 3;
        }
        out.push(digit);
        until_separator -= 1;
    }
    out.push_str(&format!(".{fraction:0width$}", width = exp as usize));
    out
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.currency, self.to_major_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_units_into_minor() {
        let npr = |s| Money::parse_major(s, Currency::Npr).map(Money::minor);
        assert_eq!(npr("500"), Ok(50_000));
        assert_eq!(npr("500.5"), Ok(50_050));
        assert_eq!(npr("500.05"), Ok(50_005));
        assert_eq!(npr(" 0.01 "), Ok(1));
        assert!(matches!(npr("500.005"), Err(MoneyError::TooPrecise(_))));
        assert!(matches!(npr("-1"), Err(MoneyError::Negative)));
        assert!(matches!(npr("1e3"), Err(MoneyError::Malformed(_))));
        assert!(matches!(npr("5."), Err(MoneyError::Malformed(_))));
        assert!(matches!(npr(".5"), Err(MoneyError::Malformed(_))));
        assert!(matches!(npr(""), Err(MoneyError::Malformed(_))));
        assert!(matches!(
            npr("99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_as_decimal_string() {
        let m = Money::from_minor(50_005, Currency::Npr).unwrap();
        assert_eq!(m.to_major_string(), "500.05");
        assert_eq!(m.to_string(), "NPR 500.05");
        assert_eq!(
            Money::from_minor(7, Currency::Usd)
                .unwrap()
                .to_major_string(),
            "0.07"
        );
    }

    #[test]
    fn currency_codes_round_trip() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        assert!("npr".parse::<Currency>().is_ok());
        assert!("INR".parse::<Currency>().is_err());
    }

    #[test]
    fn people_read_a_sign_separators_and_two_decimals() {
        let people = |minor, c| Money::from_minor(minor, c).unwrap().for_people();
        assert_eq!(people(120_000, Currency::Npr), "Rs. 1,200.00");
        assert_eq!(people(170_000, Currency::Etb), "ETB 1,700.00");
        assert_eq!(people(1_250, Currency::Usd), "US$ 12.50");
        assert_eq!(people(0, Currency::Npr), "Rs. 0.00");
        assert_eq!(people(7, Currency::Npr), "Rs. 0.07");
        assert_eq!(people(99_999, Currency::Npr), "Rs. 999.99");
        assert_eq!(people(100_000, Currency::Npr), "Rs. 1,000.00");
        // Three-digit groups, not lakh (see `people_form`): one lakh is 100,000.
        assert_eq!(people(10_000_000, Currency::Npr), "Rs. 100,000.00");
        assert_eq!(people(123_456_789, Currency::Etb), "ETB 1,234,567.89");
        assert_eq!(
            people(i64::MAX, Currency::Npr),
            "Rs. 92,233,720,368,547,758.07"
        );
    }

    #[test]
    fn negative_amounts_put_the_minus_before_the_sign() {
        assert_eq!(minor_for_people(-5_000, Currency::Npr), "-Rs. 50.00");
        assert_eq!(minor_for_people(-123_456, Currency::Usd), "-US$ 1,234.56");
        assert_eq!(minor_for_people(0, Currency::Etb), "ETB 0.00");
        assert_eq!(
            minor_for_people(i64::MIN, Currency::Npr),
            "-Rs. 92,233,720,368,547,758.08"
        );
        assert_eq!(
            minor_for_people(i64::MAX, Currency::Npr),
            "Rs. 92,233,720,368,547,758.07"
        );
    }

    #[test]
    fn wire_strings_become_the_people_form_or_nothing() {
        assert_eq!(
            major_for_people("1200.00", "NPR").as_deref(),
            Some("Rs. 1,200.00")
        );
        assert_eq!(
            major_for_people("1700", "etb").as_deref(),
            Some("ETB 1,700.00")
        );
        assert_eq!(
            major_for_people("12.5", "USD").as_deref(),
            Some("US$ 12.50")
        );
        assert_eq!(
            major_for_people("-50.00", "NPR").as_deref(),
            Some("-Rs. 50.00")
        );
        assert_eq!(
            major_for_people("-0.00", "NPR").as_deref(),
            Some("Rs. 0.00")
        );
        assert_eq!(
            major_for_people("-92233720368547758.08", "NPR").as_deref(),
            Some("-Rs. 92,233,720,368,547,758.08")
        );
        // Past what an i64 of paisa holds, on either side.
        assert_eq!(major_for_people("92233720368547758.08", "NPR"), None);
        assert_eq!(major_for_people("-92233720368547758.09", "NPR"), None);
        assert_eq!(major_for_people("99999999999999999999", "NPR"), None);
        // Not the wire form: refused rather than guessed at.
        for bad in [
            "", "-", "1,200.00", "1e3", ".5", "5.", "+5", "--5", "- 5", "5.005", "NaN",
        ] {
            assert_eq!(major_for_people(bad, "NPR"), None, "{bad:?}");
        }
        assert_eq!(major_for_people("1200.00", "INR"), None);
        assert_eq!(major_for_people("1200.00", ""), None);
    }

    mod people_form {
        use super::*;
        use proptest::prelude::*;

        fn currency() -> impl Strategy<Value = Currency> {
            prop::sample::select(Currency::ALL.to_vec())
        }

        fn money() -> impl Strategy<Value = Money> {
            // Every size of amount, not just the small ones a uniform i64 rarely gives.
            let minor = prop_oneof![0i64..1_000_000, 0i64..=i64::MAX, Just(i64::MAX)];
            (minor, currency()).prop_map(|(m, c)| Money::from_minor(m, c).unwrap())
        }

        /// The digits and point of a people form, without minus, sign or separators.
        fn bare(text: &str, currency: Currency) -> String {
            let text = text.strip_prefix('-').unwrap_or(text);
            let text = text
                .strip_prefix(currency.symbol())
                .and_then(|t| t.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{text:?} does not start with the sign"));
            text.replace(',', "")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// The people form says exactly what the API says: take away the sign and
            /// the separators and what is left is `to_major_string`.
            #[test]
            fn it_is_the_wire_amount_with_a_sign_and_separators(m in money()) {
                prop_assert_eq!(bare(&m.for_people(), m.currency()), m.to_major_string());
            }

            /// A separator after every third digit left of the point, and nowhere else.
            #[test]
            fn separators_group_three_digits_from_the_point(minor: i64, c in currency()) {
                let text = minor_for_people(minor, c);
                let number = text.rsplit(' ').next().unwrap();
                let (whole, fraction) = number.split_once('.').unwrap();
                prop_assert_eq!(fraction.len(), c.exponent() as usize);
                prop_assert!(fraction.bytes().all(|b| b.is_ascii_digit()));
                let groups: Vec<&str> = whole.split(',').collect();
                prop_assert!((1..=3).contains(&groups[0].len()), "{}", text);
                prop_assert!(groups[1..].iter().all(|g| g.len() == 3), "{}", text);
                prop_assert!(groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit())));
                prop_assert!(groups[0] == "0" || !groups[0].starts_with('0'), "{}", text);
            }

            /// Any i64, negative ones included: a minus exactly when below zero, and the
            /// same digits as the amount without its minus.
            #[test]
            fn signed_amounts_mirror_their_magnitude(minor: i64, c in currency()) {
                let text = minor_for_people(minor, c);
                prop_assert_eq!(text.starts_with('-'), minor < 0);
                prop_assert_eq!(
                    text.trim_start_matches('-'),
                    people_form(false, minor.unsigned_abs(), c)
                );
            }

            /// The filter reads back what the API writes, for every amount and in any
            /// case of currency code, and the refund line's minus with it.
            #[test]
            fn the_wire_form_round_trips(m in money()) {
                let wire = m.to_major_string();
                let code = m.currency().code();
                prop_assert_eq!(major_for_people(&wire, code), Some(m.for_people()));
                prop_assert_eq!(
                    major_for_people(&wire, &code.to_ascii_lowercase()),
                    Some(m.for_people())
                );
                prop_assert_eq!(
                    major_for_people(&format!("-{wire}"), code),
                    Some(minor_for_people(-m.minor(), m.currency()))
                );
            }

            /// Whatever a template hands the filter, it answers (`None` at worst).
            #[test]
            fn the_filter_never_panics(
                major in "\\PC*|-?[0-9]{0,22}(\\.[0-9]{0,3})?",
                code in "\\PC{0,4}|(?i)npr|etb|usd",
            ) {
                let _ = major_for_people(&major, &code);
            }
        }
    }
}
