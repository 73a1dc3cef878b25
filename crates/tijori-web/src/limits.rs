//! Every per-user and per-address limit of the HTTP surface, in one place, so the API
//! and the pages that do the same thing share one allowance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tijori_core::account::User;
use tijori_core::id::UserId;

use crate::error::ApiError;
use crate::ratelimit::{address_key, too_many, RateLimiter};
use crate::WebConfig;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);

/// The most of a username used as a limiter key: longer ones are not usernames.
const MOST_KEYED_USERNAME: usize = 150;

/// The most of an e-mail address used as a limiter key (addresses stop at 254).
const MOST_KEYED_EMAIL: usize = 254;

/// The paths that open a checkout or write an order: each bounded per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Checkout {
    Initiate,
    Initialize,
    WidgetVerify,
    CreateOrder,
}

pub(crate) struct Limits {
    /// "Check payment status" costs a gateway call: a few per user per minute.
    refreshes: RateLimiter<String>,
    /// Verify may cost one too (for an open payment); the return page polls it, so
    /// its allowance is larger.
    verifies: RateLimiter<String>,
    /// Opening checkouts and creating orders, per (path, user).
    checkouts: RateLimiter<(Checkout, String)>,
    /// Chapa's public callback, per client address: anyone can call it.
    callbacks: RateLimiter<IpAddr>,
    /// Sign-in attempts per account (by the username asked for, known or not, so a
    /// 429 says nothing about whether the account exists).
    sign_ins_per_account: RateLimiter<String>,
    sign_ins_per_address: RateLimiter<IpAddr>,
    sign_ups_per_address: RateLimiter<IpAddr>,
    /// Password reset links per e-mail address asked for (known or not, so a 429
    /// says nothing about whether an account has it), and per client address.
    resets_per_email: RateLimiter<String>,
    resets_per_address: RateLimiter<IpAddr>,
    /// Live-status streams open now, per user (an entry only while one is open). A
    /// customer watches a payment or two, in a tab or two; without a bound one
    /// account could hold every connection place (`TIJORI_MAX_CONNECTIONS`) and
    /// shut every other customer out.
    live: Arc<Mutex<HashMap<UserId, usize>>>,
    most_live: usize,
}

/// A user's place among their live-status streams, given back when the stream ends.
pub(crate) struct LivePlace {
    open: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Drop for LivePlace {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Limits {
    pub(crate) fn new(config: &WebConfig) -> Self {
        Limits {
            refreshes: RateLimiter::new(config.refreshes_per_minute, MINUTE),
            verifies: RateLimiter::new(config.verifies_per_minute, MINUTE),
            checkouts: RateLimiter::new(config.checkouts_per_minute, MINUTE),
            callbacks: RateLimiter::new(config.callbacks_per_minute, MINUTE),
            sign_ins_per_account: RateLimiter::new(config.sign_ins_per_account_per_minute, MINUTE),
            sign_ins_per_address: RateLimiter::new(config.sign_ins_per_address_per_minute, MINUTE),
            sign_ups_per_address: RateLimiter::new(config.sign_ups_per_address_per_hour, HOUR),
            resets_per_email: RateLimiter::new(config.password_resets_per_email_per_hour, HOUR),
            resets_per_address: RateLimiter::new(config.password_resets_per_address_per_hour, HOUR),
            live: Arc::default(),
            most_live: usize::try_from(config.live_streams_per_user.max(1)).unwrap_or(usize::MAX),
        }
    }

    /// A place for one more live-status stream of `user`, or a 429 when they hold
    /// as many as they may already.
    pub(crate) fn live_stream(&self, user: &User) -> Result<LivePlace, ApiError> {
        let mut open = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(user.id.clone()).or_insert(0);
        if *n >= self.most_live {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "this account has {} live-status streams open, the most it may; close \
                     one first",
                    self.most_live
                ),
            ));
        }
        *n += 1;
        Ok(LivePlace {
            open: self.live.clone(),
            user: user.id.clone(),
        })
    }

    pub(crate) fn refresh(&self, user: &User) -> Result<(), ApiError> {
        self.refreshes
            .check(user.id.as_str())
            .map_err(|wait| too_many("status checks", wait))
    }

    pub(crate) fn verify(&self, user: &User) -> Result<(), ApiError> {
        self.verifies
            .check(user.id.as_str())
            .map_err(|wait| too_many("verifications", wait))
    }

    pub(crate) fn checkout(&self, what: Checkout, user: &User) -> Result<(), ApiError> {
        let name = match what {
            Checkout::Initiate | Checkout::Initialize => "checkouts opened",
            Checkout::WidgetVerify => "widget payments",
            Checkout::CreateOrder => "orders",
        };
        self.checkouts
            .check(&(what, user.id.as_str().to_owned()))
            .map_err(|wait| too_many(name, wait))
    }

    pub(crate) fn callback(&self, client: IpAddr) -> Result<(), ApiError> {
        self.callbacks
            .check(&address_key(client))
            .map_err(|wait| too_many("callbacks", wait))
    }

    /// Before a password is checked: the address's allowance, then the account's.
    pub(crate) fn sign_in(&self, client: IpAddr, username: &str) -> Result<(), ApiError> {
        self.sign_ins_per_address
            .check(&address_key(client))
            .map_err(|wait| too_many("sign-in attempts from this address", wait))?;
        let account: String = username
            .trim()
            .chars()
            .take(MOST_KEYED_USERNAME)
            .collect::<String>()
            .to_lowercase();
        self.sign_ins_per_account
            .check(&account)
            .map_err(|wait| too_many("sign-in attempts for this account", wait))
    }

    pub(crate) fn sign_up(&self, client: IpAddr) -> Result<(), ApiError> {
        self.sign_ups_per_address
            .check(&address_key(client))
            .map_err(|wait| too_many("sign-ups from this address", wait))
    }

    /// Before a reset link is asked for: the client address's allowance, then the
    /// e-mail address's.
    pub(crate) fn password_reset(&self, client: IpAddr, email: &str) -> Result<(), ApiError> {
        self.resets_per_address
            .check(&address_key(client))
            .map_err(|wait| too_many("password reset requests from this address", wait))?;
        let asked: String = email
            .trim()
            .chars()
            .take(MOST_KEYED_EMAIL)
            .collect::<String>()
            .to_lowercase();
        self.resets_per_email
            .check(&asked)
            .map_err(|wait| too_many("password reset requests for this e-mail address", wait))
    }

    /// How many keys each limiter holds, for /metrics.
    pub(crate) fn sizes(&self) -> [(&'static str, usize); 9] {
        [
            ("refresh", self.refreshes.len()),
            ("verify", self.verifies.len()),
            ("checkout", self.checkouts.len()),
            ("chapa_callback", self.callbacks.len()),
            ("sign_in_account", self.sign_ins_per_account.len()),
            ("sign_in_address", self.sign_ins_per_address.len()),
            ("sign_up_address", self.sign_ups_per_address.len()),
            ("password_reset_email", self.resets_per_email.len()),
            ("password_reset_address", self.resets_per_address.len()),
        ]
    }
}
