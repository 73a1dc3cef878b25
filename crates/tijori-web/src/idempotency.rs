//! `Idempotency-Key` on the money-moving POSTs (subscription initiate, order creation,
//! payment initialize): the first answer to a key is kept and replayed for a retry
//! of the same request; the key on a different request is refused.
//!
//! Answers below 500 are kept (a 409 "out of stock" is the answer to that request,
//! and a retry gets it again). A 5xx is not: the key is released, so a retry after
//! an outage runs again. Nor is a 429: "not now" is no answer to the request, and a
//! client that waits its `Retry-After` and retries with the same key must be served.
//!
//! A key is held by the process handling its request, with a lease. A retry while it
//! runs is told to retry shortly (409 `idempotency_in_progress`). If the process dies
//! mid-request, its key is taken over as soon as its heartbeat is missed (seconds),
//! and the retry reuses what the first attempt had made (its order, its opened
//! checkout) or closes it, instead of making a second. The handler learns of that
//! through the [`Attempt`] this puts on the request.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tijori_core::idempotency::{fingerprint, Attempt, Claim, IdempotencyKey, StoredResponse};

use crate::error::ApiError;
use crate::extract::Caller;
use crate::{AppState, MAX_BODY_BYTES};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed answer, so a client can tell.
pub const REPLAYED: &str = "idempotent-replayed";

/// The largest answer kept for replay; our answers are a few KB.
const MAX_KEPT_BYTES: usize = 256 * 1024;

/// A route layer that each router puts on its routes that honour the header, the
/// money-moving POSTs, through `layers::idempotent_and_limited` (outside their rate limit).
/// Elsewhere the header is ignored.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match run(state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(state: AppState, request: Request, next: Next) -> Result<Response, Response> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(next.run(request).await);
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| IdempotencyKey::parse(v).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        })?;
    let (mut parts, body) = request.into_parts();
    // Keys are per user: the same key from two users is two requests.
    let caller = Caller::from_request_parts(&mut parts, &state)
        .await
        .map_err(IntoResponse::into_response)?;
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
        .into_response()
    })?;
    let print = fingerprint(parts.method.as_str(), parts.uri.path(), &bytes);
    let user = &caller.user.id;
    let claim = state
        .tijori
        .claim_idempotency_key(user, &key, &print)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match &claim {
        Claim::Replay(stored) => Ok(replay(stored.clone())),
        Claim::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being handled; retry shortly",
        )
        .into_response()),
        Claim::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        )
        .into_response()),
        Claim::New | Claim::TakenOver(_) => {
            if let Claim::TakenOver(left) = &claim {
                tracing::warn!(user = %user, ?left, "idempotency key taken over from a request that never answered");
            }
            if let Some(attempt) = state.tijori.attempt(user, &key, &claim) {
                parts.extensions.insert(attempt);
            }
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let status = response.status();
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                release(&state, &caller, &key).await;
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let Ok(body) = to_bytes(body, MAX_KEPT_BYTES).await else {
                release(&state, &caller, &key).await;
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the answer could not be read",
                )
                .into_response());
            };
            let stored = StoredResponse {
                status: status.as_u16(),
                content_type: parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/json")
                    .to_owned(),
                body: body.to_vec(),
            };
            if let Err(e) = state
                .tijori
                .complete_idempotency_key(user, &key, &stored)
                .await
            {
                // The request itself succeeded; a retry will be told it is still in
                // progress until the lease ends, then reuse what it made.
                tracing::error!(error = %e, "could not keep an idempotent answer");
            }
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

async fn release(state: &AppState, caller: &Caller, key: &IdempotencyKey) {
    if let Err(e) = state
        .tijori
        .release_idempotency_key(&caller.user.id, key)
        .await
    {
        tracing::error!(error = %e, "could not release an idempotency key");
    }
}

/// The idempotency attempt a request runs under, if it came with a key.
pub(crate) fn attempt_of(attempt: &Option<axum::Extension<Attempt>>) -> Option<&Attempt> {
    attempt.as_ref().map(|axum::Extension(a)| a)
}
