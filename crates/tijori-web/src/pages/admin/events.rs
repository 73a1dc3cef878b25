//! `/admin/events/`: the operator's events, open or all, each resolved with a note of
//! what was done and the name of who did it (kept on the event and shown).

use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{back_in_admin, Admin, Page, PageResult};
use crate::error::ApiError;
use crate::extract::{check_csrf_field, Form};
use crate::AppState;

const HERE: &str = "/admin/events/";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(HERE, get(page))
        .route("/admin/events/{id}/resolve", post(resolve))
}

#[derive(Deserialize)]
struct Which {
    /// "1": resolved ones too.
    #[serde(default)]
    all: Option<String>,
}

#[derive(Serialize)]
struct EventRow {
    id: i64,
    kind: &'static str,
    payment_id: Option<String>,
    detail: String,
    created_at: String,
    resolved_at: Option<String>,
    resolved_by: Option<String>,
    resolution: Option<String>,
}

async fn page(State(state): State<AppState>, _: Admin, Query(which): Query<Which>) -> PageResult {
    let all = which.all.as_deref() == Some("1");
    let t = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events: Vec<EventRow> = state
        .tijori
        .operator_events(all)
        .await?
        .into_iter()
        .map(|e| EventRow {
            id: e.id,
            kind: e.kind.as_str(),
            payment_id: e.payment_id.map(|p| p.to_string()),
            detail: e.detail,
            created_at: t(e.created_at),
            resolved_at: e.resolved_at.map(t),
            resolved_by: e.resolved_by,
            resolution: e.resolution,
        })
        .collect();
    Ok(Page::new("admin_events.html", context! { events, all }))
}

#[derive(Deserialize)]
struct ResolveForm {
    csrf_token: String,
    /// What the operator did or found.
    #[serde(default)]
    note: String,
    /// The page to go back to (the overview, the events, a payment's page).
    #[serde(default)]
    back: Option<String>,
}

/// Resolves an event with the operator's note; back where the form was.
async fn resolve(
    State(state): State<AppState>,
    Admin(s): Admin,
    Path(id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> PageResult<Redirect> {
    check_csrf_field(&s, &form.csrf_token)?;
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::not_found("operator event"))?;
    state
        .tijori
        .resolve_operator_event_by(&s.user, id, &form.note)
        .await?;
    Ok(Redirect::to(&back_in_admin(
        form.back.as_deref(),
        "/admin/",
    )))
}
