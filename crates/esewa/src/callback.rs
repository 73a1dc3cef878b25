//! The success redirect: `success_url?data=<base64 JSON>`, signed by eSewa (esewa.md §4.2).
//!
//! A hostile input: anyone can send a browser, or a script, to the success URL with any
//! `data`. So it is bounded in size before anything else, decoded, and its signature
//! checked over the exact text received before any field is believed:
//!
//! - the message is `name=value` for each name in the `signed_field_names` it carries, in
//!   that order, each value the JSON string's content or a number's literal as written
//!   (`1000.0` stays `1000.0`; esewa.md §4.2 step 2), never re-rendered;
//! - `signed_field_names` must name `total_amount`, `transaction_uuid`, `product_code`
//!   and `status`, or a signature over fewer fields could be replayed onto another
//!   payment (esewa.md §4.2 step 3);
//! - the comparison is constant-time (`subtle`).
//!
//! Even a valid signature is evidence, not a verdict: it proves eSewa wrote this payload
//! once, not that the payment is still `COMPLETE` nor that it is the one the merchant
//! expects. Check [`Callback::confirms`], then ask the status API and act on its answer
//! alone (esewa.md §4.2 step 7, §10.1).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::paisa::Paisa;
use crate::signature;
use crate::status::Status;

/// The longest `data` accepted, in bytes as received. A real one is about 400 (esewa.md
/// §4.2 sample); ten times that leaves room for a 100-character uuid and percent-encoding,
/// and bounds the work a forged redirect can cause.
pub const MAX_CALLBACK_DATA_LEN: usize = 4096;

/// The fields a callback's signature must cover (esewa.md §4.2 step 3).
const MUST_BE_SIGNED: [&str; 4] = ["total_amount", "transaction_uuid", "product_code", "status"];

/// Standard base64, with or without its `=` padding: a redirect may lose it on the way.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A success redirect whose signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// eSewa's reference for the payment (`000AWEO`); the status API's `ref_id`.
    pub transaction_code: String,
    /// The status eSewa wrote (`COMPLETE` in every sample).
    pub status: Status,
    /// `total_amount` exactly as received and signed: eSewa's rendering (`"1000.0"`,
    /// possibly `"2,700.0"`), not the text the merchant posted.
    pub total_amount_text: String,
    /// [`Callback::total_amount_text`] read as paisa (thousands separators dropped).
    pub total_amount: Paisa,
    /// The merchant's attempt id, echoed.
    pub transaction_uuid: String,
    /// The merchant code, echoed; always the client's own (checked).
    pub product_code: String,
    /// The names the signature covers, as received.
    pub signed_field_names: String,
    /// The decoded JSON, as received, for the audit trail.
    pub json: String,
}

impl Callback {
    /// Whether this redirect is evidence of the payment the merchant expects: `COMPLETE`,
    /// for this attempt, for this amount. Evidence only: settle on the status API.
    pub fn confirms(&self, transaction_uuid: &str, amount: Paisa) -> bool {
        self.status.is_complete()
            && self.transaction_uuid == transaction_uuid
            && self.total_amount == amount
    }
}

/// Why a success redirect's `data` was refused. Every case means "believe nothing in it";
/// the distinctions are for the operator's record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Longer than [`MAX_CALLBACK_DATA_LEN`]; not decoded at all.
    #[error("the data is {len} bytes, more than the {max} a success redirect needs")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not base64 (after percent-decoding, and reading spaces as the `+` a form decoder
    /// turned into them).
    #[error("the data is not base64")]
    NotBase64,
    /// Decoded, but not UTF-8 JSON holding one object with distinct keys.
    #[error("the data is not a JSON object: {reason}")]
    NotJson {
        /// What was wrong.
        reason: String,
    },
    /// A field the signature or the answer needs is absent.
    #[error("the data has no `{field}`")]
    MissingField {
        /// The field's name (bounded in length).
        field: String,
    },
    /// A field is present but unusable: not a string or number, an empty name in
    /// `signed_field_names`, an amount that is not one, another merchant's code.
    #[error("`{field}` {reason}")]
    BadField {
        /// The field's name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `signed_field_names` leaves out a field that must be signed.
    #[error("`{field}` is not among the signed fields")]
    NotSigned {
        /// The field left out.
        field: &'static str,
    },
    /// The signature does not match the fields it names, with this merchant's key.
    #[error("the signature does not match the data")]
    BadSignature,
}

