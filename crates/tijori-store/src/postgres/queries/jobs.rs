// Background jobs, and the queries that find their work (stale payments, expired
// orders), on PostgreSQL: a child of `queries.rs`.

use chrono::{DateTime, Utc};

use tijori_core::id::{OrderId, PaymentId};
use tijori_core::jobs::NewJob;
use tijori_core::payment::{Payment, CHECKOUT_LIFETIME_HOURS};
use tijori_core::store::StoreResult;

use super::{ctx, DbStore};
use crate::rows::{stale_payments_sql, PaymentRow};

impl DbStore {
    /// Queues `job` unless an equal one is queued or running, on the pool or inside a
    /// caller's transaction (a job that must come with the change that causes it).
    pub(super) async fn insert_job<'e>(
        executor: impl sqlx::Executor<'e, Database = super::Db>,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO jobs (kind, payload, unique_key, status, attempts, max_attempts, run_at, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $6) \
             ON CONFLICT (kind, unique_key) \
             WHERE unique_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING",
        )
        .bind(job.kind.as_str())
        .bind(&job.payload)
        .bind(&job.unique_key)
        .bind(i64::from(job.kind.max_attempts()))
        .bind(job.run_at)
        .bind(now)
        .execute(executor)
        .await
        .map_err(ctx("failed to queue a job"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn stale_payments_impl(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&stale_payments_sql("$"))
            .bind(checked_before)
            .bind(i64::from(limit))
            .bind(now - chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS))
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(ctx("failed to find stale payments"))?
            .into_iter()
            .map(Payment::try_from)
            .collect()
    }

    pub(super) async fn mark_checked_impl(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE payments SET checked_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(ctx("failed to note a payment's check"))?;
        Ok(())
    }

    pub(super) async fn claim_lookup_impl(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE payments SET checked_at = $2 \
             WHERE id = $1 AND (checked_at IS NULL OR checked_at <= $3)",
        )
        .bind(id.as_str())
        .bind(now)
        .bind(not_after)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to claim a payment's lookup"))?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn expire_orders_impl(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<OrderId>> {
        let due: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to find expired orders"))?;
        let mut expired = Vec::with_capacity(due.len());
        for (id,) in due {
            let mut tx = self.begin_write().await?;
            // Re-checked under the write lock: a payment may have just paid it.
            let moved = sqlx::query(
                "UPDATE orders SET status = 'expired', updated_at = $2 \
                 WHERE id = $1 AND status = 'pending' AND expires_at <= $2",
            )
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(ctx("failed to expire an order"))?
            .rows_affected()
                == 1;
            if !moved {
                continue;
            }
            let items: Vec<(String, i32)> = sqlx::query_as(
                "SELECT product_id, quantity FROM order_items WHERE order_id = $1 \
                 ORDER BY product_id",
            )
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .map_err(ctx("failed to load an expired order's items"))?;
            for (product, quantity) in items {
                sqlx::query(
                    "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1",
                )
                .bind(&product)
                .bind(quantity)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(ctx("failed to return stock"))?;
            }
            tx.commit()
                .await
                .map_err(ctx("failed to commit an order's expiry"))?;
            expired.push(OrderId::from_trusted(id));
        }
        Ok(expired)
    }
}
