//! The customer's pages (home with plans and products, sign in/up, the shop and its
//! cart, orders, the gateway's return page, the account page) and the operator's
//! (admin). Server-rendered; forms work without JavaScript, which only adds live
//! updates.
//!
//! One folder per feature, with its handlers, its templates and its tests. Handlers
//! take [`Visitor`], [`SignedIn`] or [`Admin`], return a [`Page`] or a redirect, and
//! leave every failure to [`PageError`] with `?`; [`page::render`] renders both.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tijori_core::money::Currency;

use crate::i18n::tr;
use crate::AppState;

mod account;
mod admin;
mod auth;
mod cart;
mod checkout;
mod home;
mod language;
mod orders;
mod page;
mod receipts;
mod session;
mod settings;
mod shop;

pub use page::Templates;
use page::{LoginNotice, Page, PageError};
use session::{Admin, SignedIn, Visitor};

/// What a page handler returns.
type PageResult<T = Page> = Result<T, PageError>;

/// Every template, by the name others extend or import it by.
pub(crate) const TEMPLATES: &[&[(&str, &str)]] = &[
    &[
        ("base.html", include_str!("base.html")),
        ("error.html", include_str!("error.html")),
        ("macros.html", include_str!("macros.html")),
    ],
    home::TEMPLATES,
    auth::TEMPLATES,
    auth::RESET_TEMPLATES,
    settings::TEMPLATES,
    checkout::TEMPLATES,
    account::TEMPLATES,
    shop::TEMPLATES,
    cart::TEMPLATES,
    orders::TEMPLATES,
    receipts::TEMPLATES,
    admin::TEMPLATES,
];

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(home::router())
        .merge(auth::router())
        .merge(checkout::router())
        .merge(account::router())
        .merge(shop::router())
        .merge(cart::router())
        .merge(orders::router())
        .merge(receipts::router())
        .merge(admin::router())
        .merge(settings::router())
        .merge(language::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page::render,
        ))
}

/// An unknown address: a page that says so, with the site's navigation (or, under
/// `/api/`, the API's error envelope).
async fn not_found(_: Visitor, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        // Its own code, so that a client (and our route test) can tell "no such
        // endpoint" from a handler's "no such payment".
        return crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
            "there is no such API endpoint; see /api/docs/",
        )
        .into_response();
    }
    PageError::Explained {
        status: StatusCode::NOT_FOUND,
        title: tr("Page not found"),
        message: tr("There is no page at this address. The link may be mistyped, or the page may have moved."),
    }
    .into_response()
}

/// Only a local path may be a redirect target, or a crafted link could bounce a
/// customer to another site after signing in.
fn safe_next(next: Option<&str>) -> String {
    // Visible ASCII only: browsers drop tabs and newlines from URLs, so "/\t/evil"
    // would become the protocol-relative "//evil".
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            n.to_owned()
        }
        _ => "/account/".to_owned(),
    }
}

/// A form whose only field is the session's CSRF token (a button).
#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf_token: String,
}

/// A gateway as a page offers it: `id` goes in forms, `label` is for people.
#[derive(Serialize)]
struct GatewayChoice {
    id: &'static str,
    label: &'static str,
}

fn gateway_choices(state: &AppState, currency: Currency) -> Vec<GatewayChoice> {
    state
        .tijori
        .gateways()
        .for_currency(currency)
        .into_iter()
        .map(|g| GatewayChoice {
            id: g.as_str(),
            label: g.display_name(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            safe_next(Some("/payment-success/?pidx=x")),
            "/payment-success/?pidx=x"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/account/", "{bad}");
        }
        assert_eq!(safe_next(None), "/account/");
    }

    /// A page in Nepali is Nepali throughout: its own texts, the macros it imports,
    /// the layout, and the texts made in Rust; it says which language it is in, and
    /// offers English back.
    #[test]
    fn a_nepali_page_is_nepali_throughout() {
        use crate::i18n::{offered, translate, Area};
        let languages = offered(Area::Customer);
        let products = vec![super::shop::tests::product("prod_a", 3)];
        let shop = render(
            "shop.html",
            minijinja::context! { lang => "ne", viewer => viewer(false), products, languages, here => "/shop/?a=1" },
        );
        let error = render(
            "error.html",
            minijinja::context! { lang => "ne", title => "Page not found", message => "gone", status => 404 },
        );
        for (html, english) in [
            (&shop, "Add to cart"),
            (&shop, "{count} in stock"),
            (&shop, "Shop"),
            (&shop, "Sign out"),
            (&shop, "Skip to content"),
            (&error, "Page not found"),
        ] {
            let nepali = translate("ne", english).replace("{count}", "3");
            assert_ne!(nepali, english);
            assert!(html.contains(&nepali), "{english:?} → {nepali:?}: {html}");
        }
        assert!(!shop.contains(">Add to cart<"), "{shop}");
        assert!(shop.contains(r#"<html lang="ne">"#));
        assert!(
            shop.contains(r#"href="/language?set=en&amp;next=&#x2f;shop&#x2f;%3Fa%3D1""#),
            "{shop}"
        );
        // A message made of the API's words that no catalog has stays as it was.
        assert!(error.contains(">gone<"), "{error}");
    }

    #[test]
    fn templates_parse() {
        super::Templates::new();
    }

    /// Renders a built-in template with `ctx`, for the feature modules' tests.
    pub(super) fn render(name: &str, ctx: minijinja::Value) -> String {
        super::Templates::new()
            .html(name, ctx)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    pub(super) fn viewer(is_admin: bool) -> minijinja::Value {
        minijinja::context! { username => "asha", csrf_token => "tok", is_admin }
    }
}
