//! /api/auth/: register and login. An API client gets an API token; a browser gets a
//! session cookie (and its CSRF token) instead, never both: each credential lives
//! only where it is used, and signing out ends exactly it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use tijori_core::account::User;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{Caller, ClientAddress, Credential, Json, DJANGO_CSRF_COOKIE, SESSION_COOKIE};
use crate::openapi::{BadToken, CrossSite, Internal, JsonBody, SignedIn};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/register/", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/login/", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/logout/", post(logout))
}

#[derive(Deserialize, ToSchema)]
struct RegisterBody {
    #[schema(min_length = 3, max_length = 32)]
    username: String,
    #[schema(format = Email)]
    email: String,
    #[schema(min_length = 8)]
    password: String,
    /// For dates in pages and mail (`Asia/Kathmandu`, `Africa/Addis_Ababa` or `UTC`).
    /// Left out, mail uses the zone of the currency the user pays in and pages the
    /// browser's own.
    #[schema(
        nullable = false,
        examples("Asia/Kathmandu", "Africa/Addis_Ababa", "UTC")
    )]
    time_zone: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Registered {
    id: String,
    username: String,
    email: String,
    token: String,
}

#[utoipa::path(
    post, path = "/api/auth/register", tag = "auth", summary = "Create an account",
    description = "Also answers at `/api/auth/register/`. Limited per client address \
        (`TIJORI_SIGNUP_LIMIT` an hour).",
    request_body = inline(RegisterBody),
    responses(
        (status = 201, description = "Created, with an API token.", body = inline(Registered)),
        (status = 400, description = "Invalid field (`validation_error`), or malformed JSON \
            (`invalid_json`).", body = crate::error::ErrorBody),
        BadToken,
        CrossSite,
        JsonBody,
        (status = 409, description = "Username or e-mail already registered \
            (`username_taken`).", body = crate::error::ErrorBody),
        (status = 429, description = "Too many sign-ups from this client address this hour \
            (`TIJORI_SIGNUP_LIMIT`, `rate_limited`); see `Retry-After`.", body = crate::error::ErrorBody),
        Internal,
        (status = 503, description = "Too many passwords being hashed at once \
            (`overloaded`); see `Retry-After`.", body = crate::error::ErrorBody),
    )
)]
async fn register(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(body): Json<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    state.limits.sign_up(client)?;
    let user = state
        .tijori
        .register(
            &body.username,
            &body.email,
            &body.password,
            body.time_zone.as_deref(),
        )
        .await?;
    let token = state.tijori.issue_api_token(&user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            id: user.id.to_string(),
            username: user.username.as_str().to_owned(),
            email: user.email.as_str().to_owned(),
            token: token.expose().to_owned(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    username: String,
    password: String,
    /// `true`: a browser session (cookie and `csrf_token`); `false`: an API token.
    /// Left out: a session when the request carries `Sec-Fetch-Mode` (a browser, which
    /// adds it to every request and a script cannot forge), else a token.
    #[schema(nullable = false)]
    session: Option<bool>,
}

/// What login answers: an API token or a browser session, never both.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum LoginAnswer {
    /// For an API client (DESIGN.md §4).
    Token {
        /// Send it as `Authorization: Token <token>`; valid for 30 days.
        token: String,
    },
    /// For a browser: the session is in the cookie; this is its CSRF token.
    Session {
        /// Send it as `X-CSRF-Token` on state-changing requests made with the cookie.
        csrf_token: String,
    },
}

/// Whether a login comes from a browser (see [`LoginBody::session`]).
fn wants_session(headers: &HeaderMap, asked: Option<bool>) -> bool {
    asked.unwrap_or_else(|| headers.contains_key("sec-fetch-mode"))
}

#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth", summary = "Sign in",
    description = "Signs in. An API client gets a new API token (valid for 30 days), as \
        `{token}`. A browser gets a session cookie instead, and `{csrf_token}` to send as \
        `X-CSRF-Token` on state-changing requests made with that cookie; never both. A \
        browser is told apart by `Sec-Fetch-Mode`, which every current browser adds to its \
        requests and a script cannot set; `session` chooses explicitly. Throttled per \
        account (`TIJORI_SIGNIN_LIMIT` attempts a minute) and per client address \
        (`TIJORI_SIGNIN_ADDRESS_LIMIT`). Also answers at `/api/auth/login/`.",
    request_body = inline(LoginBody),
    responses(
        (status = 200, description = "Signed in: `{token}` for an API client, `{csrf_token}` \
            with a `tijori_session` cookie for a browser.", body = inline(LoginAnswer)),
        (status = 400, description = "Malformed JSON (`invalid_json`) or a missing field \
            (`validation_error`).", body = crate::error::ErrorBody),
        (status = 401, description = "Wrong username or password (`bad_credentials`). Also: \
            an `Authorization: Token …` or `Bearer …` header whose token is unknown, expired \
            or revoked (`unauthenticated`): on every endpoint, public ones included.",
            body = crate::error::ErrorBody),
        CrossSite,
        JsonBody,
        (status = 429, description = "Too many sign-in attempts for this account this minute, \
            or from this client address (`rate_limited`); see `Retry-After`.",
            body = crate::error::ErrorBody),
        Internal,
        (status = 503, description = "Too many passwords being checked at once \
            (`overloaded`): refused at once rather than queued; see `Retry-After`.",
            body = crate::error::ErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    state.limits.sign_in(client, &body.username)?;
    let user = state
        .tijori
        .check_credentials(&body.username, &body.password)
        .await?;
    if wants_session(&headers, body.session) {
        let (jar, csrf_token) = start_session(&state, jar, &user).await?;
        return Ok((jar, Json(LoginAnswer::Session { csrf_token })).into_response());
    }
    let token = state.tijori.issue_api_token(&user.id).await?;
    Ok(Json(LoginAnswer::Token {
        token: token.expose().to_owned(),
    })
    .into_response())
}

/// Signs out whatever signed this request in: revokes the API token, or ends the
/// browser session and clears its cookie.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth", summary = "Sign out",
    description = "Revokes the API token the request was made with, or ends the browser \
        session (which then needs `X-CSRF-Token`) and clears its cookie. Ends only what the \
        request was made with: the API token of its `Authorization` header, or the browser \
        session of its cookie. Also answers at `/api/auth/logout/`.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    responses(
        (status = 204, description = "Signed out."),
        SignedIn,
        CrossSite,
        Internal,
    )
)]
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<impl IntoResponse, ApiError> {
    let jar = match caller.credential {
        Credential::ApiToken(token) => {
            state.tijori.revoke_api_token(&token).await?;
            jar
        }
        Credential::Session(secret) => {
            state.tijori.end_session(&secret).await?;
            end_session_cookie(jar)
        }
    };
    Ok((jar, StatusCode::NO_CONTENT))
}

