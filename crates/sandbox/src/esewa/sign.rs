//! eSewa's signatures and money texts (esewa.md §2, §6).
//!
//! Everything eSewa signs is text: `name=value` pairs joined with `,`, HMAC-SHA256 with
//! the merchant's secret, standard base64. The values are the exact characters that
//! travel (`"110"` and `"110.00"` sign differently), so money is kept twice: as the
//! text received, for signatures, and as paisa, for arithmetic and comparisons.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The names a form's `signed_field_names` must list (esewa.md §2.1: "should be
/// mandatory").
pub(crate) const REQUEST_SIGNED_FIELDS: [&str; 3] =
    ["total_amount", "transaction_uuid", "product_code"];

/// The success redirect's `signed_field_names`; it names itself (esewa.md §4.2).
pub(crate) const RESPONSE_SIGNED_FIELD_NAMES: &str =
    "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names";

/// The signed message: `name=value` for each pair, joined with `,` (esewa.md §2.1).
pub(crate) fn message<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// base64(HMAC-SHA256(secret, message)), standard alphabet with padding.
pub(crate) fn sign(secret: &str, message: &str) -> String {
    STANDARD.encode(mac(secret, message).finalize().into_bytes())
}

/// Whether `signature` (base64 text as received) is the HMAC of `message`. The
/// comparison is constant-time (`Mac::verify_slice`); text that is not base64 fails.
pub(crate) fn verify(secret: &str, message: &str, signature: &str) -> bool {
    match STANDARD.decode(signature.trim()) {
        Ok(bytes) => mac(secret, message).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

fn mac(secret: &str, message: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    mac
}

/// Largest whole-rupee part accepted anywhere (12 digits), so that paisa fit an `i64`
/// with room for sums of four amounts.
const MAX_WHOLE_DIGITS: usize = 12;

/// A form amount (esewa.md §13: "plain decimals with at most two significant
/// decimals") in paisa: digits, optionally `.` and digits; trailing zeros after the
/// second decimal are allowed (`"10.500"`). No sign, no spaces, no separators, no
/// exponent. `None` when the text is not such an amount.
pub(crate) fn form_amount(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    paisa(whole, fraction)
}

/// The status query's `total_amount` (esewa.md §11 q15: compared numerically, like a
/// Java `Double` parameter would be). `Err(())` when the text is not a number (the
/// real API would refuse to bind it); `Ok(None)` for a number that is not a whole
/// number of paisa (it matches no payment); `Ok(Some(paisa))` otherwise. Accepts
/// `100`, `100.0`, `100.`, `.5`; not signs, exponents or separators (a sandbox
/// simplification of what `Double.parseDouble` takes).
pub(crate) fn query_amount(text: &str) -> Result<Option<i64>, ()> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(());
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    Ok(paisa(whole, fraction))
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Paisa from checked digit strings; `None` for more than two significant decimals or
/// more than [`MAX_WHOLE_DIGITS`] whole digits.
fn paisa(whole: &str, fraction: &str) -> Option<i64> {
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 2 {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > MAX_WHOLE_DIGITS {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    Some(whole * 100 + fraction)
}

/// eSewa's own rendering of an amount in the success redirect (esewa.md §6, §11 q7):
/// like Java's `Double.toString` for ordinary amounts, at least one decimal:
/// `"1000.0"`, `"133.5"`, `"19.99"`. (Java would switch to `1.0E7` from ten million
/// rupees; no sample shows what eSewa does there, so the sandbox stays plain.)
pub(crate) fn callback_amount(paisa: i64) -> String {
    let whole = paisa / 100;
    let cents = paisa % 100;
    if cents % 10 == 0 {
        format!("{whole}.{}", cents / 10)
    } else {
        format!("{whole}.{cents:02}")
    }
}

/// `"2,700.0"` from `"2700.0"`: thousands separators in the whole part, as one real
/// sandbox callback showed (esewa.md §4.2 step 5, §11 q7).
pub(crate) fn grouped(plain: &str) -> String {
    let (whole, rest) = plain.split_once('.').unwrap_or((plain, ""));
    let mut reversed = String::new();
    for (i, c) in whole.chars().rev().enumerate() {
        if i > 0 && i % 3 == 0 {
            reversed.push(',');
        }
        reversed.push(c);
    }
    let whole: String = reversed.chars().rev().collect();
    if rest.is_empty() && !plain.contains('.') {
        whole
    } else {
        format!("{whole}.{rest}")
    }
}

/// Paisa as the status answer's JSON number (esewa.md §5.2: `100.0`).
pub(crate) fn status_amount(paisa: i64) -> f64 {
    // Exact enough: amounts have at most 14 significant digits, well inside an f64.
    paisa as f64 / 100.0
}

/// `Rs. 1,300.50` for pages.
pub(crate) fn rupees(paisa: i64) -> String {
    format!(
        "Rs. {}.{:02}",
        grouped(&(paisa / 100).to_string()),
        paisa % 100
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters (esewa.md §11 q9:
/// the `+`, `/` and `=` of base64 are encoded in `?data=`).
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UAT_SECRET: &str = "8gBm/:&EnhH.1/q";

    #[test]
    fn request_vector_v1_of_the_docs() {
        let m = message([
            ("total_amount", "110"),
            ("transaction_uuid", "241028"),
            ("product_code", "EPAYTEST"),
        ]);
        assert_eq!(
            m,
            "total_amount=110,transaction_uuid=241028,product_code=EPAYTEST"
        );
        assert_eq!(
            sign(UAT_SECRET, &m),
            "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="
        );
        assert!(verify(
            UAT_SECRET,
            &m,
            "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="
        ));
        // The same total written `110.00` is another message (esewa.md §6).
        assert!(!verify(
            UAT_SECRET,
            "total_amount=110.00,transaction_uuid=241028,product_code=EPAYTEST",
            "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="
        ));
        assert!(!verify(UAT_SECRET, &m, "not base64!"));
    }

    #[test]
    fn response_vector_v2_of_the_docs() {
        let m = message([
            ("transaction_code", "000AWEO"),
            ("status", "COMPLETE"),
            ("total_amount", "1000.0"),
            ("transaction_uuid", "250610-162413"),
            ("product_code", "EPAYTEST"),
            ("signed_field_names", RESPONSE_SIGNED_FIELD_NAMES),
        ]);
        assert_eq!(
            sign(UAT_SECRET, &m),
            "62GcfZTmVkzhtUeh+QJ1AqiJrjoWWGof3U+eTPTZ7fA="
        );
    }

    #[test]
    fn the_printed_v3_result_is_a_doc_bug() {
        // esewa.md §2.2 / §11 q1: the docs print 4Ov7…; the input signs to 5DZy….
        let m = "total_amount=100,transaction_uuid=11-201-13,product_code=EPAYTEST";
        assert_eq!(
            sign(UAT_SECRET, m),
            "5DZywcrTKD0gia/rsSMcrRHmJl+4Tbol6S+lWgdJ94E="
        );
    }

    #[test]
    fn form_amounts() {
        assert_eq!(form_amount("100"), Some(10_000));
        assert_eq!(form_amount("110.5"), Some(11_050));
        assert_eq!(form_amount("0.05"), Some(5));
        assert_eq!(form_amount("10.500"), Some(1_050));
        assert_eq!(form_amount("0"), Some(0));
        for bad in [
            "",
            " 1",
            "1 ",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.234",
            "1,000",
            "1e3",
            "abc",
            "1.2.3",
            "1234567890123",
        ] {
            assert_eq!(form_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn query_amounts() {
        assert_eq!(query_amount("100"), Ok(Some(10_000)));
        assert_eq!(query_amount("100.0"), Ok(Some(10_000)));
        assert_eq!(query_amount("100."), Ok(Some(10_000)));
        assert_eq!(query_amount(".5"), Ok(Some(50)));
        assert_eq!(query_amount("100.001"), Ok(None));
        for bad in ["", ".", "abc", "1,000", "-1", "1e2", " 1"] {
            assert_eq!(query_amount(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn amounts_as_esewa_writes_them() {
        assert_eq!(callback_amount(100_000), "1000.0");
        assert_eq!(callback_amount(13_300), "133.0");
        assert_eq!(callback_amount(13_350), "133.5");
        assert_eq!(callback_amount(1_999), "19.99");
        assert_eq!(callback_amount(5), "0.05");
        assert_eq!(grouped("2700.0"), "2,700.0");
        assert_eq!(grouped("1234567.5"), "1,234,567.5");
        assert_eq!(grouped("999.0"), "999.0");
        assert_eq!(grouped("1000"), "1,000");
        assert_eq!(status_amount(10_000), 100.0);
        assert_eq!(rupees(130_050), "Rs. 1,300.50");
        assert_eq!(encode_component("a+b/c="), "a%2Bb%2Fc%3D");
    }

    proptest::proptest! {
        /// Money read back from eSewa's own rendering is the same number of paisa,
        /// for the form and for the status query.
        #[test]
        fn amounts_read_back(paisa in 0i64..100_000_000_000_000) {
            let text = callback_amount(paisa);
            proptest::prop_assert_eq!(form_amount(&text), Some(paisa));
            proptest::prop_assert_eq!(query_amount(&text), Ok(Some(paisa)));
            proptest::prop_assert_eq!(form_amount(&format!("{}.{:02}", paisa / 100, paisa % 100)), Some(paisa));
            proptest::prop_assert_eq!(grouped(&text).replace(',', ""), text);
        }
    }
}
