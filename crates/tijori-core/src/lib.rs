//! tijori's domain and use-cases: money, accounts, plans, payments and how a gateway's
//! answer settles them. No HTTP and no SQL here: those reach the core through ports
//! (`Store`, `Gateway`, `Clock`).

#![warn(missing_docs)]

pub mod account;
pub mod back_office;
pub mod changes;
pub mod clock;
pub mod error;
pub mod events;
pub mod gateway;
pub mod id;
pub mod idempotency;
pub mod jobs;
pub mod mail;
pub mod money;
pub mod payment;
pub mod receipt;
pub mod refunds;
pub mod service;
pub mod shop;
pub mod store;
pub mod subscription;
pub mod telemetry;

pub use error::{Error, Result};
pub use service::Tijori;
