//! Idempotency keys, and the heartbeats of the processes holding them. Every
//! statement once, for both backends (see `db.rs`).

use chrono::{DateTime, Duration, Utc};
use sqlx::FromRow;

use tijori_core::id::{OrderId, PaymentId, UserId};
use tijori_core::idempotency::{
    self, Attempt, Claim, Claimant, Hold, IdempotencyKey, InstanceId, Leftover, StoredResponse,
};
use tijori_core::store::{StoreError, StoreResult};

use crate::db::{ctx, query, Backend, Conn};
use crate::rows::{opt_time, time, FromSqlite};

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

/// A claimed key's row, as a later claim finds it.
#[derive(FromRow)]
struct KeyRow {
    fingerprint: String,
    status_code: Option<i32>,
    content_type: Option<String>,
    body: Option<String>,
    created_at: DateTime<Utc>,
    owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    payment_id: Option<String>,
    order_id: Option<String>,
}

impl FromSqlite for KeyRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(KeyRow {
            fingerprint: r.get("fingerprint")?,
            status_code: r.get("status_code")?,
            content_type: r.get("content_type")?,
            body: r.get("body")?,
            created_at: time(r, "created_at")?,
            owner: r.get("owner")?,
            lease_until: opt_time(r, "lease_until")?,
            payment_id: r.get("payment_id")?,
            order_id: r.get("order_id")?,
        })
    }
}

/// Claims `key` for `claimant`, or says what became of the request that claimed it
/// first (see `IdempotencyStore::claim_idempotency_key`). In one transaction.
pub(crate) async fn claim_idempotency_key<C: Conn>(
    c: &mut C,
    user: &UserId,
    key: &IdempotencyKey,
    fingerprint: &str,
    claimant: &Claimant,
    now: DateTime<Utc>,
) -> StoreResult<Claim> {
    // Claiming is a natural moment to forget this user's old keys.
    query("DELETE FROM idempotency_keys WHERE user_id = $1 AND created_at < $2")
        .bind(user.as_str())
        .bind(now - idempotency::retention())
        .execute(c)
        .await
        .map_err(ctx("failed to prune idempotency keys"))?;
    // The claimant is alive: whatever it claims is not taken from it for want of a
    // heartbeat, even before its first beat.
    beat(c, &claimant.instance, now).await?;
    let claimed = query(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at, owner, \
         lease_until) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user.as_str())
    .bind(key.as_str())
    .bind(fingerprint)
    .bind(now)
    .bind(claimant.instance.as_str())
    .bind(claimant.lease_until)
    .execute(c)
    .await
    .map_err(ctx("failed to claim an idempotency key"))?
        == 1;
    if claimed {
        return Ok(Claim::New);
    }
    let row = query(&format!(
        "SELECT fingerprint, status_code, content_type, body, created_at, owner, \
         lease_until, payment_id, order_id FROM idempotency_keys \
         WHERE user_id = $1 AND key = $2{}",
        C::LOCK_ROW
    ))
    .bind(user.as_str())
    .bind(key.as_str())
    .fetch_one::<KeyRow>(c)
    .await
    .map_err(ctx("failed to read an idempotency key"))?;
    // The holder's heartbeat is read by a statement of its own, once the key's row is
    // locked: on PostgreSQL a statement that waited for the lock would see the key as
    // a concurrent takeover left it but that taker's heartbeat as it was before
    // (none), and take the key over a second time. (SQLite's one writer claims alone.)
    let owner_heartbeat = match &row.owner {
        Some(owner) => query("SELECT heartbeat_at FROM instances WHERE id = $1")
            .bind(owner)
            .fetch_optional::<(DateTime<Utc>,)>(c)
            .await
            .map_err(ctx("failed to read an idempotency key's holder"))?
            .map(|(at,)| at),
        None => None,
    };
    let hold = Hold {
        owner: row.owner.clone().map(InstanceId::from_trusted),
        // A claim from before leases were recorded has one from its creation.
        lease_until: row
            .lease_until
            .unwrap_or(row.created_at + Duration::seconds(idempotency::LEASE_SECS)),
        owner_heartbeat,
    };
    Ok(match row {
        r if r.fingerprint != fingerprint => Claim::Mismatch,
        KeyRow {
            status_code: Some(status),
            content_type,
            body,
            ..
        } => Claim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            content_type: content_type.unwrap_or_default(),
            body: body.unwrap_or_default().into_bytes(),
        }),
        r if idempotency::may_take_over(&hold, now) => {
            query(
                "UPDATE idempotency_keys SET created_at = $3, owner = $4, lease_until = $5 \
                 WHERE user_id = $1 AND key = $2",
            )
            .bind(user.as_str())
            .bind(key.as_str())
            .bind(now)
            .bind(claimant.instance.as_str())
            .bind(claimant.lease_until)
            .execute(c)
            .await
            .map_err(ctx("failed to take over an idempotency key"))?;
            Claim::TakenOver(Leftover {
                payment: r.payment_id.as_deref().and_then(PaymentId::parse),
                order: r.order_id.as_deref().and_then(OrderId::parse),
            })
        }
        _ => Claim::InProgress,
    })
}

