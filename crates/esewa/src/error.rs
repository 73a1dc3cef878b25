//! The error taxonomy of calls to eSewa: what went wrong, in terms a caller can act on.
//!
//! The same shape as the Khalti and Chapa clients' (`khalti::Error`, `chapa::Error`), so
//! one adapter can treat all three alike, with two differences eSewa's contract forces:
//!
//! - [`Error::Unavailable`]: eSewa reports an outage as an answer, `{"code": 0,
//!   "error_message": "Service is currently unavailable"}`, documented without an HTTP
//!   code and seen with 200 (esewa.md §5.4). It is neither a status nor garbage.
//! - No `NotFound` variant: eSewa says "no such payment" with the status `NOT_FOUND`,
//!   which is an answer ([`Status::NotFound`](crate::Status::NotFound)) and, before the
//!   payer's browser has posted the form, not even a final one (esewa.md §5.3). A 404
//!   can only mean a wrong status host or path, so it is an [`Error::InvalidAnswer`].

/// The exact answer eSewa gave, kept so the caller can store it for audit.
///
/// Payment disputes are settled on what the gateway said, not on what we parsed, so every
/// answer (success or error) carries its raw form. `body` is the response body decoded as
/// UTF-8 (invalid bytes replaced with U+FFFD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    /// The HTTP status code eSewa answered with.
    pub http_status: u16,
    /// The response body.
    pub body: String,
}

/// Everything that can go wrong when asking eSewa, or when building what is sent to it.
///
/// Split by what the caller should do next: fix the request ([`Error::Rejected`],
/// [`Error::InvalidInput`]), fix the merchant configuration ([`Error::Unauthorized`]),
/// retry later ([`Error::is_transient`]) or alert an operator ([`Error::InvalidAnswer`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// eSewa refused the request with a 4xx answer in a JSON body: its envelope
    /// `{"code", "error_message"}` or a framework error such as a missing parameter.
    #[error("eSewa rejected the request (HTTP {http_status}){}", with_colon(message.as_deref()))]
    Rejected {
        /// The HTTP status code.
        http_status: u16,
        /// eSewa's `code` as text (`0`, `ES104`), when sent.
        code: Option<String>,
        /// eSewa's `error_message` (or the framework's `message`/`error`), when sent.
        message: Option<String>,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// eSewa does not know the merchant: `Unable to fetch merchant key` (a wrong
    /// `product_code`, or a UAT code on the production host, esewa.md §3.3), or an HTTP
    /// 401/403. The merchant configuration must change; retrying will not help.
    #[error("eSewa refused the merchant (HTTP {}): {message}", raw.http_status)]
    Unauthorized {
        /// eSewa's explanation.
        message: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// eSewa answered with its outage envelope instead of a status, whatever the HTTP
    /// code (esewa.md §5.4): `{"code": 0, "error_message": "Service is currently
    /// unavailable"}`. Nothing is known about the payment; ask again later.
    #[error("eSewa is unavailable (HTTP {}): {message}", raw.http_status)]
    Unavailable {
        /// eSewa's `code` as text, when sent.
        code: Option<String>,
        /// eSewa's `error_message`.
        message: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// No complete answer arrived within [`Config::timeout`](crate::Config::timeout).
    #[error("eSewa did not answer in time")]
    Timeout,

    /// Could not connect, or the connection dropped before a complete answer arrived.
    #[error("could not reach eSewa: {source}")]
    Unreachable {
        /// The underlying transport error.
        #[source]
        source: reqwest::Error,
    },

    /// eSewa answered with a 5xx status (without its outage envelope): its side failed.
    #[error("eSewa had a server error (HTTP {http_status})")]
    ServerError {
        /// The HTTP status code.
        http_status: u16,
        /// The answer as received (often an HTML page from a proxy).
        raw: RawAnswer,
    },

    /// The answer is not what eSewa's contract says: not JSON, no status, a status that
    /// is not text, an unreadable amount, a redirect, a 404, or an answer about another
    /// payment or merchant. Someone should look at `raw`.
    #[error("eSewa answered unexpectedly (HTTP {http_status}): {reason}")]
    InvalidAnswer {
        /// The HTTP status code.
        http_status: u16,
        /// What was wrong with it.
        reason: String,
        /// The answer as received.
        raw: RawAnswer,
    },

    /// Nothing was sent because something the caller supplied cannot be used: a URL that
    /// is not http(s), an empty or unusable key or product code, the UAT key on a
    /// production host, a zero amount, a total too large to add up.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// The answer eSewa gave, when there was one, so the caller can store it even for a
    /// failed call.
    pub fn raw(&self) -> Option<&RawAnswer> {
        match self {
            Error::Rejected { raw, .. }
            | Error::Unauthorized { raw, .. }
            | Error::Unavailable { raw, .. }
            | Error::ServerError { raw, .. }
            | Error::InvalidAnswer { raw, .. } => Some(raw),
            Error::Timeout | Error::Unreachable { .. } | Error::InvalidInput { .. } => None,
        }
    }

    /// A one-line reason fit to show a merchant, in eSewa's own words where it gave some.
    pub fn reason(&self) -> String {
        match self {
            Error::Rejected {
                http_status,
                message,
                ..
            } => match message.as_deref().map(one_line).filter(|m| !m.is_empty()) {
                Some(message) => message,
                None => format!("eSewa rejected the request (HTTP {http_status})"),
            },
            Error::Unauthorized { message, .. } => {
                one_line(&format!("eSewa refused the merchant: {message}"))
            }
            Error::Unavailable { message, .. } => {
                one_line(&format!("eSewa is unavailable: {message}"))
            }
            other => one_line(&other.to_string()),
        }
    }

    /// Whether the same call may succeed if repeated later: true for [`Error::Timeout`],
    /// [`Error::Unreachable`], [`Error::ServerError`] and [`Error::Unavailable`].
    ///
    /// The status check is a GET and always safe to repeat; eSewa itself says to ask
    /// again when no answer came (esewa.md §8).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout
                | Error::Unreachable { .. }
                | Error::ServerError { .. }
                | Error::Unavailable { .. }
        )
    }
}

