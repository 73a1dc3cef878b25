//! What a page handler returns: a [`Page`] (a template and its data) or a
//! [`PageError`] (the error page, or the way to the sign-in page). Both are rendered
//! in one place, [`render`], which also gives every layout its visitor, so handlers
//! read top to bottom with `?` and never build HTML or error pages themselves.

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Environment, Value};
use serde::Serialize;
use tijori_core::account::Session;
use tijori_core::gateway::GatewayKind;

use crate::error::ApiError;
use crate::i18n::tr;
use crate::AppState;

/// The built-in templates, each registered under its file name (templates extend
/// `base.html` and import `macros.html` by those names).
pub struct Templates(Environment<'static>);

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in super::TEMPLATES.iter().flat_map(|t| t.iter()) {
            env.add_template(name, source)
                .expect("built-in templates parse");
        }
        // A gateway's name as its customers write it ("eSewa", not "Esewa").
        env.add_filter("gateway", |name: String| -> String {
            name.parse::<GatewayKind>()
                .map(|g| g.display_name().to_owned())
                .unwrap_or(name)
        });
        // An amount as people read it ("Rs. 1,200.00"), from the wire form the views
        // carry ("1200.00" and "NPR"); as it came when it is not one ("(too large)").
        env.add_filter("money", |amount: String, currency: String| -> String {
            tijori_core::money::major_for_people(&amount, &currency)
                .unwrap_or_else(|| format!("{currency} {amount}"))
        });
        // A time zone as people name it ("Nepal Time" for Asia/Kathmandu).
        env.add_filter("zone_name", |zone: String| -> String {
            tijori_core::mail::zone_name(&zone).map_or(zone, str::to_owned)
        });
        // A customer's sentence in the page's language (see `i18n`), its `{name}`
        // placeholders filled from the keyword arguments: escaped, unless a value is
        // markup the template made itself (a `<time>` set with `{% set %}`).
        env.add_function(
            "t",
            |state: &minijinja::State, text: String, args: minijinja::value::Kwargs| {
                let lang = state.lookup("lang");
                let lang = lang.as_ref().and_then(|l| l.as_str()).unwrap_or("en");
                let mut values = std::collections::HashMap::new();
                for name in args.args() {
                    let value: Value = args.get(name)?;
                    let shown = if value.is_safe() {
                        value.to_string()
                    } else {
                        escape_html(&value.to_string())
                    };
                    values.insert(name, shown);
                }
                let text = escape_html(&crate::i18n::translate(lang, &text));
                Ok::<_, minijinja::Error>(Value::from_safe_string(fill(&text, &values)))
            },
        );
        Templates(env)
    }

    /// A template given as text, rendered with the built-in filters and functions
    /// (HTML-escaped, as the pages are).
    #[cfg(test)]
    pub fn render_str(&self, source: &str, ctx: Value) -> Result<String, minijinja::Error> {
        let mut env = self.0.clone();
        env.add_template_owned("test.html", source.to_owned())?;
        env.get_template("test.html")?.render(ctx)
    }

    /// The page's HTML, or why it could not be made.
    pub fn html(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.0.get_template(name)?.render(ctx)
    }
}

/// `text` with each `{name}` of `values` filled in, in one pass: a value that itself
/// holds braces (an operator's note saying "{total}") is shown as it is.
fn fill(text: &str, values: &std::collections::HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((values.get(&after[..close])?, close)))
        {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text made safe to put in HTML.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// What every page's layout needs to know about the visitor: whom to greet, and the
/// token its forms (sign out, every button) carry.
#[derive(Clone, Serialize)]
pub struct Viewer {
    pub username: String,
    pub csrf_token: String,
    pub is_admin: bool,
    /// The zone the visitor chose; without one, pages show the browser's own.
    pub time_zone: Option<String>,
    /// Its name as people say it ("Nepal Time"), shown after each time.
    pub time_zone_name: Option<&'static str>,
}

impl From<&Session> for Viewer {
    fn from(s: &Session) -> Self {
        Viewer {
            username: s.user.username.as_str().to_owned(),
            csrf_token: s.csrf_token.clone(),
            is_admin: s.user.is_admin,
            time_zone: s.user.time_zone.clone(),
            time_zone_name: s
                .user
                .time_zone
                .as_deref()
                .and_then(tijori_core::mail::zone_name),
        }
    }
}

/// Where the session extractors leave the visitor they found, for [`render`] to put
/// in the layout: an error page shows the same header as the page that failed,
/// without the handler passing its session around.
#[derive(Clone, Default)]
pub struct ViewerSlot(Arc<OnceLock<Viewer>>);

impl ViewerSlot {
    pub fn fill(&self, session: &Session) {
        let _ = self.0.set(Viewer::from(session));
    }
}

/// A page to show: a template and what it shows. The visitor is added when it is
/// rendered.
pub struct Page {
    template: &'static str,
    context: Value,
    status: StatusCode,
    retry_after: Option<u64>,
}

impl Page {
    pub fn new(template: &'static str, context: Value) -> Self {
        Page {
            template,
            context,
            status: StatusCode::OK,
            retry_after: None,
        }
    }

    /// The page shown again after `e` (a form with its error): with the error's
    /// status and, for a 429 or 503, its `Retry-After`.
    pub fn after(mut self, e: &ApiError) -> Self {
        self.status = e.status;
        self.retry_after = e.retry_after;
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        // Rendered by `render`, which holds the templates and knows the visitor.
        let mut response = self.status.into_response();
        response.extensions_mut().insert(Unrendered(Arc::new(self)));
        response
    }
}

/// A [`Page`] on its way to [`render`]. (Response extensions must be `Clone`.)
#[derive(Clone)]
struct Unrendered(Arc<Page>);

/// Why a page is not shown, as the visitor should learn it.
#[derive(Debug)]
pub enum PageError {
    /// What went wrong, on the error page in the customer's words.
    Failed(ApiError),
    /// An error page of its own: its title and what to do.
    Explained {
        status: StatusCode,
        title: &'static str,
        message: &'static str,
    },
    /// Sign in first, then come back to `next` (a local path).
    SignIn {
        next: String,
        notice: Option<LoginNotice>,
    },
}

/// The error page as [`render`] makes it.
fn error_page(status: StatusCode, title: &str, message: &str, retry_after: Option<u64>) -> Page {
    Page {
        template: "error.html",
        context: context! {
            title, message, status => status.as_u16(),
            // Worth sending again as it was: the gateway or we were busy or down.
            retryable => status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        },
        status,
        retry_after,
    }
}

/// An error page's heading for its status.
fn title_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => tr("Not found"),
        StatusCode::FORBIDDEN => tr("Not allowed"),
        s if s.is_server_error() => tr("Something went wrong"),
        StatusCode::TOO_MANY_REQUESTS => tr("Slow down"),
        _ => tr("That did not work"),
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Failed(e)
    }
}

