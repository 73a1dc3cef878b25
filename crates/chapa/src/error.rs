//! The error taxonomy: what went wrong, in terms a caller can act on.

use std::collections::BTreeMap;

/// The exact answer Chapa gave, kept so the caller can store it for audit.
///
/// `body` is the response body decoded as UTF-8 (invalid bytes replaced with U+FFFD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    /// The HTTP status code Chapa answered with.
    pub http_status: u16,
    /// The response body.
    pub body: String,
}

/// Everything that can go wrong when talking to Chapa.
///
/// Split by what the caller should do next: fix the request ([`Error::Rejected`]), fix
/// the key ([`Error::Unauthorized`]), give up on an unknown transaction
/// ([`Error::NotFound`]), retry later ([`Error::is_transient`]) or alert an operator
/// ([`Error::InvalidAnswer`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Chapa refused the request (a 4xx answer other than 401/403/404, or a 2xx answer
    /// whose envelope says `"status": "failed"`): a duplicate `tx_ref`, an unsupported
    /// currency, validation errors, a merchant whose API access is disabled, HTTP 429.
    #[error("Chapa rejected the request (HTTP {http_status}){}", with_colon(rejected_reason(message.as_deref(), field_errors)))]
    Rejected {
        /// The HTTP status code.
        http_status: u16,
        /// The `message` when it is a string, trimmed (Chapa's samples carry trailing
        /// tabs, chapa.md §1), e.g. `Transaction reference has been used before`.
        message: Option<String>,
        /// The `message` when it is an object of Laravel validation keys (chapa.md §1.1),
        /// e.g. `email` → `["validation.email"]`.
        field_errors: BTreeMap<String, Vec<String>>,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// Chapa refused the secret key (HTTP 401/403): missing, wrong or revoked key, or a
    /// test key used on a live transaction and vice versa (chapa.md §4.2). Retrying will
    /// not help.
    #[error("Chapa refused the secret key (HTTP {}): {message}", raw.http_status)]
    Unauthorized {
        /// Chapa's explanation, trimmed.
        message: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// Chapa does not know the transaction (HTTP 404 with Chapa's JSON envelope, e.g.
    /// `Invalid transaction or Transaction not found`). "Payment not paid yet" is *not*
    /// this error: [`Client::verify`](crate::Client::verify) reports it as an answer.
    /// An HTML 404 from some other server is [`Error::InvalidAnswer`].
    #[error("Chapa has no such transaction: {message}")]
    NotFound {
        /// Chapa's explanation, trimmed.
        message: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// No complete answer arrived within [`Config::timeout`](crate::Config::timeout).
    /// The request may or may not have been processed by Chapa.
    #[error("Chapa did not answer in time")]
    Timeout,

    /// Could not connect, or the connection dropped before a complete answer arrived.
    #[error("could not reach Chapa: {source}")]
    Unreachable {
        /// The underlying transport error.
        #[source]
        source: reqwest::Error,
    },

    /// Chapa answered with a 5xx status: its side failed.
    #[error("Chapa had a server error (HTTP {http_status})")]
    ServerError {
        /// The HTTP status code.
        http_status: u16,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// The answer is not what Chapa's contract says: not JSON, missing or ill-typed
    /// fields, an unexpected status code, or an answer about another transaction.
    #[error("Chapa answered unexpectedly (HTTP {http_status}): {reason}")]
    InvalidAnswer {
        /// The HTTP status code.
        http_status: u16,
        /// What was wrong with it.
        reason: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// The request was never sent because something the caller supplied cannot be used
    /// (a `base_url` that is not http(s), an unusable key, an empty reference, a zero
    /// amount, a `tx_ref` outside `[A-Za-z0-9_-]`).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// The answer Chapa gave, when there was one.
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

    /// A one-line reason fit to show a merchant, in Chapa's own words where it gave
    /// some, e.g. `email: validation.email`.
    pub fn reason(&self) -> String {
        match self {
            Error::Rejected {
                http_status,
                message,
                field_errors,
                ..
            } => {
                let reason = rejected_reason(message.as_deref(), field_errors);
                if reason.is_empty() {
                    format!("Chapa rejected the request (HTTP {http_status})")
                } else {
                    reason
                }
            }
            Error::Unauthorized { message, .. } => {
                one_line(&format!("Chapa refused the secret key: {message}"))
            }
            Error::NotFound { message, .. } => {
                one_line(&format!("Chapa has no such transaction ({message})"))
            }
            other => one_line(&other.to_string()),
        }
    }

    /// Whether the same call may succeed if repeated later: true for [`Error::Timeout`],
    /// [`Error::Unreachable`], [`Error::ServerError`] and a [`Error::Rejected`] with
    /// HTTP 429 (`Too many requests`, chapa.md §7).
    ///
    /// Repeating a verify is always safe. Repeating an initialize (same `tx_ref`) is
    /// harmless but may answer `Transaction reference has been used before`; repeating
    /// a refund may refund twice.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout
                | Error::Unreachable { .. }
                | Error::ServerError { .. }
                | Error::Rejected {
                    http_status: 429,
                    ..
                }
        )
    }
}

/// `message; field: rule rule; other: rule`, whichever exist.
fn rejected_reason(message: Option<&str>, field_errors: &BTreeMap<String, Vec<String>>) -> String {
    let mut parts: Vec<String> = field_errors
        .iter()
        .map(|(field, rules)| format!("{field}: {}", rules.join(" ")))
        .collect();
    if let Some(message) = message.filter(|m| !m.trim().is_empty()) {
        parts.insert(0, message.to_string());
    }
    one_line(&parts.join("; "))
}

fn with_colon(reason: String) -> String {
    if reason.is_empty() {
        reason
    } else {
        format!(": {reason}")
    }
}

/// Collapses newlines, tabs and runs of whitespace so that a reason stays on one line.
pub(crate) fn one_line(text: &str) -> String {
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
    fn rejected_reason_lists_message_then_fields() {
        let mut field_errors = BTreeMap::new();
        field_errors.insert("email".to_string(), vec!["validation.email".to_string()]);
        field_errors.insert(
            "amount".to_string(),
            vec!["validation.required".to_string()],
        );
        let err = Error::Rejected {
            http_status: 400,
            message: Some("Bad\trequest".into()),
            field_errors,
            raw: raw(400),
        };
        assert_eq!(
            err.reason(),
            "Bad request; amount: validation.required; email: validation.email"
        );
        assert!(!err.is_transient());
        assert_eq!(err.raw().unwrap().http_status, 400);
    }

    #[test]
    fn empty_rejection_still_says_something_and_429_is_transient() {
        let err = Error::Rejected {
            http_status: 429,
            message: None,
            field_errors: BTreeMap::new(),
            raw: raw(429),
        };
        assert_eq!(err.reason(), "Chapa rejected the request (HTTP 429)");
        assert!(err.is_transient());
    }

    #[test]
    fn transient_classification() {
        assert!(Error::Timeout.is_transient());
        assert!(Error::ServerError {
            http_status: 502,
            raw: raw(502)
        }
        .is_transient());
        assert!(!Error::NotFound {
            message: "x".into(),
            raw: raw(404)
        }
        .is_transient());
        assert!(!Error::InvalidInput { reason: "x".into() }.is_transient());
        assert!(Error::Timeout.raw().is_none());
    }
}
