//! Operations: liveness and readiness, Prometheus metrics, and the OpenAPI document.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use serde::Serialize;
use tijori_core::store::Gauges;
use tijori_core::telemetry;

use crate::error::ApiError;
use crate::AppState;

/// How long this process's worker may go without going round its loop before the
/// process is not ready: its loop turns at least every second when idle, and at
/// every finished job when busy; a minute without is a stuck worker.
const WORKER_STALE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// How long `/readyz` waits for the database: a probe must be answered quickly, and a
/// database that takes longer is not one to send traffic to.
const READINESS_DATABASE_WAIT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    probes()
        .route("/api/openapi.json", get(crate::openapi::serve_json))
        .merge(crate::openapi::docs())
}

/// The probes and the metrics alone: what a separate worker serves.
pub fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process answers: nothing else is checked (a load balancer's restart probe
/// must not restart a healthy process because its database is away).
async fn livez() -> &'static str {
    "ok\n"
}

/// Kept for earlier deployments' probes: the database answers.
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

/// `/readyz`'s answer: each check, and each gateway's last call for the operator to
/// see (a gateway's outage is not a reason to take this process out of rotation).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// Whether every check passed.
    ready: bool,
    /// Reachable within 2 s and holding this build's migrations.
    database: Check,
    /// This process's worker went round its loop in the last minute (ok when the
    /// process runs none).
    worker: Check,
    /// Each configured gateway's last call since start.
    gateways: Vec<GatewayCall>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Check {
    ok: bool,
    /// What was found, in words.
    detail: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct GatewayCall {
    /// `khalti`, `esewa` or `chapa`.
    gateway: &'static str,
    /// `initiate`, `lookup`, `refund` or `capture_token`; absent before the first call.
    last_operation: Option<&'static str>,
    /// `ok`, or the kind of failure (`timeout`, `unreachable`, `unavailable`,
    /// `rejected`, `unauthorized`, `not_found`, `bad_answer`).
    last_outcome: Option<&'static str>,
    last_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long that call took, in milliseconds.
    #[schema(value_type = Option<u64>)]
    last_took_ms: Option<u128>,
}

/// Ready to serve: the database answers and holds this build's migrations, and this
/// process's worker (when it runs one) is going round. 503 with the same body when
/// not, so the operator reads why.
async fn readyz(State(state): State<AppState>) -> Response {
    let tijori = &state.tijori;
    let database = match tokio::time::timeout(READINESS_DATABASE_WAIT, tijori.store().migrated())
        .await
    {
        Err(_) => Check {
            ok: false,
            detail: format!(
                "did not answer within {} s",
                READINESS_DATABASE_WAIT.as_secs()
            ),
        },
        Ok(Ok(true)) => Check {
            ok: true,
            detail: "reachable and migrated".into(),
        },
        Ok(Ok(false)) => Check {
            ok: false,
            detail: "reachable, but behind this build's migrations: run `tijori migrate`".into(),
        },
        Ok(Err(e)) => {
            // The cause (hosts, ports) is the log's: anyone may ask /readyz.
            tracing::warn!(error = %format!("{e:#}"), "readiness: database did not answer");
            Check {
                ok: false,
                detail: "did not answer (the log says why)".into(),
            }
        }
    };
    let worker = match tijori.worker_last_seen() {
        None => Check {
            ok: true,
            detail: "none in this process".into(),
        },
        Some(seen) => {
            let age = tijori.now() - seen;
            Check {
                ok: age <= WORKER_STALE_AFTER,
                detail: format!("last went round {} s ago", age.num_seconds()),
            }
        }
    };
    let last = tijori.gateways().health().last_calls();
    let mut gateways: Vec<GatewayCall> = tijori
        .gateways()
        .iter()
        .map(|g| {
            let call = last.get(&g.kind());
            GatewayCall {
                gateway: g.kind().as_str(),
                last_operation: call.map(|c| c.operation),
                last_outcome: call.map(|c| c.outcome),
                last_at: call.map(|c| c.at),
                last_took_ms: call.map(|c| c.took.as_millis()),
            }
        })
        .collect();
    gateways.sort_by_key(|g| g.gateway);
    let ready = database.ok && worker.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        database,
        worker,
        gateways,
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// What `/metrics` shows: the process's counters and histograms, recorded where
/// things happen, and this app's gauges, read at each scrape. The gauges are the
/// app's own (its database, its streams, its limiters): kept in a recorder of its own
/// so that two apps in one process (the tests) do not overwrite each other's.
pub struct Metrics {
    process: PrometheusHandle,
    scraped: PrometheusRecorder,
    /// The database's counts and when they were read: reused for a second, so that
    /// however often `/metrics` is asked (anyone may ask), the database counts at
    /// most once a second.
    counted: tokio::sync::Mutex<Option<(Instant, Gauges)>>,
}

/// How long the database's counts are reused between scrapes.
const GAUGES_REUSED_FOR: Duration = Duration::from_secs(1);

impl Metrics {
    pub fn new() -> Self {
        let scraped = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&scraped, || {
            telemetry::describe();
            metrics::describe_gauge!(
                RATE_LIMITER_KEYS,
                "Users or client addresses each rate limiter remembers now (bounded)."
            );
        });
        Metrics {
            process: prometheus(),
            scraped,
            counted: tokio::sync::Mutex::new(None),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

const RATE_LIMITER_KEYS: &str = "tijori_rate_limiter_keys";

/// The process's Prometheus recorder, installed the first time it is asked for (the
/// `metrics` facade has one recorder per process; every `Application` in it shares
/// it). A thread drains the histograms every few seconds, so that samples do not pile
/// up in memory when nobody scrapes.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for name in [
                telemetry::GATEWAY_DURATION,
                telemetry::HTTP_DURATION,
                telemetry::SQLITE_BATCH,
                telemetry::SQLITE_COMMIT,
            ] {
                builder = builder
                    .set_buckets_for_metric(
                        Matcher::Full(name.to_owned()),
                        telemetry::buckets(name),
                    )
                    .expect("the buckets are not empty");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    telemetry::describe();
                    metrics::describe_gauge!("tijori_build_info", "The running tijori's version.");
                }
                Err(e) => tracing::warn!(error = %e, "another metrics recorder is installed: /metrics shows only what this one sees"),
            }
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread: histograms are drained at each scrape only");
            }
            metrics::gauge!("tijori_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// The header a request's id comes in (from a proxy or the client) and goes back in.
const REQUEST_ID: &str = "x-request-id";

/// The most of a request's path its log lines carry.
const MAX_LOGGED_PATH: usize = 256;

/// The longest request id taken from a request; a longer one is replaced.
const MAX_REQUEST_ID: usize = 64;

/// A request id sent with the request is kept (so a proxy's id follows the request
/// through tijori's logs) only when it is short and plain: letters, digits, `-`, `_`,
/// `.`. Any other is dropped, and one is made, as for a request without: a stranger
/// chooses it, and it goes into every log line of the request.
pub async fn drop_unusable_request_id(mut request: Request, next: Next) -> Response {
    let usable = request.headers().get(REQUEST_ID).is_none_or(|v| {
        let v = v.as_bytes();
        !v.is_empty()
            && v.len() <= MAX_REQUEST_ID
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    });
    if !usable {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// The span every request's log lines happen in: its id (`X-Request-Id`, set by the
/// layer before this one), method and path, and the user once the request names one
/// (`record_user`).
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A stranger chooses the path's length: every line of the request carries it.
    let path = request.uri().path();
    let path = path.get(..MAX_LOGGED_PATH).unwrap_or(path);
    tracing::info_span!(
        "request",
        request_id = id,
        method = %request.method(),
        path,
        user_id = tracing::field::Empty,
    )
}

/// Names the request's user on its span, for every line logged after.
pub(crate) fn record_user(user: &tijori_core::account::User) {
    tracing::Span::current().record("user_id", user.id.as_str());
}

/// Counts and times every answered request by its route template (never the raw
/// path: a stranger chooses that, and each value would be a new series), method and
/// status class.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let class = match response.status().as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(
        telemetry::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => class,
    )
    .increment(1);
    metrics::histogram!(
        telemetry::HTTP_DURATION,
        "route" => route,
        "method" => method,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard ones by name, any other as `other` (a
/// stranger may send any token as a method).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The Prometheus exposition: counters and histograms as recorded, and the gauges
/// read now (counts from the database's partial indexes, this process's streams,
/// its worker's heartbeat, its rate limiters' sizes).
async fn metrics(State(state): State<AppState>) -> Response {
    let tijori = &state.tijori;
    // Without the database's counts the rest is still shown (the requests, gateway
    // calls and jobs matter most then), with `tijori_database_gauges_up 0` and the
    // database gauges as last counted.
    let gauges = match tokio::time::timeout(READINESS_DATABASE_WAIT, counted(&state)).await {
        Ok(Ok(gauges)) => Some(gauges),
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "metrics: the database did not count");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: the database did not count in time");
            None
        }
    };
    let scraped = &state.metrics.scraped;
    metrics::with_local_recorder(scraped, || {
        metrics::gauge!(telemetry::DATABASE_GAUGES_UP).set(if gauges.is_some() {
            1.0
        } else {
            0.0
        });
        if let Some(gauges) = gauges {
            let set = |name: &'static str, value: i64| metrics::gauge!(name).set(value as f64);
            set(telemetry::PAYMENTS_OPEN, gauges.payments_open);
            set(telemetry::PAYMENTS_OVERDUE, gauges.payments_overdue);
            set(telemetry::PAYMENTS_HELD, gauges.payments_held);
            metrics::gauge!(telemetry::JOBS_DEAD, "class" => "deliveries")
                .set(gauges.deliveries_dead as f64);
            metrics::gauge!(telemetry::JOBS_DEAD, "class" => "other")
                .set(gauges.other_jobs_dead as f64);
            metrics::gauge!(telemetry::JOBS_QUEUED, "class" => "deliveries")
                .set(gauges.deliveries_queued as f64);
            metrics::gauge!(telemetry::JOBS_QUEUED, "class" => "other")
                .set(gauges.other_jobs_queued as f64);
        }
        metrics::gauge!(telemetry::LIVE_SUBSCRIBERS).set(tijori.live_watchers() as f64);
        if let Some(seen) = tijori.worker_last_seen() {
            let age = (tijori.now() - seen).num_milliseconds() as f64 / 1000.0;
            metrics::gauge!(telemetry::WORKER_HEARTBEAT_AGE).set(age);
        }
        for (limiter, keys) in state.limits.sizes() {
            metrics::gauge!(RATE_LIMITER_KEYS, "limiter" => limiter).set(keys as f64);
        }
    });
    // Two expositions, one after the other: no series is in both.
    let mut body = state.metrics.process.render();
    body.push_str(&scraped.handle().render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The database's counts, reused for a second (see `Metrics::counted`).
async fn counted(state: &AppState) -> tijori_core::Result<Gauges> {
    // Held while counting: scrapes that arrive meanwhile wait for this count.
    let mut counted = state.metrics.counted.lock().await;
    match *counted {
        Some((at, gauges)) if at.elapsed() < GAUGES_REUSED_FOR => Ok(gauges),
        _ => {
            let gauges = state.tijori.gauges().await?;
            *counted = Some((Instant::now(), gauges));
            Ok(gauges)
        }
    }
}
