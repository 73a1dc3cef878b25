//! The shop's API: products, orders, and opening a checkout for an order.

use crate::idempotency::idempotent;
use crate::layers::{limit, spend, Limit};
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::gateway::GatewayKind;
use tijori_core::payment::Payment;
use tijori_core::shop::OrderRequest;

use crate::error::ApiError;
use crate::extract::{Caller, Json, PathId};
use crate::limits::Checkout;
use crate::views::{OrderView, ProductView};
use crate::AppState;
use tijori_core::id::OrderId;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/products/", get(products))
        .route(
            "/api/orders/",
            post(create_order)
                .route_layer(from_fn_with_state(
                    limit(state, Limit::Checkout(Checkout::CreateOrder)),
                    spend,
                ))
                .route_layer(from_fn_with_state(state.clone(), idempotent))
                .get(my_orders),
        )
        .route("/api/orders/{id}/", get(order))
        .route(
            "/api/payments/initialize/",
            post(initialize)
                .route_layer(from_fn_with_state(
                    limit(state, Limit::Checkout(Checkout::Initialize)),
                    spend,
                ))
                .route_layer(from_fn_with_state(state.clone(), idempotent)),
        )
}

async fn products(State(state): State<AppState>) -> Result<Json<Vec<ProductView>>, ApiError> {
    let products = state.tijori.products().await?;
    Ok(Json(products.iter().map(ProductView::from).collect()))
}

#[derive(Deserialize)]
struct OrderBody {
    items: Vec<OrderLine>,
}

#[derive(Deserialize)]
struct OrderLine {
    product_id: String,
    quantity: i64,
}

async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    attempt: Option<axum::Extension<tijori_core::idempotency::Attempt>>,
    Json(body): Json<OrderBody>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let request = OrderRequest::parse(
        body.items
            .iter()
            .map(|l| (l.product_id.as_str(), l.quantity)),
    )
    .map_err(tijori_core::Error::from)?;
    let attempt = crate::idempotency::attempt_of(&attempt);
    let order = state
        .tijori
        .create_order(&caller.user, &request, attempt)
        .await?;
    Ok((StatusCode::CREATED, Json((&order).into())))
}

async fn my_orders(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    let orders = state.tijori.orders_of(&caller.user.id, 50).await?;
    Ok(Json(orders.iter().map(OrderView::from).collect()))
}

async fn order(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<OrderId>,
) -> Result<Json<OrderView>, ApiError> {
    let order = state.tijori.order_for(&caller.user, &id).await?;
    Ok(Json((&order).into()))
}

#[derive(Deserialize)]
struct InitializeBody {
    order_id: String,
    gateway: Option<String>,
}

/// An opened checkout for an order (DESIGN.md §4).
#[derive(Serialize)]
pub(crate) struct CheckoutView {
    pub payment_id: String,
    pub checkout_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pidx: Option<String>,
    /// eSewa's reference for the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_uuid: Option<String>,
    /// eSewa's signed form (see `InitiatedView`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<crate::views::FormView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Payment> for CheckoutView {
    fn from(p: &Payment) -> Self {
        let provider_ref = p.provider_ref.clone();
        CheckoutView {
            payment_id: p.id.to_string(),
            checkout_url: p.payment_url.clone().unwrap_or_default(),
            tx_ref: provider_ref
                .clone()
                .filter(|_| p.gateway == GatewayKind::Chapa),
            pidx: provider_ref
                .clone()
                .filter(|_| p.gateway == GatewayKind::Khalti),
            transaction_uuid: provider_ref.filter(|_| p.gateway == GatewayKind::Esewa),
            form: None,
            expires_at: p.expires_at,
        }
    }
}

pub(crate) fn parse_optional_gateway(
    gateway: Option<&str>,
) -> Result<Option<GatewayKind>, ApiError> {
    gateway
        .map(|g| {
            g.parse().map_err(|e: String| {
                ApiError::bad_request("validation_error", format!("gateway: {e}"))
            })
        })
        .transpose()
}

/// Opens a checkout for the caller's pending order; a repeated call while that
/// checkout is still open answers with the same checkout.
async fn initialize(
    State(state): State<AppState>,
    caller: Caller,
    attempt: Option<axum::Extension<tijori_core::idempotency::Attempt>>,
    Json(body): Json<InitializeBody>,
) -> Result<(StatusCode, Json<CheckoutView>), ApiError> {
    let gateway = parse_optional_gateway(body.gateway.as_deref())?;
    let attempt = crate::idempotency::attempt_of(&attempt);
    let payment = state
        .tijori
        .initialize_order_payment(&caller.user, &body.order_id, gateway, attempt)
        .await?;
    let mut view = CheckoutView::from(&payment);
    view.form = state.tijori.checkout_form(&payment).map(Into::into);
    Ok((StatusCode::CREATED, Json(view)))
}