/// Opens a browser session and sets its cookie; returns the session's CSRF token.
pub(crate) async fn start_session(
    state: &AppState,
    jar: CookieJar,
    user: &User,
) -> Result<(CookieJar, String), ApiError> {
    let (secret, csrf) = state.tijori.start_session(&user.id).await?;
    let cookie = Cookie::build((SESSION_COOKIE, secret.expose().to_owned()))
        .path("/")
        .http_only(true)
        // Lax, not Strict: the customer comes back from the gateway's page by a
        // top-level redirect, and must still be signed in when they land.
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies())
        .max_age(time_days(tijori_core::service::SESSION_LIFETIME_DAYS));
    // Django's convention beside ours: the same token in a cookie the page's script
    // can read (not HttpOnly, by design), sent back as `X-CSRFToken`. Another site
    // cannot read it, and the session cookie still has to come with it.
    let django_csrf = Cookie::build((DJANGO_CSRF_COOKIE, csrf.clone()))
        .path("/")
        .http_only(false)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies())
        .max_age(time_days(tijori_core::service::SESSION_LIFETIME_DAYS));
    Ok((jar.add(cookie).add(django_csrf), csrf))
}

pub(crate) fn end_session_cookie(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
        .remove(Cookie::build(DJANGO_CSRF_COOKIE).path("/"))
}

fn time_days(days: i64) -> cookie::time::Duration {
    cookie::time::Duration::days(days)
}
