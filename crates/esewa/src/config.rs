//! How to reach eSewa, and as whom.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Where eSewa is, which merchant we are, and how long to wait for it.
///
/// eSewa has two hosts per environment: the form's (which the payer's browser posts to)
/// and the status API's (which we call). `Debug` never shows the key: [`SecretString`]
/// prints as `[REDACTED]`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The form's host: [`Config::UAT_BASE_URL`], [`Config::PRODUCTION_BASE_URL`], or a
    /// simulator (a path such as `/sandbox/esewa/` is kept). The form is posted to
    /// `<base_url>api/epay/main/v2/form`. A missing trailing `/` is added.
    pub base_url: Url,
    /// The status API's host: [`Config::UAT_STATUS_URL`],
    /// [`Config::PRODUCTION_STATUS_URL`], or a simulator. Asked at
    /// `<status_url>api/epay/transaction/status/`. A missing trailing `/` is added.
    pub status_url: Url,
    /// The merchant code eSewa gave (`EPAYTEST` in UAT), signed into every form.
    pub product_code: String,
    /// The merchant's secret, used only as the HMAC key of signatures; it never leaves
    /// this process. Leading and trailing whitespace (a newline left by a secrets file)
    /// is ignored; the UAT key's `&` and `:` are part of it (esewa.md §1.2).
    pub secret_key: SecretString,
    /// The most one status check may take, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// The most establishing the connection may take (part of `timeout`).
    pub connect_timeout: Duration,
}

impl Config {
    /// The UAT ("RC") form host (esewa.md §1.1).
    pub const UAT_BASE_URL: &'static str = "https://rc-epay.esewa.com.np/";
    /// The UAT status host (esewa.md §1.1).
    pub const UAT_STATUS_URL: &'static str = "https://rc.esewa.com.np/";
    /// The production form host (esewa.md §1.1).
    pub const PRODUCTION_BASE_URL: &'static str = "https://epay.esewa.com.np/";
    /// The production status host as eSewa's docs give it. Open question (esewa.md §14.2):
    /// two SDKs use `https://esewa.com.np/` instead; this default follows the docs, and
    /// [`Config::status_url`] is configurable for that reason.
    pub const PRODUCTION_STATUS_URL: &'static str = "https://epay.esewa.com.np/";
    /// The UAT merchant code (esewa.md §1.2).
    pub const UAT_PRODUCT_CODE: &'static str = "EPAYTEST";
    /// The UAT secret: 15 characters, with no trailing `(` (the docs print one that
    /// belongs to their sentence, esewa.md §1.2). Public, and refused on the production
    /// hosts by [`Client::new`](crate::Client::new).
    pub const UAT_SECRET_KEY: &'static str = "8gBm/:&EnhH.1/q";
    /// The default total timeout of one status check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A configuration with a 10 s call timeout and a 5 s connect timeout, as for the
    /// other gateways.
    pub fn new(
        base_url: Url,
        status_url: Url,
        product_code: impl Into<String>,
        secret_key: SecretString,
    ) -> Self {
        Config {
            base_url: with_trailing_slash(base_url),
            status_url: with_trailing_slash(status_url),
            product_code: product_code.into(),
            secret_key,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// eSewa's UAT with its public test merchant (`EPAYTEST` and the UAT key).
    pub fn uat() -> Self {
        Config::new(
            parse_constant(Self::UAT_BASE_URL),
            parse_constant(Self::UAT_STATUS_URL),
            Self::UAT_PRODUCT_CODE,
            SecretString::from(Self::UAT_SECRET_KEY),
        )
    }

    /// eSewa's production hosts with the merchant's own code and key.
    pub fn production(product_code: impl Into<String>, secret_key: SecretString) -> Self {
        Config::new(
            parse_constant(Self::PRODUCTION_BASE_URL),
            parse_constant(Self::PRODUCTION_STATUS_URL),
            product_code,
            secret_key,
        )
    }
}

fn parse_constant(url: &str) -> Url {
    Url::parse(url).expect("the built-in eSewa URLs are valid")
}

/// `https://h/x` → `https://h/x/`; query and fragment are dropped because endpoint paths
/// are joined onto this URL.
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
            "http://127.0.0.1:8000/sandbox/esewa".parse().unwrap(),
            "http://127.0.0.1:8000/sandbox/esewa?x=1".parse().unwrap(),
            "EPAYTEST",
            SecretString::from("k"),
        );
        assert_eq!(
            config.base_url.as_str(),
            "http://127.0.0.1:8000/sandbox/esewa/"
        );
        assert_eq!(
            config.status_url.as_str(),
            "http://127.0.0.1:8000/sandbox/esewa/"
        );
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn uat_and_production_hosts() {
        let uat = Config::uat();
        assert_eq!(uat.base_url.as_str(), "https://rc-epay.esewa.com.np/");
        assert_eq!(uat.status_url.as_str(), "https://rc.esewa.com.np/");
        assert_eq!(uat.product_code, "EPAYTEST");
        assert_eq!(Config::UAT_SECRET_KEY.len(), 15);
        let prod = Config::production("NP-ES-SHOP", SecretString::from("k"));
        assert_eq!(prod.base_url.as_str(), "https://epay.esewa.com.np/");
        assert_eq!(prod.status_url.as_str(), "https://epay.esewa.com.np/");
    }

    #[test]
    fn debug_hides_the_key() {
        let config = Config::production("SHOP", SecretString::from("s3cr3t-merchant-key"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t-merchant-key"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
