//! The shop's API: products, orders, and opening a checkout for an order.

use crate::layers;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::gateway::GatewayKind;
use tijori_core::payment::Payment;
use tijori_core::shop::OrderRequest;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::{Caller, Json, PathId};
use crate::limits::Checkout;
use crate::openapi::{BadToken, CrossSite, Gateway, IdempotencyKey, JsonBody, KeyReused, SignedIn};
use crate::views::{OrderView, ProductView};
use crate::AppState;
use tijori_core::id::OrderId;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/products/", get(products))
        .route(
            "/api/orders/",
            layers::idempotent_and_limited(post(create_order), state, Checkout::CreateOrder)
                .get(my_orders),
        )
        .route("/api/orders/{id}/", get(order))
        .route("/api/orders/{id}/cancel/", post(cancel_order))
        .route(
            "/api/payments/initialize/",
            layers::idempotent_and_limited(post(initialize), state, Checkout::Initialize),
        )
}

#[utoipa::path(
    get, path = "/api/products/", tag = "shop", summary = "Products for sale",
    responses(
        (status = 200, description = "Active products, cheapest first.", body = Vec<ProductView>),
        BadToken,
    )
)]
async fn products(State(state): State<AppState>) -> Result<Json<Vec<ProductView>>, ApiError> {
    let products = state.tijori.products().await?;
    Ok(Json(products.iter().map(ProductView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
struct OrderBody {
    #[schema(inline, min_items = 1, max_items = 50)]
    items: Vec<OrderLine>,
}

#[derive(Deserialize, ToSchema)]
struct OrderLine {
    product_id: String,
    #[schema(minimum = 1, maximum = 1000)]
    quantity: i64,
}

#[utoipa::path(
    post, path = "/api/orders/", tag = "shop", summary = "Create an order",
    description = "Reserves the stock of every line in one transaction, at today's prices, \
        or nothing at all. Repeated products are merged. One order takes one currency.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(IdempotencyKey),
    request_body = inline(OrderBody),
    responses(
        (status = 201, description = "Order created, stock reserved.", body = OrderView),
        (status = 400, description = "Malformed, an unknown product, a bad quantity, or mixed \
            currencies (`validation_error`, `invalid_json`); a malformed `Idempotency-Key` \
            (`invalid_idempotency_key`).", body = ErrorBody),
        SignedIn,
        CrossSite,
        JsonBody,
        (status = 409, description = "Not enough stock (`insufficient_stock`, naming the \
            product), too many unpaid orders already (`too_many_pending_orders`: \
            `TIJORI_MAX_UNPAID_ORDERS`, default 5, unpaid and unexpired at a time), too many \
            units of one product in unpaid orders (`too_many_units`: \
            `TIJORI_MAX_UNPAID_UNITS_PER_PRODUCT`, default 10, across the customer's unpaid \
            orders), or an `Idempotency-Key` still in progress (`idempotency_in_progress`). \
            The caps are checked in the transaction that reserves the stock: nothing is \
            reserved by a refused order.", body = ErrorBody),
        KeyReused,
        (status = 429, description = "Too many orders by this user this minute \
            (`TIJORI_CHECKOUT_LIMIT`, `rate_limited`); see `Retry-After`.", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get, path = "/api/orders/", tag = "shop", summary = "The caller's orders",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Newest first (at most 50).", body = Vec<OrderView>),
        SignedIn,
    )
)]
async fn my_orders(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    let orders = state.tijori.orders_of(&caller.user.id, 50).await?;
    Ok(Json(orders.iter().map(OrderView::from).collect()))
}

#[utoipa::path(
    get, path = "/api/orders/{id}/", tag = "shop", summary = "One order",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The order's id (`ord_…`).")),
    responses(
        (status = 200, description = "The order.", body = OrderView),
        SignedIn,
        (status = 404, description = "No such order, or not the caller's (`not_found`).",
            body = ErrorBody),
    )
)]
async fn order(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<OrderId>,
) -> Result<Json<OrderView>, ApiError> {
    let order = state.tijori.order_for(&caller.user, &id).await?;
    Ok(Json((&order).into()))
}

#[utoipa::path(
    post, path = "/api/orders/{id}/cancel/", tag = "shop", summary = "Cancel an unpaid order",
    description = "The customer gives back their own order while it is pending and unexpired: \
        it becomes `canceled` and its stock goes back on the shelf at once, exactly once \
        (whichever of this, the expiry job and a payment's settlement comes first decides). \
        A checkout already open for it is not closed at the gateway: money that still \
        arrives takes the stock again if it is there, or is held for an operator to refund. \
        Raises `order.canceled`.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The order's id (`ord_…`).")),
    responses(
        (status = 200, description = "Canceled; the order as it is now.", body = OrderView),
        SignedIn,
        CrossSite,
        (status = 404, description = "No such order, or not the caller's (`not_found`); an \
            admin cancels no one else's order either.", body = ErrorBody),
        (status = 409, description = "The order is paid, expired, canceled or refunded \
            (`order_not_pending`).", body = ErrorBody),
    )
)]
async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<OrderId>,
) -> Result<Json<OrderView>, ApiError> {
    let order = state.tijori.cancel_order(&caller.user, &id).await?;
    Ok(Json((&order).into()))
}

