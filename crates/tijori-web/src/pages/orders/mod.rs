//! `/orders/{id}/`: an order, with a "Pay with …" button per gateway while it can be
//! paid, and "Try again" for a failed attempt the gateway lets them retry.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};
use tijori_core::id::OrderId;
use tijori_core::shop::{Order, OrderStatus};

use super::{gateway_choices, Page, PageResult, SignedIn};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, parse_id, Form};
use crate::shop::parse_optional_gateway;
use crate::views::OrderView;
use crate::AppState;

mod cancel;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("order.html", include_str!("order.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/orders/{id}/", get(order_page))
        .route("/orders/{id}/pay", post(order_pay))
        .merge(cancel::router())
}

/// An order as its pages show it.
#[derive(Serialize)]
pub(super) struct OrderCard {
    #[serde(flatten)]
    order: OrderView,
    /// The status a customer should see: a pending order past its expiry is
    /// expired, even before the expiry job has put its stock back.
    shown_status: &'static str,
    /// That status in the customer's words.
    status_words: &'static str,
    payable: bool,
}

impl OrderCard {
    pub(super) fn new(order: &Order, now: DateTime<Utc>) -> Self {
        let payable = order.is_payable(now);
        let shown = if order.status == OrderStatus::Pending && !payable {
            OrderStatus::Expired
        } else {
            order.status
        };
        OrderCard {
            order: order.into(),
            shown_status: shown.as_str(),
            status_words: crate::words::order_status(shown),
            payable,
        }
    }
}

async fn order_page(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let order_id: OrderId = parse_id(&id)?;
    let order = state.tijori.order_for(&s.user, &order_id).await?;
    let now = state.tijori.now();
    let card = OrderCard::new(&order, now);
    // Only its owner pays for an order (an admin may look at it).
    let owner = order.user_id == s.user.id;
    let owner_pays = card.payable && owner;
    let gateways = if owner_pays {
        gateway_choices(&state, order.currency())
    } else {
        Vec::new()
    };
    // A failed attempt the gateway lets them try again, on the same checkout.
    let retry = if owner_pays {
        state.tijori.retryable_payment(&order).await?.and_then(|p| {
            p.retry_url(now).map(|url| {
                context! { url, gateway => p.gateway.display_name(), reason => crate::words::payment_message(&p, Some(order.status)) }
            })
        })
    } else {
        None
    };
    Ok(Page::new(
        "order.html",
        context! { order => card, gateways, retry, owner },
    ))
}

#[derive(Deserialize)]
struct PayForm {
    gateway: Option<String>,
    csrf_token: String,
}

/// "Pay with …": opens the gateway's hosted checkout for the order (or the one
/// already open there) and sends the browser to it.
async fn order_pay(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let gateway = parse_optional_gateway(form.gateway.as_deref())?;
    state
        .limits
        .checkout(crate::limits::Checkout::Initialize, &s.user)?;
    let payment = state
        .tijori
        .initialize_order_payment(&s.user, &id, gateway, None)
        .await?;
    let url = payment.payment_url.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_bad_answer",
            "the gateway opened no checkout page; please try again",
        )
    })?;
    Ok(Redirect::to(&url))
}

#[cfg(test)]
mod tests {
    use minijinja::context;

    use super::super::tests::{render, viewer};

    #[test]
    fn the_order_page_offers_a_pay_button_per_gateway_while_payable() {
        let order = |status: &str, payable: bool| {
            context! {
                id => "ord_1", shown_status => status, status_words => if payable { "waiting for payment" } else { status }, payable, currency => "ETB", total => "850.00",
                expires_at => "2030-01-01T00:00:00Z", created_at => "2030-01-01T00:00:00Z",
                items => vec![context! { product_id => "prod_a", name => "Coffee", quantity => 1, unit_price => "850.00", subtotal => "850.00" }],
            }
        };
        let gateways = vec![
            context! { id => "khalti", label => "Khalti" },
            context! { id => "chapa", label => "Chapa" },
        ];
        let html = render(
            "order.html",
            context! { viewer => viewer(false), order => order("pending", true), gateways, owner => true },
        );
        assert!(
            html.contains("id=\"pay-chapa\"") && html.contains("id=\"pay-khalti\""),
            "{html}"
        );
        assert!(
            html.contains("id=\"order-status\">waiting for payment<"),
            "{html}"
        );
        let html = render(
            "order.html",
            context! { viewer => viewer(false), order => order("paid", false), gateways => Vec::<()>::new(), owner => true },
        );
        assert!(!html.contains("id=\"pay-"), "{html}");
        assert!(html.contains("This order is paid"), "{html}");
    }
}
