//! The operator's API: what needs a person's attention, and the webhook log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::jobs::{Job, JobKind, JobStatus};
use tijori_core::store::{OperatorEvent, WebhookDelivery};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::extract::{Caller, Json, PathId};
use crate::openapi::{AdminOnly, AdminWrite, JsonBody, SignedIn};
use crate::AppState;
use tijori_core::id::RefundId;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/events/", get(events))
        .route("/api/admin/events/{id}/resolve/", post(resolve))
        .route("/api/admin/webhooks/", get(webhooks))
        .route("/api/admin/outbox/", get(outbox))
        .route("/api/admin/jobs/", get(jobs))
        .route("/api/admin/jobs/{id}/retry/", post(retry_job))
        .route("/api/admin/refunds/", get(unknown_refunds))
        .route("/api/admin/refunds/{id}/recheck/", post(recheck_refund))
        .route("/api/admin/refunds/{id}/resolve/", post(resolve_refund))
}

/// A refund after a re-check or a resolution, with its payment as it now stands.
#[derive(Serialize, ToSchema)]
struct RefundStateView {
    payment: crate::views::PaymentView,
    refund: crate::payments::RefundView,
}

impl From<&tijori_core::service::RefundState> for RefundStateView {
    fn from(s: &tijori_core::service::RefundState) -> Self {
        RefundStateView {
            payment: (&s.payment).into(),
            refund: (&s.refund).into(),
        }
    }
}

/// The refunds whose outcome is still unknown, oldest first.
#[utoipa::path(
    get, path = "/api/admin/refunds/", tag = "admin",
    summary = "Refunds whose outcome is unknown (admin)",
    description = "The refunds the gateway gave no answer to, oldest first (at most 200). \
        Each is looked up in the background (`check_refund` job: 30 s after, then hourly for \
        a week); an operator can re-check or resolve one.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The unknown refunds.",
            body = Vec<crate::payments::RefundView>),
        SignedIn,
        AdminOnly,
    )
)]
async fn unknown_refunds(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<crate::payments::RefundView>>, ApiError> {
    admin(&caller)?;
    let refunds = state.tijori.unknown_refunds().await?;
    Ok(Json(refunds.iter().map(Into::into).collect()))
}

/// "Re-check": looks the refund's payment up at the gateway now and settles the
/// refund from the answer if it tells.
#[utoipa::path(
    post, path = "/api/admin/refunds/{id}/recheck/", tag = "admin",
    summary = "Re-check an unknown refund (admin)",
    description = "Looks the refund's payment up at its gateway now and settles the refund \
        from the answer where it tells: Khalti's lookup shows a refund at once (`Refunded` / \
        `Partially Refunded` settles it as succeeded, `Completed` as failed); Chapa's verify \
        shows only a full refund (`refunded`), so otherwise the refund stays unknown. A \
        refund settled as succeeded has the effects of one answered at once (payment status, \
        revocation, restock if asked). A refund that is not unknown is returned as it stands.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The refund's id (`rfd_…`).")),
    responses(
        (status = 200, description = "The refund and its payment as they now stand.",
            body = inline(RefundStateView)),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such refund (`not_found`).", body = ErrorBody),
        (status = 502, description = "The gateway answered garbage or refused our \
            credentials (`gateway_bad_answer`, `gateway_misconfigured`): the refund stays \
            unknown.", body = ErrorBody),
        (status = 503, description = "The gateway could not be reached \
            (`gateway_unreachable`, `gateway_unavailable`): the refund stays unknown.",
            body = ErrorBody),
        (status = 504, description = "The gateway did not answer in time \
            (`gateway_timeout`): the refund stays unknown.", body = ErrorBody),
    )
)]
async fn recheck_refund(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RefundId>,
) -> Result<Json<RefundStateView>, ApiError> {
    admin(&caller)?;
    let done = state.tijori.recheck_refund(&caller.user, &id).await?;
    Ok(Json((&done).into()))
}

#[derive(Deserialize, ToSchema)]
struct ResolveBody {
    #[schema(schema_with = resolution_status)]
    status: String,
    /// Why (kept in the audit trail).
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
}

/// What an operator may settle an unknown refund as ([`parse_resolution`]).
fn resolution_status() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["succeeded", "failed"]))
}

