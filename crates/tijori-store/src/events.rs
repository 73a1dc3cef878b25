//! Outgoing events: the outbox each change writes its events to, the merchant's
//! webhook endpoints, and every try at delivering an event. Every statement once, for
//! both backends (see `db.rs`).
//!
//! A delivery is a job (`deliver_event`, payload `evt_… we_…`) in the jobs table, so
//! it is leased, retried and survives a restart like every other job; an event's
//! deliveries are queued in the transaction that writes the event, one per enabled
//! endpoint that wants its type.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use tijori_core::events::{
    DeliveryAttempt, EndpointSecrets, Event, EventType, FinishedDelivery, NewEvent, Wanted,
    WebhookEndpoint, MAX_ATTEMPTS,
};
use tijori_core::id::{EventId, OrderId, PaymentId, RefundId, UserId, WebhookEndpointId};
use tijori_core::jobs::JobKind;
use tijori_core::store::{EndpointChange, StoreError, StoreResult};

use crate::db::{ctx, query, Backend, Conn, Params};
use crate::rows::{corrupt, opt_time, time, FromSqlite};

/// The delivery job of an event to an endpoint carries the event's id, a space and
/// the endpoint's id (`jobs::DeliverEvent`'s encoding); SQL builds it from `$1` (the
/// event) and `e.id` (each endpoint).
const DELIVERY_PAYLOAD: &str = "$1 || ' ' || e.id";

/// Writes `events` in the caller's transaction, with a delivery job for each enabled
/// endpoint that wants each one; returns how many deliveries were queued.
pub(crate) async fn emit<C: Conn>(
    c: &mut C,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    match C::BACKEND {
        // All of them and their deliveries in one round trip (a settle writes two).
        Backend::Postgres if !events.is_empty() => insert_events_at_once(c, events, now).await,
        Backend::Postgres => Ok(0),
        // SQLite's writer is in-process, where a statement costs microseconds.
        Backend::Sqlite => {
            let mut queued = 0;
            for event in events {
                queued += insert_event(c, event, now).await?;
            }
            Ok(queued)
        }
    }
}

/// The same conflict rule as `insert_job`: a delivery already queued or running is
/// not queued twice.
const DELIVERIES: &str = "INSERT INTO jobs (kind, payload, unique_key, status, attempts, \
     max_attempts, run_at, created_at, updated_at) \
     SELECT {kind}, {payload}, {payload}, 'queued', 0, {attempts}, {now}, {now}, {now} \
     FROM {events}webhook_endpoints e WHERE e.enabled AND (e.event_types IS NULL OR {wants}) \
     ON CONFLICT (kind, unique_key) \
     WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING";

/// SQLite: one event and its deliveries, in two statements; how many deliveries.
async fn insert_event<C: Conn>(c: &mut C, e: &NewEvent, now: DateTime<Utc>) -> StoreResult<u64> {
    let insert = "INSERT INTO events (id, type, user_id, payment_id, order_id, refund_id, \
                  body, created_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)";
    static DELIVERIES_OF_ONE: LazyLock<String> = LazyLock::new(|| {
        DELIVERIES
            .replace("{kind}", "$9")
            .replace("{payload}", DELIVERY_PAYLOAD)
            .replace("{attempts}", "$10")
            .replace("{now}", "$7")
            .replace("{events}", "")
            .replace("{wants}", "instr(e.event_types, $8) > 0")
    });
    let needle = Wanted::needle(e.kind);
    // The last statement's count is the deliveries'.
    let mut queued = 0;
    for sql in [insert, DELIVERIES_OF_ONE.as_str()] {
        queued = query(sql)
            .bind(e.id.as_str())
            .bind(e.kind.as_str())
            .bind(e.user.as_ref().map(UserId::as_str))
            .bind(e.payment.as_ref().map(PaymentId::as_str))
            .bind(e.order.as_ref().map(OrderId::as_str))
            .bind(e.refund.as_ref().map(RefundId::as_str))
            .bind(now)
            .bind(needle.as_str())
            .bind(JobKind::DeliverEvent.as_str())
            .bind(i64::from(MAX_ATTEMPTS))
            .execute(c)
            .await
            .map_err(ctx("failed to write an event"))?;
    }
    Ok(queued)
}

