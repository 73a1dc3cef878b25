//! Signing in, signing up and signing out. A visitor sent here from another page
//! (`?next=`) goes back to it afterwards.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::page::sign_in_redirect;
use super::{safe_next, CsrfForm, LoginNotice, Page, PageResult, Visitor};
use crate::auth::{end_session_cookie, start_session};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, ClientAddress, Form};
use crate::AppState;

mod reset;

/// The password reset's pages (`reset.rs`).
pub(super) const RESET_TEMPLATES: &[(&str, &str)] = reset::TEMPLATES;

pub(super) const TEMPLATES: &[(&str, &str)] = &[
    ("login.html", include_str!("login.html")),
    ("register.html", include_str!("register.html")),
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/register", get(register_page).post(register))
        .route("/logout", post(logout))
        .merge(reset::router())
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    notice: Option<String>,
}

async fn login_page(_: Visitor, Query(q): Query<NextQuery>) -> Page {
    let notice = q
        .notice
        .as_deref()
        .and_then(LoginNotice::parse)
        .map(LoginNotice::text);
    Page::new(
        "login.html",
        context! { next => safe_next(q.next.as_deref()), notice },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> PageResult<Response> {
    let next = safe_next(form.next.as_deref());
    let checked = match state.limits.sign_in(client, &form.username) {
        Ok(()) => state
            .tijori
            .check_credentials(&form.username, &form.password)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let user = match checked {
        Ok(user) => user,
        Err(e) => {
            let page = Page::new(
                "login.html",
                context! { next, error => &e.detail, username => form.username },
            );
            return Ok(page.after(&e).into_response());
        }
    };
    let (jar, _) = start_session(&state, jar, &user).await?;
    Ok((jar, Redirect::to(&next)).into_response())
}

async fn register_page(_: Visitor, Query(q): Query<NextQuery>) -> Page {
    Page::new(
        "register.html",
        context! { next => safe_next(q.next.as_deref()), time_zones => tijori_core::mail::TIME_ZONES },
    )
}

/// The form field an error is about, so the page can put it beside that field (and
/// tie it to it for a screen reader).
fn field_of(e: &tijori_core::Error) -> Option<&'static str> {
    match e {
        tijori_core::Error::Invalid(f) => ["username", "email", "password", "time_zone"]
            .into_iter()
            .find(|name| f.field == *name),
        tijori_core::Error::Conflict {
            code: "username_taken",
            ..
        } => Some("username"),
        _ => None,
    }
}

#[derive(Deserialize)]
struct RegisterForm {
    username: String,
    email: String,
    password: String,
    time_zone: Option<String>,
    next: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    jar: CookieJar,
    Form(form): Form<RegisterForm>,
) -> PageResult<Response> {
    let next = safe_next(form.next.as_deref());
    let registered = match state.limits.sign_up(client) {
        Ok(()) => state
            .tijori
            .register(
                &form.username,
                &form.email,
                &form.password,
                form.time_zone.as_deref(),
            )
            .await
            .map_err(|e| (field_of(&e), ApiError::from(e))),
        Err(e) => Err((None, e)),
    };
    let user = match registered {
        Ok(user) => user,
        Err((field, e)) => {
            let page = Page::new(
                "register.html",
                context! {
                    next, error => &e.detail, field,
                    username => form.username, email => form.email,
                    time_zone => form.time_zone, time_zones => tijori_core::mail::TIME_ZONES,
                },
            );
            return Ok(page.after(&e).into_response());
        }
    };
    let (jar, _) = start_session(&state, jar, &user).await?;
    Ok((jar, Redirect::to(&next)).into_response())
}

/// Ends the session, and says so on the sign-in page.
async fn logout(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    if let Some(s) = &session {
        check_csrf_field(s, &form.csrf_token)?;
        if let Some(cookie) = jar.get(crate::extract::SESSION_COOKIE) {
            state.tijori.end_session(cookie.value()).await?;
        }
    }
    Ok((
        end_session_cookie(jar),
        sign_in_redirect("/", Some(LoginNotice::SignedOut)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::super::tests::render;

    /// Filters and tests are resolved at render time, so a template that parses can
    /// still fail; render the form pages in their error state too.
    #[test]
    fn form_pages_render_with_errors() {
        for name in ["login.html", "register.html"] {
            let html = render(
                name,
                context! {
                    viewer => (), next => "/payment-success/?pidx=a&b=c",
                    error => "wrong <username>", username => "demo", email => "d@example.com",
                },
            );
            assert!(
                html.contains("wrong &lt;username&gt;"),
                "{name} escapes the error"
            );
            // `/` stays as is in a query value; HTML-escaped it reads `&#x2f;`.
            assert!(
                html.contains("next=&#x2f;payment-success&#x2f;%3Fpidx%3Da%26b%3Dc"),
                "{name}: {html}"
            );
        }
    }
}
