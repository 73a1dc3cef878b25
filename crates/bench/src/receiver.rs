//! A merchant's receiver for tijori's outgoing events, as the benchmarks run it: it
//! checks each delivery's Standard Webhooks signature, answers 204 at once, and times
//! each event from the moment it happened to its arrival here.
//!
//! "When it happened" is the event's own `timestamp`: the clock reading of the
//! transaction that settled the payment (tijori and this receiver share the machine's
//! clock). It has millisecond precision, so each figure may read up to 1 ms long.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hdrhistogram::Histogram;
use serde::Serialize;
use webhook_out::Secret;

use crate::StepReport;

/// A running receiver. Dropping it does not stop it: it lives as long as the runtime.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

struct Inner {
    secret: Secret,
    seen: Mutex<Seen>,
}

/// What has arrived, kept under one lock: a delivery takes it for a few microseconds.
struct Seen {
    /// `webhook-id`s, to tell a redelivery from a new event (receivers dedupe by it).
    ids: HashSet<String>,
    /// Event timestamp → arrival, in microseconds.
    latency: Histogram<u64>,
    duplicates: u64,
    /// Deliveries whose signature or body did not check out: each is a bug in tijori.
    rejected: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// What the receiver saw, for the report.
#[derive(Debug, Serialize)]
pub struct Deliveries {
    /// Events the flows should have caused (two per paid subscription).
    pub expected: u64,
    /// Distinct events that arrived with a good signature.
    pub delivered: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// From the first delivery to the last.
    pub seconds: f64,
    /// Distinct events per second over `seconds`.
    pub per_second: f64,
    /// From each event's timestamp to its arrival.
    pub latency: StepReport,
}

impl Receiver {
    /// Listens on `listen` for deliveries signed with `secret` (the endpoint's
    /// `whsec_…`), at any path.
    pub async fn start(listen: SocketAddr, secret: &str) -> anyhow::Result<Receiver> {
        let secret = Secret::parse(secret).context("the receiver's secret")?;
        let inner = Arc::new(Inner {
            secret,
            seen: Mutex::new(Seen {
                ids: HashSet::new(),
                latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
                duplicates: 0,
                rejected: 0,
                first: None,
                last: None,
            }),
        });
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("the receiver cannot listen on {listen}"))?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { inner })
    }

    /// Forgets what arrived, for a new run.
    pub(crate) fn reset(&self) {
        let mut seen = self.inner.seen.lock().expect("receiver lock");
        seen.ids.clear();
        seen.latency.reset();
        (seen.duplicates, seen.rejected, seen.first, seen.last) = (0, 0, None, None);
    }

    /// Distinct events received so far.
    pub fn delivered(&self) -> u64 {
        self.inner.seen.lock().expect("receiver lock").ids.len() as u64
    }

    /// Waits until `expected` events arrived, or nothing new arrived for `idle`.
    pub async fn wait_for(&self, expected: u64, idle: Duration) {
        let mut last = (self.delivered(), Instant::now());
        while last.0 < expected && last.1.elapsed() < idle {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.delivered();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
    }

    pub fn report(&self, expected: u64) -> Deliveries {
        let seen = self.inner.seen.lock().expect("receiver lock");
        let seconds = match (seen.first, seen.last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let delivered = seen.ids.len() as u64;
        Deliveries {
            expected,
            delivered,
            duplicates: seen.duplicates,
            rejected: seen.rejected,
            seconds,
            per_second: if seconds > 0.0 {
                delivered as f64 / seconds
            } else {
                0.0
            },
            latency: StepReport::of(&seen.latency),
        }
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("delivered", &self.delivered())
            .finish_non_exhaustive()
    }
}

impl Deliveries {
    pub fn print(&self) {
        println!(
            "  events: {} of {} delivered in {:.1} s, {:.0}/s; {} duplicates, {} rejected",
            self.delivered,
            self.expected,
            self.seconds,
            self.per_second,
            self.duplicates,
            self.rejected
        );
        let l = &self.latency;
        println!(
            "  happened → delivered  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        );
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let arrived = Instant::now();
    let now = chrono::Utc::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let checked = match (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) {
        (Some(id), Some(timestamp), Some(signature)) => webhook_out::verify(
            &[&inner.secret],
            id,
            timestamp,
            signature,
            &body,
            now.timestamp(),
            webhook_out::DEFAULT_TOLERANCE_SECS,
        )
        .ok()
        .and_then(|()| happened(&body))
        .map(|at| (id.to_owned(), at)),
        _ => None,
    };
    let mut seen = inner.seen.lock().expect("receiver lock");
    let Some((id, happened)) = checked else {
        seen.rejected += 1;
        return StatusCode::BAD_REQUEST;
    };
    seen.first.get_or_insert(arrived);
    seen.last = Some(arrived);
    if !seen.ids.insert(id) {
        seen.duplicates += 1;
        return StatusCode::NO_CONTENT;
    }
    let micros = (now - happened).num_microseconds().unwrap_or(i64::MAX);
    seen.latency.saturating_record(micros.max(1) as u64);
    StatusCode::NO_CONTENT
}

/// The event's `timestamp`.
fn happened(body: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    #[derive(serde::Deserialize)]
    struct Event {
        timestamp: chrono::DateTime<chrono::Utc>,
    }
    serde_json::from_slice::<Event>(body)
        .ok()
        .map(|e| e.timestamp)
}
