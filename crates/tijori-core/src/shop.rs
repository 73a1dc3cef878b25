//! The shop: products with stock, and orders that reserve it.
//!
//! An order reserves its stock when it is created (in the same transaction), so what
//! a customer is about to pay for cannot be sold to someone else meanwhile. An unpaid
//! order gives its stock back when it expires.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::account::{invalid, InvalidField};
use crate::id::{OrderId, ProductId, UserId};
use crate::money::{Currency, Money};

/// The most distinct products one order may hold, and the most of one product.
pub const MAX_ORDER_LINES: usize = 50;
/// The most units of one product in one order, after repeated lines are merged.
pub const MAX_QUANTITY: u32 = 1_000;
/// The highest price a product may have, in minor units.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;
/// The most stock one product may hold (keeps every total far from overflow).
pub const MAX_STOCK: u32 = 1_000_000;

/// A product in the shop. An order copies its name and price into its lines when it
/// reserves the stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Product {
    /// `prod_…`; the cart and order requests name products by it.
    pub id: ProductId,
    /// Shown in the shop; copied into each order line that reserves it.
    pub name: String,
    /// Free text shown in the shop; not validated.
    pub description: String,
    /// Of one unit, above zero and at most `MAX_PRICE_MINOR`; its currency decides which
    /// gateway can take an order for it.
    pub price: Money,
    /// Units not reserved by any order.
    pub stock: u32,
    /// Only active products are listed and can be reserved; ordering an inactive one is
    /// refused as `ReserveError::UnknownProduct`. New products start active.
    pub active: bool,
    /// When it was added to the shop.
    pub created_at: DateTime<Utc>,
}

/// What `tijori product create` and the demo seed hand to the store.
#[derive(Clone, Debug)]
pub struct NewProduct {
    /// Not blank, at most 200 characters.
    pub name: String,
    /// Free text; not checked.
    pub description: String,
    /// Of one unit: above zero and at most `MAX_PRICE_MINOR` minor units.
    pub price: Money,
    /// Units on the shelf to start with, at most `MAX_STOCK`.
    pub stock: u32,
}

impl NewProduct {
    /// Refuses what the store must never hold: a blank or over-long name, a zero or too
    /// high price, too much stock. `Tijori::create_product` calls it first.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.name.chars().count() > 200 {
            return Err(invalid("name", "must be at most 200 characters"));
        }
        if self.price.minor() == 0 {
            return Err(invalid("price", "must be more than zero"));
        }
        // Keeps every order total (at most 50 lines of 1,000) far from overflow.
        if self.price.minor() > MAX_PRICE_MINOR {
            return Err(invalid("price", "must be at most 10,000,000,000.00"));
        }
        if self.stock > MAX_STOCK {
            return Err(invalid("stock", "must be at most 1000000"));
        }
        Ok(())
    }
}

/// Where an order is in its life. The store keeps it as `as_str`; the API's JSON spells
/// it the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stock reserved, waiting to be paid.
    Pending,
    /// Paid by exactly one payment; money from any other payment for it is held for an
    /// operator to refund.
    Paid,
    /// Not paid in time; its stock went back on the shelf.
    Expired,
    /// Nothing in tijori sets it yet; a payment arriving for it is treated as for an
    /// `Expired` order (stock taken again, or the money held).
    Canceled,
    /// Paid, then refunded in full.
    Refunded,
}

impl OrderStatus {
    /// Every status, for parsing a stored name back (`FromStr`).
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Expired,
        OrderStatus::Canceled,
        OrderStatus::Refunded,
    ];

    /// The name stored in the orders table.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Refunded => "refunded",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown order status {s:?}"))
    }
}

/// One line of an order, with the name and price the product had when it was ordered:
/// what the customer agreed to pay, whatever the product costs later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderItem {
    /// The product whose stock the line reserved (and a restock gives back).
    pub product_id: ProductId,
    /// As the product was named when ordered; the order shows this, not the current name.
    pub name: String,
    /// One unit's price when ordered; every line of an order shares its currency.
    pub unit_price: Money,
    /// Units reserved: 1 to `MAX_QUANTITY`.
    pub quantity: u32,
}

impl OrderItem {
    /// The line as a customer reads it: "2 × Coffee".
    pub fn in_words(&self) -> String {
        format!("{} × {}", self.quantity, self.name)
    }

