//! Shared helpers for the wiremock-based tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use khalti::{Client, Config};
use secrecy::SecretString;
use wiremock::MockServer;

/// A key in the documented format (khalti.md §1.2).
pub const SECRET: &str = "test_secret_key_f59e8b7d18b4499ca40f68195a846e9b";
pub const AUTH: &str = "Key test_secret_key_f59e8b7d18b4499ca40f68195a846e9b";

/// `…/api/v2/` on the mock server, like the real base URLs.
pub fn base(server: &MockServer) -> String {
    format!("{}/api/v2/", server.uri())
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
