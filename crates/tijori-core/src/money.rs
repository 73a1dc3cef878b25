//! Money as integer minor units. A float never holds an amount anywhere in tijori.

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
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(MoneyError::Malformed(text.to_owned()));
        }
        let exp = currency.exponent() as usize;
        if frac.len() > exp {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let scale = 10i64.pow(exp as u32);
        let too_large = || MoneyError::TooLarge(text.to_owned());
        let whole: i64 = whole.parse().map_err(|_| too_large())?;
        let frac_minor: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<exp$}").parse().map_err(|_| too_large())?
        };
        let minor = whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(frac_minor))
            .ok_or_else(too_large)?;
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
}
