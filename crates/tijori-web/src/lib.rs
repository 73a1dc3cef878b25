//! tijori's HTTP surface: the JSON API of DESIGN.md §4, the customer's pages, and the
//! operational endpoints. Handlers stay thin: they parse, call `tijori_core::Tijori`,
//! and shape the answer. No SQL and no gateway client here.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::Router;
use tijori_core::Tijori;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use url::Url;

mod admin;
mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
mod live;
mod notices;
mod ops;
mod pages;
mod payments;
pub mod ratelimit;
mod shop;
mod subscriptions;
mod views;

pub use error::ApiError;

/// The largest JSON or form body accepted. Every request body in the API is small;
/// anything bigger is a mistake or an attack.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Where browsers reach this tijori; decides the cookie's Secure flag and which
    /// Origin counts as our own.
    pub public_url: Url,
    /// How many "check payment status" requests one user may make a minute.
    pub refreshes_per_minute: u32,
    /// How many verify requests one user may make a minute.
    pub verifies_per_minute: u32,
}

impl WebConfig {
    pub const DEFAULT_REFRESHES_PER_MINUTE: u32 = 10;
    pub const DEFAULT_VERIFIES_PER_MINUTE: u32 = 60;

    pub fn new(public_url: Url) -> Self {
        WebConfig {
            public_url,
            refreshes_per_minute: Self::DEFAULT_REFRESHES_PER_MINUTE,
            verifies_per_minute: Self::DEFAULT_VERIFIES_PER_MINUTE,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub tijori: Tijori,
    pages: Arc<pages::Templates>,
    config: Arc<WebConfig>,
    /// "Check payment status" costs a gateway call: a few per user per minute.
    refreshes: Arc<ratelimit::RateLimiter>,
    /// Verify may cost one too (for an open payment); the return page polls it, so
    /// its allowance is larger.
    verifies: Arc<ratelimit::RateLimiter>,
    /// Chapa's public callback, per tx_ref: anyone can call it.
    callbacks: Arc<ratelimit::RateLimiter>,
}

impl AppState {
    pub fn new(tijori: Tijori, config: WebConfig) -> Self {
        AppState {
            tijori,
            pages: Arc::new(pages::Templates::new()),
            refreshes: Arc::new(ratelimit::RateLimiter::new(
                config.refreshes_per_minute,
                std::time::Duration::from_secs(60),
            )),
            verifies: Arc::new(ratelimit::RateLimiter::new(
                config.verifies_per_minute,
                std::time::Duration::from_secs(60),
            )),
            callbacks: Arc::new(ratelimit::RateLimiter::new(
                10,
                std::time::Duration::from_secs(60),
            )),
            config: Arc::new(config),
        }
    }

    fn secure_cookies(&self) -> bool {
        self.config.public_url.scheme() == "https"
    }

    /// Whether an Origin header names this site: our public URL's origin, or the Host
    /// the request was sent to (for a server reached by several names).
    fn same_origin(&self, origin: &str, host: Option<&HeaderValue>) -> bool {
        let Ok(origin) = Url::parse(origin) else {
            return false;
        };
        if origin.origin() == self.config.public_url.origin() {
            return true;
        }
        let host = host.and_then(|h| h.to_str().ok());
        match (origin.host_str(), host) {
            (Some(o_host), Some(host)) => {
                let o = match origin.port() {
                    Some(p) => format!("{o_host}:{p}"),
                    None => o_host.to_owned(),
                };
                o.eq_ignore_ascii_case(host)
            }
            _ => false,
        }
    }
}

/// The whole application's routes. Callers may merge or nest more (the sandbox).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(subscriptions::router())
        .merge(payments::router())
        .merge(live::router())
        .merge(shop::router())
        .merge(notices::router())
        .merge(admin::router())
        .merge(pages::router())
        .merge(ops::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::cross_origin_guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(axum::middleware::from_fn(ops::count_requests))
        // No page of ours may be framed by another site (clickjacking the Subscribe
        // and Sign out buttons).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(TraceLayer::new_for_http())
}
