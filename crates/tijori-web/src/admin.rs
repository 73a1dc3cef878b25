//! The operator's API: what needs a person's attention, and the webhook log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tijori_core::jobs::{Job, JobKind, JobStatus};
use tijori_core::store::{OperatorEvent, WebhookDelivery};

use crate::error::ApiError;
use crate::extract::{Caller, Json, PathId};
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
#[derive(Serialize)]
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
async fn recheck_refund(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RefundId>,
) -> Result<Json<RefundStateView>, ApiError> {
    admin(&caller)?;
    let done = state.tijori.recheck_refund(&caller.user, &id).await?;
    Ok(Json((&done).into()))
}

#[derive(Deserialize)]
struct ResolveBody {
    /// `succeeded` or `failed`.
    status: String,
    reason: String,
}

/// Settles an unknown refund by hand, with the reason kept in the audit trail.
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

#[derive(Serialize)]
pub(crate) struct JobView {
    pub id: i64,
    pub kind: JobKind,
    pub payload: String,
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

#[derive(Deserialize)]
struct JobsQuery {
    status: Option<String>,
}

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

#[derive(Serialize)]
pub(crate) struct EventView {
    pub id: i64,
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

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    all: bool,
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    admin(&caller)?;
    let events = state.tijori.operator_events(q.all).await?;
    Ok(Json(events.iter().map(EventView::from).collect()))
}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    state.tijori.resolve_operator_event(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub(crate) struct DeliveryView {
    pub id: i64,
    pub gateway: String,
    pub event: Option<String>,
    pub reference: Option<String>,
    pub status: Option<String>,
    pub duplicate: bool,
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

async fn webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    admin(&caller)?;
    let deliveries = state.tijori.webhook_deliveries().await?;
    Ok(Json(deliveries.iter().map(DeliveryView::from).collect()))
}

/// The customer mail tijori wrote, newest first: sent through SMTP, or kept here when
/// no SMTP server is configured.
async fn outbox(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<tijori_core::mail::OutboxMail>>, ApiError> {
    admin(&caller)?;
    Ok(Json(state.tijori.outbox(200).await?))
}
