//! `/admin/webhooks/`: the operator's page for the webhook endpoints that receive
//! tijori's outgoing events: register one, enable or disable it, rotate its secret,
//! send again what it missed, delete it, and see its latest delivery attempts.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Serialize;
use tijori_core::events::{EventType, Wanted, WebhookEndpoint};
use tijori_core::id::WebhookEndpointId;
use tijori_core::service::{NewEndpoint, Redeliver};
use tijori_core::store::EndpointChange;

use super::{api_error_page, require_admin, viewer};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, parse_id, Form, Visitor};
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

async fn page(State(state): State<AppState>, Visitor(session): Visitor) -> Response {
    render(&state, &session, None).await
}

async fn render(
    state: &AppState,
    session: &Option<tijori_core::account::Session>,
    shown: Option<Shown>,
) -> Response {
    if let Err(response) = require_admin(state, session, HERE) {
        return *response;
    }
    let loaded = async {
        let mut rows = Vec::new();
        for e in state.tijori.webhook_endpoints().await? {
            let attempts = state
                .tijori
                .delivery_attempts(&e.id, ATTEMPTS_SHOWN)
                .await?;
            rows.push(row(&e, attempts));
        }
        Ok::<_, tijori_core::Error>(rows)
    }
    .await;
    let endpoints = match loaded {
        Ok(rows) => rows,
        Err(e) => return api_error_page(state, session, e.into()),
    };
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    state.pages.render(
        "admin_webhooks.html",
        context! { viewer => viewer(session), endpoints, types, shown },
    )
}

fn row(e: &WebhookEndpoint, attempts: Vec<tijori_core::events::DeliveryAttempt>) -> EndpointRow {
    EndpointRow {
        id: e.id.to_string(),
        url: e.url.clone(),
        events: match &e.wants {
            Wanted::All => "every event".to_owned(),
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
                    (None, None) => "no answer".to_owned(),
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
    Visitor(session): Visitor,
    Form(fields): Form<Fields>,
) -> Response {
    let s = match require_admin(&state, &session, HERE) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    if let Err(e) = check_csrf_field(s, csrf(&fields)) {
        return api_error_page(&state, &session, e);
    }
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
    match state.tijori.create_webhook_endpoint(new).await {
        Ok((endpoint, secret)) => {
            let shown = Shown {
                endpoint: endpoint.id.to_string(),
                secret,
                rotated: false,
            };
            render(&state, &session, Some(shown)).await
        }
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

/// Checks who asks and the CSRF token, and reads the endpoint's id from the path.
fn checked(
    state: &AppState,
    session: &Option<tijori_core::account::Session>,
    id: &str,
    fields: &Fields,
) -> Result<WebhookEndpointId, Box<Response>> {
    let s = require_admin(state, session, HERE)?;
    check_csrf_field(s, csrf(fields)).map_err(|e| Box::new(api_error_page(state, session, e)))?;
    parse_id(id).map_err(|e| Box::new(api_error_page(state, session, e)))
}

async fn set_enabled(
    state: AppState,
    session: Option<tijori_core::account::Session>,
    id: String,
    fields: Fields,
    enabled: bool,
) -> Response {
    let id = match checked(&state, &session, &id, &fields) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let change = EndpointChange {
        enabled: Some(enabled),
        ..Default::default()
    };
    match state.tijori.update_webhook_endpoint(&id, change).await {
        Ok(_) => Redirect::to(HERE).into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

async fn enable(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    set_enabled(state, session, id, fields, true).await
}

async fn disable(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    set_enabled(state, session, id, fields, false).await
}

/// A new secret, shown once; the old one signs too for a day.
async fn rotate(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let id = match checked(&state, &session, &id, &fields) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state.tijori.rotate_webhook_secret(&id).await {
        Ok(secret) => {
            let shown = Shown {
                endpoint: id.to_string(),
                secret,
                rotated: true,
            };
            render(&state, &session, Some(shown)).await
        }
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

/// Sends again every event of the last `hours` the endpoint did not receive.
async fn redeliver(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let id = match checked(&state, &session, &id, &fields) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let hours: i64 = match fields.get("hours").map(|h| h.trim().parse()) {
        Some(Ok(h)) if (1..=24 * 90).contains(&h) => h,
        _ => {
            let e = ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "validation_error",
                "hours: a number of hours from 1 to 2160 (90 days)",
            );
            return api_error_page(&state, &session, e);
        }
    };
    let since = state.tijori.now() - chrono::Duration::hours(hours);
    match state.tijori.redeliver(&id, Redeliver::Since(since)).await {
        Ok(_) => Redirect::to(HERE).into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}

async fn delete(
    State(state): State<AppState>,
    Visitor(session): Visitor,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let id = match checked(&state, &session, &id, &fields) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match state.tijori.delete_webhook_endpoint(&id).await {
        Ok(()) => Redirect::to(HERE).into_response(),
        Err(e) => api_error_page(&state, &session, e.into()),
    }
}
