//! Outgoing events on the wire: the `data` of each event, in the API's shapes
//! (`EventBodies`, the core's `EventRenderer`), and the admin API that manages the
//! webhook endpoints they go to, plus the entitlement check for the merchant's
//! backend.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::events::{
    Concerning, DeliveryAttempt, EventRenderer, EventType, Subject, Wanted, WebhookEndpoint,
};
use tijori_core::id::{EventId, WebhookEndpointId};
use tijori_core::service::{NewEndpoint, Redeliver};
use tijori_core::store::EndpointChange;

use crate::admin::admin;
use crate::error::ApiError;
use crate::extract::{Caller, Json, PathId};
use crate::payments::RefundView;
use crate::views::{OrderView, PaymentView, SubscriptionView};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/admin/webhook-endpoints",
            get(list_endpoints).post(create_endpoint),
        )
        .route(
            "/api/admin/webhook-endpoints/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/api/admin/webhook-endpoints/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route(
            "/api/admin/webhook-endpoints/{id}/redeliver",
            post(redeliver),
        )
        .route("/api/admin/webhook-endpoints/{id}/attempts", get(attempts))
        .route("/api/admin/users/{username}/subscription", get(entitlement))
}

// --- event bodies -------------------------------------------------------------------

/// The customer an event concerns, so the merchant's systems can find their own
/// record of them.
#[derive(Serialize)]
struct CustomerView {
    id: String,
    username: String,
    email: String,
}

/// `data` of `payment.*`: the payment as `GET /api/payments/{id}` shows it, and its
/// customer.
#[derive(Serialize)]
struct PaymentData {
    #[serde(flatten)]
    payment: PaymentView,
    customer: Option<CustomerView>,
}

/// `data` of `subscription.*`: what the customer holds now
/// (`GET /api/subscriptions/me/`'s shape; `null` once nothing is left), who they
/// are, and the payment that caused it, if one did.
#[derive(Serialize)]
struct SubscriptionData {
    customer: Option<CustomerView>,
    subscription: Option<SubscriptionView>,
    payment: Option<PaymentView>,
}

/// `data` of `order.*`: the order, its customer, and the payment that paid it.
#[derive(Serialize)]
struct OrderData {
    #[serde(flatten)]
    order: OrderView,
    customer: Option<CustomerView>,
    payment: Option<PaymentView>,
}

/// `data` of `refund.*`: the refund as the admin API shows it, its customer (whose
/// money it is), and its payment.
#[derive(Serialize)]
struct RefundData {
    #[serde(flatten)]
    refund: RefundView,
    customer: Option<CustomerView>,
    payment: Option<PaymentView>,
}

/// Makes events' `data` from the API's wire types, so an event shows a resource
/// exactly as the API does.
pub struct EventBodies;

impl EventRenderer for EventBodies {
    fn data(&self, kind: EventType, about: &Concerning, now: DateTime<Utc>) -> serde_json::Value {
        let customer = about.user.as_ref().map(|u| CustomerView {
            id: u.id.to_string(),
            username: u.username.as_str().to_owned(),
            email: u.email.as_str().to_owned(),
        });
        let payment = about.payment.as_ref().map(PaymentView::from);
        let value = match kind.subject() {
            Subject::Payment => match payment {
                Some(payment) => serde_json::to_value(PaymentData { payment, customer }),
                None => Ok(serde_json::Value::Null),
            },
            Subject::Subscription => serde_json::to_value(SubscriptionData {
                customer,
                subscription: about
                    .subscription
                    .as_ref()
                    .map(|h| SubscriptionView::new(h, now)),
                payment,
            }),
            Subject::Order => match &about.order {
                Some(order) => serde_json::to_value(OrderData {
                    order: order.into(),
                    customer,
                    payment,
                }),
                None => Ok(serde_json::Value::Null),
            },
            Subject::Refund => match &about.refund {
                Some(refund) => serde_json::to_value(RefundData {
                    refund: refund.into(),
                    customer,
                    payment,
                }),
                None => Ok(serde_json::Value::Null),
            },
        };
        // Plain structs of strings, numbers and dates always serialise.
        value.unwrap_or(serde_json::Value::Null)
    }
}

// --- the admin API ------------------------------------------------------------------

/// An endpoint as the admin API shows it (its secret only on creation and rotation).
#[derive(Serialize)]
pub(crate) struct EndpointView {
    id: String,
    url: String,
    events: Vec<&'static str>,
    description: String,
    enabled: bool,
    /// Why tijori disabled it (three days of failures); `null` otherwise.
    disabled_reason: Option<String>,
    /// Since when every delivery to it has failed; `null` when the last one went
    /// through.
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointView {
    fn new(e: &WebhookEndpoint, secret: Option<String>) -> Self {
        EndpointView {
            id: e.id.to_string(),
            url: e.url.clone(),
            events: e.wants.names(),
            description: e.description.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
            secret,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    /// Absent, empty or `["*"]`: every type.
    events: Option<Vec<String>>,
    description: Option<String>,
}

fn wants(events: Option<&[String]>) -> Result<Wanted, ApiError> {
    Wanted::parse(events).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            format!("events: {why}"),
        )
    })
}

