//! Products, orders and their stock: `ShopStore` on PostgreSQL, through the statements
//! in `crate::shop`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::gateway::GatewayKind;
use tijori_core::id::{OrderId, ProductId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::payment::Payment;
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{ShopStore, StoreResult};

use super::PgStore;
use crate::shop;

#[async_trait]
impl ShopStore for PgStore {
    async fn create_product(
        &self,
        product: NewProduct,
        now: DateTime<Utc>,
    ) -> StoreResult<Product> {
        shop::create_product(&mut self.pool(), product, now).await
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        shop::products(&mut self.pool()).await
    }

    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        shop::product(&mut self.pool(), id).await
    }

    async fn create_order_for(
        &self,
        order: &NewOrder,
        now: DateTime<Utc>,
        attempt: Option<&Attempt>,
    ) -> StoreResult<Result<Order, ReserveError>> {
        self.write_with(async |tx| shop::create_order(tx, order, now, attempt).await)
            .await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        shop::order(&mut self.pool(), id).await
    }

    async fn orders_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Order>> {
        shop::orders_for_user(&mut self.pool(), user, limit).await
    }

    async fn open_payment_for_order(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>> {
        shop::open_payment_for_order(&mut self.pool(), order, gateway).await
    }

    async fn restock_order(&self, order: &OrderId, now: DateTime<Utc>) -> StoreResult<bool> {
        self.write_with(async |tx| shop::restock_order(tx, order, now).await)
            .await
    }

    async fn expire_orders(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OrderId>> {
        let due = shop::orders_due_to_expire(&mut self.pool(), now, limit).await?;
        let mut expired = Vec::with_capacity(due.len());
        // One transaction each: one order's failure leaves the others expired.
        for id in due {
            let moved = self
                .write_with(async |tx| shop::expire_order(tx, &id, now).await)
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
        self.write_with(async |tx| shop::cancel_order(tx, order, user, now).await)
            .await
    }
}
