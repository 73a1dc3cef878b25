//! Receipts: `ReceiptStore` on SQLite, through the statements in `crate::receipts`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::mail::OutboxMail;
use tijori_core::receipt::Receipt;
use tijori_core::store::{ReceiptStore, StoreResult};

use super::SqliteStore;
use crate::receipts;

#[async_trait]
impl ReceiptStore for SqliteStore {
    async fn issue_receipt(&self, payment: &PaymentId, now: DateTime<Utc>) -> StoreResult<Receipt> {
        let payment = payment.clone();
        self.write_with(async move |c| receipts::issue_receipt(c, &payment, now).await)
            .await
    }

    async fn receipt_of(&self, payment: &PaymentId) -> StoreResult<Option<Receipt>> {
        self.read_with(async |c| receipts::receipt_of(c, payment).await)
    }

    async fn receipts_to_mail(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PaymentId>> {
        self.read_with(async |c| receipts::receipts_to_mail(c, since, limit).await)
    }

    async fn record_receipt_mail(
        &self,
        number: i64,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mail = mail.clone();
        self.write_with(async move |c| receipts::record_receipt_mail(c, number, &mail, now).await)
            .await
    }
}
