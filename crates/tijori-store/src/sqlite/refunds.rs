//! Refunds and their outcomes: `RefundStore` on SQLite, through the statements in
//! `crate::refunds`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::{PaymentId, RefundId};
use tijori_core::payment::Payment;
use tijori_core::store::{Refund, RefundResolution, RefundStatus, RefundStore, StoreResult};

use super::SqliteStore;
use crate::refunds;

#[async_trait]
impl RefundStore for SqliteStore {
    async fn begin_refund(&self, refund: &Refund) -> StoreResult<()> {
        let refund = refund.clone();
        self.write_with(async move |c| refunds::begin_refund(c, &refund).await)
            .await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let id = id.clone();
        let detail = detail.map(str::to_owned);
        self.write_with(async move |c| {
            refunds::finish_refund(c, &id, status, detail.as_deref(), now).await
        })
        .await
    }

    async fn refunds_of(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
        self.read_with(async |c| refunds::refunds_of(c, payment).await)
    }

    async fn refund(&self, id: &RefundId) -> StoreResult<Option<Refund>> {
        self.read_with(async |c| refunds::refund(c, id).await)
    }

    async fn settle_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: &str,
        resolution: Option<&RefundResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let id = id.clone();
        let detail = detail.to_owned();
        let resolution = resolution.cloned();
        self.write_with(async move |c| {
            refunds::settle_refund(c, &id, status, &detail, resolution.as_ref(), now).await
        })
        .await
    }

    async fn unknown_refunds(&self, limit: u32) -> StoreResult<Vec<Refund>> {
        self.read_with(async |c| refunds::unknown_refunds(c, limit).await)
    }

    async fn payments_to_audit(
        &self,
        paid_since: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        self.read_with(async |c| {
            refunds::payments_to_audit(c, paid_since, checked_before, limit).await
        })
    }
}
