//! Integration tests of the Khalti simulator: a real server on 127.0.0.1, driven with
//! reqwest.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

mod api;
mod checkout;
mod common;
mod controls;
mod widget;
