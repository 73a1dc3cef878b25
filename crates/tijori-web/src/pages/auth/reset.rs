//! "Forgot your password?": ask for a reset link by e-mail (`/forgot-password`), then
//! choose a new password through it (`/reset-password?token=…`).
//!
//! The first form answers the same whatever the address, and answers before the
//! link is made and mailed, so neither its words nor its timing tell whether an
//! account has the address. The link's secret rides in the query string, which the
//! request logs leave out; the page that holds it sends no `Referer`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;
use tijori_core::account::Email;
use tijori_core::service::{PASSWORD_RESET_MINUTES, PASSWORD_RESET_PATH};

use super::super::page::sign_in_redirect;
use super::super::{LoginNotice, Page, PageResult, Visitor};
use crate::auth::end_session_cookie;
use crate::error::ApiError;
use crate::extract::{ClientAddress, Form};
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[
    ("forgot_password.html", include_str!("forgot_password.html")),
    ("reset_password.html", include_str!("reset_password.html")),
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/forgot-password", get(forgot_page).post(forgot))
        .route(PASSWORD_RESET_PATH, get(reset_page).post(reset))
}

async fn forgot_page(_: Visitor) -> Page {
    Page::new(
        "forgot_password.html",
        context! { minutes => PASSWORD_RESET_MINUTES },
    )
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

async fn forgot(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    _: Visitor,
    Form(form): Form<ForgotForm>,
) -> PageResult<Response> {
    let refused = match state.limits.password_reset(client, &form.email) {
        Err(e) => Some((e, None)),
        // A malformed address is said so (that tells nothing about accounts).
        Ok(()) => Email::parse(&form.email)
            .err()
            .map(|e| (ApiError::from(tijori_core::Error::from(e)), Some("email"))),
    };
    if let Some((e, field)) = refused {
        let page = Page::new(
            "forgot_password.html",
            context! {
                error => &e.detail, error_field => field, email => form.email,
                minutes => PASSWORD_RESET_MINUTES,
            },
        );
        return Ok(page.after(&e).into_response());
    }
    // Answered at once, and the work done after: the time to answer is the same
    // whether an account has the address (a lookup, a write and a mail) or not.
    let tijori = state.tijori.clone();
    let email = form.email.clone();
    tokio::spawn(async move {
        if let Err(e) = tijori.request_password_reset(&email).await {
            tracing::error!(error = %e, "failed to send a password reset link");
        }
    });
    Ok(Page::new(
        "forgot_password.html",
        context! { sent => true, email => form.email, minutes => PASSWORD_RESET_MINUTES },
    )
    .into_response())
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The page holding a reset link's secret: kept out of `Referer` headers.
fn without_referrer(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn reset_page(
    State(state): State<AppState>,
    _: Visitor,
    Query(q): Query<TokenQuery>,
) -> PageResult<Response> {
    let open = !q.token.is_empty() && state.tijori.password_reset_user(&q.token).await?.is_some();
    let page = if open {
        Page::new("reset_password.html", context! { token => q.token })
    } else {
        Page::new("reset_password.html", context! { dead => true })
    };
    Ok(without_referrer(page))
}

#[derive(Deserialize)]
struct ResetForm {
    token: String,
    password: String,
}

async fn reset(
    State(state): State<AppState>,
    _: Visitor,
    jar: CookieJar,
    Form(form): Form<ResetForm>,
) -> PageResult<Response> {
    match state
        .tijori
        .reset_password(&form.token, &form.password)
        .await
        .map_err(ApiError::from)
    {
        // Every session ended, this browser's too: sign in with the new password.
        Ok(_) => Ok((
            end_session_cookie(jar),
            sign_in_redirect("/account/", Some(LoginNotice::PasswordReset)),
        )
            .into_response()),
        Err(e) if e.code == "reset_link_invalid" => Ok(without_referrer(
            Page::new("reset_password.html", context! { dead => true }).after(&e),
        )),
        Err(e) => {
            let field = (e.code == "validation_error").then_some("password");
            let page = Page::new(
                "reset_password.html",
                context! { token => form.token, error => &e.detail, error_field => field },
            );
            Ok(without_referrer(page.after(&e)))
        }
    }
}