/// PostgreSQL: every event and all their deliveries in one statement; how many
/// deliveries. The events are rows of a `VALUES` list, not arrays: PostgreSQL plans
/// a statement over arrays again at every call (a custom plan for the arrays'
/// lengths: 200 µs, more than the statement's work), and one with a list of a given
/// length once per connection.
async fn insert_events_at_once(
    c: &mut impl Conn,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let needles: Vec<String> = events.iter().map(|e| Wanted::needle(e.kind)).collect();
    let mut p = Params::default();
    let mut rows = Vec::with_capacity(events.len());
    for (e, needle) in events.iter().zip(&needles) {
        rows.push(format!(
            "({}, {}, {}, {}, {}, {}, {})",
            p.add(e.id.as_str()),
            p.add(e.kind.as_str()),
            p.add(e.user.as_ref().map(UserId::as_str)),
            p.add(e.payment.as_ref().map(PaymentId::as_str)),
            p.add(e.order.as_ref().map(OrderId::as_str)),
            p.add(e.refund.as_ref().map(RefundId::as_str)),
            p.add(needle.as_str()),
        ));
    }
    let now = p.add(now);
    let deliveries = DELIVERIES
        .replace("{kind}", &p.add(JobKind::DeliverEvent.as_str()))
        .replace("{payload}", "n.id || ' ' || e.id")
        .replace("{attempts}", &p.add(i64::from(MAX_ATTEMPTS)))
        .replace("{now}", &now)
        .replace("{events}", "new n, ")
        .replace("{wants}", "strpos(e.event_types, n.needle) > 0");
    let sql = format!(
        "WITH new (id, type, user_id, payment_id, order_id, refund_id, needle) AS \
         (VALUES {}), \
         event AS (INSERT INTO events (id, type, user_id, payment_id, order_id, refund_id, \
         body, created_at) SELECT id, type, user_id, payment_id, order_id, refund_id, NULL, \
         {now} FROM new) \
         {deliveries}",
        rows.join(", ")
    );
    p.query(&sql)
        .execute(c)
        .await
        .map_err(ctx("failed to write events"))
}

// --- endpoints ----------------------------------------------------------------------

const ENDPOINT_COLUMNS: &str = "id, url, event_types, description, enabled, disabled_reason, \
     secret, previous_secret, previous_secret_until, failing_since, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    url: String,
    event_types: Option<String>,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<DateTime<Utc>>,
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl FromSqlite for EndpointRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(EndpointRow {
            id: r.get("id")?,
            url: r.get("url")?,
            event_types: r.get("event_types")?,
            description: r.get("description")?,
            enabled: r.get("enabled")?,
            disabled_reason: r.get("disabled_reason")?,
            secret: r.get("secret")?,
            previous_secret: r.get("previous_secret")?,
            previous_secret_until: opt_time(r, "previous_secret_until")?,
            failing_since: opt_time(r, "failing_since")?,
            created_at: time(r, "created_at")?,
            updated_at: time(r, "updated_at")?,
        })
    }
}

impl EndpointRow {
    fn split(self) -> (WebhookEndpoint, EndpointSecrets) {
        (
            WebhookEndpoint {
                id: WebhookEndpointId::from_trusted(self.id),
                url: self.url,
                wants: Wanted::from_stored(self.event_types.as_deref()),
                description: self.description,
                enabled: self.enabled,
                disabled_reason: self.disabled_reason,
                failing_since: self.failing_since,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            EndpointSecrets {
                current: self.secret,
                previous: self.previous_secret,
                previous_until: self.previous_secret_until,
            },
        )
    }
}

pub(crate) async fn create_endpoint(
    c: &mut impl Conn,
    endpoint: &WebhookEndpoint,
    secret: &str,
) -> StoreResult<()> {
    query(&format!(
        "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, $8, $9)"
    ))
    .bind(endpoint.id.as_str())
    .bind(&endpoint.url)
    .bind(&endpoint.wants.stored())
    .bind(&endpoint.description)
    .bind(endpoint.enabled)
    .bind(&endpoint.disabled_reason)
    .bind(secret)
    .bind(endpoint.created_at)
    .bind(endpoint.updated_at)
    .execute(c)
    .await
    .map_err(ctx("failed to create a webhook endpoint"))?;
    Ok(())
}

pub(crate) async fn endpoints(c: &mut impl Conn) -> StoreResult<Vec<WebhookEndpoint>> {
    Ok(query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
    ))
    .fetch_all::<EndpointRow>(c)
    .await
    .map_err(ctx("failed to list webhook endpoints"))?
    .into_iter()
    .map(|r| r.split().0)
    .collect())
}

