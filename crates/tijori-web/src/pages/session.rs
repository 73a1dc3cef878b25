//! Who is looking at a page: [`Visitor`] (anyone), [`SignedIn`] (a customer; else to
//! the sign-in page and back) and [`Admin`] (an operator; else sign in, or 403). Each
//! leaves the visitor in the request's [`ViewerSlot`] for the layout.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum_extra::extract::CookieJar;
use tijori_core::account::Session;

use super::page::{LoginNotice, PageError, ViewerSlot};
use super::safe_next;
use crate::extract::{browser_session, SESSION_COOKIE};
use crate::i18n::tr;
use crate::AppState;

/// The session of a page's visitor, or none. Forms check their CSRF field with
/// [`crate::extract::check_csrf_field`].
pub struct Visitor(pub Option<Session>);

impl FromRequestParts<AppState> for Visitor {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let session = browser_session(parts, state).await?.map(|(s, _)| s);
        if let Some(s) = &session {
            crate::ops::record_user(&s.user);
            if let Some(slot) = parts.extensions.get::<ViewerSlot>() {
                slot.fill(s);
            }
        }
        Ok(Visitor(session))
    }
}

/// A signed-in customer's session. Anyone else is sent to sign in and brought back
/// to where they were: the page itself for a GET, else the page whose form they sent.
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match Visitor::from_request_parts(parts, state).await? {
            Visitor(Some(s)) => Ok(SignedIn(s)),
            Visitor(None) => Err(sign_in_first(parts, state)),
        }
    }
}

/// An operator's session. A customer gets 403; anyone signed out, the sign-in page.
pub struct Admin(pub Session);

impl FromRequestParts<AppState> for Admin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let SignedIn(s) = SignedIn::from_request_parts(parts, state).await?;
        if !s.user.is_admin {
            return Err(PageError::Explained {
                status: StatusCode::FORBIDDEN,
                title: tr("Not allowed"),
                message: tr("This page is for operators only."),
            });
        }
        Ok(Admin(s))
    }
}

/// The way to the sign-in page, and back. A visitor who still holds a session
/// cookie had a session that ended (it expired, or they signed out elsewhere): the
/// sign-in page says so.
fn sign_in_first(parts: &Parts, state: &AppState) -> PageError {
    let had_session = CookieJar::from_headers(&parts.headers)
        .get(SESSION_COOKIE)
        .is_some();
    PageError::SignIn {
        next: come_back_to(&parts.method, &parts.uri, &parts.headers, state),
        notice: had_session.then_some(LoginNotice::SessionEnded),
    }
}

/// Where to return after signing in. A GET comes back to itself. A form's POST
/// cannot be repeated by a redirect, so it comes back to the page the form was sent
/// from: our own `Referer`, or else the action's parent (`/cart/checkout` was sent
/// from `/cart/`, `/orders/{id}/pay` from `/orders/{id}/`, `/subscribe` from `/`).
pub(super) fn come_back_to(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    state: &AppState,
) -> String {
    if method == Method::GET || method == Method::HEAD {
        let here = uri.path_and_query().map_or("/", |pq| pq.as_str());
        return safe_next(Some(here));
    }
    let referer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .filter(|r| {
            let origin = r.origin().ascii_serialization();
            state.same_origin(&origin, headers.get(header::HOST))
        });
    let page = match referer {
        Some(r) => match r.query() {
            Some(q) => format!("{}?{q}", r.path()),
            None => r.path().to_owned(),
        },
        None => parent_of(uri.path()).to_owned(),
    };
    safe_next(Some(&page))
}

/// `/a/b/c` → `/a/b/`; `/a` → `/`.
fn parent_of(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::parent_of;

    #[test]
    fn a_forms_page_is_its_actions_parent() {
        assert_eq!(parent_of("/cart/checkout"), "/cart/");
        assert_eq!(parent_of("/orders/ord_1/pay"), "/orders/ord_1/");
        assert_eq!(parent_of("/subscribe"), "/");
        assert_eq!(parent_of("/"), "/");
    }
}
