//! What an API route declares about itself beside its handler: which rate limit it
//! spends, and (in `idempotency`) whether it honours `Idempotency-Key`. Each router
//! says so on its own routes with `route_layer`, so nothing is matched against a list
//! of paths kept elsewhere, and a handler reads only its own work.
//!
//! A limit is spent before the body is read: every request to a limited route costs
//! one, a malformed one included (it still cost a request). The exception is a
//! money-moving POST under an `Idempotency-Key`: the idempotency layer, outside the
//! limit, reads its body and claims its key first, so that a replay costs nothing.
//! The pages spend the same allowances in their handlers, where a refusal is rendered
//! as a page.

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use tower::ServiceBuilder;

use crate::error::ApiError;
use crate::extract::{Caller, ClientAddress};
use crate::idempotency::idempotent;
use crate::limits::Checkout;
use crate::AppState;

/// The allowance a route spends (see `limits::Limits`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// "Check payment status", per user.
    Refresh,
    /// Verify, per user.
    Verify,
    /// Opening a checkout or writing an order, per path and user.
    Checkout(Checkout),
    /// Chapa's anonymous callback, per client address.
    Callback,
}

/// The state of a [`spend`] layer: the app and the limit its route spends.
pub(crate) fn limit(state: &AppState, limit: Limit) -> (AppState, Limit) {
    (state.clone(), limit)
}

/// A money-moving POST (initiate, order, initialize) with its two route layers:
/// `Idempotency-Key` outside the route's checkout allowance, so that a replay is
/// answered from the first answer without spending one. The two go in as one
/// `route_layer`: each call boxes the route's endpoint again, and a request clones
/// every box (see `crate::router`). Methods added to `route` afterwards (`.get(..)`)
/// are not layered.
pub(crate) fn idempotent_and_limited(
    route: MethodRouter<AppState>,
    state: &AppState,
    what: Checkout,
) -> MethodRouter<AppState> {
    route.route_layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(state.clone(), idempotent))
            .layer(from_fn_with_state(
                limit(state, Limit::Checkout(what)),
                spend,
            )),
    )
}

/// Spends the route's allowance, or answers 429 with `Retry-After`. A per-user limit
/// resolves the caller here, once: it stays on the request for the handler.
pub(crate) async fn spend(
    State((state, limit)): State<(AppState, Limit)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let limits = &state.limits;
    let caller = async |parts: &mut axum::http::request::Parts| {
        Caller::from_request_parts(parts, &state).await
    };
    match limit {
        Limit::Callback => {
            let Ok(ClientAddress(client)) =
                ClientAddress::from_request_parts(&mut parts, &state).await;
            limits.callback(client)?;
        }
        Limit::Refresh => limits.refresh(&caller(&mut parts).await?.user)?,
        Limit::Verify => limits.verify(&caller(&mut parts).await?.user)?,
        Limit::Checkout(what) => limits.checkout(what, &caller(&mut parts).await?.user)?,
    }
    Ok(next.run(Request::from_parts(parts, body)).await)
}
