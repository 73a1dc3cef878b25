//! Integration tests of the Chapa simulator: a real server on 127.0.0.1, driven with
//! reqwest; callbacks and webhooks go to a tiny axum receiver.

mod api;
mod checkout;
mod common;
mod controls;
mod webhooks;
