//! Shared helpers for the wiremock-based tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use esewa::{Client, Config, TransactionUuid};
use secrecy::SecretString;
use wiremock::MockServer;

/// eSewa's public UAT key (esewa.md §1.2).
pub const SECRET: &str = "8gBm/:&EnhH.1/q";
pub const PRODUCT_CODE: &str = "EPAYTEST";
/// The status path under the status host (esewa.md §5.1).
pub const STATUS_PATH: &str = "/api/epay/transaction/status/";

/// The mock server as both of eSewa's hosts.
pub fn base(server: &MockServer) -> String {
    format!("{}/", server.uri())
}

pub fn client_at(base_url: &str) -> Client {
    Client::new(Config::new(
        base_url.parse().unwrap(),
        base_url.parse().unwrap(),
        PRODUCT_CODE,
        SecretString::from(SECRET),
    ))
    .unwrap()
}

pub fn client_with_timeout(base_url: &str, timeout: Duration) -> Client {
    let mut config = Config::new(
        base_url.parse().unwrap(),
        base_url.parse().unwrap(),
        PRODUCT_CODE,
        SecretString::from(SECRET),
    );
    config.timeout = timeout;
    config.connect_timeout = timeout;
    Client::new(config).unwrap()
}

pub async fn client(server: &MockServer) -> Client {
    client_at(&base(server))
}

pub fn uuid(text: &str) -> TransactionUuid {
    TransactionUuid::new(text).unwrap()
}
