//! Request extractors: JSON bodies whose rejections speak our error envelope, and the
//! caller's identity from an API token or a browser session.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use tijori_core::account::{Session, User};

use crate::error::ApiError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "tijori_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

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

/// The authenticated caller of an API route, and how they proved who they are.
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

/// The secret a caller presented (kept so signing out can revoke exactly it).
pub enum Credential {
    ApiToken(String),
    Session(String),
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| {
                ApiError::unauthenticated("the Authorization header is not valid text")
            })?;
            let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
                ApiError::unauthenticated(
                    "use `Authorization: Token <token>` (or `Bearer <token>`)",
                )
            })?;
            if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) {
                return Err(ApiError::unauthenticated(format!(
                    "unsupported authorization scheme {scheme:?}: use Token or Bearer"
                )));
            }
            let token = token.trim();
            let user = state
                .tijori
                .user_by_api_token(token)
                .await?
                .ok_or_else(|| ApiError::unauthenticated("invalid or expired token"))?;
            return Ok(Caller {
                user,
                credential: Credential::ApiToken(token.to_owned()),
            });
        }

        // A browser riding on its session cookie: the cookie is sent by the browser
        // on its own, so any state change must also prove it comes from our page.
        let Some((session, secret)) = browser_session(parts, state).await? else {
            return Err(ApiError::unauthenticated(
                "sign in, or send `Authorization: Token <token>`",
            ));
        };
        if is_unsafe(&parts.method) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|s| constant_time_eq(s, &session.csrf_token)) {
                return Err(ApiError::forbidden(
                    "csrf_failed",
                    "missing or wrong X-CSRF-Token header for a cookie-authenticated request",
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
async fn browser_session(
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

/// The session of a page's visitor (or none). Pages check CSRF on their forms
/// themselves, with [`check_csrf_field`].
pub struct Visitor(pub Option<Session>);

impl FromRequestParts<AppState> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Visitor(
            browser_session(parts, state).await?.map(|(s, _)| s),
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