    /// `unit_price` × `quantity`; the order's total is the sum of these.
    pub fn subtotal(&self) -> Money {
        // Bounded by MAX_QUANTITY × a price the database accepted; checked anyway.
        let minor = self
            .unit_price
            .minor()
            .checked_mul(i64::from(self.quantity))
            .expect("order line total fits in i64");
        Money::from_minor(minor, self.unit_price.currency()).expect("not negative")
    }
}

/// A customer's order: its lines' stock was reserved when it was created, at the
/// prices of that moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Order {
    /// `ord_…`; the order's page is `/orders/{id}/`.
    pub id: OrderId,
    /// The customer who placed it: the only one who may pay for it (an admin may view it).
    pub user_id: UserId,
    /// `Pending` alone does not mean payable: see `is_payable`.
    pub status: OrderStatus,
    /// Sum of the lines' subtotals. A payment for the order must be for exactly this, or
    /// its money is held for review.
    pub total: Money,
    /// One line per product.
    pub items: Vec<OrderItem>,
    /// When an unpaid order gives its stock back.
    pub expires_at: DateTime<Utc>,
    /// When it was placed and its stock reserved.
    pub created_at: DateTime<Utc>,
    /// Its last change: created, expired, paid, refunded or restocked.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Every line as a customer reads it: "2 × Coffee, 1 × Tea" (receipts, the
    /// account's payments).
    pub fn items_in_words(&self) -> String {
        self.items
            .iter()
            .map(OrderItem::in_words)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether it can still be paid: pending, and not past its expiry (even if the
    /// expiry job has not yet got to it).
    pub fn is_payable(&self, now: DateTime<Utc>) -> bool {
        self.status == OrderStatus::Pending && now < self.expires_at
    }

    /// Its total's currency (all lines share it); decides which gateway can take it.
    pub fn currency(&self) -> Currency {
        self.total.currency()
    }
}

/// A validated order request: distinct products (repeats merged), each quantity
/// within bounds, in product-id order (the order the store locks rows in, so two
/// orders for the same products cannot deadlock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    lines: Vec<(ProductId, u32)>,
}

impl OrderRequest {
    /// `items` as the caller sent them: `(product_id, quantity)`.
    pub fn parse<'a>(
        items: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> Result<Self, InvalidField> {
        let mut lines: BTreeMap<ProductId, u32> = BTreeMap::new();
        for (i, (product_id, quantity)) in items.into_iter().enumerate() {
            let id = ProductId::parse(product_id)
                .ok_or_else(|| invalid(format!("items[{i}].product_id"), "is not a product id"))?;
            let quantity = u32::try_from(quantity)
                .ok()
                .filter(|q| (1..=MAX_QUANTITY).contains(q))
                .ok_or_else(|| {
                    invalid(
                        format!("items[{i}].quantity"),
                        format!("must be from 1 to {MAX_QUANTITY}"),
                    )
                })?;
            let total = lines.entry(id).or_insert(0);
            *total = total
                .checked_add(quantity)
                .filter(|q| *q <= MAX_QUANTITY)
                .ok_or_else(|| {
                    invalid(
                        format!("items[{i}].quantity"),
                        format!("at most {MAX_QUANTITY} of one product per order"),
                    )
                })?;
        }
        if lines.is_empty() {
            return Err(invalid("items", "an order needs at least one item"));
        }
        if lines.len() > MAX_ORDER_LINES {
            return Err(invalid(
                "items",
                format!("at most {MAX_ORDER_LINES} different products per order"),
            ));
        }
        Ok(OrderRequest {
            lines: lines.into_iter().collect(),
        })
    }

    /// `(product_id, quantity)` pairs: distinct products in product-id order, each
    /// quantity from 1 to `MAX_QUANTITY`.
    pub fn lines(&self) -> &[(ProductId, u32)] {
        &self.lines
    }
}

