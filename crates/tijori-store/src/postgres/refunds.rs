//! Refunds and their outcomes: `RefundStore` on PostgreSQL, through the statements in
//! `crate::refunds`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::{PaymentId, RefundId};
use tijori_core::payment::Payment;
use tijori_core::store::{Refund, RefundResolution, RefundStatus, RefundStore, StoreResult};

use super::PgStore;
use crate::refunds;

#[async_trait]
impl RefundStore for PgStore {
    async fn begin_refund(&self, refund: &Refund) -> StoreResult<()> {
        self.write_with(async |tx| refunds::begin_refund(tx, refund).await)
            .await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write_with(async |tx| refunds::finish_refund(tx, id, status, detail, now).await)
            .await
    }

    async fn refunds_of(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
        refunds::refunds_of(&mut self.pool(), payment).await
    }

    async fn refund(&self, id: &RefundId) -> StoreResult<Option<Refund>> {
        refunds::refund(&mut self.pool(), id).await
    }

    async fn settle_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: &str,
        resolution: Option<&RefundResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // The refund and its event, in one transaction.
        self.write_with(async |tx| {
            refunds::settle_refund(tx, id, status, detail, resolution, now).await
        })
        .await
    }

    async fn unknown_refunds(&self, limit: u32) -> StoreResult<Vec<Refund>> {
        refunds::unknown_refunds(&mut self.pool(), limit).await
    }

    async fn payments_to_audit(
        &self,
        paid_since: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        refunds::payments_to_audit(&mut self.pool(), paid_since, checked_before, limit).await
    }
}
