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

    /// Chapa secret key. Without it, tijori serves its own Chapa sandbox under
    /// /sandbox/chapa/ and uses that.
    #[arg(long, env = "CHAPA_SECRET_KEY", hide_env_values = true, global = true)]
    pub chapa_secret_key: Option<SecretString>,

    /// Chapa's webhook secret (the "secret hash" in Chapa's dashboard), which signs
    /// its webhooks. Without it every webhook is refused (callbacks and
    /// verification still work).
    #[arg(
        long,
        env = "CHAPA_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub chapa_webhook_secret: Option<SecretString>,

    /// Chapa API base (default https://api.chapa.co/v1/; test and live differ only
    /// by key).
    #[arg(long, env = "CHAPA_BASE_URL", value_parser = parse_base_url, global = true)]
    pub chapa_base_url: Option<Url>,

    /// eSewa secret key (for ePay v2's signed form). Without it, tijori serves its own
    /// eSewa sandbox under /sandbox/esewa/ and uses that.
    #[arg(long, env = "ESEWA_SECRET_KEY", hide_env_values = true, global = true)]
    pub esewa_secret_key: Option<SecretString>,

    /// eSewa merchant code (`product_code`); EPAYTEST, eSewa's test merchant, by
    /// default.
    #[arg(long, env = "ESEWA_PRODUCT_CODE", global = true)]
    pub esewa_product_code: Option<String>,

    /// eSewa's form host: https://rc-epay.esewa.com.np/ (eSewa's test environment, the
    /// default) or https://epay.esewa.com.np/ (production).
    #[arg(long, env = "ESEWA_BASE_URL", value_parser = parse_base_url, global = true)]
    pub esewa_base_url: Option<Url>,

    /// eSewa's status API host: https://rc.esewa.com.np/ (test, the default) or
    /// https://epay.esewa.com.np/ (production).
    #[arg(long, env = "ESEWA_STATUS_URL", value_parser = parse_base_url, global = true)]
    pub esewa_status_url: Option<Url>,

    /// Minutes an unpaid order holds its stock before it expires.
    #[arg(long, env = "TIJORI_ORDER_TTL_MINUTES", default_value = "30", value_parser = parse_minutes, global = true)]
    pub order_ttl_minutes: u32,

    /// Run the background worker (reconciler, order expiry, event deliveries) inside
    /// `tijori serve`.
    /// Turn it off when separate `tijori worker` processes do the work.
    #[arg(long, env = "TIJORI_WORKER", default_value = "true", action = clap::ArgAction::Set, global = true)]
    pub worker: bool,

    /// How log lines are written: `text` for a terminal, `json` (one object per line,
    /// with each line's request and payment ids) for a log shipper. `TIJORI_LOG`
    /// chooses what is logged.
    #[arg(
        long,
        env = "TIJORI_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: crate::logging::LogFormat,

    /// Where a separate `tijori worker` answers /metrics and the probes (/livez,
    /// /readyz, /healthz), for Prometheus and health checks (nothing else). None by default: a worker then
    /// has no HTTP at all.
    #[arg(long, env = "TIJORI_WORKER_LISTEN", global = true)]
    pub worker_listen: Option<SocketAddr>,

    /// How many background jobs (gateway lookups, mostly) one worker runs at once; at
    /// most half of them deliver outgoing events.
    #[arg(long, env = "TIJORI_WORKER_CONCURRENCY", default_value = "16", value_parser = clap::value_parser!(u16).range(1..=1024), global = true)]
    pub worker_concurrency: u16,

    /// Minutes a payment may wait for its outcome before the reconciler looks it up
    /// at the gateway (and between two looks at one that stays open).
    #[arg(long, env = "TIJORI_RECONCILE_AFTER_MINUTES", default_value = "15", value_parser = parse_minutes, global = true)]
    pub reconcile_after_minutes: u32,

    /// Seconds between two runs of each recurring sweep (reconciliation, order expiry).
    #[arg(long, env = "TIJORI_SWEEP_SECONDS", default_value = "60", value_parser = clap::value_parser!(u32).range(1..=86_400), global = true)]
    pub sweep_seconds: u32,

    /// How many "check payment status" requests (POST /api/payments/{id}/refresh/)
    /// one user may make a minute; each costs a call to the gateway.
    #[arg(long, env = "TIJORI_REFRESH_LIMIT", default_value = "10", value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub refresh_limit: u32,

    /// How many verify requests (POST /api/subscriptions/verify/) one user may make a
    /// minute; the return page polls it. Raise it for load tests.
    #[arg(long, env = "TIJORI_VERIFY_LIMIT", default_value = "60", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub verify_limit: u32,

    /// The refund audit looks up payments paid within this many days, to find refunds
    /// made outside tijori (in Khalti's or Chapa's dashboard).
    #[arg(long, env = "TIJORI_REFUND_AUDIT_DAYS", default_value = "14", value_parser = clap::value_parser!(u32).range(1..=3_650), global = true)]
    pub refund_audit_days: u32,

    /// How many payments the refund audit looks up a minute, one at a time, evenly
    /// spread (each is a gateway call); 0 turns the audit off. A payment is looked up
    /// at most every 6 hours.
    #[arg(long, env = "TIJORI_REFUND_AUDIT_PER_MINUTE", default_value = "4", value_parser = clap::value_parser!(u32).range(0..=600), global = true)]
    pub refund_audit_per_minute: u32,

    /// Put a fully refunded order's items back on the shelf when the refund was made
    /// outside tijori (found by the audit, "check payment status" or Chapa's
    /// charge.refunded webhook). Off by default: a dashboard refund says nothing
    /// about the goods coming back; the operator is told either way.
    #[arg(long, env = "TIJORI_RESTOCK_FOUND_REFUNDS", default_value = "false", action = clap::ArgAction::Set, global = true)]
    pub restock_found_refunds: bool,

    /// Let webhook endpoints (the merchant's own systems that receive tijori's
    /// events) be on loopback or private addresses (127.0.0.1, 10.x, 192.168.x,
    /// localhost, ...). Off by default: a URL an operator types could otherwise make
    /// tijori POST into its own network (SSRF). Turn it on when the receiver runs on
    /// the same host or private network.
    #[arg(long, env = "TIJORI_WEBHOOK_ALLOW_PRIVATE", default_value = "false", action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private: bool,

    /// Days to keep outgoing events, their delivery attempts and finished background
    /// jobs (5 to 3650). An endpoint can be sent again what it missed within them.
    #[arg(long, env = "TIJORI_EVENT_RETENTION_DAYS", default_value = "30", value_parser = clap::value_parser!(u32).range(5..=3650), global = true)]
    pub event_retention_days: u32,

    /// How many times a minute one user may open a checkout or create an order, on
    /// each path: initiate, initialize, Khalti widget verify, order creation (each
    /// costs a gateway call or rows). Raise it for load tests.
    #[arg(long, env = "TIJORI_CHECKOUT_LIMIT", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub checkout_limit: u32,

    /// How many Chapa callbacks (GET /api/payments/chapa/callback/) one client
    /// address may send a minute. Chapa's own servers are a few addresses: keep it
    /// above your busiest minute of Chapa payments.
    #[arg(long, env = "TIJORI_CALLBACK_LIMIT", default_value = "120", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub callback_limit: u32,

    /// Sign-in attempts one account may take a minute (every attempt counts, a
    /// successful one too; 429 with Retry-After beyond), against password guessing.
    /// Someone who knows a username can keep that account at 429 with an attempt
    /// every few seconds: raise it where lockouts matter more than guessing.
    #[arg(long, env = "TIJORI_SIGNIN_LIMIT", default_value = "10", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub signin_limit: u32,

    /// Sign-in attempts one client address may make a minute, whatever the
    /// accounts (guessing across many accounts).
    #[arg(long, env = "TIJORI_SIGNIN_ADDRESS_LIMIT", default_value = "60", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub signin_address_limit: u32,

    /// Sign-ups (new accounts) one client address may make an hour. Raise it for a
    /// load test or a test suite that registers many users from one address.
    #[arg(long, env = "TIJORI_SIGNUP_LIMIT", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub signup_limit: u32,

    /// Password reset links that may be asked for one e-mail address an hour, known
    /// or not (429 with Retry-After beyond; it says nothing about whether an account
    /// has the address). Each link is a mail to someone's inbox.
    #[arg(long, env = "TIJORI_RESET_LIMIT", default_value = "3", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub reset_limit: u32,

    /// Password reset links one client address may ask for an hour, whatever the
    /// e-mail addresses.
    #[arg(long, env = "TIJORI_RESET_ADDRESS_LIMIT", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub reset_address_limit: u32,

    /// Reverse proxies (addresses or CIDR ranges, comma-separated) whose
    /// X-Forwarded-For names the client, for the per-address limits. Empty: the
    /// connection's peer is the client. List only your own proxies: anyone else's
    /// X-Forwarded-For is made up.
    #[arg(
        long,
        env = "TIJORI_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    pub trusted_proxies: tijori_web::extract::TrustedProxies,

    /// Seconds a request's body may take to arrive once its head has (408 after): a
    /// client trickling its body must not hold a connection for ever.
    #[arg(long, env = "TIJORI_BODY_TIMEOUT", default_value = "10", value_parser = parse_seconds, global = true)]
    pub body_timeout: Duration,

    /// The most live-status streams (SSE or WebSocket) one account may hold open at
    /// once (a 429 beyond): without it one account could hold every connection place.
    /// Raise it for load tests.
    #[arg(long, env = "TIJORI_LIVE_STREAM_LIMIT", default_value = "8", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub live_stream_limit: u32,

    /// The most connections open at once (live-status pages hold one each). Beyond
    /// it a new connection gets a 503 and is closed, and the log says so.
    #[arg(long, env = "TIJORI_MAX_CONNECTIONS", default_value = "10000", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,

    /// Password checks (sign-in, sign-up) that may wait for a free core at once; one
    /// more is refused at once with 503 and Retry-After, so a flood of sign-ins
    /// cannot build a queue that grows. Default: 8 per core (about a second's work).
    #[arg(long, env = "TIJORI_HASH_QUEUE", value_parser = clap::value_parser!(u32).range(0..=100_000), global = true)]
    pub hash_queue: Option<u32>,

    /// Unpaid, unexpired orders one customer may hold at once (409
    /// too_many_pending_orders beyond).
    #[arg(long, env = "TIJORI_MAX_UNPAID_ORDERS", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub max_unpaid_orders: u32,

    /// Units of one product one customer may hold across their unpaid orders (409
    /// too_many_units beyond), so nobody can hoard the stock without paying.
    #[arg(long, env = "TIJORI_MAX_UNPAID_UNITS_PER_PRODUCT", default_value = "10", value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_unpaid_units_per_product: u32,

    /// Days before a subscription ends that its renewal reminder is mailed.
    #[arg(long, env = "TIJORI_REMINDER_DAYS", default_value = "3", value_parser = clap::value_parser!(u32).range(1..=60), global = true)]
    pub reminder_days: u32,

    /// SMTP server for customer mail, e.g. smtps://user:pass@smtp.example.com:465 or
    /// smtp://user:pass@host:587?tls=required. Without it, mail is kept in the outbox
    /// (the admin page) instead of sent.
    #[arg(long, env = "TIJORI_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<SecretString>,

    /// The sender of customer mail.
    #[arg(
        long,
        env = "TIJORI_MAIL_FROM",
        default_value = "tijori <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// The merchant's name, printed on every receipt and in its mail.
    #[arg(
        long,
        env = "TIJORI_MERCHANT_NAME",
        default_value = "tijori demo shop",
        global = true
    )]
    pub merchant_name: String,

    /// The merchant's address (and tax number, if any), printed under the name on
    /// every receipt. `\n` separates lines.
    #[arg(
        long,
        env = "TIJORI_MERCHANT_ADDRESS",
        default_value = "",
        global = true
    )]
    pub merchant_address: String,

    /// Seconds to wait for a gateway's answer before giving up on a call.
    #[arg(long, env = "TIJORI_GATEWAY_TIMEOUT", default_value = "10", value_parser = parse_seconds, global = true)]
    pub gateway_timeout: Duration,

    /// Serve the built-in sandbox gateways (anyone can mark their payments paid) for
    /// each gateway without a key. Default: only on a loopback address (127.0.0.1,
    /// localhost); elsewhere a gateway without a key is left out. `true` allows the
    /// sandbox on any address; `false` never serves it.
    #[arg(long, env = "TIJORI_SANDBOX", global = true)]
    pub sandbox: Option<bool>,

    /// Seed demo data (plans, products and a demo user) at start. Default: on when
    /// no gateway key is set (everything runs on the sandbox).
    #[arg(long, env = "TIJORI_DEMO", global = true)]
    pub demo: Option<bool>,
}

