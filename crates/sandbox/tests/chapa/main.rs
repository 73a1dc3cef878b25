//! Integration tests of the Chapa simulator: a real server on 127.0.0.1, driven with
//! reqwest; callbacks and webhooks go to a tiny axum receiver.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod api;
mod checkout;
mod common;
mod controls;
mod webhooks;
