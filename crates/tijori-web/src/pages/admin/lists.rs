//! The operator's lists: payments, orders, customers and subscriptions, each with
//! search, filters, paging and a CSV export of the same filter.

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Serialize;
use tijori_core::back_office::{
    order_status, payment_status, CustomerLine, CustomerState, Listing, OrderLine, PaymentLine,
    SubscriptionLine, SubscriptionState,
};
use tijori_core::money::Money;
use tijori_core::payment::{PaymentStatus, Purpose};
use tijori_core::shop::OrderStatus;

use super::listing::{csv_file, ListQuery, Paging};
use super::{Admin, Page, PageResult};
use crate::error::ApiError;
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/payments/", get(payments))
        .route("/admin/payments.csv", get(payments_csv))
        .route("/admin/orders/", get(orders))
        .route("/admin/orders.csv", get(orders_csv))
        .route("/admin/customers/", get(customers))
        .route("/admin/customers.csv", get(customers_csv))
        .route("/admin/subscriptions/", get(subscriptions))
        .route("/admin/subscriptions.csv", get(subscriptions_csv))
}

/// "1,200.00"-style amounts are the customer pages' work; here the amount as the API
/// shows it.
fn major(minor: i64, currency: tijori_core::money::Currency) -> String {
    Money::from_minor(minor, currency)
        .map(Money::to_major_string)
        .unwrap_or_else(|_| minor.to_string())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A list's page: its template, rows, paging and the filter's choices.
fn list_page<T: Serialize>(
    section: &'static str,
    query: &ListQuery,
    paging: Paging,
    rows: Vec<T>,
    statuses: &[&str],
) -> Page {
    Page::new(
        template_of(section),
        list_context(section, query, paging, rows, statuses),
    )
}

fn template_of(section: &str) -> &'static str {
    match section {
        "payments" => "admin_payments.html",
        "orders" => "admin_orders.html",
        "customers" => "admin_customers.html",
        _ => "admin_subscriptions.html",
    }
}

fn list_context<T: Serialize>(
    section: &'static str,
    query: &ListQuery,
    paging: Paging,
    rows: Vec<T>,
    statuses: &[&str],
) -> minijinja::Value {
    context! { section, query, paging, rows, statuses, gateways => ["khalti", "esewa", "chapa"] }
}

// Payments ----------------------------------------------------------------------------

fn payment_statuses() -> Vec<&'static str> {
    PaymentStatus::ALL.iter().map(|s| s.as_str()).collect()
}

#[derive(Serialize)]
struct PaymentRow {
    id: String,
    created_at: String,
    status: &'static str,
    gateway: &'static str,
    amount: String,
    currency: &'static str,
    username: String,
    email: String,
    provider_ref: String,
    provider_txn_id: String,
    /// "order ord_…" or "plan plan_…".
    purpose: String,
}

impl From<&PaymentLine> for PaymentRow {
    fn from(l: &PaymentLine) -> Self {
        let p = &l.payment;
        PaymentRow {
            id: p.id.to_string(),
            created_at: time(p.created_at),
            status: p.status.as_str(),
            gateway: p.gateway.as_str(),
            amount: p.amount.to_major_string(),
            currency: p.amount.currency().code(),
            username: l.username.clone(),
            email: l.email.clone(),
            provider_ref: p.provider_ref.clone().unwrap_or_default(),
            provider_txn_id: p.provider_txn_id.clone().unwrap_or_default(),
            purpose: match &p.purpose {
                Purpose::Order { order_id } => format!("order {order_id}"),
                Purpose::Subscription { plan_id, .. } => format!("plan {plan_id}"),
            },
        }
    }
}

fn payment_listing(q: &ListQuery, export: bool) -> Result<Listing, ApiError> {
    q.listing(|s| payment_status(s).is_some(), &payment_statuses(), export)
}

async fn payments(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let listed = state
        .tijori
        .list_payments(&payment_listing(&q, false)?)
        .await?;
    let rows: Vec<PaymentRow> = listed.rows.iter().map(PaymentRow::from).collect();
    let paging = Paging::of(&q, &listed);
    Ok(list_page("payments", &q, paging, rows, &payment_statuses()))
}

