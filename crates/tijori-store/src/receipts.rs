//! Receipts and their mail. Every statement once, for both backends (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::mail::OutboxMail;
use tijori_core::receipt::Receipt;
use tijori_core::store::StoreResult;

use crate::db::{ctx, db_err, query, Conn};

/// The payment's receipt, issuing the next number if it has none. The number is the
/// highest so far plus one, read and written in the caller's transaction: on SQLite
/// the one writer makes that safe; on PostgreSQL the caller first locks the table
/// against other issuers. The primary key refuses a repeat whatever happens, so the
/// numbers never have a gap or a repeat.
pub(crate) async fn issue_receipt(
    c: &mut impl Conn,
    payment: &PaymentId,
    now: DateTime<Utc>,
) -> StoreResult<Receipt> {
    // `WHERE true`: SQLite's upsert after a SELECT needs a WHERE to parse.
    query(
        "INSERT INTO receipts (number, payment_id, issued_at) \
         SELECT COALESCE(MAX(number), 0) + 1, $1, $2 FROM receipts WHERE true \
         ON CONFLICT (payment_id) DO NOTHING",
    )
    .bind(payment.as_str())
    .bind(now)
    .execute(c)
    .await
    .map_err(db_err("failed to issue a receipt", "receipt number"))?;
    let (number, issued_at) = query("SELECT number, issued_at FROM receipts WHERE payment_id = $1")
        .bind(payment.as_str())
        .fetch_one::<(i64, DateTime<Utc>)>(c)
        .await
        .map_err(ctx("failed to read a receipt"))?;
    Ok(Receipt {
        number,
        payment_id: payment.clone(),
        issued_at,
    })
}

/// The payment's receipt, if it was issued.
pub(crate) async fn receipt_of(
    c: &mut impl Conn,
    payment: &PaymentId,
) -> StoreResult<Option<Receipt>> {
    let row = query("SELECT number, issued_at FROM receipts WHERE payment_id = $1")
        .bind(payment.as_str())
        .fetch_optional::<(i64, DateTime<Utc>)>(c)
        .await
        .map_err(ctx("failed to read a receipt"))?;
    Ok(row.map(|(number, issued_at)| Receipt {
        number,
        payment_id: payment.clone(),
        issued_at,
    }))
}

/// Payments paid since `since` (refunded in part since, or not) whose receipt has not
/// been mailed, oldest first. Through `payments_paid_recently`, whose condition the
/// status test repeats word for word (SQLite uses a partial index only then).
pub(crate) async fn receipts_to_mail(
    c: &mut impl Conn,
    since: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<PaymentId>> {
    let rows = query(
        "SELECT p.id FROM payments p LEFT JOIN receipts r ON r.payment_id = p.id \
         WHERE p.status IN ('completed', 'partially_refunded') AND p.updated_at > $1 \
         AND r.mail_id IS NULL \
         ORDER BY p.updated_at LIMIT $2",
    )
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all::<(String,)>(c)
    .await
    .map_err(ctx("failed to find receipts to mail"))?;
    Ok(rows
        .into_iter()
        .map(|(id,)| PaymentId::from_trusted(id))
        .collect())
}

/// Puts the receipt's mail in the outbox with the job that delivers it, once: `false`
/// (and nothing written) if another worker mailed it first. In one transaction.
pub(crate) async fn record_receipt_mail(
    c: &mut impl Conn,
    number: i64,
    mail: &OutboxMail,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let claimed = query("UPDATE receipts SET mail_id = $1 WHERE number = $2 AND mail_id IS NULL")
        .bind(mail.id.as_str())
        .bind(number)
        .execute(c)
        .await
        .map_err(ctx("failed to record a receipt's mail"))?
        == 1;
    if !claimed {
        return Ok(false);
    }
    crate::mail::queue_mail(c, mail, now).await?;
    Ok(true)
}
