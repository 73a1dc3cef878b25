//! Outgoing webhooks as the Standard Webhooks specification (standardwebhooks.com)
//! defines them, so that a merchant can check what tijori sends with any of the spec's
//! receiver libraries: the endpoint's secret ([`Secret`]), the `webhook-signature`
//! header ([`sign`], [`signature_header`]) and the receiver's check ([`verify`]), the
//! rules for which URLs may be called at all ([`check_url`], [`is_public`]), and the
//! transport that POSTs one message and records what came of it ([`Sender`]).
//!
//! It knows nothing of payments or of tijori's types: which events exist, their JSON,
//! when to retry and what to store belong to the caller. A delivery is one [`Message`]
//! (id, time, body, signature) and one [`Attempt`] per try.

#![warn(missing_docs)]

mod address;
mod secret;
mod sender;
mod signature;

pub use address::{check_url, is_public, UrlError, MAX_URL_BYTES};
pub use secret::{Secret, SecretError};
pub use sender::{Attempt, Message, SendError, Sender, SenderConfig, RESPONSE_CAP_BYTES};
pub use signature::{sign, signature_header, verify, VerifyError, DEFAULT_TOLERANCE_SECS};
