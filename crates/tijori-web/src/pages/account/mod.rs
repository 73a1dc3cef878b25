//! `/account/`: the customer's subscription, payments and orders.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Serialize;

use super::orders::OrderCard;
use super::{Page, PageResult, SignedIn};
use crate::views::{PaymentView, SubscriptionView};
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("account.html", include_str!("account.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/account/", get(account))
}

/// A payment as the account page lists it.
#[derive(Serialize)]
struct PaymentCard {
    #[serde(flatten)]
    payment: PaymentView,
    /// "Check payment status" is offered: looking it up can still change something
    /// (open, or a failed Chapa attempt whose checkout takes another).
    checkable: bool,
    /// The same checkout again, for a failed attempt the gateway lets them retry.
    retry_url: Option<String>,
}

impl PaymentCard {
    fn new(payment: &tijori_core::payment::Payment, now: DateTime<Utc>) -> Self {
        PaymentCard {
            payment: payment.into(),
            checkable: payment.worth_looking_up(now),
            retry_url: payment.retry_url(now).map(str::to_owned),
        }
    }
}

async fn account(State(state): State<AppState>, SignedIn(s): SignedIn) -> PageResult {
    let sub = state.tijori.my_holding(&s.user.id).await?;
    let payments = state.tijori.payment_history(&s.user.id, 50).await?;
    let orders = state.tijori.orders_of(&s.user.id, 50).await?;
    let now = state.tijori.now();
    let payments: Vec<PaymentCard> = payments.iter().map(|p| PaymentCard::new(p, now)).collect();
    let orders: Vec<OrderCard> = orders.iter().map(|o| OrderCard::new(o, now)).collect();
    Ok(Page::new(
        "account.html",
        context! {
            email => s.user.email.as_str(),
            subscription => sub.map(|h| SubscriptionView::new(&h, now)),
            payments,
            orders,
        },
    ))
}
