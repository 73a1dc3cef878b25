//! The operator's area: `BackOfficeStore` on SQLite, through the statements
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

use super::SqliteStore;
use crate::back_office;

#[async_trait]
impl BackOfficeStore for SqliteStore {
    async fn list_payments(&self, listing: &Listing) -> StoreResult<Listed<PaymentLine>> {
        self.read_with(async |c| back_office::list_payments(c, listing).await)
    }

    async fn list_orders(&self, listing: &Listing) -> StoreResult<Listed<OrderLine>> {
        self.read_with(async |c| back_office::list_orders(c, listing).await)
    }

    async fn list_customers(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> StoreResult<Listed<CustomerLine>> {
        self.read_with(async |c| back_office::list_customers(c, listing, now).await)
    }

    async fn list_subscriptions(
        &self,
        listing: &Listing,
        now: DateTime<Utc>,
    ) -> StoreResult<Listed<SubscriptionLine>> {
        self.read_with(async |c| back_office::list_subscriptions(c, listing, now).await)
    }

    async fn revenue(&self, since: DateTime<Utc>) -> StoreResult<Vec<RevenueDay>> {
        self.read_with(async |c| back_office::revenue(c, since).await)
    }

    async fn shop_counts(
        &self,
        now: DateTime<Utc>,
        renewals_before: DateTime<Utc>,
    ) -> StoreResult<ShopCounts> {
        self.read_with(async |c| back_office::shop_counts(c, now, renewals_before).await)
    }

    async fn deliveries_of(&self, payment: &Payment) -> StoreResult<Vec<DeliveryOfPayment>> {
        self.read_with(async |c| back_office::deliveries_of(c, payment).await)
    }

    async fn operator_events_of(&self, payment: &PaymentId) -> StoreResult<Vec<OperatorEvent>> {
        self.read_with(async |c| back_office::operator_events_of(c, payment).await)
    }
}
