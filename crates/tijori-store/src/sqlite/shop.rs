//! The shop (products, orders and their stock), webhook deliveries, operator events,
//! idempotency keys and refunds.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, params_from_iter, Connection};

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

use super::{all, all_with, ctx, db_err, exec, exec_or, one, one_with, ts};
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

fn items_of(c: &Connection, orders: &[&str]) -> StoreResult<Vec<ItemRow>> {
    if orders.is_empty() {
        return Ok(vec![]);
    }
    let marks = (1..=orders.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    all::<ItemRow>(
        c,
        &format!(
            "SELECT order_id, product_id, name, unit_price_minor, quantity FROM order_items \
             WHERE order_id IN ({marks}) ORDER BY order_id, product_id"
        ),
        params_from_iter(orders),
        "failed to load order items",
    )
}

fn assemble(rows: Vec<OrderRow>, mut items: Vec<ItemRow>) -> StoreResult<Vec<Order>> {
    rows.into_iter()
        .map(|r| {
            let (mine, rest): (Vec<_>, Vec<_>) = items.drain(..).partition(|i| i.order_id == r.id);
            items = rest;
            order_from(r, mine)
        })
        .collect()
}

pub(super) fn create_product(
    c: &Connection,
    p: NewProduct,
    now: DateTime<Utc>,
) -> StoreResult<Product> {
    let id = ProductId::generate();
    let stock = i32::try_from(p.stock)
        .map_err(|_| StoreError::Database(anyhow::anyhow!("stock {} too large", p.stock)))?;
    c.prepare_cached(&format!(
        "INSERT INTO products (id, name, description, price_minor, currency, stock, active, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, TRUE, ?7, ?7) \
         RETURNING {PRODUCT_COLUMNS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![
                id.as_str(),
                p.name,
                p.description,
                p.price.minor(),
                p.price.currency().code(),
                stock,
                ts(now)
            ],
            <ProductRow as crate::rows::FromSqlite>::from_sqlite,
        )
    })
    .map_err(db_err("failed to insert product", "product"))?
    .try_into()
}

pub(super) fn products(c: &Connection) -> StoreResult<Vec<Product>> {
    all::<ProductRow>(
        c,
        &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE active ORDER BY price_minor, id"),
        [],
        "failed to list products",
    )?
    .into_iter()
    .map(Product::try_from)
    .collect()
}

pub(super) fn product(c: &Connection, id: &ProductId) -> StoreResult<Option<Product>> {
    one::<ProductRow>(
        c,
        &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?1"),
        [id.as_str()],
        "failed to load product",
    )?
    .map(Product::try_from)
    .transpose()
}

