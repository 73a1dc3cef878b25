//! Refunds asked of a gateway and what came of them: every statement once, for both
//! backends (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::events::{EventType, NewEvent};
use tijori_core::id::{PaymentId, RefundId};
use tijori_core::jobs::NewJob;
use tijori_core::payment::Payment;
use tijori_core::refunds::{ABANDONED_REQUEST_DETAIL, ABANDONED_REQUEST_MINUTES};
use tijori_core::store::{Refund, RefundResolution, RefundStatus, StoreError, StoreResult};

use crate::db::{ctx, db_err, query, Conn};
use crate::rows::{PaymentRow, RefundRow, PAYMENT_COLUMNS, REFUND_COLUMNS};

/// Records a refund about to be asked of the gateway (`RefundStore::begin_refund`),
/// in one write transaction.
pub(crate) async fn begin_refund(c: &mut impl Conn, r: &Refund) -> StoreResult<()> {
    // A refund left `requested` for minutes lost its process mid-call: its outcome
    // is unknown (it stops blocking), and it is looked up like any unknown refund.
    let stale = query(
        "UPDATE refunds SET status = 'unknown', detail = $4, \
         updated_at = $2 WHERE payment_id = $1 AND status = 'requested' AND created_at < $3 \
         RETURNING id",
    )
    .bind(r.payment_id.as_str())
    .bind(r.created_at)
    .bind(r.created_at - chrono::Duration::minutes(ABANDONED_REQUEST_MINUTES))
    .bind(ABANDONED_REQUEST_DETAIL)
    .fetch_all::<(String,)>(c)
    .await
    .map_err(ctx("failed to close stale refunds"))?;
    for (id,) in stale {
        queue_refund_check(c, &RefundId::from_trusted(id), r.created_at).await?;
    }
    // Inserted only while it fits in what is left: what succeeded or may have
    // succeeded is counted, so two refunds one after the other cannot both take the
    // whole amount.
    let inserted = query(
        "INSERT INTO refunds (id, payment_id, amount_minor, reason, status, requested_by, \
         restock, created_at, updated_at) \
         SELECT $1, $2, $3, $4, 'requested', $5, $7, $6, $6 \
         WHERE $3 + (SELECT COALESCE(SUM(amount_minor), 0) FROM refunds \
             WHERE payment_id = $2 AND status IN ('succeeded', 'unknown', 'requested')) \
           <= (SELECT amount_minor FROM payments WHERE id = $2)",
    )
    .bind(r.id.as_str())
    .bind(r.payment_id.as_str())
    .bind(r.amount.minor())
    .bind(&r.reason)
    .bind(r.requested_by.as_str())
    .bind(r.created_at)
    .bind(r.restock)
    .execute(c)
    .await
    .map_err(db_err("failed to record a refund", "refund in flight"))?;
    if inserted == 0 {
        return Err(StoreError::Conflict("refund larger than what is left"));
    }
    Ok(())
}

/// Queues the look-up of an unknown refund, in the caller's transaction: no unknown
/// refund without the look-up that settles it.
async fn queue_refund_check(
    c: &mut impl Conn,
    id: &RefundId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    crate::jobs::insert_job(c, &NewJob::check_refund(id, now), now).await?;
    Ok(())
}

