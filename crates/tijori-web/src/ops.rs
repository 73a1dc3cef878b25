//! Operations: health, Prometheus metrics, and the OpenAPI document.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(crate::openapi::serve_json))
        .merge(crate::openapi::docs())
}

async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.tijori.store().ping().await.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "health check: database did not answer");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database did not answer",
        )
    })?;
    Ok("ok\n")
}

/// Counts of answered HTTP requests by status class, since start.
#[derive(Default)]
pub struct HttpCounters {
    by_class: [AtomicU64; 5],
}

pub static HTTP: HttpCounters = HttpCounters {
    by_class: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
};

pub async fn count_requests(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    HTTP.by_class[class].fetch_add(1, Ordering::Relaxed);
    response
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    out.push_str(
        "# HELP tijori_build_info The running tijori's version.\n# TYPE tijori_build_info gauge\n",
    );
    out.push_str(&format!(
        "tijori_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str("# HELP tijori_http_responses_total HTTP responses sent, by status class.\n# TYPE tijori_http_responses_total counter\n");
    for (i, n) in HTTP.by_class.iter().enumerate() {
        out.push_str(&format!(
            "tijori_http_responses_total{{class=\"{}xx\"}} {}\n",
            i + 1,
            n.load(Ordering::Relaxed)
        ));
    }
    out.push_str("# HELP tijori_rate_limiter_keys Users or client addresses each rate limiter remembers now (bounded).\n# TYPE tijori_rate_limiter_keys gauge\n");
    for (limiter, keys) in state.limits.sizes() {
        out.push_str(&format!(
            "tijori_rate_limiter_keys{{limiter=\"{limiter}\"}} {keys}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