async fn payments_csv(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let listed = state
        .tijori
        .list_payments(&payment_listing(&q, true)?)
        .await?;
    let capped = listed.total > listed.rows.len() as i64;
    let rows = listed
        .rows
        .iter()
        .map(PaymentRow::from)
        .map(|r| {
            vec![
                r.id,
                r.created_at,
                r.status.to_owned(),
                r.gateway.to_owned(),
                r.amount,
                r.currency.to_owned(),
                r.username,
                r.email,
                r.provider_ref,
                r.provider_txn_id,
                r.purpose,
            ]
        })
        .collect();
    Ok(csv_file(
        "payments.csv",
        &[
            "id",
            "created_at",
            "status",
            "gateway",
            "amount",
            "currency",
            "username",
            "email",
            "gateway_reference",
            "gateway_transaction_id",
            "for",
        ],
        rows,
        capped,
    ))
}

// Orders ------------------------------------------------------------------------------

#[derive(Serialize)]
struct OrderRow {
    id: String,
    created_at: String,
    status: &'static str,
    total: String,
    currency: &'static str,
    units: i64,
    username: String,
    email: String,
    paid_payment_id: String,
}

impl From<&OrderLine> for OrderRow {
    fn from(o: &OrderLine) -> Self {
        OrderRow {
            id: o.id.to_string(),
            created_at: time(o.created_at),
            status: o.status.as_str(),
            total: major(o.total_minor, o.currency),
            currency: o.currency.code(),
            units: o.units,
            username: o.username.clone(),
            email: o.email.clone(),
            paid_payment_id: o
                .paid_payment_id
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        }
    }
}

fn order_statuses() -> Vec<&'static str> {
    OrderStatus::ALL.iter().map(|s| s.as_str()).collect()
}

async fn orders(State(state): State<AppState>, _: Admin, Query(q): Query<ListQuery>) -> PageResult {
    let statuses = order_statuses();
    let listing = q.listing(|s| order_status(s).is_some(), &statuses, false)?;
    let listed = state.tijori.list_orders(&listing).await?;
    let rows: Vec<OrderRow> = listed.rows.iter().map(OrderRow::from).collect();
    let paging = Paging::of(&q, &listed);
    Ok(list_page("orders", &q, paging, rows, &statuses))
}

async fn orders_csv(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let statuses = order_statuses();
    let listing = q.listing(|s| order_status(s).is_some(), &statuses, true)?;
    let listed = state.tijori.list_orders(&listing).await?;
    let capped = listed.total > listed.rows.len() as i64;
    let rows = listed
        .rows
        .iter()
        .map(OrderRow::from)
        .map(|r| {
            vec![
                r.id,
                r.created_at,
                r.status.to_owned(),
                r.total,
                r.currency.to_owned(),
                r.units.to_string(),
                r.username,
                r.email,
                r.paid_payment_id,
            ]
        })
        .collect();
    Ok(csv_file(
        "orders.csv",
        &[
            "id",
            "created_at",
            "status",
            "total",
            "currency",
            "units",
            "username",
            "email",
            "paid_by",
        ],
        rows,
        capped,
    ))
}

// Customers ---------------------------------------------------------------------------

#[derive(Serialize)]
struct CustomerRow {
    id: String,
    username: String,
    email: String,
    operator: bool,
    joined: String,
    payments: i64,
    paid: i64,
    orders: i64,
    subscribed_until: String,
}

impl From<&CustomerLine> for CustomerRow {
    fn from(c: &CustomerLine) -> Self {
        CustomerRow {
            id: c.user.id.to_string(),
            username: c.user.username.as_str().to_owned(),
            email: c.user.email.as_str().to_owned(),
            operator: c.user.is_admin,
            joined: time(c.user.created_at),
            payments: c.payments,
            paid: c.paid,
            orders: c.orders,
            subscribed_until: c.subscribed_until.map(time).unwrap_or_default(),
        }
    }
}

fn customer_statuses() -> Vec<&'static str> {
    CustomerState::ALL.iter().map(|s| s.as_str()).collect()
}

async fn customers(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let statuses = customer_statuses();
    let listing = q.listing(|s| CustomerState::parse(s).is_some(), &statuses, false)?;
    let listed = state.tijori.list_customers(&listing).await?;
    let rows: Vec<CustomerRow> = listed.rows.iter().map(CustomerRow::from).collect();
    let paging = Paging::of(&q, &listed);
    Ok(list_page("customers", &q, paging, rows, &statuses))
}

