//! `/shop/`: the products for sale, each with an "Add to cart".

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use minijinja::context;
use serde::Serialize;
use tijori_core::shop::{Product, MAX_QUANTITY};

use super::{gateway_choices, GatewayChoice, Page, PageResult, Visitor};
use crate::views::ProductView;
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("shop.html", include_str!("shop.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/shop/", get(shop))
}

/// A product as the shop (and the home page) shows it.
#[derive(Serialize)]
pub(super) struct ProductCard {
    #[serde(flatten)]
    product: ProductView,
    /// The most one can add at once: what is in stock, within an order's limit.
    max_quantity: u32,
    gateways: Vec<GatewayChoice>,
}

pub(super) fn product_cards(state: &AppState, products: &[Product]) -> Vec<ProductCard> {
    products
        .iter()
        .map(|p| ProductCard {
            product: p.into(),
            max_quantity: p.stock.clamp(1, MAX_QUANTITY),
            gateways: gateway_choices(state, p.price.currency()),
        })
        .collect()
}

async fn shop(State(state): State<AppState>, _: Visitor) -> PageResult {
    let products = state.tijori.products().await?;
    Ok(Page::new(
        "shop.html",
        context! { products => product_cards(&state, &products) },
    ))
}

#[cfg(test)]
pub(super) mod tests {
    use minijinja::context;

    use super::super::tests::{render, viewer};

    pub(in super::super) fn product(id: &str, stock: u32) -> minijinja::Value {
        context! {
            id, name => "Coffee <1 kg>", description => "Washed", price => "850.00",
            currency => "ETB", stock, max_quantity => stock.max(1),
            gateways => vec![context! { id => "chapa", label => "Chapa" }],
        }
    }

    #[test]
    fn shop_and_home_show_products_with_stable_ids() {
        let products = vec![product("prod_a", 3), product("prod_b", 0)];
        for (name, viewer) in [
            ("shop.html", Some(viewer(false))),
            ("shop.html", None),
            ("home.html", Some(viewer(true))),
        ] {
            let html = render(
                name,
                context! { viewer, products => products.clone(), plans => Vec::<()>::new() },
            );
            assert!(html.contains("id=\"add-prod_a\""), "{name}: {html}");
            assert!(!html.contains("id=\"add-prod_b\""), "sold out: {html}");
            assert!(html.contains("Sold out"), "{html}");
            assert!(html.contains("Coffee &lt;1 kg&gt;"), "escaped: {html}");
            assert!(html.contains("pay with Chapa"), "{html}");
            assert!(html.contains("href=\"/shop/\""), "{html}");
        }
    }
}
