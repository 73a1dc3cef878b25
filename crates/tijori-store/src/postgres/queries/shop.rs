// The shop, webhook deliveries, operator events and idempotency keys on PostgreSQL: a
// child of `queries.rs`, sharing its helpers.

use chrono::{DateTime, Duration, Utc};
use sqlx::{FromRow, QueryBuilder};

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

use super::{ctx, db_err, Db, DbStore, Tx, LOCK_ROW};
use crate::rows::{
    corrupt, money, order_from, DeliveryRow, EventRow, ItemRow, OrderRow, PaymentRow, ProductRow,
    RefundRow, ORDER_COLUMNS, PAYMENT_COLUMNS, PRODUCT_COLUMNS, REFUND_COLUMNS,
};

impl DbStore {
    pub(super) async fn insert_operator_event(
        executor: impl sqlx::Executor<'_, Database = Db>,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO operator_events (kind, payment_id, detail, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(kind.as_str())
        .bind(payment.map(PaymentId::as_str))
        .bind(detail)
        .bind(now)
        .execute(executor)
        .await
        .map_err(ctx("failed to record an operator event"))?;
        Ok(())
    }

    pub(super) async fn record_webhook_impl(
        &self,
        d: &NewWebhookDelivery,
    ) -> StoreResult<RecordedDelivery> {
        let insert = |duplicate: Option<bool>| {
            // With `None`, whether it is a duplicate is decided in the statement;
            // two identical deliveries racing both see "new", and the unique index
            // turns the loser into a duplicate below.
            let duplicate_sql = match duplicate {
                Some(true) => "TRUE".to_owned(),
                // `NOT duplicate`: the first delivery is there if any is, and the
                // partial unique index over first deliveries finds it.
                _ => "EXISTS (SELECT 1 FROM webhook_deliveries WHERE gateway = $1 AND body_sha256 = $2 \
                      AND NOT duplicate)".to_owned(),
            };
            format!(
                "INSERT INTO webhook_deliveries (gateway, body_sha256, event, reference, status, \
                 body, duplicate, received_at) VALUES ($1, $2, $3, $4, $5, $6, {duplicate_sql}, $7) \
                 RETURNING id, duplicate"
            )
        };
        for attempt in [None, Some(true)] {
            let sql = insert(attempt);
            let result: Result<(i64, bool), sqlx::Error> = sqlx::query_as(&sql)
                .bind(d.gateway.as_str())
                .bind(&d.body_sha256)
                .bind(&d.event)
                .bind(&d.reference)
                .bind(&d.status)
                .bind(&d.body)
                .bind(d.received_at)
                .fetch_one(&self.writer)
                .await;
            match result {
                Ok((id, duplicate)) => return Ok(RecordedDelivery { id, duplicate }),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt.is_none() => {
                    continue
                }
                Err(e) => {
                    return Err(StoreError::Database(
                        anyhow::Error::new(e).context("failed to record a webhook delivery"),
                    ))
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    pub(super) async fn finish_webhook_impl(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET payment_id = $2, outcome = $3, detail = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(payment.map(PaymentId::as_str))
        .bind(outcome)
        .bind(detail)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to note a webhook's outcome"))?;
        Ok(())
    }

    pub(super) async fn webhook_deliveries_impl(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        Ok(sqlx::query_as::<_, DeliveryRow>(
            "SELECT id, gateway, event, reference, status, duplicate, outcome, detail, payment_id, \
             received_at FROM webhook_deliveries ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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

    pub(super) async fn operator_events_impl(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>> {
        let filter = if include_resolved {
            ""
        } else {
            "WHERE resolved_at IS NULL "
        };
        sqlx::query_as::<_, EventRow>(&format!(
            "SELECT id, kind, payment_id, detail, created_at, resolved_at FROM operator_events \
             {filter}ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list operator events"))?
        .into_iter()
        .map(OperatorEvent::try_from)
        .collect()
    }

    pub(super) async fn resolve_operator_event_impl(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE operator_events SET resolved_at = COALESCE(resolved_at, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to resolve an operator event"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("operator event"));
        }
        Ok(())
    }

    pub(super) async fn claim_idempotency_key_impl(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        let mut tx = self.begin_write().await?;
        // Claiming is a natural moment to forget this user's old keys.
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND created_at < $2")
            .bind(user.as_str())
            .bind(now - idempotency::retention())
            .execute(&mut *tx)
            .await
            .map_err(ctx("failed to prune idempotency keys"))?;
        // The claimant is alive: whatever it claims is not taken from it for want of
        // a heartbeat, even before its first beat.
        Self::beat(&mut *tx, &claimant.instance, now).await?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at, owner, \
             lease_until) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, key) DO NOTHING",
        )
        .bind(user.as_str())
        .bind(key.as_str())
        .bind(fingerprint)
        .bind(now)
        .bind(claimant.instance.as_str())
        .bind(claimant.lease_until)
        .execute(&mut *tx)
        .await
        .map_err(ctx("failed to claim an idempotency key"))?
        .rows_affected()
            == 1;
        let claim = if claimed {
            Claim::New
        } else {
            #[derive(FromRow)]
            struct Row {
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
            let row = sqlx::query_as::<_, Row>(
                "SELECT fingerprint, status_code, content_type, body, created_at, owner, \
                 lease_until, payment_id, order_id FROM idempotency_keys \
                 WHERE user_id = $1 AND key = $2 FOR NO KEY UPDATE",
            )
            .bind(user.as_str())
            .bind(key.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(ctx("failed to read an idempotency key"))?;
            // The holder's heartbeat is read by a statement of its own, once the key's
            // row is locked: a statement that waited for the lock would see the key as
            // a concurrent takeover left it but that taker's heartbeat as it was
            // before (none), and take the key over a second time.
            let owner_heartbeat: Option<DateTime<Utc>> = match &row.owner {
                Some(owner) => {
                    sqlx::query_scalar("SELECT heartbeat_at FROM instances WHERE id = $1")
                        .bind(owner)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(ctx("failed to read an idempotency key's holder"))?
                }
                None => None,
            };
            let hold = Hold {
                owner: row.owner.clone().map(InstanceId::from_trusted),
                lease_until: row
                    .lease_until
                    .unwrap_or(row.created_at + Duration::seconds(idempotency::LEASE_SECS)),
                owner_heartbeat,
            };
            match row {
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
                r if idempotency::may_take_over(&hold, now) => {
                    sqlx::query(
                        "UPDATE idempotency_keys SET created_at = $3, owner = $4, \
                         lease_until = $5 WHERE user_id = $1 AND key = $2",
                    )
                    .bind(user.as_str())
                    .bind(key.as_str())
                    .bind(now)
                    .bind(claimant.instance.as_str())
                    .bind(claimant.lease_until)
                    .execute(&mut *tx)
                    .await
                    .map_err(ctx("failed to take over an idempotency key"))?;
                    Claim::TakenOver(Leftover {
                        payment: r.payment_id.as_deref().and_then(PaymentId::parse),
                        order: r.order_id.as_deref().and_then(OrderId::parse),
                    })
                }
                _ => Claim::InProgress,
            }
        };
        tx.commit()
            .await
            .map_err(ctx("failed to commit an idempotency key"))?;
        Ok(claim)
    }

    /// Notes what a request under an idempotency key created, on the key, if the
    /// request's holder still holds it.
    pub(super) async fn note_attempt(
        tx: &mut Tx,
        attempt: &Attempt,
        payment: Option<&PaymentId>,
        order: Option<&OrderId>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET payment_id = COALESCE($4, payment_id), \
             order_id = COALESCE($5, order_id) WHERE user_id = $1 AND key = $2 AND owner = $3",
        )
        .bind(attempt.user.as_str())
        .bind(attempt.key.as_str())
        .bind(attempt.holder.as_str())
        .bind(payment.map(PaymentId::as_str))
        .bind(order.map(OrderId::as_str))
        .execute(&mut **tx)
        .await
        .map_err(ctx("failed to note an idempotent request's work"))?;
        Ok(())
    }

    async fn beat<'e>(
        executor: impl sqlx::Executor<'e, Database = Db>,
        instance: &InstanceId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = GREATEST(instances.heartbeat_at, $2)",
        )
        .bind(instance.as_str())
        .bind(now)
        .execute(executor)
        .await
        .map_err(ctx("failed to note a heartbeat"))?;
        Ok(())
    }

    pub(super) async fn heartbeat_impl(
        &self,
        instance: &InstanceId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        Self::beat(&self.writer, instance, now).await?;
        sqlx::query("DELETE FROM instances WHERE heartbeat_at < $1")
            .bind(now - Duration::hours(idempotency::FORGET_INSTANCE_AFTER_HOURS))
            .execute(&self.writer)
            .await
            .map_err(ctx("failed to forget old instances"))?;
        Ok(())
    }

    pub(super) async fn retire_instance_impl(&self, instance: &InstanceId) -> StoreResult<()> {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(instance.as_str())
            .execute(&self.writer)
            .await
            .map_err(ctx("failed to retire an instance"))?;
        Ok(())
    }

    pub(super) async fn complete_idempotency_key_impl(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let body = String::from_utf8(response.body.clone()).map_err(|_| {
            StoreError::Database(anyhow::anyhow!("an idempotent answer must be UTF-8"))
        })?;
        sqlx::query(
            "UPDATE idempotency_keys SET status_code = $3, content_type = $4, body = $5 \
             WHERE user_id = $1 AND key = $2 AND owner = $6",
        )
        .bind(user.as_str())
        .bind(key.as_str())
        .bind(i32::from(response.status))
        .bind(&response.content_type)
        .bind(body)
        .bind(holder.as_str())
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to keep an idempotent answer"))?;
        Ok(())
    }

    pub(super) async fn release_idempotency_key_impl(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 \
             AND status_code IS NULL AND owner = $3",
        )
        .bind(user.as_str())
        .bind(key.as_str())
        .bind(holder.as_str())
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to release an idempotency key"))?;
        Ok(())
    }
}
