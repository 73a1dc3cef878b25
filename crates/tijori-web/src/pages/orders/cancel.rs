//! "Cancel order": the customer gives back an order they have not paid, and its
//! items go back on the shelf at once.

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::routing::post;
use axum::Router;
use tijori_core::id::OrderId;

use super::super::{CsrfForm, PageResult, SignedIn};
use crate::extract::{check_csrf_field, parse_id, Form};
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/orders/{id}/cancel", post(cancel_order))
}

/// Back to the order, which now says it was canceled; someone else's order is a
/// 404, one already paid, expired or canceled a 409 (the error page says which).
async fn cancel_order(
    State(state): State<AppState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let order_id: OrderId = parse_id(&id)?;
    state.tijori.cancel_order(&s.user, &order_id).await?;
    Ok(Redirect::to(&format!("/orders/{order_id}/")))
}
