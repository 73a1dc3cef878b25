//! How to reach Khalti.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Where Khalti is and how long to wait for it.
///
/// `Debug` never shows the key: [`SecretString`] prints as `[REDACTED]`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The API root including `/api/v2/`: `https://dev.khalti.com/api/v2/` (sandbox),
    /// `https://khalti.com/api/v2/` (production), or a local simulator. A missing
    /// trailing `/` is added (by [`Config::new`] and again by
    /// [`Client::new`](crate::Client::new)), so that joining `epayment/initiate/`
    /// keeps the `v2` segment.
    pub base_url: Url,
    /// The merchant's secret key, sent as `Authorization: Key <secret_key>`. Leading
    /// and trailing whitespace (a newline left by a secrets file) is ignored.
    pub secret_key: SecretString,
    /// The most one call may take, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// The most establishing the connection may take (part of `timeout`).
    pub connect_timeout: Duration,
}

impl Config {
    /// The default total timeout of one call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A configuration with a 10 s call timeout and a 5 s connect timeout: long enough
    /// for Khalti's slow moments, short enough that a payer's browser does not give up
    /// first.
    pub fn new(base_url: Url, secret_key: SecretString) -> Self {
        Config {
            base_url: with_trailing_slash(base_url),
            secret_key,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// `https://h/api/v2` → `https://h/api/v2/`; query and fragment are dropped because
/// endpoint paths are joined onto this URL.
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
    use secrecy::SecretString;

    #[test]
    fn new_adds_the_trailing_slash_and_defaults() {
        let config = Config::new(
            "https://dev.khalti.com/api/v2".parse().unwrap(),
            SecretString::from("live_secret_key_0123"),
        );
        assert_eq!(config.base_url.as_str(), "https://dev.khalti.com/api/v2/");
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn debug_hides_the_key() {
        let config = Config::new(
            "https://dev.khalti.com/api/v2/".parse().unwrap(),
            SecretString::from("live_secret_key_0123"),
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("live_secret_key_0123"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