/// Takes `quantity` of each line off the shelf, all or nothing (the caller's
/// savepoint undoes a partial reservation). Returns each line as reserved.
fn reserve(
    c: &Connection,
    lines: &[(ProductId, u32)],
    now: DateTime<Utc>,
) -> StoreResult<Result<Vec<OrderItem>, ReserveError>> {
    let mut items = Vec::with_capacity(lines.len());
    for (product_id, quantity) in lines {
        let q = i32::try_from(*quantity).expect("quantities are bounded");
        // The conditional decrement is the whole guard against overselling.
        let taken = one_with(
            c,
            "UPDATE products SET stock = stock - ?2, updated_at = ?3 \
             WHERE id = ?1 AND active AND stock >= ?2 RETURNING name, price_minor, currency",
            params![product_id.as_str(), q, ts(now)],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
            "failed to reserve stock",
        )?;
        let Some((name, price_minor, currency)) = taken else {
            let found = one_with(
                c,
                "SELECT name, stock, active FROM products WHERE id = ?1",
                [product_id.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i32>(1)?,
                        r.get::<_, bool>(2)?,
                    ))
                },
                "failed to load product",
            )?;
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

pub(super) fn create_order(
    c: &Connection,
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
    // On the one writer, nothing else writes between this count and the insert: the
    // caps hold however many orders arrive at once.
    let held = one_with(
        c,
        "SELECT count(*) FROM orders WHERE user_id = ?1 AND status = 'pending' \
         AND expires_at > ?2",
        params![user.as_str(), ts(now)],
        |r| r.get::<_, i64>(0),
        "failed to count unpaid orders",
    )?
    .unwrap_or(0);
    if let Some(refused) = caps.refuses_order(u32::try_from(held).unwrap_or(u32::MAX)) {
        return Ok(Err(refused));
    }
    // A refusal is an answer, not a failure, but what was reserved before it must go
    // back on the shelf: the lines are reserved inside a savepoint of their own.
    let savepoint = |sql: &str| c.execute_batch(sql).map_err(ctx("failed to reserve stock"));
    savepoint("SAVEPOINT reserve")?;
    let refuse = |e: ReserveError| {
        savepoint("ROLLBACK TO reserve; RELEASE reserve")?;
        Ok(Err(e))
    };
    let items = match reserve(c, request.lines(), now)? {
        Ok(items) => items,
        Err(e) => return refuse(e),
    };
    let currency = items[0].unit_price.currency();
    if let Some(other) = items
        .iter()
        .map(|i| i.unit_price.currency())
        .find(|c| *c != currency)
    {
        return refuse(ReserveError::MixedCurrencies(currency, other));
    }
    for item in &items {
        let held = one_with(
            c,
            "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i \
             JOIN orders o ON o.id = i.order_id \
             WHERE o.user_id = ?1 AND o.status = 'pending' AND o.expires_at > ?2 \
             AND i.product_id = ?3",
            params![user.as_str(), ts(now), item.product_id.as_str()],
            |r| r.get::<_, i64>(0),
            "failed to count unpaid units",
        )?
        .unwrap_or(0);
        if let Some(refused) = caps.refuses_units(item, u32::try_from(held).unwrap_or(u32::MAX)) {
            return refuse(refused);
        }
    }
    savepoint("RELEASE reserve")?;
    let total_minor = items
        .iter()
        .try_fold(0i64, |sum, i| sum.checked_add(i.subtotal().minor()))
        .ok_or_else(|| StoreError::Database(anyhow::anyhow!("order total overflows")))?;
    let total = Money::from_minor(total_minor, currency).expect("not negative");
    exec_or(
        c,
        "INSERT INTO orders (id, user_id, status, total_minor, currency, expires_at, \
         created_at, updated_at) VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?6)",
        params![
            id.as_str(),
            user.as_str(),
            total_minor,
            currency.code(),
            ts(expires_at),
            ts(now)
        ],
        db_err("failed to insert order", "order"),
    )?;
    for item in &items {
        exec(
            c,
            "INSERT INTO order_items (order_id, product_id, name, unit_price_minor, quantity) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.as_str(),
                item.product_id.as_str(),
                item.name,
                item.unit_price.minor(),
                i32::try_from(item.quantity).expect("bounded")
            ],
            "failed to insert order item",
        )?;
    }
    if let Some(attempt) = attempt {
        note_attempt(c, attempt, None, Some(id))?;
    }
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

pub(super) fn order(c: &Connection, id: &OrderId) -> StoreResult<Option<Order>> {
    let Some(row) = one::<OrderRow>(
        c,
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"),
        [id.as_str()],
        "failed to load order",
    )?
    else {
        return Ok(None);
    };
    let items = items_of(c, &[id.as_str()])?;
    order_from(row, items).map(Some)
}

pub(super) fn orders_for_user(
    c: &Connection,
    user: &UserId,
    limit: u32,
) -> StoreResult<Vec<Order>> {
    let rows = all::<OrderRow>(
        c,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?1 \
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ),
        params![user.as_str(), i64::from(limit)],
        "failed to list orders",
    )?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let items = items_of(c, &ids)?;
    assemble(rows, items)
}

pub(super) fn open_payment_for_order(
    c: &Connection,
    order: &OrderId,
    gateway: GatewayKind,
) -> StoreResult<Option<Payment>> {
    one::<PaymentRow>(
        c,
        &format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = ?1 AND gateway = ?2 \
             AND status IN ('initiated', 'pending')"
        ),
        [order.as_str(), gateway.as_str()],
        "failed to load the order's open payment",
    )?
    .map(Payment::try_from)
    .transpose()
}

