//! The shop (products, orders and their stock), webhook deliveries, operator events,
//! idempotency keys and refunds.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, params_from_iter, Connection};

use tijori_core::gateway::GatewayKind;
use tijori_core::id::{OrderId, PaymentId, ProductId, RefundId, UserId};
use tijori_core::idempotency::{
    self, Attempt, Claim, Claimant, Hold, IdempotencyKey, InstanceId, Leftover, StoredResponse,
};
use tijori_core::money::Money;
use tijori_core::payment::{Payment, PaymentStatus};
use tijori_core::shop::{
    NewOrder, NewProduct, Order, OrderItem, OrderStatus, Product, ReserveError,
};
use tijori_core::store::{
    NewWebhookDelivery, OperatorEvent, OperatorEventKind, RecordedDelivery, Refund,
    RefundResolution, RefundStatus, StoreError, StoreResult, WebhookDelivery,
};

use super::SqliteStore;
use super::{all, all_with, ctx, db_err, exec, exec_or, is_constraint, one, one_with, ts};
use super::{PRIMARY_KEY, UNIQUE};
use crate::rows::{
    corrupt, money, order_from, DeliveryRow, EventRow, ItemRow, OrderRow, PaymentRow, ProductRow,
    RefundRow, ORDER_COLUMNS, PAYMENT_COLUMNS, PRODUCT_COLUMNS, REFUND_COLUMNS,
};
use crate::shop;
use tijori_core::store::ShopStore;

pub(super) fn insert_operator_event(
    c: &Connection,
    kind: OperatorEventKind,
    payment: Option<&PaymentId>,
    detail: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO operator_events (kind, payment_id, detail, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
        params![
            kind.as_str(),
            payment.map(PaymentId::as_str),
            detail,
            ts(now)
        ],
        "failed to record an operator event",
    )?;
    Ok(())
}

pub(super) fn record_webhook(
    c: &Connection,
    d: &NewWebhookDelivery,
) -> StoreResult<RecordedDelivery> {
    // One writer: the EXISTS sees every delivery before this one. The unique index
    // (gateway, body_sha256) over first deliveries backs it up.
    let insert = |duplicate: &str| {
        c.prepare_cached(&format!(
            "INSERT INTO webhook_deliveries (gateway, body_sha256, event, reference, status, \
             body, duplicate, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {duplicate}, ?7) \
             RETURNING id, duplicate"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![
                    d.gateway.as_str(),
                    d.body_sha256,
                    d.event,
                    d.reference,
                    d.status,
                    d.body,
                    ts(d.received_at)
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)),
            )
        })
    };
    // `NOT duplicate`: the first delivery is there if any is, and the partial unique
    // index over first deliveries finds it (without, each delivery scanned them all).
    let first = insert(
        "EXISTS (SELECT 1 FROM webhook_deliveries WHERE gateway = ?1 AND body_sha256 = ?2 \
         AND NOT duplicate)",
    );
    let (id, duplicate) = match first {
        Err(e) if is_constraint(&e, &[UNIQUE, PRIMARY_KEY]) => insert("TRUE"),
        other => other,
    }
    .map_err(ctx("failed to record a webhook delivery"))?;
    Ok(RecordedDelivery { id, duplicate })
}

pub(super) fn finish_webhook(
    c: &Connection,
    id: i64,
    payment: Option<&PaymentId>,
    outcome: &str,
    detail: Option<&str>,
) -> StoreResult<()> {
    exec(
        c,
        "UPDATE webhook_deliveries SET payment_id = ?2, outcome = ?3, detail = ?4 WHERE id = ?1",
        params![id, payment.map(PaymentId::as_str), outcome, detail],
        "failed to note a webhook's outcome",
    )?;
    Ok(())
}