/// Notes that `instance` is alive at `now`; a beat that arrives late never moves its
/// heartbeat back.
async fn beat<C: Conn>(c: &mut C, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
    let sql = match C::BACKEND {
        Backend::Postgres => {
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = GREATEST(instances.heartbeat_at, $2)"
        }
        // SQLite's two-argument MAX is PostgreSQL's GREATEST.
        Backend::Sqlite => {
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = MAX(heartbeat_at, excluded.heartbeat_at)"
        }
    };
    query(sql)
        .bind(instance.as_str())
        .bind(now)
        .execute(c)
        .await
        .map_err(ctx("failed to note a heartbeat"))?;
    Ok(())
}

pub(crate) async fn heartbeat(
    c: &mut impl Conn,
    instance: &InstanceId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    beat(c, instance, now).await?;
    query("DELETE FROM instances WHERE heartbeat_at < $1")
        .bind(now - Duration::hours(idempotency::FORGET_INSTANCE_AFTER_HOURS))
        .execute(c)
        .await
        .map_err(ctx("failed to forget old instances"))?;
    Ok(())
}

pub(crate) async fn retire_instance(c: &mut impl Conn, instance: &InstanceId) -> StoreResult<()> {
    query("DELETE FROM instances WHERE id = $1")
        .bind(instance.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to retire an instance"))?;
    Ok(())
}

pub(crate) async fn complete_idempotency_key(
    c: &mut impl Conn,
    user: &UserId,
    key: &IdempotencyKey,
    holder: &InstanceId,
    response: &StoredResponse,
) -> StoreResult<()> {
    let body = std::str::from_utf8(&response.body)
        .map_err(|_| StoreError::Database(anyhow::anyhow!("an idempotent answer must be UTF-8")))?;
    query(
        "UPDATE idempotency_keys SET status_code = $3, content_type = $4, body = $5 \
         WHERE user_id = $1 AND key = $2 AND owner = $6",
    )
    .bind(user.as_str())
    .bind(key.as_str())
    .bind(i32::from(response.status))
    .bind(&response.content_type)
    .bind(body)
    .bind(holder.as_str())
    .execute(c)
    .await
    .map_err(ctx("failed to keep an idempotent answer"))?;
    Ok(())
}

pub(crate) async fn release_idempotency_key(
    c: &mut impl Conn,
    user: &UserId,
    key: &IdempotencyKey,
    holder: &InstanceId,
) -> StoreResult<()> {
    // A key under which nothing was made is forgotten: the retry runs afresh. One
    // under which an earlier holder made an order or a payment keeps them, with its
    // lease ended, so that the retry takes it over and reuses them rather than make a
    // second order (and reserve its stock twice) or open a second checkout.
    query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 \
         AND status_code IS NULL AND owner = $3 AND payment_id IS NULL AND order_id IS NULL",
    )
    .bind(user.as_str())
    .bind(key.as_str())
    .bind(holder.as_str())
    .execute(&mut *c)
    .await
    .map_err(ctx("failed to release an idempotency key"))?;
    query(
        "UPDATE idempotency_keys SET lease_until = created_at \
         WHERE user_id = $1 AND key = $2 AND status_code IS NULL AND owner = $3",
    )
    .bind(user.as_str())
    .bind(key.as_str())
    .bind(holder.as_str())
    .execute(c)
    .await
    .map_err(ctx("failed to release an idempotency key"))?;
    Ok(())
}
