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
use utoipa::{IntoParams, ToSchema};

use crate::admin::admin;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, Json, PathId};
use crate::openapi::{AdminOnly, AdminWrite, JsonBody, SignedIn};
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

/// The customer an event concerns, so that your systems can find their own record of
/// them.
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
struct CustomerView {
    #[schema(examples("usr_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    id: String,
    username: String,
    email: String,
}

/// `data` of `payment.*`: the payment as `GET /api/payments/{id}/` shows it, and its
/// customer.
#[derive(Serialize, ToSchema)]
#[schema(as = PaymentEventData)]
pub(crate) struct PaymentData {
    #[serde(flatten)]
    payment: PaymentView,
    #[schema(required = true)]
    customer: Option<CustomerView>,
}

/// `data` of `subscription.*`: what the customer holds as the event is first sent
/// (the shape of `GET /api/subscriptions/me/`; null once nothing is left), who they
/// are, and the payment that caused it, if one did.
#[derive(Serialize, ToSchema)]
#[schema(as = SubscriptionEventData)]
pub(crate) struct SubscriptionData {
    #[schema(required = true)]
    customer: Option<CustomerView>,
    #[schema(required = true)]
    subscription: Option<SubscriptionView>,
    #[schema(required = true)]
    payment: Option<PaymentView>,
}

/// `data` of `order.*`: the order as `GET /api/orders/{id}/` shows it, its customer,
/// and the payment that paid it.
#[derive(Serialize, ToSchema)]
#[schema(as = OrderEventData)]
pub(crate) struct OrderData {
    #[serde(flatten)]
    order: OrderView,
    #[schema(required = true)]
    customer: Option<CustomerView>,
    /// The payment that paid it; null for `order.expired` and `order.canceled`.
    #[schema(required = true)]
    payment: Option<PaymentView>,
}

/// `data` of `refund.*`: the refund as the admin API shows it, its customer (whose
/// money it is), and its payment.
#[derive(Serialize, ToSchema)]
#[schema(as = RefundEventData)]
pub(crate) struct RefundData {
    #[serde(flatten)]
    refund: RefundView,
    #[schema(required = true)]
    customer: Option<CustomerView>,
    #[schema(required = true)]
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

/// A URL of yours that receives tijori's events.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub(crate) struct EndpointView {
    #[schema(examples("we_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    id: String,
    /// Where events are POSTed.
    #[schema(format = Uri)]
    url: String,
    /// The event types it receives, or `["*"]` for every type (types added later
    /// included).
    #[schema(examples("*", "payment.completed", "order.paid"))]
    events: Vec<&'static str>,
    /// The operator's words for it.
    description: String,
    /// A disabled endpoint receives nothing, and nothing is queued for it.
    enabled: bool,
    /// Why tijori disabled it (every delivery failed for three days); null when enabled
    /// or disabled by an operator.
    #[schema(required = true)]
    disabled_reason: Option<String>,
    /// Since when every delivery to it has failed; null once one goes through.
    #[schema(required = true)]
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A new endpoint, with its signing secret.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointCreated)]
pub(crate) struct CreatedEndpointView {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The signing secret: `whsec_` and 32 random bytes in base64. Shown only here and
    /// on rotation; keep it.
    #[schema(
        pattern = "^whsec_",
        examples("whsec_eufhTrdklpxZk/uz21p6vAcAnkpRWjBj/T4os75I6ww=")
    )]
    secret: String,
}