/// Records the gateway's answer to a refund, in one write transaction; `false` if the
/// refund was settled meanwhile (its call outlived `ABANDONED_REQUEST_MINUTES`, it was
/// marked unknown, and a look-up or an operator decided it): that decision stands,
/// and its event was sent then.
pub(crate) async fn finish_refund(
    c: &mut impl Conn,
    id: &RefundId,
    status: RefundStatus,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // An answer to a refund still `unknown` (marked so while its call was stalled) is
    // the gateway's word and settles it; one to a refund already decided does not
    // overwrite that, nor announce the refund a second time.
    let payment = query(
        "UPDATE refunds SET status = $2, detail = $3, updated_at = $4 \
         WHERE id = $1 AND status IN ('requested', 'unknown') RETURNING payment_id",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .bind(detail)
    .bind(now)
    .fetch_optional::<(String,)>(c)
    .await
    .map_err(ctx("failed to record a refund's outcome"))?;
    let Some((payment,)) = payment else {
        return Ok(false);
    };
    if status == RefundStatus::Unknown {
        queue_refund_check(c, id, now).await?;
    }
    emit_outcome(c, id, &PaymentId::from_trusted(payment), status, now).await?;
    Ok(true)
}

/// The event of a refund's outcome, once it has one (`refund.succeeded`,
/// `refund.failed`), in the transaction that records it.
async fn emit_outcome<C: Conn>(
    c: &mut C,
    id: &RefundId,
    payment: &PaymentId,
    status: RefundStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let kind = match status {
        RefundStatus::Succeeded => EventType::RefundSucceeded,
        RefundStatus::Failed => EventType::RefundFailed,
        RefundStatus::Requested | RefundStatus::Unknown => return Ok(()),
    };
    crate::events::emit(c, &[NewEvent::about_refund(kind, id, payment)], now).await?;
    Ok(())
}

pub(crate) async fn refunds_of(c: &mut impl Conn, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
    query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds r \
         JOIN payments p ON p.id = r.payment_id WHERE r.payment_id = $1 \
         ORDER BY r.created_at, r.id"
    ))
    .bind(payment.as_str())
    .fetch_all::<RefundRow>(c)
    .await
    .map_err(ctx("failed to list refunds"))?
    .into_iter()
    .map(Refund::try_from)
    .collect()
}

pub(crate) async fn refund(c: &mut impl Conn, id: &RefundId) -> StoreResult<Option<Refund>> {
    query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds r \
         JOIN payments p ON p.id = r.payment_id WHERE r.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional::<RefundRow>(c)
    .await
    .map_err(ctx("failed to load a refund"))?
    .map(Refund::try_from)
    .transpose()
}

/// Settles an unknown refund; `false` if it was settled already. A compare-and-set:
/// of a look-up and an operator settling it at once, one wins.
pub(crate) async fn settle_refund(
    c: &mut impl Conn,
    id: &RefundId,
    status: RefundStatus,
    detail: &str,
    resolution: Option<&RefundResolution>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let moved = query(
        "UPDATE refunds SET status = $2, detail = $3, resolved_by = $4, \
         resolved_at = CASE WHEN $4 IS NULL THEN NULL ELSE $6 END, resolution = $5, \
         updated_at = $6 WHERE id = $1 AND status = 'unknown' RETURNING payment_id",
    )
    .bind(id.as_str())
    .bind(status.as_str())
    .bind(detail)
    .bind(resolution.map(|r| r.by.as_str()))
    .bind(resolution.map(|r| r.reason.as_str()))
    .bind(now)
    .fetch_optional::<(String,)>(c)
    .await
    .map_err(ctx("failed to settle a refund"))?;
    let Some((payment,)) = moved else {
        return Ok(false);
    };
    emit_outcome(c, id, &PaymentId::from_trusted(payment), status, now).await?;
    Ok(true)
}

pub(crate) async fn unknown_refunds(c: &mut impl Conn, limit: u32) -> StoreResult<Vec<Refund>> {
    query(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds r \
         JOIN payments p ON p.id = r.payment_id WHERE r.status = 'unknown' \
         ORDER BY r.created_at, r.id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all::<RefundRow>(c)
    .await
    .map_err(ctx("failed to list unknown refunds"))?
    .into_iter()
    .map(Refund::try_from)
    .collect()
}

/// Paid payments not checked at their gateway since `checked_before`, for the audit
/// that finds refunds made elsewhere; the least recently checked first.
pub(crate) async fn payments_to_audit(
    c: &mut impl Conn,
    paid_since: DateTime<Utc>,
    checked_before: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Payment>> {
    query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments \
         WHERE status IN ('completed', 'partially_refunded') AND provider_ref IS NOT NULL \
         AND updated_at >= $1 AND (checked_at IS NULL OR checked_at < $2) \
         ORDER BY checked_at IS NOT NULL, checked_at, id LIMIT $3"
    ))
    .bind(paid_since)
    .bind(checked_before)
    .bind(i64::from(limit))
    .fetch_all::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to find payments to audit"))?
    .into_iter()
    .map(Payment::try_from)
    .collect()
}
