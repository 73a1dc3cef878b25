//! `POST /esewa/api/epay/main/v2/form`: the signed payment form (esewa.md §3).
//!
//! Checks, in this order: all eleven fields present and non-empty; the merchant
//! (`product_code`) known; `signed_field_names` listing the three mandatory names and
//! only fields of the form; the signature over the exact text received; the amounts'
//! format; `total_amount` = the sum of the parts; the `transaction_uuid` characters;
//! the two URLs; the uuid not used before. A valid form stores a `PENDING` payment and
//! answers 302 to the hosted page (esewa.md §3.3), or, in auto-complete mode, pays it
//! at once and answers 302 to the merchant's redirect.
//!
//! esewa.md §14 q1 leaves the answers to a bad form open. The sandbox answers 400 with
//! eSewa's error envelope `{"code": …, "error_message": …}` (§11 q4): `code` 0 and a
//! message of our own for every case but two taken from reports: a bad signature
//! (`"ES104"`, "Invalid payload signature", §11 q5) and an unknown merchant (§11 q6).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Serialize;

use super::sign::{self, REQUEST_SIGNED_FIELDS};
use super::store::{checkout_url, Action, NewPayment};
use super::TEST_ESEWA_IDS;
use crate::Sandbox;

/// The form's fields, in the order of the docs' table (esewa.md §3.2). "All
/// parameters are required i.e. values should not be null or empty."
const FIELDS: [&str; 11] = [
    "amount",
    "tax_amount",
    "product_service_charge",
    "product_delivery_charge",
    "total_amount",
    "transaction_uuid",
    "product_code",
    "success_url",
    "failure_url",
    "signed_field_names",
    "signature",
];

/// The four parts `total_amount` must add up to (esewa.md §3.2).
const PARTS: [&str; 4] = [
    "amount",
    "tax_amount",
    "product_service_charge",
    "product_delivery_charge",
];

/// esewa.md §11 q19: no documented maximum; 50 characters worked in UAT.
const MAX_UUID_LEN: usize = 100;

/// A bad form, one variant per answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FormError {
    Missing(Vec<&'static str>),
    UnknownMerchant,
    SignedFieldNames(String),
    BadSignature,
    Amount(&'static str),
    TotalMismatch,
    Uuid,
    Url(&'static str),
    DuplicateUuid,
}

/// eSewa's error envelope, `code` first as in the outage sample (esewa.md §5.4).
#[derive(Serialize)]
struct Envelope<'a> {
    code: serde_json::Value,
    error_message: &'a str,
}

/// The merchant-key answer, keys in the order reported (esewa.md §3.3).
#[derive(Serialize)]
struct MerchantKeyError {
    error_message: &'static str,
    code: u8,
}

impl IntoResponse for FormError {
    fn into_response(self) -> Response {
        let bad = |code: serde_json::Value, message: &str| {
            (
                StatusCode::BAD_REQUEST,
                Json(Envelope {
                    code,
                    error_message: message,
                }),
            )
                .into_response()
        };
        match self {
            FormError::UnknownMerchant => (
                StatusCode::BAD_REQUEST,
                Json(MerchantKeyError {
                    error_message: "Unable to fetch merchant key. Please try again later.",
                    code: 0,
                }),
            )
                .into_response(),
            FormError::BadSignature => bad("ES104".into(), "Invalid payload signature"),
            FormError::Missing(fields) => bad(
                0.into(),
                &format!("Required field(s) missing or empty: {}", fields.join(", ")),
            ),
            FormError::SignedFieldNames(why) => bad(0.into(), &why),
            FormError::Amount(field) => bad(
                0.into(),
                &format!("Invalid {field}: a plain decimal amount with at most two decimals is expected"),
            ),
            FormError::TotalMismatch => bad(
                0.into(),
                "total_amount must equal amount + tax_amount + product_service_charge + product_delivery_charge",
            ),
            // The docs' own words (esewa.md §3.2).
            FormError::Uuid => bad(
                0.into(),
                "transaction_uuid supports alphanumeric and hyphen(-) only",
            ),
            FormError::Url(field) => bad(
                0.into(),
                &format!("{field} must be an absolute http(s) URL"),
            ),
            FormError::DuplicateUuid => bad(
                0.into(),
                "Duplicate transaction_uuid: it should be unique on every request",
            ),
        }
    }
}

/// `POST /esewa/api/epay/main/v2/form`
pub(super) async fn submit(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = parse_body(&headers, &body);
    let control = sandbox.esewa();
    let now = Utc::now();
    let mut state = control.lock();
    let request = match validate(
        &fields,
        &state.settings.product_code,
        &state.settings.secret_key,
    ) {
        Ok(request) => request,
        Err(e) => {
            tracing::info!(error = ?e, "esewa sandbox: form refused");
            return e.into_response();
        }
    };
    let uuid = match state.create(request, now) {
        Ok(payment) => payment.req.transaction_uuid.clone(),
        Err(_) => return FormError::DuplicateUuid.into_response(),
    };
    tracing::info!(transaction_uuid = %uuid, "esewa sandbox: form accepted");
    let auto = state.settings.auto_complete && state.get(&uuid).is_some_and(|p| p.payable());
    if auto {
        let outcome = state.take_outcome();
        let settle_after = Some(state.settings.complete_after_checks).filter(|n| *n > 0);
        let paid = state.apply(
            &uuid,
            Action::of_outcome(outcome),
            Some(TEST_ESEWA_IDS[0]),
            settle_after,
            now,
        );
        if let Ok(payment) = paid {
            tracing::info!(transaction_uuid = %uuid, status = payment.status.as_str(), "esewa sandbox: auto-completed");
            if let Some(location) = &payment.redirect_url {
                return found(location);
            }
        }
    }
    found(&checkout_url(control.public_url(), &uuid))
}

fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the redirect cannot be sent as a Location header",
        )
            .into_response(),
    }
}