impl EndpointView {
    fn new(e: &WebhookEndpoint) -> Self {
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
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[schema(max_length = 2048, examples("https://crm.example.com/hooks/tijori"))]
    url: String,
    /// Event types (see `webhooks`). Left out, empty, or containing `"*"`: every type,
    /// types added later included. An unknown name is a 400.
    #[schema(nullable = false, max_items = 32)]
    events: Option<Vec<String>>,
    /// The operator's words for it ("CRM", "warehouse").
    #[schema(nullable = false, max_length = 500)]
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

#[utoipa::path(
    post, path = "/api/admin/webhook-endpoints", tag = "admin",
    summary = "Register a webhook endpoint (admin)",
    description = "Registers a URL of yours to receive events, enabled. The answer carries the \
        signing secret, shown only now. The URL must be `http` or `https`, without a user \
        name or password, at most 2048 bytes, and not `localhost` or a loopback, private, \
        link-local or otherwise non-public address unless `TIJORI_WEBHOOK_ALLOW_PRIVATE` is \
        on; nor a host name that resolves only to such addresses (one that does not resolve \
        yet is accepted); a host name's addresses are checked again at every delivery. An \
        endpoint receives the events written after it was created; use redeliver for earlier \
        ones.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    request_body = inline(CreateBody),
    responses(
        (status = 201, description = "Created, enabled, with its secret.",
            body = CreatedEndpointView),
        (status = 400, description = "A URL that is not allowed (scheme, credentials, length, \
            a non-public address, a name resolving only to non-public addresses), an unknown \
            event type, more than 32 names, a description over 500 characters, or an unknown \
            field (`validation_error`); malformed JSON (`invalid_json`).", body = ErrorBody),
        SignedIn,
        AdminWrite,
        JsonBody,
    )
)]
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
        Json(CreatedEndpointView {
            endpoint: EndpointView::new(&endpoint),
            secret,
        }),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/api/admin/webhook-endpoints", tag = "admin",
    summary = "The webhook endpoints (admin)",
    description = "Every endpoint, oldest first. Secrets are never shown here.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Oldest first.", body = Vec<EndpointView>),
        SignedIn,
        AdminOnly,
    )
)]
async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    admin(&caller)?;
    let endpoints = state.tijori.webhook_endpoints().await?;
    Ok(Json(endpoints.iter().map(EndpointView::new).collect()))
}

#[utoipa::path(
    get, path = "/api/admin/webhook-endpoints/{id}", tag = "admin",
    summary = "A webhook endpoint (admin)",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_…`).")),
    responses(
        (status = 200, description = "The endpoint (no secret).", body = EndpointView),
        SignedIn,
        AdminOnly,
        (status = 404, description = "No such endpoint, or a malformed id (`not_found`).",
            body = ErrorBody),
    )
)]
async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
) -> Result<Json<EndpointView>, ApiError> {
    admin(&caller)?;
    let endpoint = state.tijori.webhook_endpoint(&id).await?;
    Ok(Json(EndpointView::new(&endpoint)))
}

/// What to change; what is left out stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[schema(nullable = false, max_length = 2048)]
    url: Option<String>,
    /// Event types (see `webhooks`). Empty, or containing `"*"`: every type, types
    /// added later included. An unknown name is a 400.
    #[schema(nullable = false, max_items = 32)]
    events: Option<Vec<String>>,
    #[schema(nullable = false, max_length = 500)]
    description: Option<String>,
    #[schema(nullable = false)]
    enabled: Option<bool>,
}

#[utoipa::path(
    patch, path = "/api/admin/webhook-endpoints/{id}", tag = "admin",
    summary = "Change a webhook endpoint (admin)",
    description = "Changes what is given and leaves the rest. A new URL is checked as at \
        creation. `enabled: true` also clears `disabled_reason` and `failing_since` (the \
        endpoint starts afresh); it does not send what the endpoint missed while disabled: \
        redeliver does.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_…`).")),
    request_body = inline(UpdateBody),
    responses(
        (status = 200, description = "The endpoint as it now stands.", body = EndpointView),
        (status = 400, description = "A URL that is not allowed, an unknown event type, more \
            than 32 names, a description over 500 characters, or an unknown field \
            (`validation_error`); malformed JSON (`invalid_json`).", body = ErrorBody),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such endpoint, or a malformed id (`not_found`).",
            body = ErrorBody),
        JsonBody,
    )
)]
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
    Ok(Json(EndpointView::new(&endpoint)))
}

#[utoipa::path(
    delete, path = "/api/admin/webhook-endpoints/{id}", tag = "admin",
    summary = "Delete a webhook endpoint (admin)",
    description = "Deletes the endpoint and its recorded attempts. Deliveries still queued for \
        it are dropped.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such endpoint, or a malformed id (`not_found`).",
            body = ErrorBody),
    )
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    state.tijori.delete_webhook_endpoint(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[schema(as = WebhookSecret)]
struct SecretView {
    /// The new signing secret, shown only now.
    #[schema(pattern = "^whsec_")]
    secret: String,
}

#[utoipa::path(
    post, path = "/api/admin/webhook-endpoints/{id}/rotate-secret", tag = "admin",
    summary = "Give a webhook endpoint a new secret (admin)",
    description = "Makes a new signing secret, shown only in this answer. For 24 hours every \
        delivery carries two signatures, one with the new secret and one with the old, so the \
        receiver can switch to the new one without missing a delivery; after that only the \
        new one signs. The request body is ignored.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_…`).")),
    responses(
        (status = 200, description = "The new secret.", body = SecretView),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such endpoint, or a malformed id (`not_found`).",
            body = ErrorBody),
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<WebhookEndpointId>,
) -> Result<Json<SecretView>, ApiError> {
    admin(&caller)?;
    let secret = state.tijori.rotate_webhook_secret(&id).await?;
    Ok(Json(SecretView { secret }))
}

/// Exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    /// Every event from then on that the endpoint wants and did not receive.
    #[schema(nullable = false)]
    since: Option<DateTime<Utc>>,
    /// This one event, delivered or not.
    #[schema(value_type = Option<String>, nullable = false,
        examples("evt_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    event_id: Option<EventId>,
}

#[derive(Serialize, ToSchema)]
struct RedeliveredView {
    /// How many deliveries were queued.
    queued: u64,
}

#[utoipa::path(
    post, path = "/api/admin/webhook-endpoints/{id}/redeliver", tag = "admin",
    summary = "Send events to a webhook endpoint again (admin)",
    description = "Queues deliveries to this endpoint, each with a fresh set of tries. \
        `event_id`: that one event, delivered before or not (if the endpoint wants its type). \
        `since`: every event from that time on that the endpoint wants and has not received \
        (failed, given up on, or written while it was disabled), at most 10,000 per call, \
        oldest first (call again for the rest). A delivery already queued or running is not \
        queued twice. The endpoint must be enabled.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_…`).")),
    request_body = inline(RedeliverBody),
    responses(
        (status = 202, description = "Queued.", body = inline(RedeliveredView)),
        (status = 400, description = "Neither or both of `event_id` and `since`, a malformed \
            one, or an unknown field (`validation_error`).", body = ErrorBody),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such endpoint, or no such event (`not_found`).",
            body = ErrorBody),
        JsonBody,
        (status = 409, description = "The endpoint is disabled (`webhook_endpoint_disabled`): \
            enable it first.", body = ErrorBody),
    )
)]
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

/// One try at delivering an event to an endpoint.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttempt)]
struct AttemptView {
    /// The event (and the `webhook-id` of the delivery).
    #[schema(examples("evt_0193b0c4e7a27c3e9b5f0d1e2a3b4c5d"))]
    event_id: String,
    /// Its number among the tries of this event at this endpoint.
    #[schema(minimum = 1)]
    attempt: u32,
    attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status; null if none came (refused, timed out, unreachable).
    #[schema(required = true)]
    http_status: Option<u16>,
    duration_ms: u64,
    /// The first KiB of the receiver's answer.
    response: String,
    /// Why no answer came (refused, no answer within 15 s, unreachable, redirected), if
    /// none did.
    #[schema(required = true)]
    error: Option<String>,
    /// A 2xx answer.
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AttemptsQuery {
    /// How many (a value outside 1 to 500 is taken as the nearer bound).
    #[param(nullable = false, default = 100, minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/admin/webhook-endpoints/{id}/attempts", tag = "admin",
    summary = "A webhook endpoint's delivery attempts (admin)",
    description = "The latest tries at this endpoint, newest first, with the receiver's status \
        and the start of its answer.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The endpoint's id (`we_…`)."), AttemptsQuery),
    responses(
        (status = 200, description = "Newest first.", body = Vec<AttemptView>),
        (status = 400, description = "A `limit` that is not a number (axum's plain-text \
            answer, not the error envelope).", body = String, content_type = "text/plain"),
        SignedIn,
        AdminOnly,
        (status = 404, description = "No such endpoint, or a malformed id (`not_found`).",
            body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get, path = "/api/admin/users/{username}/subscription", tag = "admin",
    summary = "What a customer holds (admin): the entitlement check",
    description = "For your backend: whether a customer is entitled now. The same answer the \
        customer gets from `GET /api/subscriptions/me/`: the plan held now (`is_active`) or \
        the last one, and what is queued after it.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(("username" = String, Path, description = "The customer's username.")),
    responses(
        (status = 200, description = "What the customer holds.", body = SubscriptionView),
        SignedIn,
        AdminOnly,
        (status = 404, description = "No user has this username (`user_not_found`), or the \
            user has never had a subscription (`not_found`, as `GET /api/subscriptions/me/` \
            answers the customer).", body = ErrorBody),
    )
)]
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