pub const KHALTI_TEST_BASE_URL: &str = "https://dev.khalti.com/api/v2/";

impl Config {
    /// The embedded default on `database_url`, listening on a free loopback port:
    /// the built-in sandbox gateways and demo data (what tests and examples start).
    pub fn embedded(database_url: &str) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            database_url: database_url.to_owned(),
            khalti_secret_key: None,
            khalti_base_url: None,
            chapa_secret_key: None,
            chapa_webhook_secret: None,
            chapa_base_url: None,
            esewa_secret_key: None,
            esewa_product_code: None,
            esewa_base_url: None,
            esewa_status_url: None,
            order_ttl_minutes: 30,
            worker: true,
            log_format: crate::logging::LogFormat::Text,
            worker_listen: None,
            worker_concurrency: 16,
            reconcile_after_minutes: 15,
            sweep_seconds: 60,
            refresh_limit: 10,
            verify_limit: 60,
            checkout_limit: 20,
            callback_limit: 120,
            signin_limit: 10,
            signin_address_limit: 60,
            signup_limit: 20,
            reset_limit: 3,
            reset_address_limit: 20,
            trusted_proxies: tijori_web::extract::TrustedProxies::default(),
            body_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            live_stream_limit: 8,
            hash_queue: None,
            max_unpaid_orders: 5,
            max_unpaid_units_per_product: 10,
            reminder_days: 3,
            refund_audit_days: 14,
            refund_audit_per_minute: 4,
            restock_found_refunds: false,
            webhook_allow_private: false,
            event_retention_days: 30,
            smtp_url: None,
            mail_from: "tijori <no-reply@localhost>".into(),
            merchant_name: "tijori demo shop".into(),
            merchant_address: String::new(),
            gateway_timeout: Duration::from_secs(10),
            sandbox: None,
            demo: Some(true),
        }
    }

    /// Whether some gateway has no key, so would run on the built-in sandbox.
    pub fn uses_sandbox(&self) -> bool {
        self.khalti_secret_key.is_none()
            || self.chapa_secret_key.is_none()
            || self.esewa_secret_key.is_none()
    }

    fn has_any_key(&self) -> bool {
        self.khalti_secret_key.is_some()
            || self.chapa_secret_key.is_some()
            || self.esewa_secret_key.is_some()
    }

    /// Decides whether the built-in sandbox serves the gateways without a key,
    /// refusing the combination that would be a hole in production: the sandbox on an
    /// address others can reach. With no key at all and no sandbox there would be no
    /// gateway, which is an error.
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
            // A merchant with one real gateway runs without the other.
            _ if self.has_any_key() => Ok(false),
            Some(false) => Err(
                "none of KHALTI_SECRET_KEY, CHAPA_SECRET_KEY and ESEWA_SECRET_KEY is set and \
                 TIJORI_SANDBOX=false: set a gateway key"
                    .into(),
            ),
            None => Err(format!(
                "no gateway key is set (KHALTI_SECRET_KEY, CHAPA_SECRET_KEY, ESEWA_SECRET_KEY), \
                 so tijori would \
                 serve its sandbox gateways, where anyone can mark a payment paid, on {bound} \
                 ({public_url}). Set a key, or TIJORI_SANDBOX=true to run the sandbox there on \
                 purpose."
            )),
        }
    }

    pub fn background(&self) -> tijori_core::service::BackgroundSettings {
        tijori_core::service::BackgroundSettings {
            reconcile_after: chrono::Duration::minutes(i64::from(self.reconcile_after_minutes)),
            sweep_every: chrono::Duration::seconds(i64::from(self.sweep_seconds)),
            remind_before: chrono::Duration::days(i64::from(self.reminder_days)),
            refund_audit_window: chrono::Duration::days(i64::from(self.refund_audit_days)),
            refund_audit_per_minute: self.refund_audit_per_minute,
            restock_found_refunds: self.restock_found_refunds,
            history_retention: chrono::Duration::days(i64::from(self.event_retention_days)),
            ..Default::default()
        }
    }

    pub fn demo(&self) -> bool {
        self.demo.unwrap_or_else(|| !self.has_any_key())
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

fn parse_minutes(s: &str) -> Result<u32, String> {
    let minutes: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of minutes"))?;
    if !(1..=10_080).contains(&minutes) {
        return Err(format!(
            "{minutes} minutes is out of range (1 to 10080, a week)"
        ));
    }
    Ok(minutes)
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
            khalti_secret_key: key.map(SecretString::from),
            sandbox,
            demo: None,
            ..Config::embedded("sqlite://x.db")
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

/// The Debian package's settings file (crates/tijori/debian/tijori.env) lists every
/// setting, so a new one cannot ship without its line there.
#[cfg(test)]
mod debian_env_file {
    use std::collections::BTreeMap;

    use clap::{Args, FromArgMatches};

    use super::Config;

    const ENV_FILE: &str = include_str!("../debian/tijori.env");
    /// Read by `main` itself (the log filter), not by clap.
    const READ_BY_MAIN: &[&str] = &["TIJORI_LOG"];
    /// `tijori sandbox`'s own flags: the standalone sandbox for developers, which the
    /// package's units never run.
    const STANDALONE_SANDBOX: &[&str] = &["TIJORI_SANDBOX_LISTEN", "TIJORI_SANDBOX_PUBLIC_URL"];

    /// Each setting in the file: name -> (value, whether it is set rather than
    /// commented out). Setting lines are `NAME=value` or `#NAME=value`; comments
    /// are `# ...`.
    fn settings() -> BTreeMap<String, (String, bool)> {
        let mut found = BTreeMap::new();
        for line in ENV_FILE.lines() {
            let (line, set) = match line.strip_prefix('#') {
                Some(rest) => (rest, false),
                None => (line, true),
            };
            let Some((name, value)) = line.split_once('=') else {
                assert!(!set || line.trim().is_empty(), "not NAME=value: {line:?}");
                continue;
            };
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !is_name {
                assert!(!set, "not NAME=value: {line:?}");
                continue;
            }
            let previous = found.insert(name.to_owned(), (value.to_owned(), set));
            assert!(previous.is_none(), "{name} is listed twice");
        }
        found
    }

    fn clap_config() -> clap::Command {
        Config::augment_args(clap::Command::new("tijori"))
    }

    /// systemd strips one pair of double quotes around a value.
    fn unquoted(value: &str) -> &str {
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
    }

    #[test]
    fn lists_every_setting_and_nothing_else() {
        let listed = settings();
        let mut known: Vec<String> = READ_BY_MAIN.iter().map(|s| s.to_string()).collect();
        for arg in clap_config().get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let env = env.to_str().expect("env names are ASCII").to_owned();
            assert!(
                listed.contains_key(&env),
                "{env} is missing from crates/tijori/debian/tijori.env: add it there, \
                 commented out, with a line on why one would set it"
            );
            known.push(env);
        }
        // Names read elsewhere in main.rs: clap's `env = "..."` on subcommands, or
        // read by hand.
        let main = include_str!("main.rs");
        for prefix in ["\"TIJORI_", "\"KHALTI_", "\"CHAPA_", "\"ESEWA_"] {
            for (at, _) in main.match_indices(prefix) {
                let name: String = main[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if STANDALONE_SANDBOX.contains(&name.as_str()) {
                    continue;
                }
                assert!(
                    listed.contains_key(&name),
                    "{name} (main.rs) is missing from crates/tijori/debian/tijori.env"
                );
            }
        }
        for name in listed.keys() {
            assert!(
                known.contains(name),
                "crates/tijori/debian/tijori.env lists {name}, which is no setting"
            );
        }
    }

    #[test]
    fn a_commented_setting_shows_its_default() {
        let listed = settings();
        for arg in clap_config().get_arguments() {
            let (Some(env), [default]) = (arg.get_env(), arg.get_default_values()) else {
                continue;
            };
            let env = env.to_str().expect("env names are ASCII");
            let Some((value, set)) = listed.get(env) else {
                continue;
            };
            if !set {
                assert_eq!(
                    unquoted(value),
                    default.to_str().expect("defaults are UTF-8"),
                    "#{env}= in crates/tijori/debian/tijori.env is not the default"
                );
            }
        }
    }

    #[test]
    fn every_value_is_a_valid_setting_and_the_set_ones_are_plain() {
        let listed = settings();
        let config = clap_config();
        let mut args = vec!["tijori".to_owned()];
        for arg in config.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            // A missing one is lists_every_setting_and_nothing_else's to report.
            let Some((value, set)) = listed.get(env.to_str().expect("env names are ASCII")) else {
                continue;
            };
            if *set {
                // A shell, systemd and `env NAME=value` read it alike.
                assert!(
                    !value.is_empty() && !value.contains(['"', '\'', ' ', '$', '\\']),
                    "{env:?}: keep set values plain (no quotes, spaces, $ or \\): {value:?}"
                );
            }
            if value.is_empty() {
                continue;
            }
            let long = arg.get_long().expect("every setting has a flag");
            args.push(format!("--{long}={}", unquoted(value)));
        }
        let matches = config
            .try_get_matches_from(&args)
            .unwrap_or_else(|e| panic!("the env file's values, as flags ({args:?}): {e}"));
        let parsed = Config::from_arg_matches(&matches).expect("a config");
        assert_eq!(
            parsed.database_url, "sqlite:///var/lib/tijori/tijori.db",
            "the package keeps its database in /var/lib/tijori, the units' one writable place"
        );
        assert_eq!(parsed.demo, Some(false), "no demo account on a server");
    }
}
