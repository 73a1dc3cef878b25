//! The operator's area: `BackOfficeStore` on PostgreSQL, through the statements
//! in `crate::back_office`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::back_office::{
    CustomerLine, DeliveryOfPayment, Listed, Listing, OrderLine, PaymentLine, RevenueDay,
    ShopCounts, SubscriptionLine,
};
use tijori_core::id::PaymentId;
use tijori_core::payment::Payment;
use tijori_core::store::{BackOfficeStore, OperatorEvent, StoreResult};

use super::PgStore;
use crate::back_office;

#[async_trait]
impl BackOfficeStore for PgStore {
    async fn list_payments(&self, listing: &Listing) -> StoreResult<Listed<PaymentLine>> {
        back_office::list_payments(&mut self.pool(), listing).await
    }

    async fn list_orders(&self, listing: &Listing) -> StoreResult<Listed<OrderLine>> {
        back_office::list_orders(&mut self.pool(), listing).await
    }

    async fn list_customers(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> StoreResult<Listed<CustomerLine>> {
        back_office::list_customers(&mut self.pool(), listing, now).await
    }

    async fn list_subscriptions(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> StoreResult<Listed<SubscriptionLine>> {
        back_office::list_subscriptions(&mut self.pool(), listing, now).await
    }

    async fn revenue(&self, since: DateTime<Utc>) -> StoreResult<Vec<RevenueDay>> {
        back_office::revenue(&mut self.pool(), since).await
    }

    async fn shop_counts(
        &self,
        now: DateTime<Utc>,
        renewals_before: DateTime<Utc>,
    ) -> StoreResult<ShopCounts> {
        back_office::shop_counts(&mut self.pool(), now, renewals_before).await
    }

    async fn deliveries_of(&self, payment: &Payment) -> StoreResult<Vec<DeliveryOfPayment>> {
        back_office::deliveries_of(&mut self.pool(), payment).await
    }

    async fn operator_events_of(&self, payment: &PaymentId) -> StoreResult<Vec<OperatorEvent>> {
        back_office::operator_events_of(&mut self.pool(), payment).await
    }
}
