//! A client for Chapa's v1 merchant API (Ethiopia): hosted-checkout initialize,
//! verify and refund, plus the webhook signature check.
//!
//! Written from the public contract in `reference/chapa.md`; section numbers in these
//! docs ("chapa.md §4.2") point there.
//!
//! - Money is [`Amount`], integer minor units; it is sent as the decimal string Chapa
//!   expects and read from the exact decimal text Chapa sends (number or string).
//! - Every answer keeps the exact bytes Chapa sent ([`RawAnswer`]).
//! - Errors say what the caller can do ([`Error`]).
//! - Webhooks are authenticated by `x-chapa-signature` over the raw body bytes only
//!   ([`verify_webhook_signature`]); the constant `chapa-signature` never suffices.
//! - The secret key never appears in `Debug` output or logs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chapa::Error> {
//! use chapa::{Amount, Client, Config, InitializeRequest};
//! use secrecy::SecretString;
//!
//! let client = Client::new(Config::production(SecretString::from("CHASECK_TEST-…")))?;
//! let started = client
//!     .initialize(&InitializeRequest::new(Amount::from_minor(50050), "ETB", "order-42-a1"))
//!     .await?;
//! // …send the customer to started.checkout_url; on callback or webhook:
//! let answer = client.verify("order-42-a1").await?;
//! if answer.confirms("order-42-a1", Amount::from_minor(50050), "ETB") {
//!     // fulfil, once
//! }
//! # Ok(())
//! # }
//! ```

mod amount;
mod client;
mod config;
mod error;
mod fields;
mod types;
mod webhook;

pub use amount::{Amount, ParseAmountError};
pub use client::Client;
pub use config::{default_base_url, Config};
pub use error::{Error, RawAnswer};
pub use types::{
    Customization, InitializeRequest, Initialized, PaymentStatus, RefundRequest, Refunded,
    Verification,
};
pub use webhook::{
    parse_webhook, verify_webhook_signature, EventKind, SignatureError, WebhookError, WebhookEvent,
    CHAPA_SIGNATURE, X_CHAPA_SIGNATURE,
};
