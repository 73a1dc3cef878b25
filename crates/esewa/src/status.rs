//! The status check's answer (esewa.md §5), and the statuses shared with the redirect.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{one_line, Error, RawAnswer};
use crate::paisa::Paisa;

/// Where a payment stands, as eSewa names it (esewa.md §5.3).
///
/// Only [`Status::Complete`] is paid. A status eSewa does not document is kept verbatim in
/// [`Status::Other`] rather than refused: refusing would make a payment unreadable (and
/// its answer a 502) because eSewa added a word; callers must treat it as neither paid nor
/// final, like `PENDING`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `COMPLETE`: "Successful Payment". The only status to fulfil on, after checking
    /// the amount.
    Complete,
    /// `PENDING`: "Payment Initiated but not been completed yet". Ask again later.
    Pending,
    /// `AMBIGUOUS`: "Payment is at hult state" (sic: halt). Not final; ask again later.
    Ambiguous,
    /// `NOT_FOUND`: "Payment terminated at eSewa: Session expired". Also what eSewa says
    /// before the payer's browser has posted the form, so final only once the payment
    /// link's lifetime has passed (esewa.md §5.3).
    NotFound,
    /// `CANCELED`: "Canceled/Reversed from eSewa side". Failed.
    Canceled,
    /// `FULL_REFUND`: "Full Payment refunded to the customer".
    FullRefund,
    /// `PARTIAL_REFUND`: "Partial payment refunded to the customer".
    PartialRefund,
    /// Any other text, verbatim. Not paid, not final.
    Other(String),
}

impl Status {
    /// Reads a status as eSewa writes it. Never fails: unknown text becomes
    /// [`Status::Other`]. Surrounding spaces and letter case are ignored.
    pub fn parse(text: &str) -> Status {
        match text.trim().to_ascii_uppercase().as_str() {
            "COMPLETE" => Status::Complete,
            "PENDING" => Status::Pending,
            "AMBIGUOUS" => Status::Ambiguous,
            "NOT_FOUND" => Status::NotFound,
            "CANCELED" => Status::Canceled,
            "FULL_REFUND" => Status::FullRefund,
            "PARTIAL_REFUND" => Status::PartialRefund,
            _ => Status::Other(text.to_string()),
        }
    }

    /// eSewa's spelling (or the verbatim text for `Other`).
    pub fn as_str(&self) -> &str {
        match self {
            Status::Complete => "COMPLETE",
            Status::Pending => "PENDING",
            Status::Ambiguous => "AMBIGUOUS",
            Status::NotFound => "NOT_FOUND",
            Status::Canceled => "CANCELED",
            Status::FullRefund => "FULL_REFUND",
            Status::PartialRefund => "PARTIAL_REFUND",
            Status::Other(text) => text,
        }
    }

    /// True only for `COMPLETE`, the one status eSewa says is paid.
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the status API said about one payment.
///
/// Not signed (esewa.md §5.2): it is believed because it came from the configured status
/// host, and only after its `transaction_uuid` and `product_code` were checked against
/// what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusAnswer {
    /// Where the payment stands.
    pub status: Status,
    /// The attempt asked about (checked to be the one asked).
    pub transaction_uuid: String,
    /// The amount eSewa holds, read exactly from its JSON number (`100.0`); `None` when
    /// the answer carries none or `null` (possible for `NOT_FOUND`, where nothing was
    /// paid; undocumented, so tolerated).
    pub total_amount: Option<Paisa>,
    /// eSewa's reference (`0001TS9`), the redirect's `transaction_code`; `None` for
    /// `PENDING` and `NOT_FOUND` in the docs' samples.
    pub ref_id: Option<String>,
    /// The answer as received.
    pub raw: RawAnswer,
}

impl StatusAnswer {
    /// Whether this answer says the payment is paid in full at `amount`: `COMPLETE` and
    /// the same number of paisa. The status API compares amounts as numbers (`100` finds
    /// `100.0`, esewa.md §5.1), so a mismatch here means eSewa holds another amount.
    pub fn confirms(&self, amount: Paisa) -> bool {
        self.status.is_complete() && self.total_amount == Some(amount)
    }