/// Why the store could not reserve an order's stock.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// No product with that id, or one that is not active.
    #[error("{product} is not for sale")]
    UnknownProduct {
        /// The id the request named.
        product: ProductId,
    },
    /// Fewer units left than a line asks for; nothing of the order is reserved.
    #[error("only {available} of {name} left, {requested} asked for")]
    OutOfStock {
        /// The line's product.
        product: ProductId,
        /// Its name, for the message.
        name: String,
        /// Units the line asks for.
        requested: u32,
        /// Units left unreserved when the order was refused.
        available: u32,
    },
    /// Lines priced in two currencies (the first line's, then another's): an order is
    /// paid in one currency, through one gateway.
    #[error("one order cannot mix currencies ({0} and {1})")]
    MixedCurrencies(Currency, Currency),
    /// The customer already holds `OrderCaps::unpaid_orders` pending, unexpired orders.
    #[error("you have {held} unpaid orders (the most is {most}); pay for one, or wait for it to expire, before ordering more")]
    TooManyUnpaidOrders {
        /// The customer's pending, unexpired orders.
        held: u32,
        /// `OrderCaps::unpaid_orders`.
        most: u32,
    },
    /// This order would take the customer past `OrderCaps::unpaid_units_per_product`
    /// for one product.
    #[error("you hold {held} of {name} in unpaid orders; {requested} more would pass the most one customer may hold unpaid ({most})")]
    TooManyUnits {
        /// The product over the cap.
        product: ProductId,
        /// Its name, for the message.
        name: String,
        /// Units of it in the customer's other pending, unexpired orders.
        held: u32,
        /// Units this order asks for.
        requested: u32,
        /// `OrderCaps::unpaid_units_per_product`.
        most: u32,
    },
}

/// An order about to be written: all the store needs to check the caps and reserve
/// the stock in one transaction.
#[derive(Clone, Debug)]
pub struct NewOrder {
    /// Chosen before the write; an idempotency attempt, if any, records it in the same
    /// transaction.
    pub id: OrderId,
    /// The customer placing it; what they already hold unpaid is counted against `caps`.
    pub user: UserId,
    /// The lines to reserve, in product-id order.
    pub request: OrderRequest,
    /// The limits in force (`Settings::order_caps`).
    pub caps: OrderCaps,
    /// When it gives its stock back unless paid.
    pub expires_at: DateTime<Utc>,
}

/// How much of the shop one customer may hold without paying: checked in the same
/// write transaction that reserves the stock, so concurrent orders cannot pass them.
/// Without them one account could take every unit off the shelf, unpaid, for as long
/// as orders live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCaps {
    /// Unpaid, unexpired orders at once.
    pub unpaid_orders: u32,
    /// Units of one product across the customer's unpaid, unexpired orders.
    pub unpaid_units_per_product: u32,
}

impl OrderCaps {
    /// No caps at all (for tests of other things, and tools).
    pub const UNLIMITED: OrderCaps = OrderCaps {
        unpaid_orders: u32::MAX,
        unpaid_units_per_product: u32::MAX,
    };

    /// Whether one more order is refused, with `held` unpaid ones.
    pub fn refuses_order(&self, held: u32) -> Option<ReserveError> {
        (held >= self.unpaid_orders).then_some(ReserveError::TooManyUnpaidOrders {
            held,
            most: self.unpaid_orders,
        })
    }

    /// Whether `item` is refused, with `held` units of its product already unpaid.
    pub fn refuses_units(&self, item: &OrderItem, held: u32) -> Option<ReserveError> {
        (u64::from(held) + u64::from(item.quantity) > u64::from(self.unpaid_units_per_product))
            .then(|| ReserveError::TooManyUnits {
                product: item.product_id.clone(),
                name: item.name.clone(),
                held,
                requested: item.quantity,
                most: self.unpaid_units_per_product,
            })
    }
}

impl Default for OrderCaps {
    fn default() -> Self {
        OrderCaps {
            unpaid_orders: 5,
            unpaid_units_per_product: 10,
        }
    }
}

/// What money settled for an order does to it, decided from the order as it stands
/// in the settlement's transaction (`order_payment`). The store applies it: marks
/// the order paid, or first takes its stock again, or holds the payment for an
/// operator with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderPayment {
    /// The order is waiting for this money: it is paid.
    Take,
    /// The order expired or was canceled, so its stock went back to the shelf: it is
    /// paid only if all its stock can be taken again (`stock_gone` and
    /// `cannot_reserve_again` say why not).
    ReserveAgain,
    /// The order cannot take this money: the payment is held for review (and most
    /// likely a refund), with the reason.
    Hold(String),
}

