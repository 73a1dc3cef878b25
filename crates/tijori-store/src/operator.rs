//! What an operator reads and acts on: incoming webhook deliveries and the operator's
//! list of events. Every statement once, for both backends (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::store::{
    EventResolution, Gauges, NewWebhookDelivery, OperatorEvent, OperatorEventKind,
    RecordedDelivery, StoreError, StoreResult, WebhookDelivery,
};

use crate::db::{ctx, db_err, query, Backend, Conn, DbFail};
use crate::rows::{DeliveryRow, EventRow};

/// Puts an event on the operator's list, in the caller's transaction when the
/// event must come with the change that causes it.
pub(crate) async fn insert_operator_event(
    c: &mut impl Conn,
    kind: OperatorEventKind,
    payment: Option<&PaymentId>,
    detail: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "INSERT INTO operator_events (kind, payment_id, detail, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(kind.as_str())
    .bind(payment.map(PaymentId::as_str))
    .bind(detail)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to record an operator event"))?;
    Ok(())
}

/// The operator's gauges, in one statement: each count reads a partial index
/// (payments_stale for both open counts, payments_held, jobs_queued_*, jobs_dead) and only
/// the rows in it, not the table.
pub(crate) async fn gauges(
    c: &mut impl Conn,
    overdue_before: DateTime<Utc>,
) -> StoreResult<Gauges> {
    let (open, overdue, held, deliveries_queued, other_queued, deliveries_dead, other_dead) =
        query(
            "SELECT \
             (SELECT COUNT(*) FROM payments WHERE status IN ('initiated', 'pending')), \
             (SELECT COUNT(*) FROM payments WHERE status IN ('initiated', 'pending') \
              AND provider_ref IS NOT NULL AND created_at < $1 \
              AND (checked_at IS NULL OR checked_at < $1)), \
             (SELECT COUNT(*) FROM payments WHERE status = 'needs_review'), \
             (SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND kind = 'deliver_event'), \
             (SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND kind <> 'deliver_event'), \
             (SELECT COUNT(*) FROM jobs WHERE status = 'dead' AND kind = 'deliver_event'), \
             (SELECT COUNT(*) FROM jobs WHERE status = 'dead' AND kind <> 'deliver_event')",
        )
        .bind(overdue_before)
        .fetch_one::<(i64, i64, i64, i64, i64, i64, i64)>(c)
        .await
        .map_err(ctx("failed to count the operator's gauges"))?;
    Ok(Gauges {
        payments_open: open,
        payments_overdue: overdue,
        payments_held: held,
        deliveries_queued,
        other_jobs_queued: other_queued,
        deliveries_dead,
        other_jobs_dead: other_dead,
    })
}

/// Records a webhook delivery, noting whether an identical body came before.
pub(crate) async fn record_webhook(
    c: &mut impl Conn,
    d: &NewWebhookDelivery,
) -> StoreResult<RecordedDelivery> {
    // Whether it is a duplicate is decided in the statement. On SQLite, with one
    // writer, the EXISTS sees every delivery before this one and the unique index
    // (gateway, body_sha256) over first deliveries only backs it up. On PostgreSQL two
    // identical deliveries racing both see "new", and that index turns the loser into
    // a duplicate: it is inserted again, as one.
    // `NOT duplicate`: the first delivery is there if any is, and the partial unique
    // index over first deliveries finds it (without, each delivery scanned them all).
    let first = insert_delivery(
        c,
        d,
        "EXISTS (SELECT 1 FROM webhook_deliveries WHERE gateway = $1 AND body_sha256 = $2 \
         AND NOT duplicate)",
    )
    .await
    .map_err(db_err(
        "failed to record a webhook delivery",
        "webhook delivery",
    ));
    let (id, duplicate) = match first {
        Err(StoreError::Conflict(_)) => insert_delivery(c, d, "TRUE")
            .await
            .map_err(ctx("failed to record a webhook delivery"))?,
        other => other?,
    };
    Ok(RecordedDelivery { id, duplicate })
}

async fn insert_delivery(
    c: &mut impl Conn,
    d: &NewWebhookDelivery,
    duplicate: &str,
) -> Result<(i64, bool), DbFail> {
    query(&format!(
        "INSERT INTO webhook_deliveries (gateway, body_sha256, event, reference, status, \
         body, duplicate, received_at) VALUES ($1, $2, $3, $4, $5, $6, {duplicate}, $7) \
         RETURNING id, duplicate"
    ))
    .bind(d.gateway.as_str())
    .bind(&d.body_sha256)
    .bind(&d.event)
    .bind(&d.reference)
    .bind(&d.status)
    .bind(&d.body)
    .bind(d.received_at)
    .fetch_one(c)
    .await
}