async fn customers_csv(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let statuses = customer_statuses();
    let listing = q.listing(|s| CustomerState::parse(s).is_some(), &statuses, true)?;
    let listed = state.tijori.list_customers(&listing).await?;
    let capped = listed.total > listed.rows.len() as i64;
    let rows = listed
        .rows
        .iter()
        .map(CustomerRow::from)
        .map(|r| {
            vec![
                r.id,
                r.username,
                r.email,
                r.operator.to_string(),
                r.joined,
                r.payments.to_string(),
                r.paid.to_string(),
                r.orders.to_string(),
                r.subscribed_until,
            ]
        })
        .collect();
    Ok(csv_file(
        "customers.csv",
        &[
            "id",
            "username",
            "email",
            "operator",
            "joined",
            "payments",
            "paid_payments",
            "orders",
            "subscribed_until",
        ],
        rows,
        capped,
    ))
}

// Subscriptions -----------------------------------------------------------------------

#[derive(Serialize)]
struct SubscriptionRow {
    user_id: String,
    username: String,
    email: String,
    plan: String,
    start_at: String,
    end_at: String,
    running: bool,
}

fn subscription_row(s: &SubscriptionLine, now: DateTime<Utc>) -> SubscriptionRow {
    SubscriptionRow {
        user_id: s.user_id.to_string(),
        username: s.username.clone(),
        email: s.email.clone(),
        plan: s.plan_name.clone(),
        start_at: time(s.start_at),
        end_at: time(s.end_at),
        running: s.end_at > now,
    }
}

fn subscription_statuses() -> Vec<&'static str> {
    SubscriptionState::ALL.iter().map(|s| s.as_str()).collect()
}

async fn subscriptions(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let statuses = subscription_statuses();
    let listing = q.listing(|s| SubscriptionState::parse(s).is_some(), &statuses, false)?;
    let listed = state.tijori.list_subscriptions(&listing).await?;
    let now = state.tijori.now();
    let rows: Vec<SubscriptionRow> = listed
        .rows
        .iter()
        .map(|s| subscription_row(s, now))
        .collect();
    let paging = Paging::of(&q, &listed);
    Ok(list_page("subscriptions", &q, paging, rows, &statuses))
}

async fn subscriptions_csv(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let statuses = subscription_statuses();
    let listing = q.listing(|s| SubscriptionState::parse(s).is_some(), &statuses, true)?;
    let listed = state.tijori.list_subscriptions(&listing).await?;
    let capped = listed.total > listed.rows.len() as i64;
    let now = state.tijori.now();
    let rows = listed
        .rows
        .iter()
        .map(|s| subscription_row(s, now))
        .map(|r| {
            vec![
                r.user_id,
                r.username,
                r.email,
                r.plan,
                r.start_at,
                r.end_at,
                r.running.to_string(),
            ]
        })
        .collect();
    Ok(csv_file(
        "subscriptions.csv",
        &[
            "user_id", "username", "email", "plan", "start_at", "end_at", "running",
        ],
        rows,
        capped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tijori_core::back_office::Listed;

    #[test]
    fn a_list_page_renders_from_its_own_context() {
        let q = ListQuery::default();
        let listed: Listed<()> = Listed {
            rows: vec![],
            total: 120,
        };
        let paging = Paging::of(&q, &listed);
        let rows = vec![PaymentRow {
            id: "pay_1".into(),
            created_at: "2030-01-01T00:00:00Z".into(),
            status: "completed",
            gateway: "khalti",
            amount: "500.00".into(),
            currency: "NPR",
            username: "hari".into(),
            email: "h@example.com".into(),
            provider_ref: "pidx".into(),
            provider_txn_id: String::new(),
            purpose: "plan plan_1".into(),
        }];
        let ctx = list_context("payments", &q, paging, rows, &payment_statuses());
        let ctx = minijinja::context! { viewer => super::super::super::tests::viewer(true), ..ctx };
        let html = super::super::super::tests::render(template_of("payments"), ctx);
        assert!(html.contains("id=\"page-next\""), "{html}");
    }
}
