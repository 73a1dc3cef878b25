//! `/account/`: the customer's subscription, payments and orders.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Serialize;

use std::collections::HashMap;

use tijori_core::id::{OrderId, PlanId};
use tijori_core::payment::{Payment, Purpose};
use tijori_core::shop::Order;

use super::orders::OrderCard;
use super::{Page, PageResult, SignedIn};
use crate::i18n::tr;
use crate::views::{PaymentView, SubscriptionView};
use crate::words;
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
    /// Its status in the customer's words, and the style it is shown in.
    status_words: &'static str,
    tone: &'static str,
    /// What it paid for: the plan's name, or the order's items.
    paid_for: PaidFor,
    /// "Check payment status" is offered: looking it up can still change something
    /// (open, or a failed Chapa attempt whose checkout takes another).
    checkable: bool,
    /// The same checkout again, for a failed attempt the gateway lets them retry.
    retry_url: Option<String>,
}

impl PaymentCard {
    fn new(
        payment: &Payment,
        now: DateTime<Utc>,
        plans: &HashMap<&PlanId, &str>,
        orders: &HashMap<&OrderId, &Order>,
    ) -> Self {
        let said = |text, name: Option<String>| PaidFor { text, name };
        let (paid_for, order_status) = match &payment.purpose {
            Purpose::Subscription { plan_id, .. } => match plans.get(plan_id) {
                Some(plan) => (said(tr("{name} plan"), Some((*plan).to_owned())), None),
                None => (said(tr("A subscription"), None), None),
            },
            Purpose::Order { order_id } => match orders.get(order_id) {
                Some(o) => (said("{name}", Some(o.items_in_words())), Some(o.status)),
                None => (said(tr("An order"), None), None),
            },
        };
        let outcome = payment.customer_outcome(order_status);
        PaymentCard {
            payment: payment.into(),
            status_words: words::payment_status(outcome),
            tone: words::payment_tone(outcome),
            paid_for,
            checkable: payment.worth_looking_up(now),
            retry_url: payment.retry_url(now).map(str::to_owned),
        }
    }
}

/// What a payment was for, as a sentence to translate (`text`) naming the plan or
/// the order's items (`name`), which are the merchant's words and stay as written.
#[derive(Serialize)]
struct PaidFor {
    text: &'static str,
    name: Option<String>,
}

async fn account(State(state): State<AppState>, SignedIn(s): SignedIn) -> PageResult {
    let sub = state.tijori.my_holding(&s.user.id).await?;
    let payments = state.tijori.payment_history(&s.user.id, 50).await?;
    let orders = state.tijori.orders_of(&s.user.id, 50).await?;
    let plans = state.tijori.plans().await?;
    let now = state.tijori.now();
    let plan_names: HashMap<&PlanId, &str> =
        plans.iter().map(|p| (&p.id, p.name.as_str())).collect();
    let by_id: HashMap<&OrderId, &Order> = orders.iter().map(|o| (&o.id, o)).collect();
    let payments: Vec<PaymentCard> = payments
        .iter()
        .map(|p| PaymentCard::new(p, now, &plan_names, &by_id))
        .collect();
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