/// Settles an unknown refund by hand, with the reason kept in the audit trail.
#[utoipa::path(
    post, path = "/api/admin/refunds/{id}/resolve/", tag = "admin",
    summary = "Resolve an unknown refund by hand (admin)",
    description = "The operator settles an unknown refund (e.g. after looking in the \
        gateway's dashboard). Who, when and why are kept on the refund (`resolved_by`, \
        `resolved_at`, `resolution`) and as a `refund_resolved` operator event. Settled as \
        succeeded, it has the effects of a refund answered at once.",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = String, Path, description = "The refund's id (`rfd_…`).")),
    request_body = inline(ResolveBody),
    responses(
        (status = 200, description = "The refund and its payment as they now stand.",
            body = inline(RefundStateView)),
        (status = 400, description = "A bad status, or no reason (`validation_error`); \
            malformed JSON (`invalid_json`).", body = ErrorBody),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such refund (`not_found`).", body = ErrorBody),
        JsonBody,
        (status = 409, description = "The refund is not unknown (`refund_not_unknown`): \
            already settled.", body = ErrorBody),
    )
)]
async fn resolve_refund(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RefundId>,
    Json(body): Json<ResolveBody>,
) -> Result<Json<RefundStateView>, ApiError> {
    admin(&caller)?;
    let resolution = parse_resolution(&body.status)?;
    let done = state
        .tijori
        .resolve_refund(&caller.user, &id, resolution, &body.reason)
        .await?;
    Ok(Json((&done).into()))
}

pub(crate) fn parse_resolution(status: &str) -> Result<tijori_core::service::Resolution, ApiError> {
    use tijori_core::service::Resolution;
    match status {
        "succeeded" => Ok(Resolution::Succeeded),
        "failed" => Ok(Resolution::Failed),
        _ => Err(ApiError::bad_request(
            "validation_error",
            "status: must be \"succeeded\" or \"failed\"".to_owned(),
        )),
    }
}

/// A background job.
#[derive(Serialize, ToSchema)]
#[schema(as = Job)]
pub(crate) struct JobView {
    pub id: i64,
    #[schema(schema_with = crate::openapi::job_kind)]
    pub kind: JobKind,
    /// What it is for (a payment id for reconcile_payment, a refund id for
    /// check_refund, a mail id for deliver_mail).
    pub payload: String,
    #[schema(schema_with = crate::openapi::job_status)]
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        JobView {
            id: j.id,
            kind: j.kind,
            payload: j.payload.clone(),
            status: j.status,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            last_error: j.last_error.clone(),
            updated_at: j.updated_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobsQuery {
    #[param(schema_with = crate::openapi::job_status_filter)]
    status: Option<String>,
}

#[utoipa::path(
    get, path = "/api/admin/jobs/", tag = "admin", summary = "Background jobs",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(JobsQuery),
    responses(
        (status = 200, description = "Newest first (200 at most).", body = Vec<JobView>),
        (status = 400, description = "Unknown status (`validation_error`).", body = ErrorBody),
        SignedIn,
        AdminOnly,
    )
)]
async fn jobs(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<JobsQuery>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    admin(&caller)?;
    let status = q
        .status
        .map(|s| {
            s.parse::<JobStatus>()
                .map_err(|e| ApiError::bad_request("validation_error", format!("status: {e}")))
        })
        .transpose()?;
    let jobs = state.tijori.jobs(status).await?;
    Ok(Json(jobs.iter().map(JobView::from).collect()))
}

#[utoipa::path(
    post, path = "/api/admin/jobs/{id}/retry/", tag = "admin", summary = "Retry a dead job",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = i64, Path, description = "The job's id.")),
    responses(
        (status = 204, description = "Queued again with fresh attempts."),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such dead job (`not_found`).", body = ErrorBody),
        (status = 409, description = "The same work is already queued \
            (`job_already_queued`).", body = ErrorBody),
    )
)]
async fn retry_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    state.tijori.retry_job(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, if they are an admin. Others get 403: the route's existence is public
/// knowledge (it is in the OpenAPI document), its content is not.
pub(crate) fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "admin_only",
            "this is for operators only",
        ))
    }
}

