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

use crate::error::ApiError;
use crate::extract::{Caller, ClientAddress, Credential, Json, DJANGO_CSRF_COOKIE, SESSION_COOKIE};
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

#[derive(Deserialize)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
    /// Where dates in pages and mail are shown (Asia/Kathmandu, Africa/Addis_Ababa,
    /// UTC). Left out: mail infers it from the currency the user pays in, pages use
    /// the browser's own zone.
    time_zone: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    id: String,
    username: String,
    email: String,
    token: String,
}

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

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    /// `true`: a browser session (cookie); `false`: an API token. Left out, a
    /// request that a browser sent (it carries `Sec-Fetch-Mode`, which every current
    /// browser adds and scripts cannot forge) gets a session, any other an API token.
    session: Option<bool>,
}

/// DESIGN.md §4's answer for an API client.
#[derive(Serialize)]
struct TokenIssued {
    token: String,
}

/// A browser's answer: the session is in the cookie; this is its CSRF token, to send
/// as `X-CSRF-Token` on every state-changing request.
#[derive(Serialize)]
struct SessionStarted {
    csrf_token: String,
}

/// Whether a login comes from a browser (see [`LoginBody::session`]).
fn wants_session(headers: &HeaderMap, asked: Option<bool>) -> bool {
    asked.unwrap_or_else(|| headers.contains_key("sec-fetch-mode"))
}

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
        return Ok((jar, Json(SessionStarted { csrf_token })).into_response());
    }
    let token = state.tijori.issue_api_token(&user.id).await?;
    Ok(Json(TokenIssued {
        token: token.expose().to_owned(),
    })
    .into_response())
}

/// Signs out whatever signed this request in: revokes the API token, or ends the
/// browser session and clears its cookie.
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