/// The most entries of `events` a request may name (there are 12 types).
const MAX_EVENT_NAMES: usize = 32;

fn bounded(events: &Option<Vec<String>>) -> Result<(), ApiError> {
    if events.as_ref().is_some_and(|e| e.len() > MAX_EVENT_NAMES) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            "events: too many names",
        ));
    }
    Ok(())
}

async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateBody>,
) -> Result<Response, ApiError> {
    admin(&caller)?;
    bounded(&body.events)?;
    let new = NewEndpoint {
        url: body.url,
        wants: wants(body.events.as_deref())?,
        description: body.description.unwrap_or_default(),
    };
    let (endpoint, secret) = state.tijori.create_webhook_endpoint(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointView::new(&endpoint, Some(secret))),
    )
        .into_response())
}

async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    admin(&caller)?;
    let endpoints = state.tijori.webhook_endpoints().await?;
    Ok(Json(
        endpoints
            .iter()
            .map(|e| EndpointView::new(e, None))
            .collect(),
    ))
}

async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
) -> Result<Json<EndpointView>, ApiError> {
    admin(&caller)?;
    let endpoint = state.tijori.webhook_endpoint(&id).await?;
    Ok(Json(EndpointView::new(&endpoint, None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

async fn update_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
    Json(body): Json<UpdateBody>,
) -> Result<Json<EndpointView>, ApiError> {
    admin(&caller)?;
    bounded(&body.events)?;
    let change = EndpointChange {
        url: body.url,
        wants: match &body.events {
            Some(events) => Some(wants(Some(events))?),
            None => None,
        },
        description: body.description,
        enabled: body.enabled,
    };
    let endpoint = state.tijori.update_webhook_endpoint(&id, change).await?;
    Ok(Json(EndpointView::new(&endpoint, None)))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    state.tijori.delete_webhook_endpoint(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct SecretView {
    secret: String,
}

async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
) -> Result<Json<SecretView>, ApiError> {
    admin(&caller)?;
    let secret = state.tijori.rotate_webhook_secret(&id).await?;
    Ok(Json(SecretView { secret }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    /// Every event from then on that the endpoint wants and did not receive.
    since: Option<DateTime<Utc>>,
    /// This one event, delivered or not.
    event_id: Option<EventId>,
}

#[derive(Serialize)]
struct RedeliveredView {
    /// How many deliveries were queued.
    queued: u64,
}

async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
    Json(body): Json<RedeliverBody>,
) -> Result<(StatusCode, Json<RedeliveredView>), ApiError> {
    admin(&caller)?;
    let what = match (body.event_id, body.since) {
        (Some(event), None) => Redeliver::Event(event),
        (None, Some(since)) => Redeliver::Since(since),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation_error",
                "give either event_id or since",
            ))
        }
    };
    let queued = state.tijori.redeliver(&id, what).await?;
    Ok((StatusCode::ACCEPTED, Json(RedeliveredView { queued })))
}

/// One try at a delivery, as recorded.
#[derive(Serialize)]
struct AttemptView {
    event_id: String,
    attempt: u32,
    attempted_at: DateTime<Utc>,
    http_status: Option<u16>,
    duration_ms: u64,
    /// The first KiB of the receiver's answer.
    response: String,
    error: Option<String>,
    delivered: bool,
}

impl From<&DeliveryAttempt> for AttemptView {
    fn from(a: &DeliveryAttempt) -> Self {
        AttemptView {
            event_id: a.event.to_string(),
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            http_status: a.http_status,
            duration_ms: a.duration_ms,
            response: a.response.clone(),
            error: a.error.clone(),
            delivered: a.delivered,
        }
    }
}

#[derive(Deserialize)]
struct AttemptsQuery {
    limit: Option<u32>,
}

async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
    Query(q): Query<AttemptsQuery>,
) -> Result<Json<Vec<AttemptView>>, ApiError> {
    admin(&caller)?;
    state.tijori.webhook_endpoint(&id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let attempts = state.tijori.delivery_attempts(&id, limit).await?;
    Ok(Json(attempts.iter().map(Into::into).collect()))
}

/// The entitlement check: what a customer holds, as they would see it themselves.
async fn entitlement(
    State(state): State<AppState>,
    caller: Caller,
    username: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    admin(&caller)?;
    // A merchant's backend branches on the code: a name it has wrong is not a
    // customer without a plan. (A path that is not UTF-8 names nobody either.)
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "user_not_found",
            "no user has this username",
        )
    };
    let Ok(Path(username)) = username else {
        return Err(unknown());
    };
    let holding = match state.tijori.holding_of(&username).await {
        Err(tijori_core::error::Error::NotFound("user")) => return Err(unknown()),
        other => other?,
    };
    match holding {
        Some(holding) => {
            Ok(Json(SubscriptionView::new(&holding, state.tijori.now())).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the user has no subscription",
        )),
    }
}
