//! Configuration: environment variables (DESIGN.md §5), each also a command-line
//! flag. Parsed and checked once at start, so a bad value is a clear message, not a
//! panic halfway through a payment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use url::Url;

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Configuration (every command)")]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "TIJORI_LISTEN",
        default_value = "127.0.0.1:8000",
        global = true
    )]
    pub listen: SocketAddr,

    /// Where customers' browsers reach this tijori; return and callback URLs are
    /// built from it. Default: http://<listen address> (localhost for 0.0.0.0).
    #[arg(long, env = "TIJORI_PUBLIC_URL", value_parser = parse_base_url, global = true)]
    pub public_url: Option<Url>,

    /// sqlite://path (the embedded default; the file is created) or postgres://…
    #[arg(
        long,
        env = "TIJORI_DATABASE_URL",
        default_value = "sqlite://tijori.db",
        global = true
    )]
    pub database_url: String,

    /// Khalti secret key. Without it, tijori serves its own Khalti sandbox under
    /// /sandbox/khalti/ and uses that: a complete system with no network.
    #[arg(long, env = "KHALTI_SECRET_KEY", hide_env_values = true, global = true)]
    pub khalti_secret_key: Option<SecretString>,

    /// Khalti API base: https://dev.khalti.com/api/v2/ (Khalti's test environment,
    /// the default) or https://khalti.com/api/v2/ (production).
    #[arg(long, env = "KHALTI_BASE_URL", value_parser = parse_base_url, global = true)]
    pub khalti_base_url: Option<Url>,

    /// Seconds to wait for a gateway's answer before giving up on a call.
    #[arg(long, env = "TIJORI_GATEWAY_TIMEOUT", default_value = "10", value_parser = parse_seconds, global = true)]
    pub gateway_timeout: Duration,

    /// Serve the built-in sandbox gateway (anyone can mark its payments paid) when no
    /// Khalti key is set. Default: only on a loopback address (127.0.0.1, localhost);
    /// `true` allows it on any address, `false` refuses to start without a key.
    #[arg(long, env = "TIJORI_SANDBOX", global = true)]
    pub sandbox: Option<bool>,

    /// Seed demo data (three plans and a demo user) at start. Default: on when
    /// running on the built-in sandbox, off with real gateway keys.
    #[arg(long, env = "TIJORI_DEMO", global = true)]
    pub demo: Option<bool>,
}

pub const KHALTI_TEST_BASE_URL: &str = "https://dev.khalti.com/api/v2/";

impl Config {
    /// Whether tijori runs on its own sandbox rather than a real Khalti.
    pub fn uses_sandbox(&self) -> bool {
        self.khalti_secret_key.is_none()
    }

    /// Decides whether the built-in sandbox may serve, refusing the combination that
    /// would be a hole in production: no key, on an address others can reach.
    pub fn sandbox_allowed(&self, bound: SocketAddr, public_url: &Url) -> Result<bool, String> {
        if !self.uses_sandbox() {
            return Ok(false);
        }
        let local = bound.ip().is_loopback()
            && match public_url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
        match self.sandbox {
            Some(true) => Ok(true),
            None if local => Ok(true),
            Some(false) => {
                Err("KHALTI_SECRET_KEY is not set and TIJORI_SANDBOX=false: set the key".into())
            }
            None => Err(format!(
                "KHALTI_SECRET_KEY is not set, so tijori would serve its sandbox gateway, where \
                 anyone can mark a payment paid, on {bound} ({public_url}). Set \
                 KHALTI_SECRET_KEY, or TIJORI_SANDBOX=true to run the sandbox there on purpose."
            )),
        }
    }

    pub fn demo(&self) -> bool {
        self.demo.unwrap_or_else(|| self.uses_sandbox())
    }

    /// The public URL once the listener is bound (its port may have been 0).
    pub fn public_url_for(&self, bound: SocketAddr) -> Url {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = if bound.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            bound.ip().to_string()
        };
        let host = if bound.is_ipv6() && !bound.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        Url::parse(&format!("http://{host}:{}/", bound.port()))
            .expect("an address makes a valid URL")
    }
}

fn parse_base_url(s: &str) -> Result<Url, String> {
    let mut url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must be an http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{s:?} must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.05..=300.0).contains(&secs) {
        return Err(format!("{s} seconds is out of range (0.05 to 300)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        assert_eq!(
            parse_base_url("https://dev.khalti.com/api/v2")
                .unwrap()
                .as_str(),
            "https://dev.khalti.com/api/v2/"
        );
        assert!(parse_base_url("ftp://x/").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("https://x/?a=b").is_err());
    }

    fn config(key: Option<&str>, sandbox: Option<bool>) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: None,
            database_url: "sqlite://x.db".into(),
            khalti_secret_key: key.map(SecretString::from),
            khalti_base_url: None,
            gateway_timeout: Duration::from_secs(1),
            sandbox,
            demo: None,
        }
    }

    #[test]
    fn the_sandbox_serves_only_where_it_cannot_be_abused() {
        let local: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let url = |u: &str| Url::parse(u).unwrap();
        let auto = config(None, None);
        assert_eq!(
            auto.sandbox_allowed(local, &url("http://localhost:8000/")),
            Ok(true)
        );
        assert_eq!(
            auto.sandbox_allowed(local, &url("http://127.0.0.1:8000/")),
            Ok(true)
        );
        assert!(auto
            .sandbox_allowed(public, &url("http://localhost:8000/"))
            .is_err());
        assert!(auto
            .sandbox_allowed(local, &url("https://shop.example.com/"))
            .is_err());
        assert_eq!(
            config(None, Some(true)).sandbox_allowed(public, &url("https://shop.example.com/")),
            Ok(true)
        );
        assert!(config(None, Some(false))
            .sandbox_allowed(local, &url("http://localhost/"))
            .is_err());
        assert_eq!(
            config(Some("key"), None).sandbox_allowed(public, &url("https://shop.example.com/")),
            Ok(false)
        );
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(parse_seconds("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("ten").is_err());
        assert!(parse_seconds("10000").is_err());
    }
}
