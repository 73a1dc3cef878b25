//! Integration tests of the Khalti simulator: a real server on 127.0.0.1, driven with
//! reqwest.

mod api;
mod checkout;
mod common;
mod controls;
mod widget;
