//! Integration tests of the eSewa simulator: a real server on 127.0.0.1, driven with
//! reqwest. Signatures are checked with an HMAC computed in the tests, not the
//! sandbox's own code.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod checkout;
mod common;
mod controls;
mod form;
mod status;
