//! Django REST Framework look-alikes: field parsing with DRF's default messages.
//!
//! khalti.md §3.3 [INFER]: Khalti's error strings are DRF defaults, so we reproduce
//! DRF's `CharField`, `URLField` (Django's `URLValidator`) and `IntegerField`
//! behaviour, including which inputs are coerced.

use serde_json::Value;

pub(crate) const REQUIRED: &str = "This field is required.";
pub(crate) const NULL: &str = "This field may not be null.";
pub(crate) const BLANK: &str = "This field may not be blank.";
pub(crate) const INVALID_STRING: &str = "Not a valid string.";
pub(crate) const NULL_CHARACTERS: &str = "Null characters are not allowed.";
pub(crate) const INVALID_INTEGER: &str = "A valid integer is required.";
pub(crate) const STRING_TOO_LARGE: &str = "String value too large.";
pub(crate) const INVALID_URL: &str = "Enter a valid URL.";

/// Python's `type(x).__name__` for a JSON value, as DRF puts it in messages.
pub(crate) fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// DRF `CharField` (`trim_whitespace=True`, `allow_blank=False`). `Ok(None)` when an
/// optional field is absent.
pub(crate) fn char_field(
    v: Option<&Value>,
    required: bool,
) -> Result<Option<String>, &'static str> {
    let Some(v) = v else {
        return if required { Err(REQUIRED) } else { Ok(None) };
    };
    let raw = match v {
        Value::Null => return Err(NULL),
        Value::String(s) => s.clone(),
        // DRF coerces ints and floats with str(); the WooCommerce plugin sends an int
        // purchase_order_id (khalti.md §3.1).
        Value::Number(n) => n.to_string(),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => return Err(INVALID_STRING),
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(BLANK);
    }
    if trimmed.contains('\0') {
        return Err(NULL_CHARACTERS);
    }
    Ok(Some(trimmed.to_owned()))
}

/// DRF `URLField`: a `CharField` checked with Django's `URLValidator`.
pub(crate) fn url_field(v: Option<&Value>, required: bool) -> Result<Option<String>, &'static str> {
    match char_field(v, required)? {
        Some(url) if !is_valid_url(&url) => Err(INVALID_URL),
        other => Ok(other),
    }
}

/// DRF `IntegerField`: ints, integral floats (`1000.0`) and integer strings
/// (`"1000"`, `" 1000 "`, `"1000.00"`) are accepted; `1000.5`, `"abc"` and booleans
/// are not. Values beyond `i64` are rejected as invalid too (Python has no limit,
/// but no real amount gets near it).
pub(crate) fn integer_field(
    v: Option<&Value>,
    required: bool,
) -> Result<Option<i64>, &'static str> {
    let Some(v) = v else {
        return if required { Err(REQUIRED) } else { Ok(None) };
    };
    match v {
        Value::Null => Err(NULL),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // DRF does int(re.sub(r'\.0*\s*$', '', str(value))): str(1000.0) is
                // "1000.0" and passes; Python writes 1e16 and above as "1e+16", which
                // fails.
                if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
                    Ok(Some(f as i64))
                } else {
                    Err(INVALID_INTEGER)
                }
            } else {
                Err(INVALID_INTEGER) // u64 beyond i64
            }
        }
        Value::String(s) if s.chars().count() > 1000 => Err(STRING_TOO_LARGE),
        Value::String(s) => parse_python_int(strip_decimal_zeros(s))
            .map(Some)
            .ok_or(INVALID_INTEGER),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => Err(INVALID_INTEGER),
    }
}

/// `re.sub(r'\.0*\s*$', '', s)`
fn strip_decimal_zeros(s: &str) -> &str {
    let without_zeros = s.trim_end().trim_end_matches('0');
    match without_zeros.strip_suffix('.') {
        Some(head) => head,
        None => s,
    }
}

