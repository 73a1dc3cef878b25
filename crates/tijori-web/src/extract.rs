//! Request extractors: JSON bodies whose rejections speak our error envelope, and the
//! caller's identity from an API token or a browser session.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use tijori_core::account::{Session, User};

use crate::error::ApiError;
use crate::AppState;

/// An id from the URL's path, parsed at the edge: a malformed one is the same 404 as
/// one that names nothing (it cannot name anything), and handlers and the core get
/// a typed id, never a string.
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: tijori_core::id::TypedId> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::not_found(T::NOUN))?;
        parse_id(&raw).map(PathId)
    }
}

/// Reads an id a request names (in its path or a form), as [`PathId`] does for the
/// API: a malformed one is the 404 of one that names nothing.
pub fn parse_id<T: tijori_core::id::TypedId>(raw: &str) -> Result<T, ApiError> {
    T::parse(raw).ok_or_else(|| ApiError::not_found(T::NOUN))
}

pub const SESSION_COOKIE: &str = "tijori_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Django's name for the same header. Pages written for a Django backend (the tutorial
/// merchants start from) read the `csrftoken` cookie and send it back under this name;
/// tijori takes it as an alias, so those pages work unchanged against it.
pub const DJANGO_CSRF_HEADER: &str = "x-csrftoken";
/// Django's script-readable cookie carrying the session's CSRF token (see
/// [`DJANGO_CSRF_HEADER`]). Set and cleared with the session cookie, and holding the
/// same token the session's pages carry: it proves nothing the session does not.
pub const DJANGO_CSRF_COOKIE: &str = "csrftoken";

/// `axum::Json`, but a malformed body is our 400/413/415 envelope, never axum's
/// plain-text 422.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A form body with the same treatment.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct Form<T>(pub T);

/// The authenticated caller of an API route, and how they proved who they are. Found
/// once per request: a route layer that needs it (idempotency) leaves it on the
/// request for the handler.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

/// The secret a caller presented (kept so signing out can revoke exactly it).
#[derive(Clone)]
pub enum Credential {
    ApiToken(String),
    Session(String),
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The token of `Authorization: Token <token>` (or `Bearer`), if the request has one;
/// `None` for no header or another scheme (a proxy's Basic authentication, which is
/// not ours to judge).
fn presented_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
        .then(|| token.trim())
}

/// The user an `Authorization` token proved, found once per request by
/// [`reject_bad_tokens`].
#[derive(Clone)]
struct TokenHolder {
    user: User,
    token: String,
}

/// A request that presents a token must present a good one, on every endpoint,
/// public ones included (as Django REST framework's token authentication does): a
/// client whose token is unknown, expired or revoked learns it at once, with a 401,
/// rather than getting an anonymous answer it could mistake for its own.
pub async fn reject_bad_tokens(
    state: axum::extract::State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(token) = presented_token(request.headers()) {
        match state.tijori.user_by_api_token(token).await {
            Ok(Some(user)) => {
                let holder = TokenHolder {
                    user,
                    token: token.to_owned(),
                };
                request.extensions_mut().insert(holder);
            }
            Ok(None) => {
                return ApiError::unauthenticated("invalid or expired token").into_response()
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    next.run(request).await
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = Self::authenticate(parts, state).await?;
        crate::ops::record_user(&caller.user);
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

impl Caller {
    async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(holder) = parts.extensions.get::<TokenHolder>() {
            return Ok(Caller {
                user: holder.user.clone(),
                credential: Credential::ApiToken(holder.token.clone()),
            });
        }
        // Every route is behind `reject_bad_tokens`, which answered a Token or Bearer
        // header already (a good one left its holder above): any other is not ours.
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::unauthenticated(
                "use `Authorization: Token <token>` (or `Bearer <token>`)",
            ));
        }

        // A browser riding on its session cookie: the cookie is sent by the browser
        // on its own, so any state change must also prove it comes from our page.
        let Some((session, secret)) = browser_session(parts, state).await? else {
            return Err(ApiError::unauthenticated(
                "sign in, or send `Authorization: Token <token>`",
            ));
        };
        if is_unsafe(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .or_else(|| parts.headers.get(DJANGO_CSRF_HEADER))
                .and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|s| constant_time_eq(s, &session.csrf_token)) {
                return Err(ApiError::forbidden(
                    "csrf_failed",
                    "missing or wrong X-CSRF-Token (or X-CSRFToken) header for a cookie-authenticated request",
                ));
            }
        }
        Ok(Caller {
            user: session.user,
            credential: Credential::Session(secret),
        })
    }
}