    /// Reads a status answer received some other way (kept from earlier, or in a
    /// benchmark) exactly as [`Client::status`](crate::Client::status) reads eSewa's:
    /// `asked_uuid` and `product_code` must be what it is about.
    pub fn from_answer(
        raw: RawAnswer,
        asked_uuid: &str,
        product_code: &str,
    ) -> Result<StatusAnswer, Error> {
        interpret_status(raw, asked_uuid, product_code)
    }
}

/// A JSON object whose values are kept as their raw text, so amounts never pass through
/// an f64.
struct RawObject(BTreeMap<String, Box<RawValue>>);

impl RawObject {
    fn parse(text: &str) -> Option<RawObject> {
        serde_json::from_str(text).ok().map(RawObject)
    }

    /// The first of `names` present and not `null`.
    fn raw(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .filter_map(|name| self.0.get(*name))
            .map(|raw| raw.get().trim())
            .find(|raw| *raw != "null")
    }

    /// A string field (or a number, as its literal: ids and codes are text to us).
    fn text(&self, names: &[&str]) -> Option<String> {
        let raw = self.raw(names)?;
        match serde_json::from_str::<Value>(raw).ok()? {
            Value::String(s) => Some(s),
            Value::Number(_) => Some(raw.to_string()),
            _ => None,
        }
    }

