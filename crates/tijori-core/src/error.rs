//! The use-cases' error: each variant is a different answer for the caller.

use crate::account::InvalidField;
use crate::gateway::GatewayError;
use crate::store::StoreError;

/// What a use-case can fail with; the web layer answers each variant with its own
/// HTTP status and code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule; say which field and why.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// A request that is well-formed but cannot be done as asked (e.g. a gateway that
    /// cannot take this currency).
    #[error("{0}")]
    Unsupported(String),
    /// Not there, or not the caller's: the two are indistinguishable on purpose.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Clashes with the current state (another refund or checkout still in progress,
    /// a username taken): a 409 with its own code.
    #[error("{message}")]
    Conflict {
        /// Stable and machine-readable (e.g. `refund_in_progress`): clients branch on it.
        code: &'static str,
        /// Safe to show the caller: what clashed and, where there is one, what to do.
        message: String,
    },
    /// Well-formed, but refused as asked (a 400 with its own code).
    #[error("{message}")]
    Refused {
        /// Stable and machine-readable (e.g. `invalid_refund_amount`).
        code: &'static str,
        /// Safe to show the caller.
        message: String,
    },
    /// A sign-in with a wrong username or password; which of the two is never said.
    #[error("wrong username or password")]
    BadCredentials,
    /// A gateway gave no answer we can act on; how the caller is answered depends on
    /// the `GatewayError`.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// Too much of one kind of work is waiting (password hashing under a flood of
    /// sign-ins): refused at once, to be tried again after `retry_after_secs`.
    #[error("{message}")]
    Overloaded {
        /// Safe to show the caller.
        message: &'static str,
        /// Seconds; sent as `Retry-After`.
        retry_after_secs: u64,
    },
    /// Our own failure (the database, most often): the cause is logged, never shown to
    /// the caller.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::Conflict {
                code: "conflict",
                message: format!("{what} already exists"),
            },
            StoreError::NotFound(what) => Error::NotFound(what),
            StoreError::Database(e) => Error::Internal(e),
        }
    }
}

/// A use-case's result: fails with `Error` unless another error is named.
pub type Result<T, E = Error> = std::result::Result<T, E>;
