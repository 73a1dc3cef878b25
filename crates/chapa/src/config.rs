//! How to reach Chapa.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Where Chapa is and how long to wait for it.
///
/// `Debug` never shows the key: [`SecretString`] prints as `[REDACTED]`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The API root including `/v1/`: [`Config::DEFAULT_BASE_URL`] (test and live share
    /// the host; the key decides, chapa.md §1) or a local simulator. A missing trailing
    /// `/` is added (by [`Config::new`] and again by [`Client::new`](crate::Client::new)),
    /// so that joining `transaction/initialize` keeps the `v1` segment.
    pub base_url: Url,
    /// The API secret key (`CHASECK_TEST-…` / `CHASECK-…`), sent as
    /// `Authorization: Bearer <secret_key>`. Leading and trailing whitespace is ignored.
    /// This is not the webhook secret (see [`verify_webhook_signature`](crate::verify_webhook_signature)).
    pub secret_key: SecretString,
    /// The most one call may take, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// The most establishing the connection may take (part of `timeout`).
    pub connect_timeout: Duration,
}

impl Config {
    /// Chapa's production API root; test mode uses the same host with a test key.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.chapa.co/v1/";
    /// The default total timeout of one call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A configuration with a 10 s call timeout and a 5 s connect timeout.
    pub fn new(base_url: Url, secret_key: SecretString) -> Self {
        Config {
            base_url: with_trailing_slash(base_url),
            secret_key,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A configuration for Chapa itself ([`Config::DEFAULT_BASE_URL`]).
    pub fn production(secret_key: SecretString) -> Self {
        Config::new(default_base_url(), secret_key)
    }
}

/// [`Config::DEFAULT_BASE_URL`] parsed.
pub fn default_base_url() -> Url {
    Url::parse(Config::DEFAULT_BASE_URL).expect("the default base URL is valid")
}

/// `https://h/v1` → `https://h/v1/`; query and fragment are dropped because endpoint
/// paths are joined onto this URL.
pub(crate) fn with_trailing_slash(mut url: Url) -> Url {
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_adds_the_trailing_slash_and_defaults() {
        let config = Config::new(
            "https://api.chapa.co/v1".parse().unwrap(),
            SecretString::from("CHASECK_TEST-abc"),
        );
        assert_eq!(config.base_url.as_str(), "https://api.chapa.co/v1/");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        let production = Config::production(SecretString::from("CHASECK-abc"));
        assert_eq!(production.base_url.as_str(), "https://api.chapa.co/v1/");
    }

    #[test]
    fn debug_hides_the_key() {
        let config = Config::production(SecretString::from("CHASECK_TEST-0123456789"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("0123456789"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