    /// Whether the field is a JSON string, the mark of a status body (a framework's
    /// error body has a numeric `status`).
    fn is_string(&self, name: &str) -> bool {
        self.raw(&[name]).is_some_and(|raw| raw.starts_with('"'))
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

pub(crate) fn invalid(raw: RawAnswer, reason: String) -> Error {
    Error::InvalidAnswer {
        http_status: raw.http_status,
        reason,
        raw,
    }
}

/// eSewa's answer to "where is this payment?", in this order:
///
/// 1. A JSON object with a string `status` is a status answer, on a 2xx or a 4xx (the
///    body decides, not the undocumented HTTP code; esewa.md §11 row 13).
/// 2. eSewa's envelope `{"code", "error_message"}` without a status: `Unable to fetch
///    merchant key` is [`Error::Unauthorized`]; on a 2xx or 5xx it is the outage answer,
///    [`Error::Unavailable`]; on a 4xx, [`Error::Rejected`].
/// 3. Otherwise by HTTP code: 5xx [`Error::ServerError`]; 401/403
///    [`Error::Unauthorized`]; 404 (a wrong status host or path) and anything not JSON
///    [`Error::InvalidAnswer`]; another 4xx with a JSON body [`Error::Rejected`].
pub(crate) fn interpret_status(
    raw: RawAnswer,
    asked_uuid: &str,
    product_code: &str,
) -> Result<StatusAnswer, Error> {
    let http = raw.http_status;
    let object = RawObject::parse(&raw.body);

    if let Some(object) = &object {
        if (is_success(http) || (400..500).contains(&http)) && object.is_string("status") {
            return read_status(object, raw, asked_uuid, product_code);
        }
        if let Some(message) = object.text(&["error_message"]) {
            let message = one_line(&message);
            let code = object.text(&["code"]);
            // esewa.md §3.3: the answer to an unknown product code (HTTP 400 there).
            if message.to_ascii_lowercase().contains("merchant key") {
                return Err(Error::Unauthorized { message, raw });
            }
            if is_success(http) || http >= 500 {
                return Err(Error::Unavailable { code, message, raw });
            }
            if (400..500).contains(&http) {
                return Err(Error::Rejected {
                    http_status: http,
                    code,
                    message: Some(message),
                    raw,
                });
            }
        }
    }

    match http {
        500..=599 => Err(Error::ServerError {
            http_status: http,
            raw,
        }),
        401 | 403 => Err(Error::Unauthorized {
            message: object
                .as_ref()
                .and_then(|o| o.text(&["message", "error"]))
                .map(|m| one_line(&m))
                .unwrap_or_else(|| format!("HTTP {http} without an explanation")),
            raw,
        }),
        404 => Err(invalid(
            raw,
            "HTTP 404: the status API is not at the configured status_url".into(),
        )),
        400..=499 if object.is_some() => Err(Error::Rejected {
            http_status: http,
            code: None,
            message: object
                .as_ref()
                .and_then(|o| o.text(&["message", "error"]))
                .map(|m| one_line(&m)),
            raw,
        }),
        _ if object.is_some() && is_success(http) => Err(invalid(
            raw,
            "the body has neither a `status` nor an `error_message`".into(),
        )),
        _ if is_success(http) || (400..500).contains(&http) => {
            let reason = match serde_json::from_str::<Value>(&raw.body) {
                Ok(_) => "the body is not a JSON object".to_string(),
                Err(e) => format!("the body is not JSON ({e})"),
            };
            Err(invalid(raw, reason))
        }
        _ => Err(invalid(raw, format!("unexpected HTTP status {http}"))),
    }
}

fn read_status(
    object: &RawObject,
    raw: RawAnswer,
    asked_uuid: &str,
    product_code: &str,
) -> Result<StatusAnswer, Error> {
    // Field names of the current answer first, then the older shape (`pid`, `scd`,
    // `totalAmount`, `refId`) that one SDK still meets (esewa.md §5.2).
    let status = object.text(&["status"]).unwrap_or_default();
    let Some(uuid) = object.text(&["transaction_uuid", "pid"]) else {
        return Err(invalid(raw, "the answer has no `transaction_uuid`".into()));
    };
    if uuid != asked_uuid {
        let reason =
            format!("the answer is about transaction_uuid {uuid:?}, not the asked {asked_uuid:?}");
        return Err(invalid(raw, reason));
    }
    if let Some(code) = object.text(&["product_code", "scd"]) {
        if code != product_code {
            let reason =
                format!("the answer is about product_code {code:?}, not ours ({product_code:?})");
            return Err(invalid(raw, reason));
        }
    }
    let total_amount = match object.raw(&["total_amount", "totalAmount"]) {
        None => None,
        Some(text) => {
            // A JSON number as documented; a string holding one is read the same way.
            let text = serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_string());
            match Paisa::from_json_number(text.trim()) {
                Ok(amount) => Some(amount),
                Err(e) => {
                    return Err(invalid(
                        raw,
                        format!("`total_amount` is not an amount ({e})"),
                    ))
                }
            }
        }
    };
    let ref_id = object
        .text(&["ref_id", "refId"])
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    Ok(StatusAnswer {
        status: Status::parse(&status),
        transaction_uuid: uuid,
        total_amount,
        ref_id,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(http_status: u16, body: &str) -> RawAnswer {
        RawAnswer {
            http_status,
            body: body.into(),
        }
    }

    fn read(http_status: u16, body: &str) -> Result<StatusAnswer, Error> {
        interpret_status(raw(http_status, body), "123", "EPAYTEST")
    }

    #[test]
    fn statuses_parse_both_ways() {
        for status in [
            Status::Complete,
            Status::Pending,
            Status::Ambiguous,
            Status::NotFound,
            Status::Canceled,
            Status::FullRefund,
            Status::PartialRefund,
        ] {
            assert_eq!(Status::parse(status.as_str()), status);
            assert_eq!(Status::parse(&status.as_str().to_lowercase()), status);
        }
        assert_eq!(Status::parse("REVERSED"), Status::Other("REVERSED".into()));
        assert!(!Status::parse("REVERSED").is_complete());
        assert_eq!(Status::Other("X".into()).to_string(), "X");
    }

    #[test]
    fn the_older_shape_is_read() {
        let answer = read(
            200,
            r#"{"pid":"123","scd":"EPAYTEST","totalAmount":100.0,"status":"COMPLETE","refId":"0001TS9"}"#,
        )
        .unwrap();
        assert_eq!(answer.status, Status::Complete);
        assert_eq!(answer.total_amount, Some(Paisa::new(10000)));
        assert_eq!(answer.ref_id.as_deref(), Some("0001TS9"));
        assert!(answer.confirms(Paisa::new(10000)));
    }

    #[test]
    fn an_answer_about_something_else_is_invalid() {
        for body in [
            r#"{"product_code":"EPAYTEST","transaction_uuid":"124","total_amount":100.0,"status":"COMPLETE","ref_id":"x"}"#,
            r#"{"product_code":"OTHER","transaction_uuid":"123","total_amount":100.0,"status":"COMPLETE","ref_id":"x"}"#,
            r#"{"product_code":"EPAYTEST","total_amount":100.0,"status":"COMPLETE"}"#,
            r#"{"product_code":"EPAYTEST","transaction_uuid":"123","total_amount":"lots","status":"COMPLETE"}"#,
            r#"{"product_code":"EPAYTEST","transaction_uuid":"123","total_amount":100.005,"status":"COMPLETE"}"#,
        ] {
            assert!(
                matches!(read(200, body), Err(Error::InvalidAnswer { .. })),
                "{body}"
            );
        }
    }

    #[test]
    fn amounts_are_read_exactly_from_numbers_and_strings() {
        for (text, paisa) in [
            ("100.0", 10000),
            ("100", 10000),
            ("\"19.99\"", 1999),
            ("1.0E7", 1_000_000_000),
        ] {
            let body = format!(
                r#"{{"product_code":"EPAYTEST","transaction_uuid":"123","total_amount":{text},"status":"COMPLETE","ref_id":"0001TS9"}}"#
            );
            assert_eq!(
                read(200, &body).unwrap().total_amount,
                Some(Paisa::new(paisa)),
                "{text}"
            );
        }
    }

    #[test]
    fn a_framework_error_body_is_not_a_status() {
        // A numeric `status` (Spring Boot's error shape) is not a payment status.
        let body = r#"{"timestamp":"2025-06-10T10:00:00.000+00:00","status":500,"error":"Internal Server Error","path":"/api/epay/transaction/status/"}"#;
        assert!(matches!(
            read(500, body),
            Err(Error::ServerError {
                http_status: 500,
                ..
            })
        ));
        let body = r#"{"timestamp":"2025-06-10T10:00:00.000+00:00","status":400,"error":"Bad Request","path":"/api/epay/transaction/status/"}"#;
        match read(400, body) {
            Err(Error::Rejected {
                http_status: 400,
                message,
                ..
            }) => {
                assert_eq!(message.as_deref(), Some("Bad Request"));
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        let body = r#"{"timestamp":"2025-06-10T10:00:00.000+00:00","status":200}"#;
        assert!(matches!(read(200, body), Err(Error::InvalidAnswer { .. })));
    }

    #[test]
    fn envelopes_by_meaning() {
        let merchant =
            r#"{"error_message":"Unable to fetch merchant key. Please try again later.","code":0}"#;
        for http in [200, 400] {
            assert!(
                matches!(read(http, merchant), Err(Error::Unauthorized { .. })),
                "{http}"
            );
        }
        let outage = r#"{"code": 0, "error_message": "Service is currently unavailable"}"#;
        for http in [200, 503] {
            match read(http, outage) {
                Err(Error::Unavailable { code, message, raw }) => {
                    assert_eq!(code.as_deref(), Some("0"));
                    assert_eq!(message, "Service is currently unavailable");
                    assert_eq!(raw.http_status, http);
                }
                other => panic!("HTTP {http}: expected Unavailable, got {other:?}"),
            }
        }
        let es104 = r#"{"code":"ES104","error_message":"Invalid payload signature"}"#;
        match read(400, es104) {
            Err(Error::Rejected { code, message, .. }) => {
                assert_eq!(code.as_deref(), Some("ES104"));
                assert_eq!(message.as_deref(), Some("Invalid payload signature"));
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn redirects_404s_and_html_are_invalid_answers() {
        assert!(matches!(
            read(302, ""),
            Err(Error::InvalidAnswer {
                http_status: 302,
                ..
            })
        ));
        assert!(matches!(
            read(
                404,
                r#"{"timestamp":"x","status":404,"error":"Not Found","path":"/x"}"#
            ),
            Err(Error::InvalidAnswer {
                http_status: 404,
                ..
            })
        ));
        assert!(matches!(
            read(400, "<html>bad</html>"),
            Err(Error::InvalidAnswer { .. })
        ));
        assert!(matches!(read(401, ""), Err(Error::Unauthorized { .. })));
    }
}
