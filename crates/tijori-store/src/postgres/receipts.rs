//! Receipts: `ReceiptStore` on PostgreSQL, through the statements in `crate::receipts`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::mail::OutboxMail;
use tijori_core::receipt::Receipt;
use tijori_core::store::{ReceiptStore, StoreResult};

use super::PgStore;
use crate::db::{ctx, query};
use crate::receipts;

#[async_trait]
impl ReceiptStore for PgStore {
    async fn issue_receipt(&self, payment: &PaymentId, now: DateTime<Utc>) -> StoreResult<Receipt> {
        // The number is the highest so far plus one: issuers take turns on the table
        // (reads go on), so two of them never read the same highest number. Without
        // it, concurrent issuers collide on the primary key and would have to retry
        // once per rival.
        self.write_with(async |tx| {
            query("LOCK TABLE receipts IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(ctx("failed to take the receipts' turn"))?;
            receipts::issue_receipt(tx, payment, now).await
        })
        .await
    }

    async fn receipt_of(&self, payment: &PaymentId) -> StoreResult<Option<Receipt>> {
        receipts::receipt_of(&mut self.pool(), payment).await
    }

    async fn receipts_to_mail(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<PaymentId>> {
        receipts::receipts_to_mail(&mut self.pool(), since, limit).await
    }

    async fn record_receipt_mail(
        &self,
        number: i64,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write_with(async |tx| receipts::record_receipt_mail(tx, number, mail, now).await)
            .await
    }
}
