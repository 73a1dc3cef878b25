//! Shared helpers for the wiremock-based tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use chapa::{Client, Config};
use secrecy::SecretString;
use wiremock::MockServer;

/// A key in the documented test format (chapa.md §1).
pub const SECRET: &str = "CHASECK_TEST-BbsIL9E0NillGIZ4beEuU9HNCXxlJ8dR";
pub const AUTH: &str = "Bearer CHASECK_TEST-BbsIL9E0NillGIZ4beEuU9HNCXxlJ8dR";

/// `…/v1/` on the mock server, like the real base URL.
pub fn base(server: &MockServer) -> String {
    format!("{}/v1/", server.uri())
}

pub fn client_at(base_url: &str) -> Client {
    Client::new(Config::new(
        base_url.parse().unwrap(),
        SecretString::from(SECRET),
    ))
    .unwrap()
}

pub fn client_with_timeout(base_url: &str, timeout: Duration) -> Client {
    let mut config = Config::new(base_url.parse().unwrap(), SecretString::from(SECRET));
    config.timeout = timeout;
    config.connect_timeout = timeout;
    Client::new(config).unwrap()
}

pub async fn client(server: &MockServer) -> Client {
    client_at(&base(server))
}
