//! `/language`: the visitor's choice of language, kept in a cookie. A Nepali
//! speaker's browser often asks for English; the footer's links let them choose.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::{safe_next, Visitor};
use crate::i18n::{self, Area, LANGUAGE_COOKIE};
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/language", get(choose_language))
}

#[derive(Deserialize)]
struct Choice {
    set: Option<String>,
    next: Option<String>,
}

/// Remembers the language for a year and goes back to the page it was chosen on.
/// A GET, as a link: it changes nothing but how pages read. A language we do not
/// have changes nothing.
async fn choose_language(
    State(state): State<AppState>,
    _: Visitor,
    jar: CookieJar,
    Query(choice): Query<Choice>,
) -> Response {
    let next = safe_next(choice.next.as_deref());
    let chosen = choice
        .set
        .as_deref()
        .and_then(|wanted| i18n::languages(Area::Customer).find(|l| *l == wanted));
    let Some(lang) = chosen else {
        return Redirect::to(&next).into_response();
    };
    let cookie = Cookie::build((LANGUAGE_COOKIE, lang))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies())
        .max_age(cookie::time::Duration::days(365));
    (jar.add(cookie), Redirect::to(&next)).into_response()
}
