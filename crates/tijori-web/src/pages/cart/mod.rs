//! `/cart/`: the cart, kept in a cookie, and placing an order from it (one order per
//! currency, as each is paid through one gateway).

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::{Deserialize, Serialize};
use tijori_core::account::Session;
use tijori_core::id::ProductId;
use tijori_core::money::{Currency, Money};
use tijori_core::shop::{OrderRequest, Product, MAX_ORDER_LINES, MAX_QUANTITY};

use super::{gateway_choices, GatewayChoice, Page, PageResult, SignedIn, Visitor};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, Form};
use crate::views::ProductView;
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("cart.html", include_str!("cart.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/cart/", get(cart))
        .route("/cart/add", post(cart_add))
        .route("/cart/update", post(cart_update))
        .route("/cart/checkout", post(cart_checkout))
}

const CART_COOKIE: &str = "tijori_cart";
const CART_LIFETIME_DAYS: i64 = 30;

/// The cart, kept in the visitor's browser as `product_id:quantity` pairs joined by
/// dots. It is not a secret and not trusted: placing an order checks every product,
/// price and quantity again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Cart {
    /// In the order they were first added.
    lines: Vec<(ProductId, u32)>,
}

impl Cart {
    fn from_jar(jar: &CookieJar) -> Cart {
        jar.get(CART_COOKIE)
            .map(|c| Cart::decode(c.value()))
            .unwrap_or_default()
    }

    /// What the cookie says, leaving out whatever is malformed or out of bounds.
    fn decode(value: &str) -> Cart {
        let mut cart = Cart::default();
        for part in value.split('.') {
            let Some((id, quantity)) = part.split_once(':') else {
                continue;
            };
            if let (Some(id), Ok(quantity)) = (ProductId::parse(id), quantity.parse::<u32>()) {
                // Out-of-bounds lines are dropped, not fatal: the cookie is the
                // visitor's to edit.
                let _ = cart.add(id, quantity);
            }
        }
        cart
    }

    fn encode(&self) -> String {
        self.lines
            .iter()
            .map(|(id, q)| format!("{id}:{q}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn quantity(&self, id: &ProductId) -> u32 {
        self.lines
            .iter()
            .find(|(p, _)| p == id)
            .map_or(0, |(_, q)| *q)
    }

    /// Adds `quantity` more of a product, within an order's limits.
    fn add(&mut self, id: ProductId, quantity: u32) -> Result<(), ApiError> {
        check_quantity(quantity, 1)?;
        if let Some((_, q)) = self.lines.iter_mut().find(|(p, _)| *p == id) {
            if *q + quantity > MAX_QUANTITY {
                return Err(ApiError::bad_request(
                    "validation_error",
                    format!("at most {MAX_QUANTITY} of one product per order"),
                ));
            }
            *q += quantity;
            return Ok(());
        }
        if self.lines.len() >= MAX_ORDER_LINES {
            return Err(ApiError::bad_request(
                "validation_error",
                format!("at most {MAX_ORDER_LINES} different products per order"),
            ));
        }
        self.lines.push((id, quantity));
        Ok(())
    }

    /// Sets a line's quantity; 0 removes it. Products not in the cart are ignored.
    fn set(&mut self, id: &ProductId, quantity: u32) -> Result<(), ApiError> {
        check_quantity(quantity, 0)?;
        if quantity == 0 {
            self.remove(id);
        } else if let Some((_, q)) = self.lines.iter_mut().find(|(p, _)| p == id) {
            *q = quantity;
        }
        Ok(())
    }

    fn remove(&mut self, id: &ProductId) {
        self.lines.retain(|(p, _)| p != id);
    }

    /// The jar with this cart in it, or without the cookie once the cart is empty.
    fn save(&self, state: &AppState, jar: CookieJar) -> CookieJar {
        if self.lines.is_empty() {
            return jar.remove(Cookie::build(CART_COOKIE).path("/"));
        }
        jar.add(
            Cookie::build((CART_COOKIE, self.encode()))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.secure_cookies())
                .max_age(cookie::time::Duration::days(CART_LIFETIME_DAYS)),
        )
    }
}

fn check_quantity(quantity: u32, min: u32) -> Result<(), ApiError> {
    if (min..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "validation_error",
            format!("quantity must be from {min} to {MAX_QUANTITY}"),
        ))
    }
}