#[derive(Deserialize, ToSchema)]
struct InitializeBody {
    order_id: String,
    #[schema(schema_with = initialize_gateway)]
    gateway: Option<String>,
}

/// (`schema_with` takes no doc comment: the field's words are here.)
fn initialize_gateway() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::gateway().description(Some(
        "Default: Chapa when it takes the order's currency, else Khalti.",
    ))
}

/// An opened checkout for an order (DESIGN.md §4).
#[derive(Serialize, ToSchema)]
#[schema(as = Checkout)]
pub(crate) struct CheckoutView {
    pub payment_id: String,
    /// Send the customer's browser here.
    #[schema(format = Uri)]
    pub checkout_url: String,
    /// Chapa only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tx_ref: Option<String>,
    /// Khalti only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub pidx: Option<String>,
    /// eSewa only: the payment at eSewa.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub transaction_uuid: Option<String>,
    /// eSewa only: its signed form (see `Initiated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, inline)]
    pub form: Option<crate::views::FormView>,
    /// When the gateway says the link expires (Khalti).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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
#[utoipa::path(
    post, path = "/api/payments/initialize/", tag = "shop",
    summary = "Open a checkout for an order",
    description = "Validates the order (the caller's, with items, still pending and not past \
        its expiry), creates the payment row with a unique tx_ref before calling the gateway, \
        and returns the hosted checkout. While a checkout for the order on that gateway is \
        still open, the same checkout is returned again (no second payment).",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(IdempotencyKey),
    request_body = inline(InitializeBody),
    responses(
        (status = 201, description = "Checkout opened (or the open one returned).",
            body = CheckoutView),
        (status = 400, description = "Malformed (`validation_error`, `invalid_json`); the \
            order has no items; the gateway cannot take the order's currency \
            (`unsupported`); a malformed `Idempotency-Key` (`invalid_idempotency_key`); or \
            the gateway rejected the request (`gateway_rejected`, with its reason).",
            body = ErrorBody),
        SignedIn,
        CrossSite,
        (status = 404, description = "No such order, or not the caller's (`not_found`).",
            body = ErrorBody),
        JsonBody,
        (status = 409, description = "The order is not pending, or expired \
            (`order_not_pending`); a checkout is being opened (`payment_in_progress`); or an \
            `Idempotency-Key` still in progress (`idempotency_in_progress`).",
            body = ErrorBody),
        KeyReused,
        (status = 429, description = "Too many checkouts opened by this user this minute \
            (`TIJORI_CHECKOUT_LIMIT`, `rate_limited`); see `Retry-After`.", body = ErrorBody),
        Gateway,
    )
)]
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