pub(super) fn webhook_deliveries(c: &Connection, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
    Ok(all::<DeliveryRow>(
        c,
        "SELECT id, gateway, event, reference, status, duplicate, outcome, detail, payment_id, \
         received_at FROM webhook_deliveries ORDER BY id DESC LIMIT ?1",
        [i64::from(limit)],
        "failed to list webhook deliveries",
    )?
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

pub(super) fn operator_events(
    c: &Connection,
    include_resolved: bool,
    limit: u32,
) -> StoreResult<Vec<OperatorEvent>> {
    let filter = if include_resolved {
        ""
    } else {
        "WHERE resolved_at IS NULL "
    };
    all::<EventRow>(
        c,
        &format!(
            "SELECT id, kind, payment_id, detail, created_at, resolved_at FROM operator_events \
             {filter}ORDER BY id DESC LIMIT ?1"
        ),
        [i64::from(limit)],
        "failed to list operator events",
    )?
    .into_iter()
    .map(OperatorEvent::try_from)
    .collect()
}

pub(super) fn resolve_operator_event(
    c: &Connection,
    id: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let done = exec(
        c,
        "UPDATE operator_events SET resolved_at = COALESCE(resolved_at, ?2) WHERE id = ?1",
        params![id, ts(now)],
        "failed to resolve an operator event",
    )?;
    if done == 0 {
        return Err(StoreError::NotFound("operator event"));
    }
    Ok(())
}

pub(super) fn claim_idempotency_key(
    c: &Connection,
    user: &UserId,
    key: &IdempotencyKey,
    fingerprint: &str,
    claimant: &Claimant,
    now: DateTime<Utc>,
) -> StoreResult<Claim> {
    // Claiming is a natural moment to forget this user's old keys.
    exec(
        c,
        "DELETE FROM idempotency_keys WHERE user_id = ?1 AND created_at < ?2",
        params![user.as_str(), ts(now - idempotency::retention())],
        "failed to prune idempotency keys",
    )?;
    // The claimant is alive: whatever it claims is not taken from it for want of a
    // heartbeat, even before its first beat.
    beat(c, &claimant.instance, now)?;
    let claimed = exec(
        c,
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at, owner, \
         lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, key) DO NOTHING",
        params![
            user.as_str(),
            key.as_str(),
            fingerprint,
            ts(now),
            claimant.instance.as_str(),
            ts(claimant.lease_until)
        ],
        "failed to claim an idempotency key",
    )? == 1;
    if claimed {
        return Ok(Claim::New);
    }
    struct Row {
        fingerprint: String,
        status_code: Option<i32>,
        content_type: Option<String>,
        body: Option<String>,
        hold: Hold,
        left: Leftover,
    }
    let row = one_with(
        c,
        "SELECT k.fingerprint, k.status_code, k.content_type, k.body, k.created_at, \
         k.owner, k.lease_until, k.payment_id, k.order_id, i.heartbeat_at \
         FROM idempotency_keys k LEFT JOIN instances i ON i.id = k.owner \
         WHERE k.user_id = ?1 AND k.key = ?2",
        [user.as_str(), key.as_str()],
        |r| {
            let created_at = crate::rows::time(r, "created_at")?;
            let lease_until: Option<String> = r.get("lease_until")?;
            let heartbeat_at: Option<String> = r.get("heartbeat_at")?;
            let owner: Option<String> = r.get("owner")?;
            let payment: Option<String> = r.get("payment_id")?;
            let order: Option<String> = r.get("order_id")?;
            Ok(Row {
                fingerprint: r.get("fingerprint")?,
                status_code: r.get("status_code")?,
                content_type: r.get("content_type")?,
                body: r.get("body")?,
                hold: Hold {
                    owner: owner.map(InstanceId::from_trusted),
                    lease_until: lease_until
                        .as_deref()
                        .and_then(super::parse_ts)
                        .unwrap_or(created_at + Duration::seconds(idempotency::LEASE_SECS)),
                    owner_heartbeat: heartbeat_at.as_deref().and_then(super::parse_ts),
                },
                left: Leftover {
                    payment: payment.as_deref().and_then(PaymentId::parse),
                    order: order.as_deref().and_then(OrderId::parse),
                },
            })
        },
        "failed to read an idempotency key",
    )?
    .ok_or(StoreError::NotFound("idempotency key"))?;
    Ok(match row {
        r if r.fingerprint != fingerprint => Claim::Mismatch,
        Row {
            status_code: Some(status),
            content_type,
            body,
            ..
        } => Claim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            content_type: content_type.unwrap_or_default(),
            body: body.unwrap_or_default().into_bytes(),
        }),
        r if idempotency::may_take_over(&r.hold, now) => {
            exec(
                c,
                "UPDATE idempotency_keys SET created_at = ?3, owner = ?4, lease_until = ?5 \
                 WHERE user_id = ?1 AND key = ?2",
                params![
                    user.as_str(),
                    key.as_str(),
                    ts(now),
                    claimant.instance.as_str(),
                    ts(claimant.lease_until)
                ],
                "failed to take over an idempotency key",
            )?;
            Claim::TakenOver(r.left)
        }
        _ => Claim::InProgress,
    })
}