/// Python's `int(str)` for ASCII input: surrounding whitespace, a sign, digits with
/// single underscores between them.
fn parse_python_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let magnitude: i128 = clean.parse().ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// Django's `URLValidator` (schemes http, https, ftp, ftps): a host that is
/// `localhost`, a dotted IPv4 address, a bracketed IPv6 address, or a domain name
/// with a letters-only TLD (so `http://myapp:8000/` is rejected, as on the real
/// service); an optional port of up to 5 digits; no whitespace anywhere.
///
/// Simplification: the user-info part (`user:pass@`) may not contain `?` or `#`
/// (Django allows them there; nobody puts them in a return URL).
pub(crate) fn is_valid_url(value: &str) -> bool {
    if value.chars().count() > 2048 || value.contains(['\t', '\r', '\n']) {
        return false;
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    if !["http", "https", "ftp", "ftps"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return false;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.chars().any(char::is_whitespace) || authority.chars().any(char::is_whitespace) {
        return false;
    }
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if user.is_empty()
                || user.contains(['@', ':'])
                || password.is_some_and(|p| p.contains(['@', ':']))
            {
                return false;
            }
            host_port
        }
        None => authority,
    };
    let (host, port) = if let Some(after_bracket) = host_port.strip_prefix('[') {
        let Some((inside, after)) = after_bracket.split_once(']') else {
            return false;
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host_port), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    match host {
        None => true, // IPv6, checked above
        Some(host) => host.eq_ignore_ascii_case("localhost") || is_ipv4(host) || is_domain(host),
    }
}

/// Django's strict dotted-quad: four 0–255 parts without leading zeros.
fn is_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Django's `hostname_re + domain_re + tld_re`.
fn is_domain(host: &str) -> bool {
    if host.chars().count() > 253 {
        return false;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let Some((tld, names)) = labels.split_last() else {
        return false;
    };
    if names.is_empty() {
        return false;
    }
    // Django's `ul`: \u00a1-\uffff
    let unicode = |c: char| ('\u{a1}'..='\u{ffff}').contains(&c);
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || unicode(c);
    let label_ok = |label: &&str| {
        let n = label.chars().count();
        (1..=63).contains(&n)
            && label.chars().all(name_char)
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !names.iter().all(label_ok) {
        return false;
    }
    let tld_lower = tld.to_ascii_lowercase();
    if let Some(puny) = tld_lower.strip_prefix("xn--") {
        if (1..=59).contains(&puny.len()) && puny.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return true;
        }
    }
    let n = tld.chars().count();
    (2..=63).contains(&n)
        && tld
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '-' || unicode(c))
        && !tld.starts_with('-')
        && !tld.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_like_django() {
        for ok in [
            "https://example.com/",
            "http://example.com",
            "https://example.com/payment/?order=5#x",
            "http://localhost:3000/cb",
            "http://127.0.0.1:8000/khalti/return",
            "http://[::1]:8000/",
            "https://sub.domain.example.com.np/a",
            "HTTPS://EXAMPLE.COM",
            "http://user:pass@example.com/",
            "https://xn--80ak6aa92e.com/",
            "https://例え.jp/",
            "ftp://files.example.org/",
        ] {
            assert!(is_valid_url(ok), "{ok} should be valid");
        }
        for bad in [
            "",
            "example.com",
            "not a url",
            "javascript:alert(1)",
            "mailto:a@b.com",
            "http://",
            "http://myapp:8000/",
            "http://example",
            "http://example.c",
            "http://exa mple.com/",
            "http://example.com/a b",
            "http://-example.com/",
            "http://example-.com/",
            "http://256.1.1.1/",
            "http://01.1.1.1/",
            "http://example.com:123456/",
            "http://example.com:/",
            "http://[::zz]/",
            "http://example.123/",
            "ws://example.com/",
        ] {
            assert!(!is_valid_url(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn integers_like_drf() {
        let ok =
            |v: Value, want: i64| assert_eq!(integer_field(Some(&v), true), Ok(Some(want)), "{v}");
        ok(json!(1300), 1300);
        ok(json!("1000"), 1000);
        ok(json!(" 1000 "), 1000);
        ok(json!("1000.00"), 1000);
        ok(json!("1_000"), 1000);
        ok(json!(1000.0), 1000);
        ok(json!("-5"), -5);
        let bad = |v: Value| assert_eq!(integer_field(Some(&v), true), Err(INVALID_INTEGER), "{v}");
        bad(json!(1000.5));
        bad(json!("1000.5"));
        bad(json!("abc"));
        bad(json!(""));
        bad(json!(true));
        bad(json!([1000]));
        bad(json!({"a": 1}));
        bad(json!("1__000"));
        bad(json!(1e20));
        bad(json!(u64::MAX));
        assert_eq!(integer_field(None, true), Err(REQUIRED));
        assert_eq!(integer_field(None, false), Ok(None));
        assert_eq!(integer_field(Some(&Value::Null), true), Err(NULL));
    }

    #[test]
    fn strings_like_drf() {
        assert_eq!(char_field(Some(&json!(" a ")), true), Ok(Some("a".into())));
        assert_eq!(char_field(Some(&json!(12)), true), Ok(Some("12".into())));
        assert_eq!(char_field(Some(&json!("  ")), true), Err(BLANK));
        assert_eq!(char_field(Some(&json!(true)), true), Err(INVALID_STRING));
        assert_eq!(char_field(Some(&json!({})), true), Err(INVALID_STRING));
        assert_eq!(char_field(Some(&Value::Null), true), Err(NULL));
        assert_eq!(char_field(None, true), Err(REQUIRED));
        assert_eq!(
            char_field(Some(&json!("a\u{0}b")), true),
            Err(NULL_CHARACTERS)
        );
    }
}
