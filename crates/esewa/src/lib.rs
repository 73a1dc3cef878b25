//! A client for eSewa's ePay v2 (Nepal): the signed form the payer's browser posts, the
//! signed success redirect, and the status check.
//!
//! Written from the public contract in `reference/esewa.md`; section numbers in these docs
//! ("esewa.md §4.2") point there. Where that contract leaves a question open, the choice
//! made is named at the place it is made.
//!
//! The design follows what goes wrong in eSewa integrations (esewa.md §10):
//!
//! - Money is [`Paisa`], an integer newtype; eSewa's rupee text is written
//!   ([`Paisa::to_rupees`]) and read ([`Paisa::from_rupees`]) at the edge only, and a
//!   form signs exactly the text it posts.
//! - The redirect's `data` is hostile input: bounded, decoded, and its signature checked
//!   over the exact text received, in constant time, before any field is believed
//!   ([`Client::verify_callback`]). It is evidence, never a verdict.
//! - The status API decides ([`Client::status`]). Every status is an answer, including
//!   `NOT_FOUND`; eSewa's outage answer is an error of its own ([`Error::Unavailable`]).
//! - Every answer keeps the exact bytes eSewa sent ([`RawAnswer`]); errors say what the
//!   caller can do ([`Error`], the same shape as the Khalti and Chapa clients').
//! - The secret key never leaves the process, and never appears in `Debug` or logs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use esewa::{Client, Config, FormRequest, Paisa, TransactionUuid};
//!
//! let client = Client::new(Config::uat())?;
//! let uuid = TransactionUuid::new("0191c3b4-6a0e-7cc1-9f3b-5c2b8f6e2a11")?;
//! let form = client.sign_form(&FormRequest::new(
//!     Paisa::new(11000),
//!     uuid.clone(),
//!     "https://shop.example/esewa/return".parse()?,
//!     "https://shop.example/esewa/return?failed=1".parse()?,
//! ))?;
//! // …serve a page that POSTs form.fields to form.action. When the browser returns
//! // with ?data=…, weigh it as evidence:
//! # let data = "";
//! if let Ok(callback) = client.verify_callback(data) {
//!     let _looks_paid = callback.confirms(uuid.as_str(), Paisa::new(11000));
//! }
//! // …and settle on the status API's answer alone:
//! let answer = client.status(&uuid, Paisa::new(11000)).await?;
//! if answer.confirms(Paisa::new(11000)) {
//!     // fulfil, once
//! }
//! # Ok(())
//! # }
//! ```

mod callback;
mod client;
mod config;
mod error;
mod form;
mod paisa;
mod signature;
mod status;
mod transaction_uuid;

pub use callback::{callback_data_from_query, Callback, CallbackError, MAX_CALLBACK_DATA_LEN};
pub use client::Client;
pub use config::Config;
pub use error::{Error, RawAnswer};
pub use form::{FormFields, FormRequest, SignedForm, FORM_SIGNED_FIELD_NAMES};
pub use paisa::{Paisa, ParseAmountError};
pub use status::{Status, StatusAnswer};
pub use transaction_uuid::{InvalidTransactionUuid, TransactionUuid};