impl From<tijori_core::Error> for PageError {
    fn from(e: tijori_core::Error) -> Self {
        PageError::Failed(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next, notice } => sign_in_redirect(&next, notice),
            PageError::Failed(e) => {
                error_page(e.status, title_of(e.status), &e.detail, e.retry_after).into_response()
            }
            PageError::Explained {
                status,
                title,
                message,
            } => error_page(status, title, message, None).into_response(),
        }
    }
}

/// Why a visitor is asked to sign in, when the sign-in page should say so. The page
/// shows our own words for each; nothing in the link is shown as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginNotice {
    /// Back from the gateway without a session: the payment was looked up.
    PaymentChecked,
    /// Their session ended (expired, or signed out elsewhere) while they were away.
    SessionEnded,
    /// They signed out.
    SignedOut,
    /// They chose a new password through a reset link (which signed them out
    /// everywhere).
    PasswordReset,
}

impl LoginNotice {
    const ALL: [LoginNotice; 4] = [
        LoginNotice::PaymentChecked,
        LoginNotice::SessionEnded,
        LoginNotice::SignedOut,
        LoginNotice::PasswordReset,
    ];

    fn code(self) -> &'static str {
        match self {
            LoginNotice::PaymentChecked => "payment_checked",
            LoginNotice::SessionEnded => "session_ended",
            LoginNotice::SignedOut => "signed_out",
            LoginNotice::PasswordReset => "password_reset",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            LoginNotice::PaymentChecked => tr("Welcome back. We have checked your payment with the gateway; sign in to see how it went."),
            LoginNotice::SessionEnded => tr("Your session has ended. Sign in again and we will take you back to where you were."),
            LoginNotice::SignedOut => tr("You have signed out."),
            LoginNotice::PasswordReset => tr("Your password has been changed, and every device signed in to your account was signed out. Sign in with your new password."),
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.code() == code)
    }
}

/// The sign-in page's address, coming back to `next` afterwards.
pub fn sign_in_redirect(next: &str, notice: Option<LoginNotice>) -> Response {
    let mut pairs = vec![("next", next)];
    if let Some(n) = notice {
        pairs.push(("notice", n.code()));
    }
    let q = serde_urlencoded::to_string(pairs).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
}

/// Renders the pages and error pages of the routes it wraps, with the visitor their
/// extractor found. Never stored by a cache: pages carry the visitor's CSRF token and
/// their own orders, payments and cart.
pub async fn render(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let slot = ViewerSlot::default();
    request.extensions_mut().insert(slot.clone());
    // A form that failed offers a way back to the page it was sent from, where it can
    // be sent again on purpose (a browser's own "back" would re-post it).
    let accept_language = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let chosen_language = axum_extra::extract::CookieJar::from_headers(request.headers())
        .get(crate::i18n::LANGUAGE_COOKIE)
        .map(|c| c.value().to_owned());
    // Where a choice of language comes back to: this page, when it can be asked for again.
    let here = (request.method() == Method::GET)
        .then(|| {
            request
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
        })
        .flatten();
    let back = (request.method() != Method::GET && request.method() != Method::HEAD).then(|| {
        super::session::come_back_to(request.method(), request.uri(), request.headers(), &state)
    });
    let mut response = next.run(request).await;
    let Some(Unrendered(page)) = response.extensions_mut().remove::<Unrendered>() else {
        return response;
    };
    let page = Arc::try_unwrap(page).unwrap_or_else(|shared| Page {
        template: shared.template,
        context: shared.context.clone(),
        status: shared.status,
        retry_after: shared.retry_after,
    });
    let area = crate::i18n::Area::of_template(page.template);
    let lang = crate::i18n::choose(chosen_language.as_deref(), accept_language.as_deref(), area);
    let languages = crate::i18n::offered(area);
    let viewer = slot.0.get().cloned();
    let ctx = context! { viewer, back, lang, languages, here, ..page.context };
    let html = match state.pages.html(page.template, ctx) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = page.template, error = %e, "failed to render page");
            return (StatusCode::INTERNAL_SERVER_ERROR, "failed to render page").into_response();
        }
    };
    let (mut parts, _) = response.into_parts();
    parts.status = page.status;
    let headers = &mut parts.headers;
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(lang) = HeaderValue::from_str(lang) {
        headers.insert(header::CONTENT_LANGUAGE, lang);
    }
    if let Some(seconds) = page.retry_after {
        headers.insert(header::RETRY_AFTER, seconds.into());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The handler's headers (its cookies) stay; the body is the page.
    Response::from_parts(parts, axum::body::Body::from(html))
}