/// The rule for an order's money (see `OrderPayment`). `total` is the order's,
/// `paid` the payment's: the payment was opened for the order's total, so anything
/// else is a bug or tampering, and not ours to resolve by guessing.
pub fn order_payment(
    order: &OrderId,
    status: OrderStatus,
    total: Money,
    paid: Money,
) -> OrderPayment {
    if total != paid {
        return OrderPayment::Hold(format!(
            "the order's total is {} {} minor units but this payment was for {paid}",
            total.currency().code(),
            total.minor()
        ));
    }
    match status {
        OrderStatus::Pending => OrderPayment::Take,
        OrderStatus::Expired | OrderStatus::Canceled => OrderPayment::ReserveAgain,
        OrderStatus::Paid | OrderStatus::Refunded => OrderPayment::Hold(format!(
            "order {order} was already {status} {PAID_BY_ANOTHER}: refund this one"
        )),
    }
}

/// Why money for an expired order is held: a product of it has too little stock left.
pub fn stock_gone(order: &OrderId, status: OrderStatus) -> String {
    format!("{PAID_AFTER} {order} was {status} and its stock is gone: refund the customer")
}

/// Why money for an expired order is held: its stock could not be reserved again.
pub fn cannot_reserve_again(order: &OrderId, status: OrderStatus, why: &ReserveError) -> String {
    format!(
        "{PAID_AFTER} {order} was {status} and it cannot be reserved again ({why}): \
         refund the customer"
    )
}

/// How the reasons above begin, so that [`held_because`] can tell them apart. The
/// reason is stored with the payment as the operator reads it; these markers make it
/// tell the customer's story too, without a second column.
const PAID_AFTER: &str = "paid after order";
const PAID_BY_ANOTHER: &str = "by another payment";

/// Why an order's money is held for review, as its customer should hear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// It arrived after the order expired or was canceled and the order could not
    /// take it again: it will be refunded.
    Late,
    /// The order had already been paid by another payment: this one will be refunded.
    PaidTwice,
    /// Anything else (an amount that differs from the one charged): an operator
    /// looks at it before anything is promised.
    ForReview,
}