/// Notes what a request under an idempotency key created, on the key, if the
/// request's holder still holds it.
pub(super) fn note_attempt(
    c: &Connection,
    attempt: &Attempt,
    payment: Option<&PaymentId>,
    order: Option<&OrderId>,
) -> StoreResult<()> {
    exec(
        c,
        "UPDATE idempotency_keys SET payment_id = COALESCE(?4, payment_id), \
         order_id = COALESCE(?5, order_id) WHERE user_id = ?1 AND key = ?2 AND owner = ?3",
        params![
            attempt.user.as_str(),
            attempt.key.as_str(),
            attempt.holder.as_str(),
            payment.map(PaymentId::as_str),
            order.map(OrderId::as_str)
        ],
        "failed to note an idempotent request's work",
    )?;
    Ok(())
}

fn beat(c: &Connection, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
    exec(
        c,
        "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = MAX(heartbeat_at, excluded.heartbeat_at)",
        params![instance.as_str(), ts(now)],
        "failed to note a heartbeat",
    )?;
    Ok(())
}

pub(super) fn heartbeat(
    c: &Connection,
    instance: &InstanceId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    beat(c, instance, now)?;
    exec(
        c,
        "DELETE FROM instances WHERE heartbeat_at < ?1",
        [ts(now
            - Duration::hours(
                idempotency::FORGET_INSTANCE_AFTER_HOURS,
            ))],
        "failed to forget old instances",
    )?;
    Ok(())
}

pub(super) fn retire_instance(c: &Connection, instance: &InstanceId) -> StoreResult<()> {
    exec(
        c,
        "DELETE FROM instances WHERE id = ?1",
        [instance.as_str()],
        "failed to retire an instance",
    )?;
    Ok(())
}

pub(super) fn complete_idempotency_key(
    c: &Connection,
    user: &UserId,
    key: &IdempotencyKey,
    holder: &InstanceId,
    response: &StoredResponse,
) -> StoreResult<()> {
    let body = std::str::from_utf8(&response.body)
        .map_err(|_| StoreError::Database(anyhow::anyhow!("an idempotent answer must be UTF-8")))?;
    exec(
        c,
        "UPDATE idempotency_keys SET status_code = ?3, content_type = ?4, body = ?5 \
         WHERE user_id = ?1 AND key = ?2 AND owner = ?6",
        params![
            user.as_str(),
            key.as_str(),
            i32::from(response.status),
            response.content_type,
            body,
            holder.as_str()
        ],
        "failed to keep an idempotent answer",
    )?;
    Ok(())
}

pub(super) fn release_idempotency_key(
    c: &Connection,
    user: &UserId,
    key: &IdempotencyKey,
    holder: &InstanceId,
) -> StoreResult<()> {
    exec(
        c,
        "DELETE FROM idempotency_keys WHERE user_id = ?1 AND key = ?2 \
         AND status_code IS NULL AND owner = ?3",
        [user.as_str(), key.as_str(), holder.as_str()],
        "failed to release an idempotency key",
    )?;
    Ok(())
}

#[async_trait]
impl ShopStore for SqliteStore {
    async fn create_product(
        &self,
        product: NewProduct,
        now: DateTime<Utc>,
    ) -> StoreResult<Product> {
        self.write_with(async move |c| shop::create_product(c, product, now).await)
            .await
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        self.read_with(async |c| shop::products(c).await)
    }

    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        self.read_with(async |c| shop::product(c, id).await)
    }

    async fn create_order_for(
        &self,
        order: &NewOrder,
        now: DateTime<Utc>,
        attempt: Option<&Attempt>,
    ) -> StoreResult<Result<Order, ReserveError>> {
        let order = order.clone();
        let attempt = attempt.cloned();
        self.write_with(async move |c| shop::create_order(c, &order, now, attempt.as_ref()).await)
            .await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        self.read_with(async |c| shop::order(c, id).await)
    }

    async fn orders_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Order>> {
        self.read_with(async |c| shop::orders_for_user(c, user, limit).await)
    }

    async fn open_payment_for_order(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>> {
        self.read_with(async |c| shop::open_payment_for_order(c, order, gateway).await)
    }

    async fn restock_order(&self, order: &OrderId, now: DateTime<Utc>) -> StoreResult<bool> {
        let order = order.clone();
        self.write_with(async move |c| shop::restock_order(c, &order, now).await)
            .await
    }

    async fn expire_orders(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OrderId>> {
        let due = self.read_with(async |c| shop::orders_due_to_expire(c, now, limit).await)?;
        let mut expired = Vec::with_capacity(due.len());
        // One transaction each: one order's failure leaves the others expired.
        for id in due {
            let order = id.clone();
            let moved = self
                .write_with(async move |c| shop::expire_order(c, &order, now).await)
                .await?;
            if moved {
                expired.push(id);
            }
        }
        Ok(expired)
    }
}
