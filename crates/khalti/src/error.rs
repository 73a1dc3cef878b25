//! The error taxonomy: what went wrong, in terms a caller can act on.

use std::collections::BTreeMap;

/// The exact answer Khalti gave, kept so the caller can store it for audit.
///
/// Payment disputes are settled on what the gateway said, not on what we parsed, so
/// every answer (success or error) carries its raw form. `body` is the response body
/// decoded as UTF-8 (invalid bytes, which Khalti's JSON never contains, are replaced
/// with U+FFFD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    /// The HTTP status code Khalti answered with.
    pub http_status: u16,
    /// The response body.
    pub body: String,
}

/// Everything that can go wrong when talking to Khalti.
///
/// The variants are split by what the caller should do next, not by where the failure
/// happened: fix the request ([`Error::Rejected`]), fix the key ([`Error::Unauthorized`]),
/// give up on an unknown payment ([`Error::NotFound`]), retry later
/// ([`Error::is_transient`]) or alert an operator ([`Error::InvalidAnswer`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Khalti refused the request as invalid (a 4xx validation answer). Its field errors
    /// are kept, keyed by field name (nested fields as `customer_info.email`,
    /// list items as `product_details[0].name`), because they are what a merchant needs
    /// to fix the request.
    #[error("Khalti rejected the request (HTTP {http_status}){}", with_colon(rejected_reason(detail.as_deref(), field_errors)))]
    Rejected {
        /// The HTTP status code (400 in every documented case).
        http_status: u16,
        /// The `detail` message, when Khalti sent one.
        detail: Option<String>,
        /// Messages per field, e.g. `amount` → `["A valid integer is required."]`.
        field_errors: BTreeMap<String, Vec<String>>,
        /// Khalti's `error_key` (usually `validation_error`), when sent.
        error_key: Option<String>,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// Khalti refused the secret key (HTTP 401/403): wrong key, a key for the other
    /// environment, or a missing `Key ` prefix (khalti.md §2). Retrying will not help.
    #[error("Khalti refused the secret key (HTTP {}): {detail}", raw.http_status)]
    Unauthorized {
        /// Khalti's explanation, e.g. `Invalid token.`.
        detail: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// Khalti does not know the `pidx` or transaction (HTTP 404 with its JSON error body
    /// `{"detail":"Not found.", ...}`; the same body with HTTP 400 counts too, because
    /// the status code is undocumented, khalti.md §12.1). Only raised when the body is
    /// Khalti's own JSON error envelope, so a misrouted request that hits some other
    /// server's HTML 404 page is an [`Error::InvalidAnswer`] instead and cannot make a
    /// payment look nonexistent.
    #[error("Khalti has no such payment or transaction: {detail}")]
    NotFound {
        /// Khalti's explanation, e.g. `Not found.`.
        detail: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// No complete answer arrived within [`Config::timeout`](crate::Config::timeout).
    /// The request may or may not have been processed by Khalti.
    #[error("Khalti did not answer in time")]
    Timeout,

    /// Could not connect, or the connection dropped before a complete answer arrived.
    #[error("could not reach Khalti: {source}")]
    Unreachable {
        /// The underlying transport error.
        #[source]
        source: reqwest::Error,
    },

    /// Khalti answered with a 5xx status: its side failed.
    #[error("Khalti had a server error (HTTP {http_status})")]
    ServerError {
        /// The HTTP status code.
        http_status: u16,
        /// The answer as received (often an HTML page from a proxy).
        raw: RawAnswer,
    },

    /// The answer is not what Khalti's contract says: not JSON, missing or ill-typed
    /// fields, an unexpected status code, or an answer about a different payment.
    /// Someone should look at `raw`.
    #[error("Khalti answered unexpectedly (HTTP {http_status}): {reason}")]
    InvalidAnswer {
        /// The HTTP status code.
        http_status: u16,
        /// What was wrong with it.
        reason: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// The request was never sent because something the caller supplied cannot be used:
    /// a `base_url` that is not http(s), a secret key that cannot be put in an HTTP
    /// header, or an empty id. Not part of the brief's list; it exists so that
    /// [`Client::new`](crate::Client::new) and the id-taking calls can refuse bad input
    /// without pretending Khalti said something.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// The answer Khalti gave, when there was one, so the caller can store it even for a
    /// failed call.
    pub fn raw(&self) -> Option<&RawAnswer> {
        match self {
            Error::Rejected { raw, .. }
            | Error::Unauthorized { raw, .. }
            | Error::NotFound { raw, .. }
            | Error::ServerError { raw, .. }
            | Error::InvalidAnswer { raw, .. } => Some(raw),
            Error::Timeout | Error::Unreachable { .. } | Error::InvalidInput { .. } => None,
        }
    }

    /// A one-line reason fit to show a merchant. For a validation refusal it is Khalti's
    /// own words, e.g. `amount: Amount should be greater than Rs. 10, that is 1000 paisa.`
    pub fn reason(&self) -> String {
        match self {
            Error::Rejected {
                http_status,
                detail,
                field_errors,
                ..
            } => {
                let reason = rejected_reason(detail.as_deref(), field_errors);
                if reason.is_empty() {
                    format!("Khalti rejected the request (HTTP {http_status})")
                } else {
                    reason
                }
            }
            Error::Unauthorized { detail, .. } => {
                format!("Khalti refused the secret key: {detail}")
            }
            Error::NotFound { detail, .. } => {
                format!("Khalti has no such payment or transaction ({detail})")
            }
            other => one_line(&other.to_string()),
        }
    }

    /// Whether the same call may succeed if repeated later: true for [`Error::Timeout`],
    /// [`Error::Unreachable`] and [`Error::ServerError`].
    ///
    /// Repeating a lookup is always safe. Repeating an initiate or a refund is not: the
    /// first attempt may have been processed even though no answer came back, and
    /// Khalti offers no idempotency key (khalti.md §8.8).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout | Error::Unreachable { .. } | Error::ServerError { .. }
        )
    }
}

/// `field: msg msg; other: msg` followed by the detail, whichever exist. Field-less
/// messages (`non_field_errors`) are shown without a prefix.
fn rejected_reason(detail: Option<&str>, field_errors: &BTreeMap<String, Vec<String>>) -> String {
    let mut parts: Vec<String> = field_errors
        .iter()
        .map(|(field, messages)| {
            let joined = messages.join(" ");
            if field == "non_field_errors" || field.is_empty() {
                joined
            } else {
                format!("{field}: {joined}")
            }
        })
        .collect();
    if let Some(detail) = detail.filter(|d| !d.trim().is_empty()) {
        parts.insert(0, detail.to_string());
    }
    one_line(&parts.join("; "))
}

/// `": reason"`, or nothing when there is no reason.
fn with_colon(reason: String) -> String {
    if reason.is_empty() {
        reason
    } else {
        format!(": {reason}")
    }
}

/// Collapses newlines and runs of whitespace so that a reason stays on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u16) -> RawAnswer {
        RawAnswer {
            http_status: status,
            body: String::new(),
        }
    }

    #[test]
    fn rejected_reason_lists_fields_then_detail() {
        let mut field_errors = BTreeMap::new();
        field_errors.insert(
            "website_url".to_string(),
            vec!["Enter a valid URL.".to_string()],
        );
        field_errors.insert(
            "amount".to_string(),
            vec!["A valid integer is required.".to_string()],
        );
        let err = Error::Rejected {
            http_status: 400,
            detail: Some("Bad\nrequest".into()),
            field_errors,
            error_key: Some("validation_error".into()),
            raw: raw(400),
        };
        assert_eq!(
            err.reason(),
            "Bad request; amount: A valid integer is required.; website_url: Enter a valid URL."
        );
        assert!(!err.is_transient());
        assert_eq!(err.raw().unwrap().http_status, 400);
    }

    #[test]
    fn rejected_without_anything_still_says_something() {
        let err = Error::Rejected {
            http_status: 409,
            detail: None,
            field_errors: BTreeMap::new(),
            error_key: None,
            raw: raw(409),
        };
        assert_eq!(err.reason(), "Khalti rejected the request (HTTP 409)");
        assert_eq!(err.to_string(), "Khalti rejected the request (HTTP 409)");
    }

    #[test]
    fn transient_kinds() {
        assert!(Error::Timeout.is_transient());
        assert!(Error::ServerError {
            http_status: 502,
            raw: raw(502)
        }
        .is_transient());
        assert!(!Error::InvalidAnswer {
            http_status: 200,
            reason: "x".into(),
            raw: raw(200)
        }
        .is_transient());
        assert!(!Error::InvalidInput { reason: "x".into() }.is_transient());
        assert!(Error::Timeout.raw().is_none());
    }
}