/// The browser's session and the cookie's secret, if its cookie names a live one.
pub(crate) async fn browser_session(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(Session, String)>, ApiError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let session = state.tijori.session(cookie.value()).await?;
    Ok(session.map(|s| (s, cookie.value().to_owned())))
}

pub fn check_csrf_field(session: &Session, sent: &str) -> Result<(), ApiError> {
    if constant_time_eq(sent, &session.csrf_token) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "csrf_failed",
            "this form is stale or was not sent from our page; reload and try again",
        ))
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses state-changing requests that a browser says come from another site
/// (`Sec-Fetch-Site`, or else `Origin`). This covers what a CSRF token cannot: the
/// sign-in and sign-up forms, which have no session yet. Server-to-server callers
/// send neither header and pass.
pub async fn cross_origin_guard(
    state: axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if is_unsafe(request.method()) {
        let headers = request.headers();
        let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let refused = match site {
            Some(site) => !matches!(site, "same-origin" | "none"),
            None => headers
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|origin| !state.same_origin(origin, headers.get(header::HOST))),
        };
        if refused {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin_refused",
                "state-changing requests from other sites are refused",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The client's address: the connection's peer, or, when the peer is a trusted
/// proxy, the last address in `X-Forwarded-For` that is not one (a client can put
/// anything at the front of that header; only what our own proxies appended counts).
/// Without a peer (a router called in-process) it is the unspecified address.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddress(
            state.config.trusted_proxies.client(peer, &parts.headers),
        ))
    }
}

/// The proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed:
/// `TIJORI_TRUSTED_PROXIES`, comma-separated. Empty: the peer is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (ip, bits) = match item.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (item, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or CIDR range"))?;
            let most = if ip.is_ipv4() { 32 } else { 128 };
            let bits =
                match bits {
                    Some(b) => b.parse::<u8>().ok().filter(|b| *b <= most).ok_or_else(|| {
                        format!("{item:?}: the prefix length must be 0 to {most}")
                    })?,
                    None => most,
                };
            ranges.push((ip, bits));
        }
        Ok(TrustedProxies(ranges))
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }

    /// The client behind `peer`, as the trusted proxies report it.
    pub fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Right to left: each trusted hop appended the address it saw.
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Garbage where an address should be: what a trusted proxy saw last
                // is the most we can believe.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// Gives a request's body [`crate::WebConfig::body_timeout`] to arrive, whole (up to
/// [`crate::MAX_BODY_BYTES`]), after its head: a client trickling a body byte by byte
/// (slow loris) gets a 408 instead of holding a connection and a task for ever.
pub async fn body_deadline(
    state: axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, crate::MAX_BODY_BYTES);
    let read = tokio::time::timeout(
        state.config.body_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than {} bytes",
                    crate::MAX_BODY_BYTES
                ),
            )
            .into_response()
        }
        Ok(Err(_)) => {
            return ApiError::bad_request("invalid_body", "the request body could not be read")
                .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    state.config.body_timeout.as_secs_f64()
                ),
            )
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, TrustedProxies};
    use std::net::IpAddr;

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
        let proxies: TrustedProxies = "10.0.0.0/8, ::1".parse().unwrap();
        // The client's own claim (6.6.6.6) is not believed; the last untrusted hop is.
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("203.0.113.9"));
        assert_eq!(
            proxies.client(ip("192.0.2.1"), &headers),
            ip("192.0.2.1"),
            "not a proxy of ours"
        );
        assert_eq!(
            proxies.client(ip("::1"), &axum::http::HeaderMap::new()),
            ip("::1")
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