/// The checks of the module docs, in order.
pub(super) fn validate(
    fields: &HashMap<String, String>,
    product_code: &str,
    secret: &str,
) -> Result<NewPayment, FormError> {
    let missing: Vec<&'static str> = FIELDS
        .into_iter()
        .filter(|f| fields.get(*f).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(FormError::Missing(missing));
    }
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();

    if field("product_code") != product_code {
        return Err(FormError::UnknownMerchant);
    }

    let names: Vec<&str> = field("signed_field_names").split(',').collect();
    if let Some(absent) = REQUEST_SIGNED_FIELDS
        .into_iter()
        .find(|n| !names.contains(n))
    {
        return Err(FormError::SignedFieldNames(format!(
            "signed_field_names must include total_amount, transaction_uuid and product_code (missing {absent})"
        )));
    }
    if let Some(unknown) = names.iter().find(|n| !fields.contains_key(**n)) {
        return Err(FormError::SignedFieldNames(format!(
            "signed_field_names lists `{unknown}`, which is not a field of the form"
        )));
    }
    let message = sign::message(names.iter().map(|n| (*n, field(n))));
    if !sign::verify(secret, &message, field("signature")) {
        return Err(FormError::BadSignature);
    }

    let mut parts = 0i64;
    for part in PARTS {
        parts += sign::form_amount(field(part)).ok_or(FormError::Amount(part))?;
    }
    let total = sign::form_amount(field("total_amount"))
        .filter(|t| *t > 0)
        .ok_or(FormError::Amount("total_amount"))?;
    if total != parts {
        return Err(FormError::TotalMismatch);
    }

    let uuid = field("transaction_uuid");
    let uuid_ok =
        uuid.len() <= MAX_UUID_LEN && uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !uuid_ok {
        return Err(FormError::Uuid);
    }

    for name in ["success_url", "failure_url"] {
        let ok = url::Url::parse(field(name))
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !ok {
            return Err(FormError::Url(name));
        }
    }

    Ok(NewPayment {
        transaction_uuid: uuid.to_owned(),
        product_code: field("product_code").to_owned(),
        amount: field("amount").to_owned(),
        tax_amount: field("tax_amount").to_owned(),
        product_service_charge: field("product_service_charge").to_owned(),
        product_delivery_charge: field("product_delivery_charge").to_owned(),
        total_amount: field("total_amount").to_owned(),
        total_paisa: total,
        success_url: field("success_url").to_owned(),
        failure_url: field("failure_url").to_owned(),
    })
}