pub(crate) async fn finish_webhook(
    c: &mut impl Conn,
    id: i64,
    payment: Option<&PaymentId>,
    outcome: &str,
    detail: Option<&str>,
) -> StoreResult<()> {
    query("UPDATE webhook_deliveries SET payment_id = $2, outcome = $3, detail = $4 WHERE id = $1")
        .bind(id)
        .bind(payment.map(PaymentId::as_str))
        .bind(outcome)
        .bind(detail)
        .execute(c)
        .await
        .map_err(ctx("failed to note a webhook's outcome"))?;
    Ok(())
}

pub(crate) async fn webhook_deliveries(
    c: &mut impl Conn,
    limit: u32,
) -> StoreResult<Vec<WebhookDelivery>> {
    Ok(query(
        "SELECT id, gateway, event, reference, status, duplicate, outcome, detail, payment_id, \
         received_at FROM webhook_deliveries ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all::<DeliveryRow>(c)
    .await
    .map_err(ctx("failed to list webhook deliveries"))?
    .into_iter()
    .map(|r| WebhookDelivery {
        id: r.id,
        gateway: r.gateway,
        event: r.event,
        reference: r.reference,
        status: r.status,
        duplicate: r.duplicate,
        outcome: r.outcome,
        detail: r.detail,
        payment_id: r.payment_id,
        received_at: r.received_at,
    })
    .collect())
}

pub(crate) async fn operator_events(
    c: &mut impl Conn,
    include_resolved: bool,
    limit: u32,
) -> StoreResult<Vec<OperatorEvent>> {
    let filter = if include_resolved {
        ""
    } else {
        "WHERE e.resolved_at IS NULL "
    };
    query(&format!(
        "SELECT {EVENT_COLUMNS} {filter}ORDER BY e.id DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all::<EventRow>(c)
    .await
    .map_err(ctx("failed to list operator events"))?
    .into_iter()
    .map(OperatorEvent::try_from)
    .collect()
}

/// `insert_operator_event` for `payment` unless an event of `kind` about it is still
/// open, in one statement; `true` if it was recorded.
pub(crate) async fn insert_operator_event_once(
    c: &mut impl Conn,
    kind: OperatorEventKind,
    payment: &PaymentId,
    detail: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = query(
        "INSERT INTO operator_events (kind, payment_id, detail, created_at) \
         SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM operator_events \
         WHERE kind = $1 AND payment_id = $2 AND resolved_at IS NULL)",
    )
    .bind(kind.as_str())
    .bind(payment.as_str())
    .bind(detail)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to record an operator event"))?;
    Ok(done == 1)
}

/// An operator event with the username of whoever resolved it, from `operator_events e`
/// (the caller adds the WHERE and ORDER BY).
pub(crate) const EVENT_COLUMNS: &str =
    "e.id, e.kind, e.payment_id, e.detail, e.created_at, e.resolved_at, \
     u.username AS resolved_by, e.resolution \
     FROM operator_events e LEFT JOIN users u ON u.id = e.resolved_by";

pub(crate) async fn resolve_operator_event(
    c: &mut impl Conn,
    id: i64,
    resolution: Option<&EventResolution>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // Resolved once: the first time, person and note stay (a second click, or the
    // code settling the cause later, does not rewrite who handled it).
    let done = query(
        "UPDATE operator_events SET resolved_by = CASE WHEN resolved_at IS NULL THEN $3 \
         ELSE resolved_by END, resolution = CASE WHEN resolved_at IS NULL THEN $4 \
         ELSE resolution END, resolved_at = COALESCE(resolved_at, $2) WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(resolution.map(|r| r.by.as_str()))
    .bind(resolution.map(|r| r.note.as_str()))
    .execute(c)
    .await
    .map_err(ctx("failed to resolve an operator event"))?;
    if done == 0 {
        return Err(StoreError::NotFound("operator event"));
    }
    Ok(())
}

pub(crate) async fn resolve_operator_events_naming<C: Conn>(
    c: &mut C,
    kind: OperatorEventKind,
    payment: &PaymentId,
    named: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // "detail contains `named`": PostgreSQL has no `instr` and SQLite no `strpos`
    // (and LIKE would read `_` and `%` in `named` as wildcards).
    let sql = match C::BACKEND {
        Backend::Postgres => {
            "UPDATE operator_events SET resolved_at = $4 WHERE resolved_at IS NULL \
             AND kind = $1 AND payment_id = $2 AND strpos(detail, $3) > 0"
        }
        Backend::Sqlite => {
            "UPDATE operator_events SET resolved_at = $4 WHERE resolved_at IS NULL \
             AND kind = $1 AND payment_id = $2 AND instr(detail, $3) > 0"
        }
    };
    query(sql)
        .bind(kind.as_str())
        .bind(payment.as_str())
        .bind(named)
        .bind(now)
        .execute(c)
        .await
        .map_err(ctx("failed to resolve operator events"))?;
    Ok(())
}