/// Marks the order paid by `payment`. An order that expired (its stock went back) is
/// paid only if the stock can be taken again; one already paid by another payment, or
/// refunded, cannot take the money at all.
pub(super) fn fulfil_order(
    c: &Connection,
    payment: &Payment,
    order: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<OrderFulfilment> {
    let row = one_with(
        c,
        "SELECT status, total_minor, currency FROM orders WHERE id = ?1",
        [order.as_str()],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        },
        "failed to load the order",
    )?;
    let Some((status, total_minor, currency)) = row else {
        return Err(StoreError::NotFound("order"));
    };
    let status: OrderStatus = status
        .parse()
        .map_err(|_| corrupt("order status", &status))?;
    if money(total_minor, &currency, "order total")? != payment.amount {
        // The payment was opened for the order's total; anything else is a bug or
        // tampering, and not ours to resolve by guessing.
        return Ok(OrderFulfilment::Held(format!(
            "the order's total is {currency} {total_minor} minor units but this payment \
             was for {}",
            payment.amount
        )));
    }
    match status {
        OrderStatus::Pending => {}
        OrderStatus::Expired | OrderStatus::Canceled => {
            let lines: Vec<(ProductId, u32)> = items_of(c, &[order.as_str()])?
                .into_iter()
                .map(|i| (ProductId::from_trusted(i.product_id), i.quantity as u32))
                .collect();
            // Check everything first, then take: nothing is taken unless all is.
            for (product, quantity) in &lines {
                let stock = one_with(
                    c,
                    "SELECT stock FROM products WHERE id = ?1",
                    [product.as_str()],
                    |r| r.get::<_, i32>(0),
                    "failed to check stock",
                )?;
                if stock.is_none_or(|s| i64::from(s) < i64::from(*quantity)) {
                    return Ok(OrderFulfilment::Held(format!(
                        "paid after order {order} was {status} and its stock is gone: \
                         refund the customer"
                    )));
                }
            }
            if let Err(e) = reserve(c, &lines, now)? {
                return Ok(OrderFulfilment::Held(format!(
                    "paid after order {order} was {status} and it cannot be reserved again \
                     ({e}): refund the customer"
                )));
            }
        }
        OrderStatus::Paid | OrderStatus::Refunded => {
            return Ok(OrderFulfilment::Held(format!(
                "order {order} was already {status} by another payment: refund this one"
            )));
        }
    }
    let done = exec_or(
        c,
        "UPDATE orders SET status = 'paid', paid_payment_id = ?2, updated_at = ?3 WHERE id = ?1",
        params![order.as_str(), payment.id.as_str(), ts(now)],
        db_err("failed to mark the order paid", "order payment"),
    )?;
    debug_assert_eq!(done, 1);
    Ok(OrderFulfilment::Paid)
}

/// A full refund of the payment that paid an order marks the order refunded. The goods
/// may have shipped, so stock comes back only when an operator says so.
pub(super) fn revoke_order(
    c: &Connection,
    payment: &Payment,
    order: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec(
        c,
        "UPDATE orders SET status = 'refunded', updated_at = ?3 \
         WHERE id = ?1 AND status = 'paid' AND paid_payment_id = ?2",
        params![order.as_str(), payment.id.as_str(), ts(now)],
        "failed to mark the order refunded",
    )?;
    Ok(())
}

/// Holds a payment whose money cannot be fulfilled for an operator, in the
/// settlement's transaction.
pub(super) fn hold_for_review(
    c: &Connection,
    payment: &PaymentId,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<Payment> {
    one::<PaymentRow>(
        c,
        &format!(
            "UPDATE payments SET status = ?2, status_reason = ?3, updated_at = ?4 WHERE id = ?1 \
             RETURNING {PAYMENT_COLUMNS}"
        ),
        params![
            payment.as_str(),
            PaymentStatus::NeedsReview.as_str(),
            reason,
            ts(now)
        ],
        "failed to hold the payment for review",
    )?
    .ok_or(StoreError::NotFound("payment"))?
    .try_into()
}

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

pub(super) fn begin_refund(c: &Connection, r: &Refund) -> StoreResult<()> {
    // A refund left `requested` for minutes lost its process mid-call: its outcome is
    // unknown (it stops blocking), and it is looked up like any unknown refund.
    let stale: Vec<String> = all_with(
        c,
        "UPDATE refunds SET status = 'unknown', detail = 'no outcome was recorded', \
         updated_at = ?2 WHERE payment_id = ?1 AND status = 'requested' AND created_at < ?3 \
         RETURNING id",
        params![
            r.payment_id.as_str(),
            ts(r.created_at),
            ts(r.created_at - Duration::minutes(5))
        ],
        |row| row.get(0),
        "failed to close stale refunds",
    )?;
    for id in stale {
        queue_refund_check(c, &RefundId::from_trusted(id), r.created_at)?;
    }
    // Inserted only while it fits in what is left: what succeeded or may have succeeded
    // is counted, so two refunds one after the other cannot both take the whole amount.
    let inserted = exec_or(
        c,
        "INSERT INTO refunds (id, payment_id, amount_minor, reason, status, requested_by, \
         restock, created_at, updated_at) \
         SELECT ?1, ?2, ?3, ?4, 'requested', ?5, ?7, ?6, ?6 \
         WHERE ?3 + (SELECT COALESCE(SUM(amount_minor), 0) FROM refunds \
             WHERE payment_id = ?2 AND status IN ('succeeded', 'unknown', 'requested')) \
           <= (SELECT amount_minor FROM payments WHERE id = ?2)",
        params![
            r.id.as_str(),
            r.payment_id.as_str(),
            r.amount.minor(),
            r.reason,
            r.requested_by.as_str(),
            ts(r.created_at),
            r.restock
        ],
        db_err("failed to record a refund", "refund in flight"),
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict("refund larger than what is left"));
    }
    Ok(())
}

