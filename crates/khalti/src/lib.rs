//! A client for Khalti's merchant API (Nepal): KPG-2 ePayment initiate and lookup,
//! refunds, and the legacy KPG-1 widget verification.
//!
//! Written from the public contract in `reference/khalti.md`; section numbers in the
//! docs of this crate (e.g. "khalti.md §5.2") point there.
//!
//! The design follows what goes wrong in Khalti integrations (khalti.md §8):
//!
//! - Money is [`Paisa`], an integer newtype, never a float or bare rupees.
//! - A lookup's body decides, not its HTTP status: Expired and User canceled arrive
//!   with HTTP 400 yet are ordinary [`Lookup`] answers.
//! - Every answer keeps the exact bytes Khalti sent ([`RawAnswer`]) for audit.
//! - Errors say what the caller can do ([`Error`]); only transient ones are worth
//!   retrying, and initiate/refund never are blindly.
//! - The secret key never appears in `Debug` output or logs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), khalti::Error> {
//! use khalti::{Client, Config, InitiateRequest, Paisa};
//! use secrecy::SecretString;
//!
//! let client = Client::new(Config::new(
//!     "https://dev.khalti.com/api/v2/".parse().unwrap(),
//!     SecretString::from("live_secret_key_…"),
//! ))?;
//! let started = client
//!     .initiate(&InitiateRequest::new(
//!         "https://shop.example/payment-success/".parse().unwrap(),
//!         "https://shop.example/".parse().unwrap(),
//!         Paisa::new(1000),
//!         "order-42",
//!         "Order 42",
//!     ))
//!     .await?;
//! // …send the browser to started.payment_url; when it comes back:
//! let answer = client.lookup(&started.pidx).await?;
//! if answer.status.is_completed() && answer.total_amount == Paisa::new(1000) {
//!     // fulfil, once
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod error;
mod paisa;
mod types;

pub use client::Client;
pub use config::Config;
pub use error::{Error, RawAnswer};
pub use paisa::{Paisa, ParsePaisaError};
pub use types::{
    AmountBreakdown, CustomerInfo, InitiateRequest, Initiated, Lookup, LookupStatus, ProductDetail,
    RefundRequest, Refunded, WidgetVerification,
};
