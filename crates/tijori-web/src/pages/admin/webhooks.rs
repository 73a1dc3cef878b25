//! `/admin/webhooks/`: the operator's page for the webhook endpoints that receive
//! tijori's outgoing events: register one, enable or disable it, rotate its secret,
//! send again what it missed, delete it, and see its latest delivery attempts.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Serialize;
use tijori_core::account::Session;
use tijori_core::events::{EventType, Wanted, WebhookEndpoint};
use tijori_core::id::WebhookEndpointId;
use tijori_core::service::{NewEndpoint, Redeliver};
use tijori_core::store::EndpointChange;

use super::super::{Admin, Page, PageResult};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, parse_id, Form};
use crate::i18n::tr;
use crate::AppState;

const HERE: &str = "/admin/webhooks/";

/// How many attempts the page shows per endpoint.
const ATTEMPTS_SHOWN: u32 = 10;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(HERE, get(page).post(create))
        .route("/admin/webhooks/{id}/enable", post(enable))
        .route("/admin/webhooks/{id}/disable", post(disable))
        .route("/admin/webhooks/{id}/rotate-secret", post(rotate))
        .route("/admin/webhooks/{id}/redeliver", post(redeliver))
        .route("/admin/webhooks/{id}/delete", post(delete))
}

#[derive(Serialize)]
struct AttemptRow {
    event_id: String,
    attempt: u32,
    attempted_at: DateTime<Utc>,
    outcome: String,
    delivered: bool,
    duration_ms: u64,
    response: String,
}

#[derive(Serialize)]
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failing_since: Option<DateTime<Utc>>,
    attempts: Vec<AttemptRow>,
}

/// A secret to show once, and for which endpoint.
#[derive(Serialize)]
struct Shown {
    endpoint: String,
    secret: String,
    rotated: bool,
}

async fn page(State(state): State<AppState>, _: Admin) -> PageResult {
    render(&state, None).await
}

async fn render(state: &AppState, shown: Option<Shown>) -> PageResult {
    let mut endpoints = Vec::new();
    for e in state.tijori.webhook_endpoints().await? {
        let attempts = state
            .tijori
            .delivery_attempts(&e.id, ATTEMPTS_SHOWN)
            .await?;
        endpoints.push(row(&e, attempts));
    }
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    Ok(Page::new(
        "admin_webhooks.html",
        context! { endpoints, types, shown },
    ))
}

fn row(e: &WebhookEndpoint, attempts: Vec<tijori_core::events::DeliveryAttempt>) -> EndpointRow {
    EndpointRow {
        id: e.id.to_string(),
        url: e.url.clone(),
        events: match &e.wants {
            Wanted::All => tr("every event").to_owned(),
            Wanted::Only(_) => e.wants.names().join(", "),
        },
        description: e.description.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptRow {
                event_id: a.event.to_string(),
                attempt: a.attempt,
                attempted_at: a.attempted_at,
                outcome: match (&a.error, a.http_status) {
                    (Some(e), _) => e.clone(),
                    (None, Some(s)) => format!("HTTP {s}"),
                    (None, None) => tr("no answer").to_owned(),
                },
                delivered: a.delivered,
                duration_ms: a.duration_ms,
                response: a.response,
            })
            .collect(),
    }
}

/// The form's fields by name (`event:<type>` for each box ticked).
type Fields = HashMap<String, String>;

fn csrf(fields: &Fields) -> &str {
    fields.get("csrf_token").map_or("", String::as_str)
}

/// Registers an endpoint and shows its secret, once.
async fn create(
    State(state): State<AppState>,
    Admin(s): Admin,
    Form(fields): Form<Fields>,
) -> PageResult {
    check_csrf_field(&s, csrf(&fields))?;
    let ticked: Vec<&str> = EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .filter(|t| fields.contains_key(&format!("event:{t}")))
        .collect();
    let new = NewEndpoint {
        url: fields.get("url").cloned().unwrap_or_default(),
        // No box ticked: every event.
        wants: Wanted::parse(Some(&ticked)).unwrap_or(Wanted::All),
        description: fields.get("description").cloned().unwrap_or_default(),
    };
    let (endpoint, secret) = state.tijori.create_webhook_endpoint(new).await?;
    let shown = Shown {
        endpoint: endpoint.id.to_string(),
        secret,
        rotated: false,
    };
    render(&state, Some(shown)).await
}

/// Checks the CSRF token, and reads the endpoint's id from the path.
fn checked(s: &Session, id: &str, fields: &Fields) -> Result<WebhookEndpointId, ApiError> {
    check_csrf_field(s, csrf(fields))?;
    parse_id(id)
}

async fn set_enabled(
    state: AppState,
    s: Session,
    id: String,
    fields: Fields,
    enabled: bool,
) -> PageResult<Redirect> {
    let id = checked(&s, &id, &fields)?;
    let change = EndpointChange {
        enabled: Some(enabled),
        ..Default::default()
    };
    state.tijori.update_webhook_endpoint(&id, change).await?;
    Ok(Redirect::to(HERE))
}

async fn enable(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult<Redirect> {
    set_enabled(state, s, id, fields, true).await
}

async fn disable(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult<Redirect> {
    set_enabled(state, s, id, fields, false).await
}

/// A new secret, shown once; the old one signs too for a day.
async fn rotate(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult {
    let id = checked(&s, &id, &fields)?;
    let secret = state.tijori.rotate_webhook_secret(&id).await?;
    let shown = Shown {
        endpoint: id.to_string(),
        secret,
        rotated: true,
    };
    render(&state, Some(shown)).await
}

/// Sends again every event of the last `hours` the endpoint did not receive.
async fn redeliver(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult<Redirect> {
    let id = checked(&s, &id, &fields)?;
    let hours: i64 = match fields.get("hours").map(|h| h.trim().parse()) {
        Some(Ok(h)) if (1..=24 * 90).contains(&h) => h,
        _ => {
            return Err(ApiError::bad_request(
                "validation_error",
                "hours: a number of hours from 1 to 2160 (90 days)",
            )
            .into())
        }
    };
    let since = state.tijori.now() - chrono::Duration::hours(hours);
    state.tijori.redeliver(&id, Redeliver::Since(since)).await?;
    Ok(Redirect::to(HERE))
}

async fn delete(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> PageResult<Redirect> {
    let id = checked(&s, &id, &fields)?;
    state.tijori.delete_webhook_endpoint(&id).await?;
    Ok(Redirect::to(HERE))
}