/// Queues the look-up of an unknown refund, in the caller's transaction.
fn queue_refund_check(c: &Connection, id: &RefundId, now: DateTime<Utc>) -> StoreResult<()> {
    super::jobs::enqueue_job(c, &tijori_core::jobs::NewJob::check_refund(id, now), now)?;
    Ok(())
}

pub(super) fn finish_refund(
    c: &Connection,
    id: &RefundId,
    status: RefundStatus,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec(
        c,
        "UPDATE refunds SET status = ?2, detail = ?3, updated_at = ?4 WHERE id = ?1",
        params![id.as_str(), status.as_str(), detail, ts(now)],
        "failed to record a refund's outcome",
    )?;
    // No unknown refund without the look-up that settles it (same transaction).
    if status == RefundStatus::Unknown {
        queue_refund_check(c, id, now)?;
    }
    Ok(())
}

pub(super) fn refunds_of(c: &Connection, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
    all::<RefundRow>(
        c,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r \
             JOIN payments p ON p.id = r.payment_id WHERE r.payment_id = ?1 \
             ORDER BY r.created_at, r.id"
        ),
        [payment.as_str()],
        "failed to list refunds",
    )?
    .into_iter()
    .map(Refund::try_from)
    .collect()
}

pub(super) fn refund(c: &Connection, id: &RefundId) -> StoreResult<Option<Refund>> {
    one::<RefundRow>(
        c,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r \
             JOIN payments p ON p.id = r.payment_id WHERE r.id = ?1"
        ),
        [id.as_str()],
        "failed to load a refund",
    )?
    .map(Refund::try_from)
    .transpose()
}

pub(super) fn settle_refund(
    c: &Connection,
    id: &RefundId,
    status: RefundStatus,
    detail: &str,
    resolution: Option<&RefundResolution>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // Compare-and-set: of a look-up and an operator settling it at once, one wins.
    let moved = exec(
        c,
        "UPDATE refunds SET status = ?2, detail = ?3, resolved_by = ?4, \
         resolved_at = CASE WHEN ?4 IS NULL THEN NULL ELSE ?6 END, resolution = ?5, \
         updated_at = ?6 WHERE id = ?1 AND status = 'unknown'",
        params![
            id.as_str(),
            status.as_str(),
            detail,
            resolution.map(|r| r.by.as_str()),
            resolution.map(|r| r.reason.as_str()),
            ts(now)
        ],
        "failed to settle a refund",
    )?;
    Ok(moved == 1)
}

pub(super) fn unknown_refunds(c: &Connection, limit: u32) -> StoreResult<Vec<Refund>> {
    all::<RefundRow>(
        c,
        &format!(
            "SELECT {REFUND_COLUMNS} FROM refunds r \
             JOIN payments p ON p.id = r.payment_id WHERE r.status = 'unknown' \
             ORDER BY r.created_at, r.id LIMIT ?1"
        ),
        [i64::from(limit)],
        "failed to list unknown refunds",
    )?
    .into_iter()
    .map(Refund::try_from)
    .collect()
}

pub(super) fn payments_to_audit(
    c: &Connection,
    paid_since: DateTime<Utc>,
    checked_before: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Payment>> {
    all::<PaymentRow>(
        c,
        &format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE status IN ('completed', 'partially_refunded') AND provider_ref IS NOT NULL \
             AND updated_at >= ?1 AND (checked_at IS NULL OR checked_at < ?2) \
             ORDER BY checked_at IS NOT NULL, checked_at, id LIMIT ?3"
        ),
        params![ts(paid_since), ts(checked_before), i64::from(limit)],
        "failed to find payments to audit",
    )?
    .into_iter()
    .map(Payment::try_from)
    .collect()
}

pub(super) fn restock_order(
    c: &Connection,
    order: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let marked = exec(
        c,
        "UPDATE orders SET restocked_at = ?2, updated_at = ?2 \
         WHERE id = ?1 AND status = 'refunded' AND restocked_at IS NULL",
        params![order.as_str(), ts(now)],
        "failed to mark an order restocked",
    )? == 1;
    if !marked {
        return Ok(false);
    }
    for item in items_of(c, &[order.as_str()])? {
        exec(
            c,
            "UPDATE products SET stock = stock + ?2, updated_at = ?3 WHERE id = ?1",
            params![item.product_id, item.quantity, ts(now)],
            "failed to return stock",
        )?;
    }
    Ok(true)
}