/// The `data` parameter's value, still encoded, from a success redirect's raw query.
///
/// eSewa appends `?data=…` blindly, so a `success_url` that already had a query arrives
/// as `?payment=42?data=…` (esewa.md §4.2, §11 row 8): a framework's query parser then
/// hides `data` inside the previous parameter. This finds it either way (the last one,
/// since eSewa appends). Pass the result to [`Client::verify_callback`](crate::Client::verify_callback).
pub fn callback_data_from_query(query: &str) -> Option<&str> {
    query
        .rsplit(['&', '?'])
        .find_map(|part| part.strip_prefix("data="))
}

/// Decodes and verifies `data` for the merchant `product_code` keyed by `secret`.
pub(crate) fn verify_callback(
    data: &str,
    product_code: &str,
    secret: &[u8],
) -> Result<Callback, CallbackError> {
    if data.len() > MAX_CALLBACK_DATA_LEN {
        return Err(CallbackError::TooLarge {
            len: data.len(),
            max: MAX_CALLBACK_DATA_LEN,
        });
    }
    let bytes = BASE64
        .decode(unescape(data)?)
        .map_err(|_| CallbackError::NotBase64)?;
    let json = String::from_utf8(bytes).map_err(|_| CallbackError::NotJson {
        reason: "it is not UTF-8".into(),
    })?;
    let fields: Fields = serde_json::from_str(&json).map_err(|e| CallbackError::NotJson {
        reason: e.to_string(),
    })?;

    let names_text = fields.text("signed_field_names")?;
    let names: Vec<&str> = names_text.split(',').collect();
    if names.iter().any(|name| name.is_empty()) {
        return Err(bad("signed_field_names", "has an empty name"));
    }
    if let Some(field) = MUST_BE_SIGNED.into_iter().find(|f| !names.contains(f)) {
        return Err(CallbackError::NotSigned { field });
    }
    let mut values = Vec::with_capacity(names.len());
    for name in &names {
        values.push(fields.text(name)?);
    }
    let signature = fields.text("signature")?;

    let pairs = || names.iter().copied().zip(values.iter().map(String::as_str));
    let mut valid = signature::matches(secret, &signature::message(pairs()), &signature);
    let total_text = fields.text("total_amount")?;
    if !valid && total_text.contains(',') {
        // Open question (esewa.md §4.2 step 5, §14.3): the one real callback with a
        // grouped amount ("2,700.0") is signed over the plain text ("2700.0"). The exact
        // text is tried first; the plain one only when the amount is grouped.
        let plain = total_text.replace(',', "");
        let message = signature::message(pairs().map(|(name, value)| {
            if name == "total_amount" {
                (name, plain.as_str())
            } else {
                (name, value)
            }
        }));
        valid = signature::matches(secret, &message, &signature);
    }
    if !valid {
        return Err(CallbackError::BadSignature);
    }

    let total_amount = Paisa::from_callback_rupees(&total_text)
        .map_err(|e| bad("total_amount", &format!("is not an amount ({e})")))?;
    let received_code = fields.text("product_code")?;
    if received_code != product_code {
        return Err(bad(
            "product_code",
            &format!("is {received_code:?}, not this merchant's {product_code:?}"),
        ));
    }
    Ok(Callback {
        transaction_code: fields.text("transaction_code")?,
        status: Status::parse(&fields.text("status")?),
        total_amount_text: total_text,
        total_amount,
        transaction_uuid: fields.text("transaction_uuid")?,
        product_code: received_code,
        signed_field_names: names_text,
        json,
    })
}