pub(crate) async fn endpoint(
    c: &mut impl Conn,
    id: &WebhookEndpointId,
) -> StoreResult<Option<(WebhookEndpoint, EndpointSecrets)>> {
    Ok(query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional::<EndpointRow>(c)
    .await
    .map_err(ctx("failed to load a webhook endpoint"))?
    .map(EndpointRow::split))
}

/// Applies an operator's change; `None` for an unknown endpoint. Enabling one clears
/// why tijori disabled it and its run of failures (it starts afresh).
pub(crate) async fn update_endpoint(
    c: &mut impl Conn,
    id: &WebhookEndpointId,
    change: &EndpointChange,
    now: DateTime<Utc>,
) -> StoreResult<Option<WebhookEndpoint>> {
    let wants = change.wants.as_ref().map(Wanted::stored);
    Ok(query(&format!(
        "UPDATE webhook_endpoints SET \
         url = COALESCE($2, url), \
         event_types = CASE WHEN $3 THEN $4 ELSE event_types END, \
         description = COALESCE($5, description), \
         enabled = CASE WHEN $6 THEN $8 ELSE enabled END, \
         disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END, \
         failing_since = CASE WHEN $6 AND $8 THEN NULL ELSE failing_since END, \
         updated_at = $7 \
         WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(id.as_str())
    .bind(change.url.as_deref())
    .bind(wants.is_some())
    .bind(wants.flatten().as_deref())
    .bind(change.description.as_deref())
    .bind(change.enabled.is_some())
    .bind(now)
    .bind(change.enabled.unwrap_or(false))
    .fetch_optional::<EndpointRow>(c)
    .await
    .map_err(ctx("failed to change a webhook endpoint"))?
    .map(|r| r.split().0))
}

/// Deletes an endpoint with its attempts; the deliveries still queued for it find it
/// gone and finish. `false` for an unknown one.
pub(crate) async fn delete_endpoint(
    c: &mut impl Conn,
    id: &WebhookEndpointId,
) -> StoreResult<bool> {
    Ok(query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(id.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to delete a webhook endpoint"))?
        == 1)
}

/// Makes `secret` the endpoint's secret; the one it replaces signs until
/// `previous_until`. A second rotation while the first one's old secret still signs
/// keeps that old secret (and its end) and drops the one the first rotation made: the
/// merchant's receiver most likely still holds the old one (a retried call or a
/// reloaded page rotates twice), and losing it would fail every delivery until the
/// receiver is updated. `false` for an unknown endpoint.
pub(crate) async fn rotate_secret(
    c: &mut impl Conn,
    id: &WebhookEndpointId,
    secret: &str,
    previous_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    Ok(query(
        "UPDATE webhook_endpoints SET \
         previous_secret = CASE WHEN previous_secret_until > $4 \
             THEN previous_secret ELSE secret END, \
         previous_secret_until = CASE WHEN previous_secret_until > $4 \
             THEN previous_secret_until ELSE $3 END, \
         secret = $2, updated_at = $4 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(secret)
    .bind(previous_until)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to rotate a webhook endpoint's secret"))?
        == 1)
}

/// Disables an endpoint tijori gave up on, saying why; `false` if it was not enabled
/// (disabled already, by an operator or a concurrent delivery).
pub(crate) async fn disable_failing(
    c: &mut impl Conn,
    id: &WebhookEndpointId,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    Ok(query(
        "UPDATE webhook_endpoints SET enabled = $2, disabled_reason = $3, updated_at = $4 \
         WHERE id = $1 AND enabled",
    )
    .bind(id.as_str())
    .bind(false)
    .bind(reason)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to disable a webhook endpoint"))?
        == 1)
}

// --- events -------------------------------------------------------------------------

const EVENT_COLUMNS: &str = "id, type, user_id, payment_id, order_id, refund_id, body, created_at";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    user_id: Option<String>,
    payment_id: Option<String>,
    order_id: Option<String>,
    refund_id: Option<String>,
    body: Option<String>,
    created_at: DateTime<Utc>,
}

impl FromSqlite for EventRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(EventRow {
            id: r.get("id")?,
            kind: r.get("type")?,
            user_id: r.get("user_id")?,
            payment_id: r.get("payment_id")?,
            order_id: r.get("order_id")?,
            refund_id: r.get("refund_id")?,
            body: r.get("body")?,
            created_at: time(r, "created_at")?,
        })
    }
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(r: EventRow) -> StoreResult<Event> {
        Ok(Event {
            kind: EventType::parse(&r.kind).ok_or_else(|| corrupt("event type", &r.kind))?,
            id: EventId::from_trusted(r.id),
            user: r.user_id.map(UserId::from_trusted),
            payment: r.payment_id.map(PaymentId::from_trusted),
            order: r.order_id.map(OrderId::from_trusted),
            refund: r.refund_id.map(RefundId::from_trusted),
            body: r.body,
            created_at: r.created_at,
        })
    }
}

pub(crate) async fn event(c: &mut impl Conn, id: &EventId) -> StoreResult<Option<Event>> {
    query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional::<EventRow>(c)
        .await
        .map_err(ctx("failed to load an event"))?
        .map(Event::try_from)
        .transpose()
}

/// Events from `since` on, newest first.
pub(crate) async fn events(
    c: &mut impl Conn,
    since: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Event>> {
    query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE created_at >= $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all::<EventRow>(c)
    .await
    .map_err(ctx("failed to list events"))?
    .into_iter()
    .map(Event::try_from)
    .collect()
}

/// Keeps `body` as the event's body unless one was kept before.
async fn keep_first_body(c: &mut impl Conn, id: &EventId, body: &str) -> StoreResult<()> {
    query("UPDATE events SET body = $2 WHERE id = $1 AND body IS NULL")
        .bind(id.as_str())
        .bind(body)
        .execute(c)
        .await
        .map_err(ctx("failed to keep an event's body"))?;
    Ok(())
}

/// `EventStore::finish_delivery`, in the caller's transaction.
pub(crate) async fn finish_delivery(
    c: &mut impl Conn,
    f: &FinishedDelivery,
) -> StoreResult<(Option<DateTime<Utc>>, bool)> {
    let now = f.attempt.attempted_at;
    if let Some(body) = &f.body {
        keep_first_body(c, &f.attempt.event, body).await?;
    }
    let failing_since = record_attempt(c, &f.attempt).await?;
    let held = if f.attempt.delivered {
        crate::jobs::complete_job(c, f.job, &f.worker, None, now).await?
    } else {
        crate::jobs::fail_job(c, f.job, &f.worker, &f.error, f.retry_at, now).await?
    };
    Ok((failing_since, held))
}

/// Queues a delivery of the event to `endpoint` (or to every enabled endpoint that
/// wants it), unless one is queued or running; returns how many were queued.
pub(crate) async fn queue_delivery<C: Conn>(
    c: &mut C,
    event: &Event,
    endpoint: Option<&WebhookEndpointId>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let wants = match C::BACKEND {
        Backend::Postgres => "strpos(e.event_types, $3) > 0",
        Backend::Sqlite => "instr(e.event_types, $3) > 0",
    };
    query(&format!(
        "INSERT INTO jobs (kind, payload, unique_key, status, attempts, max_attempts, run_at, \
         created_at, updated_at) \
         SELECT $4, {DELIVERY_PAYLOAD}, {DELIVERY_PAYLOAD}, 'queued', 0, $5, $6, $6, $6 \
         FROM webhook_endpoints e WHERE e.enabled \
         AND (e.event_types IS NULL OR {wants}) AND ($2 IS NULL OR e.id = $2) \
         ON CONFLICT (kind, unique_key) \
         WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING"
    ))
    .bind(event.id.as_str())
    .bind(endpoint.map(WebhookEndpointId::as_str))
    .bind(Wanted::needle(event.kind).as_str())
    .bind(JobKind::DeliverEvent.as_str())
    .bind(i64::from(MAX_ATTEMPTS))
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to queue an event's delivery"))
}

/// Queues a delivery of every event from `since` on that an enabled endpoint (this
/// one, or any) wants and never received: failed, never tried while it was
/// disabled, or given up on. At most `limit`, not counting deliveries already queued
/// (those are left out before the limit, so calling again always gets further);
/// returns how many were queued.
pub(crate) async fn redeliver_undelivered<C: Conn>(
    c: &mut C,
    since: DateTime<Utc>,
    endpoint: Option<&WebhookEndpointId>,
    limit: u32,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let wants = match C::BACKEND {
        Backend::Postgres => "strpos(e.event_types, ',' || ev.type || ',') > 0",
        Backend::Sqlite => "instr(e.event_types, ',' || ev.type || ',') > 0",
    };
    query(&format!(
        "INSERT INTO jobs (kind, payload, unique_key, status, attempts, max_attempts, run_at, \
         created_at, updated_at) \
         SELECT $3, ev.id || ' ' || e.id, ev.id || ' ' || e.id, 'queued', 0, $4, $5, $5, $5 \
         FROM events ev JOIN webhook_endpoints e ON e.enabled \
         AND (e.event_types IS NULL OR {wants}) AND ($2 IS NULL OR e.id = $2) \
         WHERE ev.created_at >= $1 AND NOT EXISTS (SELECT 1 FROM webhook_attempts a \
             WHERE a.event_id = ev.id AND a.endpoint_id = e.id AND a.delivered) \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = $3 \
             AND j.unique_key = ev.id || ' ' || e.id AND j.status IN ('queued', 'running')) \
         ORDER BY ev.created_at LIMIT $6 \
         ON CONFLICT (kind, unique_key) \
         WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING"
    ))
    .bind(since)
    .bind(endpoint.map(WebhookEndpointId::as_str))
    .bind(JobKind::DeliverEvent.as_str())
    .bind(i64::from(MAX_ATTEMPTS))
    .bind(now)
    .bind(i64::from(limit))
    .execute(c)
    .await
    .map_err(ctx("failed to queue undelivered events again"))
}

// --- attempts -----------------------------------------------------------------------

/// Records a try and what it says of the endpoint: a delivery ends its run of
/// failures, a failure starts one if none is running. Returns since when the
/// endpoint has been failing (`None` after a delivery, or if it is gone).
pub(crate) async fn record_attempt(
    c: &mut impl Conn,
    a: &DeliveryAttempt,
) -> StoreResult<Option<DateTime<Utc>>> {
    let recorded = query(
        "INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, attempted_at, \
         http_status, duration_ms, response, error, delivered) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
         WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $2)",
    )
    .bind(a.event.as_str())
    .bind(a.endpoint.as_str())
    .bind(i32::try_from(a.attempt).unwrap_or(i32::MAX))
    .bind(a.attempted_at)
    .bind(a.http_status.map(i32::from))
    .bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
    .bind(a.response.as_str())
    .bind(a.error.as_deref())
    .bind(a.delivered)
    .execute(c)
    .await
    .map_err(ctx("failed to record a delivery attempt"))?;
    if recorded == 0 {
        return Ok(None); // the endpoint was deleted meanwhile
    }
    // Written only when the run of failures starts or ends: a delivery to a healthy
    // endpoint, the common case, leaves its row (and its page) untouched.
    if a.delivered {
        query(
            "UPDATE webhook_endpoints SET failing_since = NULL \
             WHERE id = $1 AND failing_since IS NOT NULL",
        )
        .bind(a.endpoint.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to note a webhook endpoint's delivery"))?;
        return Ok(None);
    }
    query(
        "UPDATE webhook_endpoints SET failing_since = $2 \
         WHERE id = $1 AND failing_since IS NULL",
    )
    .bind(a.endpoint.as_str())
    .bind(a.attempted_at)
    .execute(c)
    .await
    .map_err(ctx("failed to note a webhook endpoint's failures"))?;
    let (since,) = query("SELECT failing_since FROM webhook_endpoints WHERE id = $1")
        .bind(a.endpoint.as_str())
        .fetch_optional::<(Option<DateTime<Utc>>,)>(c)
        .await
        .map_err(ctx("failed to read a webhook endpoint's failures"))?
        .unwrap_or((None,));
    Ok(since)
}

const ATTEMPT_COLUMNS: &str = "event_id, endpoint_id, attempt, attempted_at, http_status, \
     duration_ms, response, error, delivered";

#[derive(sqlx::FromRow)]
struct AttemptRow {
    event_id: String,
    endpoint_id: String,
    attempt: i32,
    attempted_at: DateTime<Utc>,
    http_status: Option<i32>,
    duration_ms: i64,
    response: String,
    error: Option<String>,
    delivered: bool,
}

impl FromSqlite for AttemptRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(AttemptRow {
            event_id: r.get("event_id")?,
            endpoint_id: r.get("endpoint_id")?,
            attempt: r.get("attempt")?,
            attempted_at: time(r, "attempted_at")?,
            http_status: r.get("http_status")?,
            duration_ms: r.get("duration_ms")?,
            response: r.get("response")?,
            error: r.get("error")?,
            delivered: r.get("delivered")?,
        })
    }
}

