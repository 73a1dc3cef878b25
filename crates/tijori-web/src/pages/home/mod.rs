//! `/`: the plans, with what buying each would do to the customer's paid time, and
//! the products.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use minijinja::context;
use serde::Serialize;

use super::shop::product_cards;
use super::{gateway_choices, GatewayChoice, Page, PageResult, Visitor};
use crate::views::{ChangeView, PlanView};
use crate::AppState;

pub(super) const TEMPLATES: &[(&str, &str)] = &[("home.html", include_str!("home.html"))];

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

/// A plan with the gateways that can take its currency.
#[derive(Serialize)]
struct PlanCard {
    #[serde(flatten)]
    plan: PlanView,
    gateways: Vec<GatewayChoice>,
    /// For a signed-in customer: what buying it does to their paid time by default,
    /// and, when they hold another plan, what "switch now" would do instead.
    change: Option<ChangeView>,
    switch_now: Option<ChangeView>,
}

async fn home(State(state): State<AppState>, Visitor(session): Visitor) -> PageResult {
    let plans = state.tijori.plans().await?;
    let products = state.tijori.products().await?;
    let mut choices = match &session {
        Some(s) => state.tijori.plan_choices(&s.user.id, &plans).await?,
        None => Vec::new(),
    };
    choices.resize(plans.len(), None);
    let plans: Vec<PlanCard> = plans
        .iter()
        .zip(choices)
        .map(|(p, choice)| PlanCard {
            plan: p.into(),
            gateways: gateway_choices(&state, p.price.currency()),
            change: choice.as_ref().map(|c| ChangeView::from(&c.default)),
            switch_now: choice
                .as_ref()
                .and_then(|c| c.switch_now.as_ref())
                .map(ChangeView::from),
        })
        .collect();
    Ok(Page::new(
        "home.html",
        context! { plans, products => product_cards(&state, &products) },
    ))
}
