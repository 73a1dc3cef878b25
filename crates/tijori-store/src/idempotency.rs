//! Idempotency keys, and the heartbeats of the processes holding them. Every
//! statement once, for both backends (see `db.rs`).

use tijori_core::id::{OrderId, PaymentId};
use tijori_core::idempotency::Attempt;
use tijori_core::store::StoreResult;

use crate::db::{ctx, query, Conn};

/// Notes what a request under an idempotency key created, on the key, if the
/// request's holder still holds it: in the transaction that creates it, so a request
/// that takes the key over finds it.
pub(crate) async fn note_attempt(
    c: &mut impl Conn,
    attempt: &Attempt,
    payment: Option<&PaymentId>,
    order: Option<&OrderId>,
) -> StoreResult<()> {
    query(
        "UPDATE idempotency_keys SET payment_id = COALESCE($4, payment_id), \
         order_id = COALESCE($5, order_id) WHERE user_id = $1 AND key = $2 AND owner = $3",
    )
    .bind(attempt.user.as_str())
    .bind(attempt.key.as_str())
    .bind(attempt.holder.as_str())
    .bind(payment.map(PaymentId::as_str))
    .bind(order.map(OrderId::as_str))
    .execute(c)
    .await
    .map_err(ctx("failed to note an idempotent request's work"))?;
    Ok(())
}
