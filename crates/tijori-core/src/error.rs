//! The use-cases' error: each variant is a different answer for the caller.

use crate::account::InvalidField;
use crate::gateway::GatewayError;
use crate::store::StoreError;

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
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Well-formed, but refused as asked (a 400 with its own code).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("wrong username or password")]
    BadCredentials,
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// Too much of one kind of work is waiting (password hashing under a flood of
    /// sign-ins): refused at once, to be tried again after `retry_after_secs`.
    #[error("{message}")]
    Overloaded {
        message: &'static str,
        retry_after_secs: u64,
    },
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
