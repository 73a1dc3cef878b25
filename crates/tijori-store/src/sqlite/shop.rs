//! Products, orders and their stock: `ShopStore` on SQLite, through the statements
//! in `crate::shop`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::gateway::GatewayKind;
use tijori_core::id::{OrderId, ProductId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::payment::Payment;
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{ShopStore, StoreResult};

use super::SqliteStore;
use crate::shop;

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

    async fn cancel_order(
        &self,
        order: &OrderId,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (order, user) = (order.clone(), user.clone());
        self.write_with(async move |c| shop::cancel_order(c, &order, &user, now).await)
            .await
    }
}
