// The shop, webhook deliveries, operator events and idempotency keys on PostgreSQL: a
// child of `queries.rs`, sharing its helpers.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use tijori_core::gateway::GatewayKind;
use tijori_core::id::{OrderId, PaymentId, ProductId, RefundId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::money::Money;
use tijori_core::payment::{Payment, PaymentStatus};
use tijori_core::shop::{
    NewOrder, NewProduct, Order, OrderItem, OrderStatus, Product, ReserveError,
};
use tijori_core::store::{
    OperatorEventKind, Refund, RefundResolution, RefundStatus, StoreError, StoreResult,
};

use super::{ctx, db_err, Db, DbStore, Tx, LOCK_ROW};
use crate::rows::{
    corrupt, money, order_from, ItemRow, OrderRow, PaymentRow, ProductRow, RefundRow,
    ORDER_COLUMNS, PAYMENT_COLUMNS, PRODUCT_COLUMNS, REFUND_COLUMNS,
};

/// What fulfilling an order payment came to, inside the settlement's transaction.
pub(super) enum OrderFulfilment {
    Paid,
    /// The money arrived but the order cannot take it; the payment is held for an
    /// operator (and most likely a refund), with the reason.
    Held(String),
}

impl DbStore {
    async fn items_of(
        executor: impl sqlx::Executor<'_, Database = Db>,
        orders: &[&str],
    ) -> StoreResult<Vec<ItemRow>> {
        if orders.is_empty() {
            return Ok(vec![]);
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT order_id, product_id, name, unit_price_minor, quantity FROM order_items \
             WHERE order_id IN (",
        );
        let mut ids = q.separated(", ");
        for id in orders {
            ids.push_bind(*id);
        }
        q.push(") ORDER BY order_id, product_id");
        q.build_query_as::<ItemRow>()
            .fetch_all(executor)
            .await
            .map_err(ctx("failed to load order items"))
    }

    fn assemble(rows: Vec<OrderRow>, mut items: Vec<ItemRow>) -> StoreResult<Vec<Order>> {
        rows.into_iter()
            .map(|r| {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    items.drain(..).partition(|i| i.order_id == r.id);
                items = rest;
                order_from(r, mine)
            })
            .collect()
    }

    pub(super) async fn create_product_impl(
        &self,
        p: NewProduct,
        now: DateTime<Utc>,
    ) -> StoreResult<Product> {
        let id = ProductId::generate();
        let stock = i32::try_from(p.stock)
            .map_err(|_| StoreError::Database(anyhow::anyhow!("stock {} too large", p.stock)))?;
        let row = sqlx::query_as::<_, ProductRow>(&format!(
            "INSERT INTO products (id, name, description, price_minor, currency, stock, active, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7) \
             RETURNING {PRODUCT_COLUMNS}"
        ))
        .bind(id.as_str())
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.price.minor())
        .bind(p.price.currency().code())
        .bind(stock)
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(db_err("failed to insert product", "product"))?;
        row.try_into()
    }

    pub(super) async fn products_impl(&self) -> StoreResult<Vec<Product>> {
        sqlx::query_as::<_, ProductRow>(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE active ORDER BY price_minor, id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list products"))?
        .into_iter()
        .map(Product::try_from)
        .collect()
    }

    pub(super) async fn product_impl(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        sqlx::query_as::<_, ProductRow>(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(ctx("failed to load product"))?
        .map(Product::try_from)
        .transpose()
    }

    /// Takes `quantity` of each line off the shelf, all or nothing. Lines come in
    /// product-id order, so concurrent orders lock rows in the same order and cannot
    /// deadlock on PostgreSQL. Returns each line's name and price as reserved.
    async fn reserve(
        tx: &mut Tx,
        lines: &[(ProductId, u32)],
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Vec<OrderItem>, ReserveError>> {
        let mut items = Vec::with_capacity(lines.len());
        for (product_id, quantity) in lines {
            let q = i32::try_from(*quantity).expect("quantities are bounded");
            // The conditional decrement is the whole guard against overselling: on
            // PostgreSQL a concurrent order waits for this row and re-checks the
            // condition against the committed stock.
            let taken: Option<(String, i64, String)> = sqlx::query_as(
                "UPDATE products SET stock = stock - $2, updated_at = $3 \
                 WHERE id = $1 AND active AND stock >= $2 RETURNING name, price_minor, currency",
            )
            .bind(product_id.as_str())
            .bind(q)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(ctx("failed to reserve stock"))?;
            let Some((name, price_minor, currency)) = taken else {
                let found: Option<(String, i32, bool)> =
                    sqlx::query_as("SELECT name, stock, active FROM products WHERE id = $1")
                        .bind(product_id.as_str())
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(ctx("failed to load product"))?;
                return Ok(Err(match found {
                    Some((name, stock, true)) => ReserveError::OutOfStock {
                        product: product_id.clone(),
                        name,
                        requested: *quantity,
                        available: u32::try_from(stock).unwrap_or(0),
                    },
                    _ => ReserveError::UnknownProduct {
                        product: product_id.clone(),
                    },
                }));
            };
            items.push(OrderItem {
                product_id: product_id.clone(),
                name,
                unit_price: money(price_minor, &currency, "product price")?,
                quantity: *quantity,
            });
        }
        Ok(Ok(items))
    }

    pub(super) async fn create_order_impl(
        &self,
        order: &NewOrder,
        now: DateTime<Utc>,
        attempt: Option<&Attempt>,
    ) -> StoreResult<Result<Order, ReserveError>> {
        let NewOrder {
            id,
            user,
            request,
            caps,
            expires_at,
        } = order;
        let expires_at = *expires_at;
        let mut tx = self.begin_write().await?;
        // The user's row lock makes one customer's orders take turns, so what they
        // already hold unpaid is counted after any concurrent order of theirs has
        // committed: twenty orders at once cannot pass the caps.
        // (The same lock as a subscription's settlement takes; no transaction locks a
        // product before the user, so the order of locks cannot deadlock.)
        Self::lock_user(&mut tx, user).await?;
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'pending' \
             AND expires_at > $2",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(ctx("failed to count unpaid orders"))?;
        if let Some(refused) = caps.refuses_order(u32::try_from(held).unwrap_or(u32::MAX)) {
            return Ok(Err(refused));
        }
        let items = match Self::reserve(&mut tx, request.lines(), now).await? {
            Ok(items) => items,
            // Dropping the transaction rolls back what was reserved so far.
            Err(e) => return Ok(Err(e)),
        };
        let unpaid: Vec<(String, i64)> = sqlx::query_as(
            "SELECT i.product_id, SUM(i.quantity)::BIGINT FROM order_items i \
             JOIN orders o ON o.id = i.order_id \
             WHERE o.user_id = $1 AND o.status = 'pending' AND o.expires_at > $2 \
             GROUP BY i.product_id",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(ctx("failed to count unpaid units"))?;
        for item in &items {
            let held = unpaid
                .iter()
                .find(|(p, _)| p == item.product_id.as_str())
                .map_or(0, |(_, n)| u32::try_from(*n).unwrap_or(u32::MAX));
            if let Some(refused) = caps.refuses_units(item, held) {
                return Ok(Err(refused));
            }
        }
        let currency = items[0].unit_price.currency();
        if let Some(other) = items
            .iter()
            .map(|i| i.unit_price.currency())
            .find(|c| *c != currency)
        {
            return Ok(Err(ReserveError::MixedCurrencies(currency, other)));
        }
        let total_minor = items
            .iter()
            .try_fold(0i64, |sum, i| sum.checked_add(i.subtotal().minor()))
            .ok_or_else(|| StoreError::Database(anyhow::anyhow!("order total overflows")))?;
        let total = Money::from_minor(total_minor, currency).expect("not negative");

        sqlx::query(
            "INSERT INTO orders (id, user_id, status, total_minor, currency, expires_at, \
             created_at, updated_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6)",
        )
        .bind(id.as_str())
        .bind(user.as_str())
        .bind(total_minor)
        .bind(currency.code())
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err("failed to insert order", "order"))?;
        for item in &items {
            sqlx::query(
                "INSERT INTO order_items (order_id, product_id, name, unit_price_minor, quantity) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id.as_str())
            .bind(item.product_id.as_str())
            .bind(&item.name)
            .bind(item.unit_price.minor())
            .bind(i32::try_from(item.quantity).expect("bounded"))
            .execute(&mut *tx)
            .await
            .map_err(ctx("failed to insert order item"))?;
        }
        if let Some(attempt) = attempt {
            Self::note_attempt(&mut tx, attempt, None, Some(id)).await?;
        }
        tx.commit().await.map_err(ctx("failed to commit order"))?;
        Ok(Ok(Order {
            id: id.clone(),
            user_id: user.clone(),
            status: OrderStatus::Pending,
            total,
            items,
            expires_at,
            created_at: now,
            updated_at: now,
        }))
    }

    pub(super) async fn order_impl(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        let Some(row) = sqlx::query_as::<_, OrderRow>(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(ctx("failed to load order"))?
        else {
            return Ok(None);
        };
        let items = Self::items_of(&self.reader, &[id.as_str()]).await?;
        order_from(row, items).map(Some)
    }

    pub(super) async fn orders_for_user_impl(
        &self,
        user: &UserId,
        limit: u32,
    ) -> StoreResult<Vec<Order>> {
        let rows = sqlx::query_as::<_, OrderRow>(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list orders"))?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let items = Self::items_of(&self.reader, &ids).await?;
        Self::assemble(rows, items)
    }

    pub(super) async fn open_payment_for_order_impl(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 AND gateway = $2 \
             AND status IN ('initiated', 'pending')"
        ))
        .bind(order.as_str())
        .bind(gateway.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(ctx("failed to load the order's open payment"))?
        .map(Payment::try_from)
        .transpose()
    }

    /// Marks the order paid by `payment`. An order that expired (its stock went back)
    /// is paid only if the stock can be taken again; one already paid by another
    /// payment, or refunded, cannot take the money at all.
    pub(super) async fn fulfil_order(
        tx: &mut Tx,
        payment: &Payment,
        order: &OrderId,
        now: DateTime<Utc>,
    ) -> StoreResult<OrderFulfilment> {
        let row: Option<(String, i64, String)> = sqlx::query_as(&format!(
            "SELECT status, total_minor, currency FROM orders WHERE id = $1{LOCK_ROW}"
        ))
        .bind(order.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(ctx("failed to lock the order"))?;
        let Some((status, total_minor, currency)) = row else {
            return Err(StoreError::NotFound("order"));
        };
        let status: OrderStatus = status
            .parse()
            .map_err(|_| corrupt("order status", &status))?;
        if money(total_minor, &currency, "order total")? != payment.amount {
            // The payment was opened for the order's total; anything else is a bug
            // or tampering, and not ours to resolve by guessing.
            return Ok(OrderFulfilment::Held(format!(
                "the order's total is {currency} {total_minor} minor units but this payment \
                 was for {}",
                payment.amount
            )));
        }
        match status {
            OrderStatus::Pending => {}
            OrderStatus::Expired | OrderStatus::Canceled => {
                let items = Self::items_of(&mut **tx, &[order.as_str()]).await?;
                let lines: Vec<(ProductId, u32)> = items
                    .into_iter()
                    .map(|i| (ProductId::from_trusted(i.product_id), i.quantity as u32))
                    .collect();
                // The transaction rolls back as a whole if this fails part-way, so
                // check everything first, then take.
                for (product, quantity) in &lines {
                    let stock: Option<(i32,)> = sqlx::query_as(&format!(
                        "SELECT stock FROM products WHERE id = $1{LOCK_ROW}"
                    ))
                    .bind(product.as_str())
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(ctx("failed to check stock"))?;
                    if stock.is_none_or(|(s,)| i64::from(s) < i64::from(*quantity)) {
                        return Ok(OrderFulfilment::Held(format!(
                            "paid after order {order} was {status} and its stock is gone: \
                             refund the customer"
                        )));
                    }
                }
                match Self::reserve(tx, &lines, now).await? {
                    Ok(_) => {}
                    Err(e) => {
                        return Ok(OrderFulfilment::Held(format!(
                            "paid after order {order} was {status} and it cannot be \
                             reserved again ({e}): refund the customer"
                        )))
                    }
                }
            }
            OrderStatus::Paid | OrderStatus::Refunded => {
                return Ok(OrderFulfilment::Held(format!(
                    "order {order} was already {status} by another payment: refund this one"
                )));
            }
        }
        let done = sqlx::query(
            "UPDATE orders SET status = 'paid', paid_payment_id = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(order.as_str())
        .bind(payment.id.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err("failed to mark the order paid", "order payment"))?;
        debug_assert_eq!(done.rows_affected(), 1);
        Ok(OrderFulfilment::Paid)
    }

    /// A full refund of the payment that paid an order marks the order refunded. The
    /// goods may have shipped, so stock comes back only when an operator says so.
    pub(super) async fn revoke_order(
        tx: &mut Tx,
        payment: &Payment,
        order: &OrderId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE orders SET status = 'refunded', updated_at = $3 \
             WHERE id = $1 AND status = 'paid' AND paid_payment_id = $2",
        )
        .bind(order.as_str())
        .bind(payment.id.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(ctx("failed to mark the order refunded"))?;
        Ok(())
    }

    /// Holds a payment whose money cannot be fulfilled for an operator, in the
    /// settlement's transaction.
    pub(super) async fn hold_for_review(
        tx: &mut Tx,
        payment: &PaymentId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        let row = sqlx::query_as::<_, PaymentRow>(&format!(
            "UPDATE payments SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1 \
             RETURNING {PAYMENT_COLUMNS}"
        ))
        .bind(payment.as_str())
        .bind(PaymentStatus::NeedsReview.as_str())
        .bind(reason)
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(ctx("failed to hold the payment for review"))?;
        row.try_into()
    }

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
}

impl DbStore {
    pub(super) async fn begin_refund_impl(&self, r: &Refund) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // A refund left `requested` for minutes lost its process mid-call: its outcome
        // is unknown (it stops blocking), and it is looked up like any unknown refund.
        let stale: Vec<(String,)> = sqlx::query_as(
            "UPDATE refunds SET status = 'unknown', detail = 'no outcome was recorded', \
             updated_at = $2 WHERE payment_id = $1 AND status = 'requested' AND created_at < $3 \
             RETURNING id",
        )
        .bind(r.payment_id.as_str())
        .bind(r.created_at)
        .bind(r.created_at - chrono::Duration::minutes(5))
        .fetch_all(&mut *tx)
        .await
        .map_err(ctx("failed to close stale refunds"))?;
        for (id,) in stale {
            Self::queue_refund_check(&mut tx, &RefundId::from_trusted(id), r.created_at).await?;
        }
        // Inserted only while it fits in what is left: what succeeded or may have
        // succeeded is counted, so two refunds one after the other cannot both take
        // the whole amount.
        let inserted = sqlx::query(
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
        .execute(&mut *tx)
        .await
        .map_err(db_err("failed to record a refund", "refund in flight"))?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict("refund larger than what is left"));
        }
        tx.commit()
            .await
            .map_err(ctx("failed to commit a refund"))?;
        Ok(())
    }

    /// Queues the look-up of an unknown refund, in the caller's transaction.
    async fn queue_refund_check(tx: &mut Tx, id: &RefundId, now: DateTime<Utc>) -> StoreResult<()> {
        let job = tijori_core::jobs::NewJob::check_refund(id, now);
        Self::insert_job(&mut **tx, &job, now).await?;
        Ok(())
    }

    pub(super) async fn finish_refund_impl(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE refunds SET status = $2, detail = $3, updated_at = $4 WHERE id = $1")
            .bind(id.as_str())
            .bind(status.as_str())
            .bind(detail)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(ctx("failed to record a refund's outcome"))?;
        // No unknown refund without the look-up that settles it.
        if status == RefundStatus::Unknown {
            Self::queue_refund_check(&mut tx, id, now).await?;
        }
        tx.commit()
            .await
            .map_err(ctx("failed to commit a refund's outcome"))?;
        Ok(())
    }

    pub(super) async fn refunds_of_impl(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
        sqlx::query_as::<_, RefundRow>(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r \
             JOIN payments p ON p.id = r.payment_id WHERE r.payment_id = $1 \
             ORDER BY r.created_at, r.id"
        ))
        .bind(payment.as_str())
        .fetch_all(&self.writer)
        .await
        .map_err(ctx("failed to list refunds"))?
        .into_iter()
        .map(Refund::try_from)
        .collect()
    }

    pub(super) async fn refund_impl(&self, id: &RefundId) -> StoreResult<Option<Refund>> {
        sqlx::query_as::<_, RefundRow>(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r \
             JOIN payments p ON p.id = r.payment_id WHERE r.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.writer)
        .await
        .map_err(ctx("failed to load a refund"))?
        .map(Refund::try_from)
        .transpose()
    }

    pub(super) async fn settle_refund_impl(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: &str,
        resolution: Option<&RefundResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // Compare-and-set: of a look-up and an operator settling it at once, one wins.
        let moved = sqlx::query(
            "UPDATE refunds SET status = $2, detail = $3, resolved_by = $4, \
             resolved_at = CASE WHEN $4::text IS NULL THEN NULL ELSE $6 END, resolution = $5, \
             updated_at = $6 WHERE id = $1 AND status = 'unknown'",
        )
        .bind(id.as_str())
        .bind(status.as_str())
        .bind(detail)
        .bind(resolution.map(|r| r.by.as_str()))
        .bind(resolution.map(|r| r.reason.as_str()))
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to settle a refund"))?
        .rows_affected();
        Ok(moved == 1)
    }

    pub(super) async fn unknown_refunds_impl(&self, limit: u32) -> StoreResult<Vec<Refund>> {
        sqlx::query_as::<_, RefundRow>(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r \
             JOIN payments p ON p.id = r.payment_id WHERE r.status = 'unknown' \
             ORDER BY r.created_at, r.id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list unknown refunds"))?
        .into_iter()
        .map(Refund::try_from)
        .collect()
    }

    pub(super) async fn payments_to_audit_impl(
        &self,
        paid_since: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE status IN ('completed', 'partially_refunded') AND provider_ref IS NOT NULL \
             AND updated_at >= $1 AND (checked_at IS NULL OR checked_at < $2) \
             ORDER BY checked_at IS NOT NULL, checked_at, id LIMIT $3"
        ))
        .bind(paid_since)
        .bind(checked_before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to find payments to audit"))?
        .into_iter()
        .map(Payment::try_from)
        .collect()
    }

    pub(super) async fn restock_order_impl(
        &self,
        order: &OrderId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE orders SET restocked_at = $2, updated_at = $2 \
             WHERE id = $1 AND status = 'refunded' AND restocked_at IS NULL",
        )
        .bind(order.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(ctx("failed to mark an order restocked"))?
        .rows_affected()
            == 1;
        if !marked {
            return Ok(false);
        }
        let items = Self::items_of(&mut *tx, &[order.as_str()]).await?;
        for item in items {
            sqlx::query("UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1")
                .bind(&item.product_id)
                .bind(item.quantity)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(ctx("failed to return stock"))?;
        }
        tx.commit()
            .await
            .map_err(ctx("failed to commit a restock"))?;
        Ok(true)
    }
}
