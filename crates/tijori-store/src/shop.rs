//! Products, orders and the stock they reserve: every statement and the orders'
//! writes once, for both backends (see `db.rs`). What money does to an order is the
//! core's rule (`tijori_core::shop::order_payment`); this applies it and keeps
//! stock from going below zero.

use chrono::{DateTime, Utc};

use tijori_core::events::{EventType, NewEvent};
use tijori_core::gateway::GatewayKind;
use tijori_core::id::{OrderId, PaymentId, ProductId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::money::Money;
use tijori_core::payment::{Payment, PaymentStatus};
use tijori_core::shop::{
    self as rules, NewOrder, NewProduct, Order, OrderItem, OrderPayment, OrderStatus, Product,
    ReserveError,
};
use tijori_core::store::{StoreError, StoreResult};

use crate::db::{ctx, db_err, query, Conn};
use crate::payments::lock_user;
use crate::rows::{
    corrupt, money, order_from, ItemRow, OrderRow, PaymentRow, ProductRow, ORDER_COLUMNS,
    PAYMENT_COLUMNS, PRODUCT_COLUMNS,
};

/// What fulfilling an order payment came to, inside the settlement's transaction.
pub(crate) enum OrderFulfilment {
    Paid,
    /// The money arrived but the order cannot take it; the payment is held for an
    /// operator (and most likely a refund), with the reason.
    Held(String),
}

/// The items of the given orders, in order and product order.
async fn items_of(c: &mut impl Conn, orders: &[&str]) -> StoreResult<Vec<ItemRow>> {
    if orders.is_empty() {
        return Ok(vec![]);
    }
    let ids = (1..=orders.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT order_id, product_id, name, unit_price_minor, quantity FROM order_items \
         WHERE order_id IN ({ids}) ORDER BY order_id, product_id"
    );
    let mut q = query(&sql);
    for id in orders {
        q = q.bind(*id);
    }
    q.fetch_all::<ItemRow>(c)
        .await
        .map_err(ctx("failed to load order items"))
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

pub(crate) async fn create_product(
    c: &mut impl Conn,
    p: NewProduct,
    now: DateTime<Utc>,
) -> StoreResult<Product> {
    let id = ProductId::generate();
    let stock = i32::try_from(p.stock)
        .map_err(|_| StoreError::Database(anyhow::anyhow!("stock {} too large", p.stock)))?;
    query(&format!(
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
    .fetch_one::<ProductRow>(c)
    .await
    .map_err(db_err("failed to insert product", "product"))?
    .try_into()
}

pub(crate) async fn products(c: &mut impl Conn) -> StoreResult<Vec<Product>> {
    query(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE active ORDER BY price_minor, id"
    ))
    .fetch_all::<ProductRow>(c)
    .await
    .map_err(ctx("failed to list products"))?
    .into_iter()
    .map(Product::try_from)
    .collect()
}

pub(crate) async fn product(c: &mut impl Conn, id: &ProductId) -> StoreResult<Option<Product>> {
    query(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional::<ProductRow>(c)
    .await
    .map_err(ctx("failed to load product"))?
    .map(Product::try_from)
    .transpose()
}

/// Takes `quantity` of each line off the shelf, all or nothing (the caller's
/// transaction rolls back what was taken if a later line fails). Lines come in
/// product-id order, so concurrent orders lock rows in the same order and cannot
/// deadlock on PostgreSQL. Returns each line's name and price as reserved.
async fn reserve(
    c: &mut impl Conn,
    lines: &[(ProductId, u32)],
    now: DateTime<Utc>,
) -> StoreResult<Result<Vec<OrderItem>, ReserveError>> {
    let mut items = Vec::with_capacity(lines.len());
    for (product_id, quantity) in lines {
        let q = i32::try_from(*quantity)
            .map_err(|_| StoreError::Database(anyhow::anyhow!("quantity {quantity} too large")))?;
        // The conditional decrement is the whole guard against overselling: on
        // PostgreSQL a concurrent order waits for this row and re-checks the
        // condition against the committed stock; SQLite's one writer runs alone.
        let taken = query(
            "UPDATE products SET stock = stock - $2, updated_at = $3 \
             WHERE id = $1 AND active AND stock >= $2 RETURNING name, price_minor, currency",
        )
        .bind(product_id.as_str())
        .bind(q)
        .bind(now)
        .fetch_optional::<(String, i64, String)>(c)
        .await
        .map_err(ctx("failed to reserve stock"))?;
        let Some((name, price_minor, currency)) = taken else {
            let found = query("SELECT name, stock, active FROM products WHERE id = $1")
                .bind(product_id.as_str())
                .fetch_optional::<(String, i32, bool)>(c)
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

/// Creates an order and reserves its stock (`ShopStore::create_order_for`), in one
/// write transaction; a refusal leaves nothing behind once the caller rolls back.
pub(crate) async fn create_order<C: Conn>(
    c: &mut C,
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
    // The user's row lock makes one customer's orders take turns, so what they
    // already hold unpaid is counted after any concurrent order of theirs has
    // committed: twenty orders at once cannot pass the caps. (The same lock as a
    // subscription's settlement takes; no transaction locks a product before the
    // user, so the order of locks cannot deadlock.) On SQLite nothing else writes
    // between this count and the insert.
    lock_user(c, user).await?;
    let (held,) = query(
        "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'pending' \
         AND expires_at > $2",
    )
    .bind(user.as_str())
    .bind(now)
    .fetch_one::<(i64,)>(c)
    .await
    .map_err(ctx("failed to count unpaid orders"))?;
    if let Some(refused) = caps.refuses_order(u32::try_from(held).unwrap_or(u32::MAX)) {
        return Ok(Err(refused));
    }
    // A refusal from here on leaves nothing taken: its part of the transaction is
    // undone to this savepoint (SQLite's writer commits several writes together, and
    // the refusal is an answer, not an error that would roll the whole back).
    query("SAVEPOINT refusal")
        .execute(c)
        .await
        .map_err(ctx("failed to reserve stock"))?;
    let items = match reserve(c, request.lines(), now).await? {
        Ok(items) => items,
        Err(e) => return refuse(c, e).await,
    };
    let unpaid = query(
        "SELECT i.product_id, CAST(SUM(i.quantity) AS BIGINT) FROM order_items i \
         JOIN orders o ON o.id = i.order_id \
         WHERE o.user_id = $1 AND o.status = 'pending' AND o.expires_at > $2 \
         GROUP BY i.product_id",
    )
    .bind(user.as_str())
    .bind(now)
    .fetch_all::<(String, i64)>(c)
    .await
    .map_err(ctx("failed to count unpaid units"))?;
    for item in &items {
        let held = unpaid
            .iter()
            .find(|(p, _)| p == item.product_id.as_str())
            .map_or(0, |(_, n)| u32::try_from(*n).unwrap_or(u32::MAX));
        if let Some(refused) = caps.refuses_units(item, held) {
            return refuse(c, refused).await;
        }
    }
    let Some(first) = items.first() else {
        return Err(StoreError::Database(anyhow::anyhow!(
            "an order without lines"
        )));
    };
    let currency = first.unit_price.currency();
    if let Some(other) = items
        .iter()
        .map(|i| i.unit_price.currency())
        .find(|c| *c != currency)
    {
        return refuse(c, ReserveError::MixedCurrencies(currency, other)).await;
    }
    let total_minor = items
        .iter()
        .try_fold(0i64, |sum, i| sum.checked_add(i.subtotal().minor()))
        .ok_or_else(|| StoreError::Database(anyhow::anyhow!("order total overflows")))?;
    let total = Money::from_minor(total_minor, currency)
        .map_err(|e| StoreError::Database(anyhow::anyhow!("order total: {e}")))?;
    query(
        "INSERT INTO orders (id, user_id, status, total_minor, currency, expires_at, \
         created_at, updated_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6)",
    )
    .bind(id.as_str())
    .bind(user.as_str())
    .bind(total_minor)
    .bind(currency.code())
    .bind(expires_at)
    .bind(now)
    .execute(c)
    .await
    .map_err(db_err("failed to insert order", "order"))?;
    for item in &items {
        query(
            "INSERT INTO order_items (order_id, product_id, name, unit_price_minor, quantity) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(item.product_id.as_str())
        .bind(&item.name)
        .bind(item.unit_price.minor())
        .bind(i32::try_from(item.quantity).unwrap_or(i32::MAX))
        .execute(c)
        .await
        .map_err(ctx("failed to insert order item"))?;
    }
    if let Some(attempt) = attempt {
        crate::idempotency::note_attempt(c, attempt, None, Some(id)).await?;
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

/// Undoes what an order took since its savepoint, and answers its refusal.
async fn refuse<T>(c: &mut impl Conn, why: ReserveError) -> StoreResult<Result<T, ReserveError>> {
    undo_to_savepoint(c).await?;
    Ok(Err(why))
}

async fn undo_to_savepoint(c: &mut impl Conn) -> StoreResult<()> {
    query("ROLLBACK TO SAVEPOINT refusal")
        .execute(c)
        .await
        .map_err(ctx("failed to undo a refused reservation"))?;
    Ok(())
}

pub(crate) async fn order(c: &mut impl Conn, id: &OrderId) -> StoreResult<Option<Order>> {
    let Some(row) = query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional::<OrderRow>(c)
        .await
        .map_err(ctx("failed to load order"))?
    else {
        return Ok(None);
    };
    let items = items_of(c, &[id.as_str()]).await?;
    order_from(row, items).map(Some)
}

pub(crate) async fn orders_for_user(
    c: &mut impl Conn,
    user: &UserId,
    limit: u32,
) -> StoreResult<Vec<Order>> {
    let rows = query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(user.as_str())
    .bind(i64::from(limit))
    .fetch_all::<OrderRow>(c)
    .await
    .map_err(ctx("failed to list orders"))?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let items = items_of(c, &ids).await?;
    assemble(rows, items)
}

pub(crate) async fn open_payment_for_order(
    c: &mut impl Conn,
    order: &OrderId,
    gateway: GatewayKind,
) -> StoreResult<Option<Payment>> {
    query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 AND gateway = $2 \
         AND status IN ('initiated', 'pending')"
    ))
    .bind(order.as_str())
    .bind(gateway.as_str())
    .fetch_optional::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to load the order's open payment"))?
    .map(Payment::try_from)
    .transpose()
}

/// Marks the order paid by `payment`, as the core's rule (`order_payment`) says: an
/// order that expired (its stock went back) is paid only if the stock can be taken
/// again; one already paid by another payment, or refunded, cannot take the money.
pub(crate) async fn fulfil_order<C: Conn>(
    c: &mut C,
    payment: &Payment,
    order: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<OrderFulfilment> {
    let row = query(&format!(
        "SELECT status, total_minor, currency FROM orders WHERE id = $1{}",
        C::LOCK_ROW
    ))
    .bind(order.as_str())
    .fetch_optional::<(String, i64, String)>(c)
    .await
    .map_err(ctx("failed to lock the order"))?;
    let Some((status, total_minor, currency)) = row else {
        return Err(StoreError::NotFound("order"));
    };
    let status: OrderStatus = status
        .parse()
        .map_err(|_| corrupt("order status", &status))?;
    let total = money(total_minor, &currency, "order total")?;
    match rules::order_payment(order, status, total, payment.amount) {
        OrderPayment::Take => {}
        OrderPayment::Hold(reason) => return Ok(OrderFulfilment::Held(reason)),
        OrderPayment::ReserveAgain => {
            let lines: Vec<(ProductId, u32)> = items_of(c, &[order.as_str()])
                .await?
                .into_iter()
                .map(|i| {
                    (
                        ProductId::from_trusted(i.product_id),
                        u32::try_from(i.quantity).unwrap_or(0),
                    )
                })
                .collect();
            // The transaction rolls back as a whole if this fails part-way, so check
            // everything first, then take.
            for (product, quantity) in &lines {
                let stock = query(&format!(
                    "SELECT stock FROM products WHERE id = $1{}",
                    C::LOCK_ROW
                ))
                .bind(product.as_str())
                .fetch_optional::<(i32,)>(c)
                .await
                .map_err(ctx("failed to check stock"))?;
                if stock.is_none_or(|(s,)| i64::from(s) < i64::from(*quantity)) {
                    return Ok(OrderFulfilment::Held(rules::stock_gone(order, status)));
                }
            }
            // A line refused part-way (a product taken off sale) must not keep the
            // lines taken before it: the payment is held, and the settlement commits.
            query("SAVEPOINT refusal")
                .execute(c)
                .await
                .map_err(ctx("failed to reserve stock"))?;
            if let Err(e) = reserve(c, &lines, now).await? {
                undo_to_savepoint(c).await?;
                return Ok(OrderFulfilment::Held(rules::cannot_reserve_again(
                    order, status, &e,
                )));
            }
        }
    }
    query("UPDATE orders SET status = 'paid', paid_payment_id = $2, updated_at = $3 WHERE id = $1")
        .bind(order.as_str())
        .bind(payment.id.as_str())
        .bind(now)
        .execute(c)
        .await
        .map_err(db_err("failed to mark the order paid", "order payment"))?;
    Ok(OrderFulfilment::Paid)
}

/// A full refund of the payment that paid an order marks the order refunded. The
/// goods may have shipped, so stock comes back only when an operator says so.
pub(crate) async fn revoke_order(
    c: &mut impl Conn,
    payment: &Payment,
    order: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "UPDATE orders SET status = 'refunded', updated_at = $3 \
         WHERE id = $1 AND status = 'paid' AND paid_payment_id = $2",
    )
    .bind(order.as_str())
    .bind(payment.id.as_str())
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to mark the order refunded"))?;
    Ok(())
}

/// Holds a payment whose money cannot be fulfilled for an operator, in the
/// settlement's transaction.
pub(crate) async fn hold_for_review(
    c: &mut impl Conn,
    payment: &PaymentId,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<Payment> {
    query(&format!(
        "UPDATE payments SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1 \
         RETURNING {PAYMENT_COLUMNS}"
    ))
    .bind(payment.as_str())
    .bind(PaymentStatus::NeedsReview.as_str())
    .bind(reason)
    .bind(now)
    .fetch_one::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to hold the payment for review"))?
    .try_into()
}

/// Gives a refunded order's stock back once (an operator's choice: the goods came
/// back); `false` if it is not refunded or was restocked already.
pub(crate) async fn restock_order(
    c: &mut impl Conn,
    order: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let marked = query(
        "UPDATE orders SET restocked_at = $2, updated_at = $2 \
         WHERE id = $1 AND status = 'refunded' AND restocked_at IS NULL",
    )
    .bind(order.as_str())
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to mark an order restocked"))?
        == 1;
    if !marked {
        return Ok(false);
    }
    for item in items_of(c, &[order.as_str()]).await? {
        put_back(c, &item.product_id, item.quantity, now).await?;
    }
    Ok(true)
}

/// Puts units of a product back on the shelf.
async fn put_back(
    c: &mut impl Conn,
    product: &str,
    quantity: i32,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query("UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1")
        .bind(product)
        .bind(quantity)
        .bind(now)
        .execute(c)
        .await
        .map_err(ctx("failed to return stock"))?;
    Ok(())
}

/// Pending orders whose time ran out, oldest first.
pub(crate) async fn orders_due_to_expire(
    c: &mut impl Conn,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<OrderId>> {
    Ok(query(
        "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= $1 \
         ORDER BY expires_at, id LIMIT $2",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all::<(String,)>(c)
    .await
    .map_err(ctx("failed to find expired orders"))?
    .into_iter()
    .map(|(id,)| OrderId::from_trusted(id))
    .collect())
}

/// Expires one order and gives its stock back, in its own transaction (one order's
/// failure leaves the others expired); `false` if a payment paid it first.
pub(crate) async fn expire_order(
    c: &mut impl Conn,
    id: &OrderId,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // Re-checked under the write lock: a payment may have just paid it.
    let moved = query(
        "UPDATE orders SET status = 'expired', updated_at = $2 \
         WHERE id = $1 AND status = 'pending' AND expires_at <= $2 RETURNING user_id",
    )
    .bind(id.as_str())
    .bind(now)
    .fetch_optional::<(String,)>(c)
    .await
    .map_err(ctx("failed to expire an order"))?;
    let Some((user,)) = moved else {
        return Ok(false);
    };
    let expired = NewEvent::about_order(EventType::OrderExpired, id, &UserId::from_trusted(user));
    crate::events::emit(c, &[expired], now).await?;
    give_back_stock(c, id, now).await?;
    Ok(true)
}

/// Puts every line of an order that just left `pending` back on the shelf. Called
/// only by the writer whose compare-and-set moved the order, so once.
async fn give_back_stock(c: &mut impl Conn, id: &OrderId, now: DateTime<Utc>) -> StoreResult<()> {
    let items = query(
        "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(id.as_str())
    .fetch_all::<(String, i32)>(c)
    .await
    .map_err(ctx("failed to load a closed order's items"))?;
    for (product, quantity) in items {
        put_back(c, &product, quantity, now).await?;
    }
    Ok(())
}

/// The customer cancels their unpaid order (`ShopStore::cancel_order`): the same
/// compare-and-set on `pending` as `expire_order` and `fulfil_order`, so whichever
/// of the three runs first decides, and the stock comes back once. A payment that
/// completes afterwards finds the order canceled and takes the stock again, or is
/// held (`rules::order_payment`).
pub(crate) async fn cancel_order(
    c: &mut impl Conn,
    id: &OrderId,
    user: &UserId,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let moved = query(
        "UPDATE orders SET status = 'canceled', updated_at = $3 \
         WHERE id = $1 AND user_id = $2 AND status = 'pending' AND expires_at > $3",
    )
    .bind(id.as_str())
    .bind(user.as_str())
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to cancel an order"))?
        == 1;
    if !moved {
        return Ok(false);
    }
    let canceled = NewEvent::about_order(EventType::OrderCanceled, id, user);
    crate::events::emit(c, &[canceled], now).await?;
    give_back_stock(c, id, now).await?;
    Ok(true)
}