/// Reads a held payment's `status_reason` (written by [`order_payment`],
/// [`stock_gone`], [`cannot_reserve_again`] or `decide`).
pub fn held_because(reason: Option<&str>) -> Held {
    match reason {
        Some(r) if r.starts_with(PAID_AFTER) => Held::Late,
        Some(r) if r.contains(PAID_BY_ANOTHER) => Held::PaidTwice,
        _ => Held::ForReview,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_requests_merge_repeats_and_sort_by_product() {
        let a = ProductId::generate();
        let b = ProductId::generate();
        let req = OrderRequest::parse([(b.as_str(), 2), (a.as_str(), 1), (b.as_str(), 3)]).unwrap();
        assert_eq!(req.lines(), &[(a, 1), (b, 5)]);
    }

    #[test]
    fn bad_order_requests_name_the_field() {
        let a = ProductId::generate();
        let err = |items: Vec<(&str, i64)>| OrderRequest::parse(items).unwrap_err().field;
        assert_eq!(err(vec![]), "items");
        assert_eq!(err(vec![("nope", 1)]), "items[0].product_id");
        assert_eq!(err(vec![(a.as_str(), 0)]), "items[0].quantity");
        assert_eq!(err(vec![(a.as_str(), -3)]), "items[0].quantity");
        assert_eq!(err(vec![(a.as_str(), 1_001)]), "items[0].quantity");
        assert_eq!(
            err(vec![(a.as_str(), 600), (a.as_str(), 600)]),
            "items[1].quantity"
        );
        let many: Vec<ProductId> = (0..=MAX_ORDER_LINES)
            .map(|_| ProductId::generate())
            .collect();
        assert_eq!(err(many.iter().map(|p| (p.as_str(), 1)).collect()), "items");
    }

    #[test]
    fn an_order_past_its_expiry_is_not_payable_even_if_still_pending() {
        let now = Utc::now();
        let order = Order {
            id: OrderId::generate(),
            user_id: UserId::generate(),
            status: OrderStatus::Pending,
            total: Money::from_minor(100, Currency::Etb).unwrap(),
            items: vec![],
            expires_at: now,
            created_at: now,
            updated_at: now,
        };
        assert!(!order.is_payable(now));
        assert!(order.is_payable(now - chrono::Duration::seconds(1)));
    }

    #[test]
    fn an_orders_money_is_taken_only_by_a_waiting_order_of_the_same_total() {
        use crate::money::Currency;
        let order = OrderId::generate();
        let npr = |minor| Money::from_minor(minor, Currency::Npr).unwrap();
        assert_eq!(
            order_payment(&order, OrderStatus::Pending, npr(500), npr(500)),
            OrderPayment::Take
        );
        for status in [OrderStatus::Expired, OrderStatus::Canceled] {
            assert_eq!(
                order_payment(&order, status, npr(500), npr(500)),
                OrderPayment::ReserveAgain
            );
        }
        for status in [OrderStatus::Paid, OrderStatus::Refunded] {
            let OrderPayment::Hold(why) = order_payment(&order, status, npr(500), npr(500)) else {
                panic!("{status} took the money");
            };
            assert!(why.contains("refund this one"), "{why}");
        }
        // A different total holds the money whatever the order's status.
        for status in [OrderStatus::Pending, OrderStatus::Expired] {
            let OrderPayment::Hold(why) = order_payment(&order, status, npr(500), npr(499)) else {
                panic!("a different total was taken");
            };
            assert!(why.contains("NPR 500 minor units"), "{why}");
        }
    }

    #[test]
    fn each_hold_reason_tells_the_customer_its_own_story() {
        use crate::money::Currency;
        let order = OrderId::generate();
        let npr = |minor| Money::from_minor(minor, Currency::Npr).unwrap();
        let held = |p: OrderPayment| match p {
            OrderPayment::Hold(why) => held_because(Some(&why)),
            other => panic!("not held: {other:?}"),
        };
        for status in [OrderStatus::Expired, OrderStatus::Canceled] {
            assert_eq!(held_because(Some(&stock_gone(&order, status))), Held::Late);
            let gone = ReserveError::UnknownProduct {
                product: ProductId::generate(),
            };
            let why = cannot_reserve_again(&order, status, &gone);
            assert_eq!(held_because(Some(&why)), Held::Late);
        }
        for status in [OrderStatus::Paid, OrderStatus::Refunded] {
            assert_eq!(
                held(order_payment(&order, status, npr(500), npr(500))),
                Held::PaidTwice
            );
        }
        // A different amount is never promised back: an operator decides.
        for status in [
            OrderStatus::Pending,
            OrderStatus::Expired,
            OrderStatus::Paid,
        ] {
            assert_eq!(
                held(order_payment(&order, status, npr(500), npr(499))),
                Held::ForReview
            );
        }
        assert_eq!(held_because(None), Held::ForReview);
        assert_eq!(
            held_because(Some(
                "khalti reports 100 minor units paid, but NPR 5.00 was charged"
            )),
            Held::ForReview
        );
    }

    mod properties {
        use super::*;
        use crate::money::Currency;
        use proptest::prelude::*;

        fn status() -> impl Strategy<Value = OrderStatus> {
            prop_oneof![
                Just(OrderStatus::Pending),
                Just(OrderStatus::Paid),
                Just(OrderStatus::Expired),
                Just(OrderStatus::Canceled),
                Just(OrderStatus::Refunded),
            ]
        }

        proptest! {
            /// Money is taken only for exactly the order's total, by an order still
            /// waiting for it (at once) or one whose stock went back (if it can be
            /// taken again); everything else is held for an operator, never lost.
            #[test]
            fn an_orders_money_is_taken_only_as_owed(
                status in status(),
                total in 1i64..10_000_000,
                paid in 1i64..10_000_000,
                same_currency: bool,
            ) {
                let order = OrderId::generate();
                let total = Money::from_minor(total, Currency::Etb).unwrap();
                let currency = if same_currency { Currency::Etb } else { Currency::Npr };
                let paid = Money::from_minor(paid, currency).unwrap();
                let decided = order_payment(&order, status, total, paid);
                let owed = total == paid;
                match decided {
                    OrderPayment::Take => prop_assert!(owed && status == OrderStatus::Pending),
                    OrderPayment::ReserveAgain => prop_assert!(
                        owed && matches!(status, OrderStatus::Expired | OrderStatus::Canceled)
                    ),
                    OrderPayment::Hold(why) => {
                        prop_assert!(!owed || matches!(status, OrderStatus::Paid | OrderStatus::Refunded));
                        prop_assert!(!why.is_empty());
                    }
                }
            }
        }
    }
}
