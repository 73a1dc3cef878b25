//! What an operator reads and acts on: incoming webhook deliveries and the operator's
//! list of events. Every statement once, for both backends (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::store::{OperatorEventKind, StoreResult};

use crate::db::{ctx, query, Conn};

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