/// Something that needs a person's attention.
#[derive(Serialize, ToSchema)]
#[schema(as = OperatorEvent)]
pub(crate) struct EventView {
    pub id: i64,
    #[schema(schema_with = crate::openapi::operator_event_kind)]
    pub kind: &'static str,
    pub payment_id: Option<String>,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<&OperatorEvent> for EventView {
    fn from(e: &OperatorEvent) -> Self {
        EventView {
            id: e.id,
            kind: e.kind.as_str(),
            payment_id: e.payment_id.as_ref().map(|p| p.to_string()),
            detail: e.detail.clone(),
            created_at: e.created_at,
            resolved_at: e.resolved_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Include resolved events.
    #[serde(default)]
    #[param(default = false, required = false)]
    all: bool,
}

#[utoipa::path(
    get, path = "/api/admin/events/", tag = "admin", summary = "What needs an operator",
    operation_id = "operator_events",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "Newest first.", body = Vec<EventView>),
        SignedIn,
        AdminOnly,
    )
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    admin(&caller)?;
    let events = state.tijori.operator_events(q.all).await?;
    Ok(Json(events.iter().map(EventView::from).collect()))
}

#[utoipa::path(
    post, path = "/api/admin/events/{id}/resolve/", tag = "admin",
    summary = "Mark an operator event resolved", operation_id = "resolve_operator_event",
    security(("token" = []), ("bearer" = []), ("session" = [], "csrf" = [])),
    params(("id" = i64, Path, description = "The event's id.")),
    responses(
        (status = 204, description = "Resolved."),
        SignedIn,
        AdminWrite,
        (status = 404, description = "No such event (`not_found`).", body = ErrorBody),
    )
)]
async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    state
        .tijori
        .resolve_operator_event_by(&caller.user, id, "")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook a gateway sent tijori.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub(crate) struct DeliveryView {
    pub id: i64,
    pub gateway: String,
    pub event: Option<String>,
    pub reference: Option<String>,
    pub status: Option<String>,
    /// An identical body was delivered before.
    pub duplicate: bool,
    #[schema(examples(
        "verified",
        "already_settled",
        "duplicate",
        "ignored",
        "webhook_contradicted"
    ))]
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub payment_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl From<&WebhookDelivery> for DeliveryView {
    fn from(d: &WebhookDelivery) -> Self {
        DeliveryView {
            id: d.id,
            gateway: d.gateway.clone(),
            event: d.event.clone(),
            reference: d.reference.clone(),
            status: d.status.clone(),
            duplicate: d.duplicate,
            outcome: d.outcome.clone(),
            detail: d.detail.clone(),
            payment_id: d.payment_id.clone(),
            received_at: d.received_at,
        }
    }
}

#[utoipa::path(
    get, path = "/api/admin/webhooks/", tag = "admin", summary = "Recent webhook deliveries",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The 200 newest, duplicates included.",
            body = Vec<DeliveryView>),
        SignedIn,
        AdminOnly,
    )
)]
async fn webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    admin(&caller)?;
    let deliveries = state.tijori.webhook_deliveries().await?;
    Ok(Json(deliveries.iter().map(DeliveryView::from).collect()))
}

/// A mail tijori wrote to a customer.
#[derive(Serialize, ToSchema)]
#[schema(as = OutboxMail)]
pub(crate) struct OutboxView {
    id: String,
    user_id: String,
    to: String,
    subject: String,
    body: String,
    #[schema(schema_with = outbox_status)]
    status: String,
    /// Why the last try failed, while it waits for another.
    error: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

/// (`schema_with` takes no doc comment: the field's words are here.)
fn outbox_status() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["queued", "sent", "kept"]))
        .description(Some(
            "`queued` while being delivered, `sent` through SMTP, `kept` when no SMTP server \
             is configured.",
        ))
}

impl From<tijori_core::mail::OutboxMail> for OutboxView {
    fn from(m: tijori_core::mail::OutboxMail) -> Self {
        OutboxView {
            id: m.id,
            user_id: m.user_id.to_string(),
            to: m.to,
            subject: m.subject,
            body: m.body,
            status: m.status,
            error: m.error,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

/// The customer mail tijori wrote, newest first: sent through SMTP, or kept here when
/// no SMTP server is configured.
#[utoipa::path(
    get, path = "/api/admin/outbox/", tag = "admin", summary = "Customer mail",
    description = "Reminders and notices, newest first: `sent` through SMTP, `kept` when no \
        SMTP server is configured, `queued` while being delivered.",
    security(("token" = []), ("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The 200 newest.", body = Vec<OutboxView>),
        SignedIn,
        AdminOnly,
    )
)]
async fn outbox(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<OutboxView>>, ApiError> {
    admin(&caller)?;
    let mail = state.tijori.outbox(200).await?;
    Ok(Json(mail.into_iter().map(OutboxView::from).collect()))
}
