//! tijori's HTTP surface: the JSON API of DESIGN.md §4, the customer's pages, and the
//! operational endpoints. Handlers stay thin: they parse, call `tijori_core::Tijori`,
//! and shape the answer. No SQL and no gateway client here.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use tijori_core::Tijori;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use url::Url;

mod admin;
mod auth;
pub mod error;
pub mod events;
pub mod extract;
mod i18n;
pub mod idempotency;
mod layers;
mod limits;
mod live;
mod notices;
mod openapi;
mod ops;
mod pages;
mod payments;
pub mod ratelimit;
mod shop;
mod subscriptions;
mod views;
mod words;

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
    /// How many times a minute one user may open a checkout or create an order, on
    /// each path (initiate, initialize, widget verify, order creation): each costs a
    /// gateway call or rows.
    pub checkouts_per_minute: u32,
    /// How many Chapa callbacks one client address may send a minute (the callback
    /// is anonymous, and each may cost a gateway lookup).
    pub callbacks_per_minute: u32,
    /// How many sign-in attempts one account may take a minute (password guessing).
    pub sign_ins_per_account_per_minute: u32,
    /// How many sign-in attempts one client address may make a minute, whatever the
    /// accounts (guessing across many accounts).
    pub sign_ins_per_address_per_minute: u32,
    /// How many accounts one client address may register an hour.
    pub sign_ups_per_address_per_hour: u32,
    /// How many live-status streams (SSE or WebSocket) one account may hold open:
    /// without a bound one account could hold every connection place.
    pub live_streams_per_user: u32,
    /// How many password reset links may be asked for one e-mail address an hour
    /// (known or not): each may send a mail to someone's inbox.
    pub password_resets_per_email_per_hour: u32,
    /// How many password reset links one client address may ask for an hour,
    /// whatever the e-mail addresses.
    pub password_resets_per_address_per_hour: u32,
    /// Proxies whose `X-Forwarded-For` names the client (else the peer is the client).
    pub trusted_proxies: extract::TrustedProxies,
    /// How long a request's body may take to arrive once its head has (408 after).
    pub body_timeout: std::time::Duration,
}

impl WebConfig {
    pub const DEFAULT_REFRESHES_PER_MINUTE: u32 = 10;
    pub const DEFAULT_VERIFIES_PER_MINUTE: u32 = 60;
    pub const DEFAULT_CHECKOUTS_PER_MINUTE: u32 = 20;
    pub const DEFAULT_CALLBACKS_PER_MINUTE: u32 = 120;
    pub const DEFAULT_SIGN_INS_PER_ACCOUNT_PER_MINUTE: u32 = 10;
    pub const DEFAULT_SIGN_INS_PER_ADDRESS_PER_MINUTE: u32 = 60;
    pub const DEFAULT_SIGN_UPS_PER_ADDRESS_PER_HOUR: u32 = 20;
    pub const DEFAULT_LIVE_STREAMS_PER_USER: u32 = 8;
    pub const DEFAULT_PASSWORD_RESETS_PER_EMAIL_PER_HOUR: u32 = 3;
    pub const DEFAULT_PASSWORD_RESETS_PER_ADDRESS_PER_HOUR: u32 = 20;
    pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn new(public_url: Url) -> Self {
        WebConfig {
            public_url,
            refreshes_per_minute: Self::DEFAULT_REFRESHES_PER_MINUTE,
            verifies_per_minute: Self::DEFAULT_VERIFIES_PER_MINUTE,
            checkouts_per_minute: Self::DEFAULT_CHECKOUTS_PER_MINUTE,
            callbacks_per_minute: Self::DEFAULT_CALLBACKS_PER_MINUTE,
            sign_ins_per_account_per_minute: Self::DEFAULT_SIGN_INS_PER_ACCOUNT_PER_MINUTE,
            sign_ins_per_address_per_minute: Self::DEFAULT_SIGN_INS_PER_ADDRESS_PER_MINUTE,
            sign_ups_per_address_per_hour: Self::DEFAULT_SIGN_UPS_PER_ADDRESS_PER_HOUR,
            live_streams_per_user: Self::DEFAULT_LIVE_STREAMS_PER_USER,
            password_resets_per_email_per_hour: Self::DEFAULT_PASSWORD_RESETS_PER_EMAIL_PER_HOUR,
            password_resets_per_address_per_hour:
                Self::DEFAULT_PASSWORD_RESETS_PER_ADDRESS_PER_HOUR,
            trusted_proxies: extract::TrustedProxies::default(),
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// One of the server's connection places (`TIJORI_MAX_CONNECTIONS`), held while it
/// lives. The server puts it on each request of a connection; a WebSocket keeps it
/// after its upgrade, when the HTTP connection it came on has ended, so open sockets
/// count against the cap too.
#[derive(Clone)]
pub struct ConnectionSlot(pub Arc<dyn std::any::Any + Send + Sync>);

/// What every handler shares. Cloned for each request (axum's `State`, and the
/// middleware that reads the body), so it is one pointer: cloning the service with
/// its many shared parts, and dropping it, cost 3 % of the server's time per flow.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
pub struct Shared {
    pub tijori: Tijori,
    pages: pages::Templates,
    config: WebConfig,
    limits: limits::Limits,
    metrics: ops::Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(tijori: Tijori, config: WebConfig) -> Self {
        AppState(Arc::new(Shared {
            tijori,
            pages: pages::Templates::new(),
            limits: limits::Limits::new(&config),
            metrics: ops::Metrics::new(),
            config,
        }))
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

/// Only the probes and the metrics (/metrics, /livez, /readyz, /healthz), for a
/// process that serves nothing else: a separate `tijori worker`, whose jobs, gateway
/// calls and settlements are counted in its own process.
pub fn operations_router(state: AppState) -> Router {
    ops::probes()
        .with_state(state)
        .layer(TraceLayer::new_for_http())
}

/// The whole application's routes. Callers may merge or nest more (the sandbox).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(subscriptions::router(&state))
        .merge(payments::router(&state))
        .merge(live::router())
        .merge(shop::router(&state))
        .merge(notices::router(&state))
        .merge(admin::router())
        .merge(events::router())
        .merge(pages::router(&state))
        .merge(ops::router())
        .with_state(state.clone())
        // One `layer` for the whole stack, outermost first. Each call of `Router::layer`
        // wraps every route in a boxed service of its own, and a request clones the
        // route's boxes, each `from_fn` its inner ones again: eleven calls cost about
        // 120 allocations a request more than one does (BENCHMARKS.md, issue 15).
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(ops::drop_unusable_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http().make_span_with(ops::request_span))
                // No page of ours may be framed by another site (clickjacking the
                // Subscribe and Sign out buttons).
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("frame-ancestors 'none'"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(from_fn(ops::count_requests))
                .layer(from_fn_with_state(state.clone(), extract::body_deadline))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                .layer(from_fn_with_state(
                    state.clone(),
                    extract::cross_origin_guard,
                ))
                .layer(from_fn_with_state(state, extract::reject_bad_tokens)),
        )
}