fn bad(field: &str, reason: &str) -> CallbackError {
    CallbackError::BadField {
        field: bounded(field),
        reason: reason.to_string(),
    }
}

/// A name taken from hostile input, cut short for the error message.
fn bounded(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Undoes what may have happened to `data` on the way: percent-encoding (`%2B`, `%2F`,
/// `%3D`; esewa.md §11 row 9) and a form decoder's `+` → space. base64 has neither `%`
/// nor spaces, so this cannot change a value that arrived intact.
fn unescape(data: &str) -> Result<Vec<u8>, CallbackError> {
    let bytes = data.trim().as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(CallbackError::NotBase64)?;
                out.push(hex);
                i += 3;
            }
            b' ' => {
                out.push(b'+');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A JSON object's fields, each kept as its raw text, in the order received. Duplicate
/// keys are refused: the signature and the answer must read the same value.
struct Fields(Vec<(String, Box<RawValue>)>);

impl Fields {
    /// The text of a field as eSewa signs it: a string's content, or a number's literal.
    fn text(&self, name: &str) -> Result<String, CallbackError> {
        let raw = self
            .0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, raw)| raw.get().trim())
            .ok_or_else(|| CallbackError::MissingField {
                field: bounded(name),
            })?;
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).map_err(|_| bad(name, "is not a JSON string"))
        } else if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Ok(raw.to_string())
        } else {
            Err(bad(name, "is neither a string nor a number"))
        }
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Fields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    if fields.iter().any(|(seen, _)| *seen == key) {
                        return Err(de::Error::custom(format!(
                            "the key {:?} appears twice",
                            bounded(&key)
                        )));
                    }
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const UAT: &[u8] = b"8gBm/:&EnhH.1/q";

    /// The docs' success sample as it travels (esewa.md §4.2), vector V2.
    const V2_JSON: &str = r#"{"transaction_code":"000AWEO","status":"COMPLETE","total_amount":"1000.0","transaction_uuid":"250610-162413","product_code":"EPAYTEST","signed_field_names":"transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names","signature":"62GcfZTmVkzhtUeh+QJ1AqiJrjoWWGof3U+eTPTZ7fA="}"#;

    const NAMES: &str =
        "transaction_code,status,total_amount,transaction_uuid,product_code,signed_field_names";

    fn encode(json: &str) -> String {
        STANDARD.encode(json)
    }

    /// A callback signed with `secret` over `signed_total` while showing `shown_total`.
    fn signed_json(shown_total: &str, signed_total: &str, uuid: &str, secret: &[u8]) -> String {
        let message = signature::message([
            ("transaction_code", "0007XYZ"),
            ("status", "COMPLETE"),
            ("total_amount", signed_total),
            ("transaction_uuid", uuid),
            ("product_code", "EPAYTEST"),
            ("signed_field_names", NAMES),
        ]);
        let sig = signature::sign(secret, &message);
        format!(
            r#"{{"transaction_code":"0007XYZ","status":"COMPLETE","total_amount":"{shown_total}","transaction_uuid":"{uuid}","product_code":"EPAYTEST","signed_field_names":"{NAMES}","signature":"{sig}"}}"#
        )
    }

    #[test]
    fn the_docs_sample_v2_verifies() {
        let callback = verify_callback(&encode(V2_JSON), "EPAYTEST", UAT).unwrap();
        assert_eq!(callback.transaction_code, "000AWEO");
        assert_eq!(callback.status, Status::Complete);
        assert_eq!(callback.total_amount_text, "1000.0");
        assert_eq!(callback.total_amount, Paisa::new(100000));
        assert_eq!(callback.transaction_uuid, "250610-162413");
        assert_eq!(callback.product_code, "EPAYTEST");
        assert_eq!(callback.signed_field_names, NAMES);
        assert_eq!(callback.json, V2_JSON);
        assert!(callback.confirms("250610-162413", Paisa::new(100000)));
        assert!(!callback.confirms("250610-162413", Paisa::new(100001)));
        assert!(!callback.confirms("250610-162414", Paisa::new(100000)));
    }

    #[test]
    fn a_number_is_signed_as_its_literal() {
        // The docs' pretty-printed sample has a bare 1000.0: it must sign as "1000.0".
        let json = V2_JSON.replace(r#""total_amount":"1000.0""#, r#""total_amount":1000.0"#);
        let callback = verify_callback(&encode(&json), "EPAYTEST", UAT).unwrap();
        assert_eq!(callback.total_amount_text, "1000.0");
        let rerendered = V2_JSON.replace(r#""total_amount":"1000.0""#, r#""total_amount":1000"#);
        assert_eq!(
            verify_callback(&encode(&rerendered), "EPAYTEST", UAT),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn what_a_url_does_to_base64_is_undone() {
        // V2 with a field that is not signed (and so changes nothing), chosen so that
        // the base64 holds all of `+`, `/` and `=`.
        let json = V2_JSON.replace('}', r#","note":"~~~???"}"#);
        let data = encode(&json);
        assert!(data.contains('+') && data.contains('/') && data.ends_with('='));
        let percent = data
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let spaces = data.replace('+', " ");
        let unpadded = data.trim_end_matches('=').to_string();
        for variant in [percent, spaces, unpadded, format!(" {data}\n")] {
            let callback = verify_callback(&variant, "EPAYTEST", UAT).unwrap();
            assert_eq!(callback.transaction_code, "000AWEO");
        }
    }

    #[test]
    fn a_grouped_amount_is_signed_over_the_plain_text() {
        let json = signed_json("2,700.0", "2700.0", "t-1", UAT);
        let callback = verify_callback(&encode(&json), "EPAYTEST", UAT).unwrap();
        assert_eq!(callback.total_amount_text, "2,700.0");
        assert_eq!(callback.total_amount, Paisa::new(270000));
        // Signed over the grouped text itself also verifies (the exact text comes first).
        let json = signed_json("2,700.0", "2,700.0", "t-1", UAT);
        assert!(verify_callback(&encode(&json), "EPAYTEST", UAT).is_ok());
        // But the fallback does not let another amount through.
        let json = signed_json("2,700.0", "2800.0", "t-1", UAT);
        assert_eq!(
            verify_callback(&encode(&json), "EPAYTEST", UAT),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn a_changed_field_or_key_breaks_the_signature() {
        for (from, to) in [
            (r#""total_amount":"1000.0""#, r#""total_amount":"1.0""#),
            (r#""status":"COMPLETE""#, r#""status":"PENDING""#),
            (
                r#""transaction_uuid":"250610-162413""#,
                r#""transaction_uuid":"250610-162414""#,
            ),
            (
                r#""transaction_code":"000AWEO""#,
                r#""transaction_code":"000AWEP""#,
            ),
            ("62GcfZTmVkzhtUeh", "72GcfZTmVkzhtUeh"),
        ] {
            let forged = V2_JSON.replace(from, to);
            assert_ne!(forged, V2_JSON);
            assert_eq!(
                verify_callback(&encode(&forged), "EPAYTEST", UAT),
                Err(CallbackError::BadSignature),
                "{to}"
            );
        }
        assert_eq!(
            verify_callback(&encode(V2_JSON), "EPAYTEST", b"another key"),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn another_merchants_valid_callback_is_refused() {
        assert!(matches!(
            verify_callback(&encode(V2_JSON), "SHOP2", UAT),
            Err(CallbackError::BadField { field, .. }) if field == "product_code"
        ));
    }

    #[test]
    fn too_few_signed_fields_are_refused() {
        // A signature over the request's three fields only could be replayed with
        // another status: refused before any HMAC is computed.
        let names = "total_amount,transaction_uuid,product_code";
        let message = signature::message([
            ("total_amount", "1000.0"),
            ("transaction_uuid", "250610-162413"),
            ("product_code", "EPAYTEST"),
        ]);
        let json = format!(
            r#"{{"transaction_code":"000AWEO","status":"COMPLETE","total_amount":"1000.0","transaction_uuid":"250610-162413","product_code":"EPAYTEST","signed_field_names":"{names}","signature":"{}"}}"#,
            signature::sign(UAT, &message)
        );
        assert_eq!(
            verify_callback(&encode(&json), "EPAYTEST", UAT),
            Err(CallbackError::NotSigned { field: "status" })
        );
    }

    #[test]
    fn malformed_data_says_why() {
        let too_long = "A".repeat(MAX_CALLBACK_DATA_LEN + 1);
        assert_eq!(
            verify_callback(&too_long, "EPAYTEST", UAT),
            Err(CallbackError::TooLarge {
                len: MAX_CALLBACK_DATA_LEN + 1,
                max: MAX_CALLBACK_DATA_LEN
            })
        );
        for bad in ["not base64!", "%ZZ", "%2", "abc%+1"] {
            assert_eq!(
                verify_callback(bad, "EPAYTEST", UAT),
                Err(CallbackError::NotBase64),
                "{bad}"
            );
        }
        for json in ["[1,2]", "not json", r#""text""#, "{", r#"{"a":1,"a":2}"#] {
            assert!(
                matches!(
                    verify_callback(&encode(json), "EPAYTEST", UAT),
                    Err(CallbackError::NotJson { .. })
                ),
                "{json}"
            );
        }
        assert!(matches!(
            verify_callback(&STANDARD.encode([0xff, 0xfe]), "EPAYTEST", UAT),
            Err(CallbackError::NotJson { .. })
        ));
        let no_signature = V2_JSON.replace(
            r#","signature":"62GcfZTmVkzhtUeh+QJ1AqiJrjoWWGof3U+eTPTZ7fA=""#,
            "",
        );
        assert_eq!(
            verify_callback(&encode(&no_signature), "EPAYTEST", UAT),
            Err(CallbackError::MissingField {
                field: "signature".into()
            })
        );
        let no_status = V2_JSON.replace(r#""status":"COMPLETE","#, "");
        assert_eq!(
            verify_callback(&encode(&no_status), "EPAYTEST", UAT),
            Err(CallbackError::MissingField {
                field: "status".into()
            })
        );
        let null_status = V2_JSON.replace(r#""status":"COMPLETE""#, r#""status":null"#);
        assert!(matches!(
            verify_callback(&encode(&null_status), "EPAYTEST", UAT),
            Err(CallbackError::BadField { field, .. }) if field == "status"
        ));
        let empty_name = V2_JSON.replace(
            "product_code,signed_field_names",
            "product_code,,signed_field_names",
        );
        assert!(matches!(
            verify_callback(&encode(&empty_name), "EPAYTEST", UAT),
            Err(CallbackError::BadField { field, .. }) if field == "signed_field_names"
        ));
    }

    #[test]
    fn a_signed_amount_that_is_not_an_amount_is_refused() {
        let json = signed_json("lots", "lots", "t-1", UAT);
        assert!(matches!(
            verify_callback(&encode(&json), "EPAYTEST", UAT),
            Err(CallbackError::BadField { field, .. }) if field == "total_amount"
        ));
    }

    #[test]
    fn data_is_found_in_a_query_even_when_glued() {
        assert_eq!(callback_data_from_query("data=abc%3D"), Some("abc%3D"));
        assert_eq!(
            callback_data_from_query("payment=42&data=abc="),
            Some("abc=")
        );
        assert_eq!(
            callback_data_from_query("payment=42?data=abc=="),
            Some("abc==")
        );
        assert_eq!(callback_data_from_query("?data=x"), Some("x"));
        assert_eq!(callback_data_from_query("payment=42"), None);
        assert_eq!(callback_data_from_query("metadata=x"), None);
    }
}