/// The form's fields from an urlencoded or a `multipart/form-data` body (esewa.md
/// §3.2: the docs' form is urlencoded, some integrations post `FormData`; accepting
/// both is our choice on that open question). Anything unreadable is an empty form,
/// so it is refused for its missing fields. A repeated field keeps its first value.
/// Extra fields are ignored (esewa.md §3.2: unknown fields are unconfirmed; copies of
/// the "try it" form post a `secret`).
pub(super) fn parse_body(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let pairs: Vec<(String, String)> = if media_type == "multipart/form-data" {
        boundary(&content_type)
            .and_then(|b| multipart(body, &b))
            .unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    };
    let mut fields = HashMap::new();
    for (name, value) in pairs {
        fields.entry(name).or_insert(value);
    }
    fields
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The text fields of a `multipart/form-data` body (RFC 7578), enough for a browser's
/// or an HTTP library's `FormData` of plain fields. `None` when it does not parse.
fn multipart(body: &[u8], boundary: &str) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    let mut fields = Vec::new();
    let mut parts = text.split(delimiter.as_str());
    parts.next()?; // the preamble
    for part in parts {
        if part.starts_with("--") {
            return Some(fields);
        }
        let part = part.strip_prefix("\r\n")?;
        let (head, value) = part.split_once("\r\n\r\n")?;
        let value = value.strip_suffix("\r\n")?;
        let name = head.split("\r\n").find_map(|line| {
            let (header, params) = line.split_once(':')?;
            if !header.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            params.split(';').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k == "name").then(|| v.trim_matches('"').to_owned())
            })
        })?;
        fields.push((name, value.to_owned()));
    }
    // No closing delimiter.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = super::super::DEFAULT_ESEWA_SECRET_KEY;

    /// The docs' form sample (esewa.md §3.2), signature V1.
    fn sample() -> HashMap<String, String> {
        [
            ("amount", "100"),
            ("tax_amount", "10"),
            ("total_amount", "110"),
            ("transaction_uuid", "241028"),
            ("product_code", "EPAYTEST"),
            ("product_service_charge", "0"),
            ("product_delivery_charge", "0"),
            ("success_url", "https://developer.esewa.com.np/success"),
            ("failure_url", "https://developer.esewa.com.np/failure"),
            (
                "signed_field_names",
                "total_amount,transaction_uuid,product_code",
            ),
            ("signature", "i94zsd3oXF6ZsSr/kGqT4sSzYQzjj1W/waxjWyRwaME="),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn resigned(mut form: HashMap<String, String>) -> HashMap<String, String> {
        let names = form["signed_field_names"].clone();
        let message = sign::message(names.split(',').map(|n| (n, form[n].as_str())));
        form.insert("signature".into(), sign::sign(SECRET, &message));
        form
    }

    #[test]
    fn the_docs_sample_is_accepted() {
        let p = validate(&sample(), "EPAYTEST", SECRET).unwrap();
        assert_eq!(p.total_paisa, 11_000);
        assert_eq!(p.total_amount, "110");
    }

    #[test]
    fn each_rule_refuses() {
        let check = |change: &dyn Fn(&mut HashMap<String, String>), resign: bool| {
            let mut form = sample();
            change(&mut form);
            let form = if resign { resigned(form) } else { form };
            validate(&form, "EPAYTEST", SECRET).unwrap_err()
        };
        assert_eq!(
            check(
                &|f| {
                    f.remove("tax_amount");
                    f.insert("failure_url".into(), String::new());
                },
                false
            ),
            FormError::Missing(vec!["tax_amount", "failure_url"])
        );
        assert_eq!(
            check(
                &|f| {
                    f.insert("product_code".into(), "OTHER".into());
                },
                true
            ),
            FormError::UnknownMerchant
        );
        assert!(matches!(
            check(
                &|f| {
                    f.insert(
                        "signed_field_names".into(),
                        "total_amount,transaction_uuid".into(),
                    );
                },
                true
            ),
            FormError::SignedFieldNames(_)
        ));
        assert!(matches!(
            check(
                &|f| {
                    f.insert(
                        "signed_field_names".into(),
                        "total_amount,transaction_uuid,product_code,nope".into(),
                    );
                },
                false
            ),
            FormError::SignedFieldNames(_)
        ));
        assert_eq!(
            check(
                &|f| {
                    f.insert("total_amount".into(), "110.00".into());
                },
                false
            ),
            FormError::BadSignature,
            "110.00 is not the text that was signed"
        );
        assert_eq!(
            check(
                &|f| {
                    f.insert("amount".into(), "1e2".into());
                },
                true
            ),
            FormError::Amount("amount")
        );
        assert_eq!(
            check(
                &|f| {
                    f.insert("amount".into(), "0".into());
                    f.insert("tax_amount".into(), "0".into());
                    f.insert("total_amount".into(), "0".into());
                },
                true
            ),
            FormError::Amount("total_amount")
        );
        assert_eq!(
            check(
                &|f| {
                    f.insert("total_amount".into(), "120".into());
                },
                true
            ),
            FormError::TotalMismatch
        );
        assert_eq!(
            check(
                &|f| {
                    f.insert("transaction_uuid".into(), "a_b".into());
                },
                true
            ),
            FormError::Uuid
        );
        assert_eq!(
            check(
                &|f| {
                    f.insert("success_url".into(), "/relative".into());
                },
                true
            ),
            FormError::Url("success_url")
        );
    }

    #[test]
    fn multipart_bodies_are_read() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n100\r\n\
                    --XyZ\r\ncontent-disposition: form-data; name=\"signature\"\r\n\r\na+b/c=\r\n\
                    --XyZ--\r\n";
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
        );
        let fields = parse_body(&headers, body.as_bytes());
        assert_eq!(fields["amount"], "100");
        assert_eq!(fields["signature"], "a+b/c=");
        assert!(multipart(b"--XyZ\r\nno head", "XyZ").is_none());
    }

    /// `text` of `paisa` in one of the ways merchants write amounts.
    fn written(paisa: i64, style: u8) -> String {
        match style {
            0 if paisa % 100 == 0 => (paisa / 100).to_string(),
            0 | 1 => format!("{}.{:02}", paisa / 100, paisa % 100),
            2 => sign::callback_amount(paisa),
            _ => format!("{}.{:02}0", paisa / 100, paisa % 100),
        }
    }

    proptest::proptest! {
        /// The total rule: a form whose total is the sum of its four parts is
        /// accepted with that total in paisa, whatever the writing of each amount; any
        /// other total is refused.
        #[test]
        fn total_is_the_sum_of_the_parts(
            parts in proptest::array::uniform4(0i64..1_000_000_000),
            styles in proptest::array::uniform5(0u8..4),
            off in -1_000i64..1_000,
        ) {
            let sum: i64 = parts.iter().sum();
            proptest::prop_assume!(sum > 0 && sum + off > 0);
            let mut form = sample();
            for (i, name) in PARTS.iter().enumerate() {
                form.insert((*name).to_owned(), written(parts[i], styles[i]));
            }
            form.insert("total_amount".into(), written(sum + off, styles[4]));
            let result = validate(&resigned(form), "EPAYTEST", SECRET);
            if off == 0 {
                proptest::prop_assert_eq!(result.map(|p| p.total_paisa), Ok(sum));
            } else {
                proptest::prop_assert_eq!(result.map(|p| p.total_paisa), Err(FormError::TotalMismatch));
            }
        }
    }
}