fn parse_quantity(text: &str, min: u32) -> Result<u32, ApiError> {
    let quantity = text.trim().parse::<u32>().map_err(|_| {
        ApiError::bad_request(
            "validation_error",
            format!("quantity must be a whole number from {min} to {MAX_QUANTITY}"),
        )
    })?;
    check_quantity(quantity, min)?;
    Ok(quantity)
}

/// Adding to the cart works signed out (the form then has no token: the cross-origin
/// guard still refuses other sites). Signed in, the form must carry the session's.
fn check_cart_csrf(session: &Option<Session>, sent: Option<&str>) -> Result<(), ApiError> {
    match session {
        Some(s) => check_csrf_field(s, sent.unwrap_or("")),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct CartLine {
    product: ProductView,
    quantity: u32,
    subtotal: String,
    /// More asked for than is in stock now.
    short: bool,
}

/// The lines in one currency: one order, paid through one gateway.
#[derive(Serialize)]
struct CartGroup {
    currency: &'static str,
    lines: Vec<CartLine>,
    total: String,
    gateways: Vec<GatewayChoice>,
}

fn times(price: Money, quantity: u32) -> Option<i64> {
    price.minor().checked_mul(i64::from(quantity))
}

/// Shows the cart at today's prices, one group per currency; `error` (the last
/// action's) is shown above it with its status. Products no longer for sale leave
/// the cart here.
async fn cart_page(
    state: &AppState,
    jar: CookieJar,
    cart: Cart,
    error: Option<ApiError>,
) -> PageResult<Response> {
    let products = state.tijori.products().await?;
    let by_id: HashMap<&ProductId, &Product> = products.iter().map(|p| (&p.id, p)).collect();
    let mut kept = Cart::default();
    let mut groups: BTreeMap<&'static str, (Currency, Vec<CartLine>, Option<i64>)> =
        BTreeMap::new();
    for (id, quantity) in &cart.lines {
        let Some(product) = by_id.get(id) else {
            continue;
        };
        kept.lines.push((id.clone(), *quantity));
        let currency = product.price.currency();
        let subtotal = times(product.price, *quantity);
        let group = groups
            .entry(currency.code())
            .or_insert_with(|| (currency, Vec::new(), Some(0)));
        group.2 = group.2.zip(subtotal).and_then(|(t, s)| t.checked_add(s));
        group.1.push(CartLine {
            product: (*product).into(),
            quantity: *quantity,
            subtotal: major(subtotal, currency),
            short: *quantity > product.stock,
        });
    }
    let dropped = cart.lines.len() - kept.lines.len();
    let jar = if dropped > 0 {
        kept.save(state, jar)
    } else {
        jar
    };
    let groups: Vec<CartGroup> = groups
        .into_values()
        .map(|(currency, lines, total)| CartGroup {
            currency: currency.code(),
            lines,
            total: major(total, currency),
            gateways: gateway_choices(state, currency),
        })
        .collect();
    let mut page = Page::new(
        "cart.html",
        context! { groups, dropped, error => error.as_ref().map(|e| &e.detail) },
    );
    if let Some(e) = &error {
        page = page.after(e);
    }
    Ok((jar, page).into_response())
}

/// An amount in major units, or a placeholder for one too large to show (the order
/// itself would be refused).
fn major(minor: Option<i64>, currency: Currency) -> String {
    minor
        .and_then(|m| Money::from_minor(m, currency).ok())
        .map_or_else(|| "(too large)".to_owned(), |m| m.to_major_string())
}

async fn cart(State(state): State<AppState>, _: Visitor, jar: CookieJar) -> PageResult<Response> {
    let cart = Cart::from_jar(&jar);
    cart_page(&state, jar, cart, None).await
}

#[derive(Deserialize)]
struct AddForm {
    product_id: String,
    quantity: Option<String>,
    csrf_token: Option<String>,
}

/// "Add to cart": checks the product is for sale and in stock, then shows the cart.
async fn cart_add(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(form): Form<AddForm>,
) -> PageResult<Response> {
    check_cart_csrf(&session, form.csrf_token.as_deref())?;
    let mut cart = Cart::from_jar(&jar);
    let added = async {
        let quantity = parse_quantity(form.quantity.as_deref().unwrap_or("1"), 1)?;
        let products = state.tijori.products().await?;
        let product = ProductId::parse(form.product_id.trim())
            .and_then(|id| products.into_iter().find(|p| p.id == id))
            .ok_or_else(|| ApiError::not_found("product"))?;
        let wanted = cart.quantity(&product.id).saturating_add(quantity);
        if wanted > product.stock {
            let detail = match product.stock {
                0 => format!("{} is sold out", product.name),
                n => format!(
                    "only {n} of {} left, so {wanted} cannot be ordered",
                    product.name
                ),
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                detail,
            ));
        }
        cart.add(product.id, quantity)
    }
    .await;
    match added {
        Ok(()) => Ok((cart.save(&state, jar), Redirect::to("/cart/")).into_response()),
        Err(e) => {
            let cart = Cart::from_jar(&jar);
            cart_page(&state, jar, cart, Some(e)).await
        }
    }
}

/// "Update cart" (fields `qty_<product_id>`; 0 removes the line) and "Remove"
/// (field `remove` = product id). A bad quantity changes nothing.
async fn cart_update(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    jar: CookieJar,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult<Response> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    check_cart_csrf(&session, field("csrf_token"))?;
    let cart = Cart::from_jar(&jar);
    let mut updated = cart.clone();
    let applied = (|| {
        for (name, value) in &fields {
            if let Some(id) = name.strip_prefix("qty_") {
                if let Some(id) = ProductId::parse(id) {
                    updated.set(&id, parse_quantity(value, 0)?)?;
                }
            } else if name == "remove" {
                if let Some(id) = ProductId::parse(value.trim()) {
                    updated.remove(&id);
                }
            }
        }
        Ok::<_, ApiError>(())
    })();
    match applied {
        Ok(()) => Ok((updated.save(&state, jar), Redirect::to("/cart/")).into_response()),
        Err(e) => cart_page(&state, jar, cart, Some(e)).await,
    }
}

#[derive(Deserialize)]
struct CheckoutForm {
    currency: String,
    csrf_token: String,
}

/// "Place order" for one currency's lines: creates the order (which reserves the
/// stock), takes those lines out of the cart, and shows the order. If it cannot be
/// placed (out of stock), the cart is shown again, untouched, with the reason.
async fn cart_checkout(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    jar: CookieJar,
    Form(form): Form<CheckoutForm>,
) -> PageResult<Response> {
    check_csrf_field(&s, &form.csrf_token)?;
    let cart = Cart::from_jar(&jar);
    let placed = async {
        let currency: Currency =
            form.currency
                .parse()
                .map_err(|e: tijori_core::money::UnknownCurrency| {
                    ApiError::bad_request("validation_error", e.to_string())
                })?;
        let products = state.tijori.products().await?;
        let lines: Vec<(ProductId, u32)> = cart
            .lines
            .iter()
            .filter(|(id, _)| {
                products
                    .iter()
                    .any(|p| &p.id == id && p.price.currency() == currency)
            })
            .cloned()
            .collect();
        if lines.is_empty() {
            return Err(ApiError::bad_request(
                "empty_cart",
                format!("your cart has nothing in {currency} to order"),
            ));
        }
        let request = OrderRequest::parse(lines.iter().map(|(id, q)| (id.as_str(), i64::from(*q))))
            .map_err(tijori_core::Error::from)?;
        state
            .limits
            .checkout(crate::limits::Checkout::CreateOrder, &s.user)?;
        let order = state.tijori.create_order(&s.user, &request, None).await?;
        Ok((order, lines))
    }
    .await;
    match placed {
        Ok((order, lines)) => {
            let mut rest = cart;
            for (id, _) in &lines {
                rest.remove(id);
            }
            Ok((
                rest.save(&state, jar),
                Redirect::to(&format!("/orders/{}/", order.id)),
            )
                .into_response())
        }
        Err(e) => cart_page(&state, jar, cart, Some(e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::Cart;
    use tijori_core::id::ProductId;
    use tijori_core::shop::{MAX_ORDER_LINES, MAX_QUANTITY};

    #[test]
    fn the_cart_cookie_round_trips_and_merges_repeats() {
        let (a, b) = (ProductId::generate(), ProductId::generate());
        let mut cart = Cart::default();
        cart.add(a.clone(), 2).unwrap();
        cart.add(b.clone(), 1).unwrap();
        cart.add(a.clone(), 3).unwrap();
        assert_eq!(cart.lines, vec![(a.clone(), 5), (b.clone(), 1)]);
        assert_eq!(Cart::decode(&cart.encode()), cart);
        cart.set(&b, 0).unwrap();
        assert_eq!(cart.lines, vec![(a.clone(), 5)]);
        assert!(cart.set(&a, MAX_QUANTITY + 1).is_err());
        assert!(
            cart.add(a.clone(), MAX_QUANTITY).is_err(),
            "5 + 1000 is too many"
        );
        assert_eq!(cart.quantity(&a), 5, "a refused change changes nothing");
    }

    #[test]
    fn a_tampered_cookie_loses_only_its_bad_lines() {
        let a = ProductId::generate();
        let cookie = format!("{a}:2.junk.prod_nothex:1.{a}:x.{a}:0.{a}:99999.:3.{a}:1");
        assert_eq!(Cart::decode(&cookie).lines, vec![(a, 3)]);
        assert_eq!(Cart::decode("").lines, vec![]);

        let many: String = (0..MAX_ORDER_LINES + 5)
            .map(|_| format!("{}:1", ProductId::generate()))
            .collect::<Vec<_>>()
            .join(".");
        assert_eq!(Cart::decode(&many).lines.len(), MAX_ORDER_LINES);
    }

    #[test]
    fn the_cart_offers_one_order_per_currency() {
        use super::super::shop::tests::product;
        use super::super::tests::{render, viewer};
        use minijinja::context;
        let line = |id: &str, short: bool| {
            context! { product => product(id, 1), quantity => 2, subtotal => "1700.00", short }
        };
        let groups = vec![
            context! {
                currency => "ETB", total => "3400.00", lines => vec![line("prod_a", true), line("prod_b", false)],
                gateways => vec![context! { id => "chapa", label => "Chapa" }],
            },
            context! { currency => "NPR", total => "650.00", lines => vec![line("prod_c", false)], gateways => Vec::<()>::new() },
        ];
        let html = render(
            "cart.html",
            context! { viewer => viewer(false), groups => groups.clone(), dropped => 1, error => "only 1 of <x> left" },
        );
        assert!(html.contains("id=\"place-order-ETB\""), "{html}");
        assert!(
            !html.contains("id=\"place-order-NPR\""),
            "no gateway: {html}"
        );
        assert!(html.contains("only 1 of &lt;x&gt; left"), "{html}");
        assert!(html.contains("Only 1 left"), "{html}");
        assert!(html.contains("name=\"qty_prod_b\""), "{html}");
        assert!(html.contains("no longer for sale"), "{html}");
        let signed_out = render("cart.html", context! { groups, dropped => 0 });
        assert!(
            signed_out.contains("Sign in to place your order"),
            "{signed_out}"
        );
        let empty = render(
            "cart.html",
            context! { groups => Vec::<()>::new(), dropped => 0 },
        );
        assert!(empty.contains("Your cart is empty"), "{empty}");
    }
}