fn with_colon(message: Option<&str>) -> String {
    match message.map(one_line).filter(|m| !m.is_empty()) {
        Some(message) => format!(": {message}"),
        None => String::new(),
    }
}

/// Collapses newlines and runs of whitespace so that a reason stays on one line.
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
    fn reasons_are_one_line_and_in_esewas_words() {
        let err = Error::Rejected {
            http_status: 400,
            code: Some("ES104".into()),
            message: Some("Invalid payload\nsignature".into()),
            raw: raw(400),
        };
        assert_eq!(err.reason(), "Invalid payload signature");
        assert_eq!(
            err.to_string(),
            "eSewa rejected the request (HTTP 400): Invalid payload signature"
        );
        let bare = Error::Rejected {
            http_status: 400,
            code: None,
            message: None,
            raw: raw(400),
        };
        assert_eq!(bare.reason(), "eSewa rejected the request (HTTP 400)");
        let outage = Error::Unavailable {
            code: Some("0".into()),
            message: "Service is currently unavailable".into(),
            raw: raw(200),
        };
        assert_eq!(
            outage.reason(),
            "eSewa is unavailable: Service is currently unavailable"
        );
    }

    #[test]
    fn transient_kinds() {
        assert!(Error::Timeout.is_transient());
        assert!(Error::ServerError {
            http_status: 502,
            raw: raw(502)
        }
        .is_transient());
        assert!(Error::Unavailable {
            code: None,
            message: "x".into(),
            raw: raw(200)
        }
        .is_transient());
        assert!(!Error::Unauthorized {
            message: "x".into(),
            raw: raw(400)
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
        assert_eq!(
            Error::ServerError {
                http_status: 503,
                raw: raw(503)
            }
            .raw()
            .map(|r| r.http_status),
            Some(503)
        );
    }
}