impl From<AttemptRow> for DeliveryAttempt {
    fn from(r: AttemptRow) -> Self {
        DeliveryAttempt {
            event: EventId::from_trusted(r.event_id),
            endpoint: WebhookEndpointId::from_trusted(r.endpoint_id),
            attempt: u32::try_from(r.attempt).unwrap_or(0),
            attempted_at: r.attempted_at,
            http_status: r.http_status.and_then(|s| u16::try_from(s).ok()),
            duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
            response: r.response,
            error: r.error,
            delivered: r.delivered,
        }
    }
}

/// The latest tries, newest first: at one endpoint, of one event, or all.
pub(crate) async fn attempts(
    c: &mut impl Conn,
    endpoint: Option<&WebhookEndpointId>,
    event: Option<&EventId>,
    limit: u32,
) -> StoreResult<Vec<DeliveryAttempt>> {
    Ok(query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts \
         WHERE ($1 IS NULL OR endpoint_id = $1) AND ($2 IS NULL OR event_id = $2) \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(endpoint.map(WebhookEndpointId::as_str))
    .bind(event.map(EventId::as_str))
    .bind(i64::from(limit))
    .fetch_all::<AttemptRow>(c)
    .await
    .map_err(ctx("failed to list delivery attempts"))?
    .into_iter()
    .map(DeliveryAttempt::from)
    .collect())
}

/// Deletes up to `limit` events created before `before`, with their attempts;
/// returns how many events went.
pub(crate) async fn prune_events(
    c: &mut impl Conn,
    before: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u64> {
    let oldest = "SELECT id FROM events WHERE created_at < $1 ORDER BY created_at LIMIT $2";
    query(&format!(
        "DELETE FROM webhook_attempts WHERE event_id IN ({oldest})"
    ))
    .bind(before)
    .bind(i64::from(limit))
    .execute(c)
    .await
    .map_err(ctx("failed to prune delivery attempts"))?;
    query(&format!("DELETE FROM events WHERE id IN ({oldest})"))
        .bind(before)
        .bind(i64::from(limit))
        .execute(c)
        .await
        .map_err(ctx("failed to prune events"))
}
