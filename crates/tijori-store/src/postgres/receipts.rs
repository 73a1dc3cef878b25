//! Receipts: `ReceiptStore` on PostgreSQL, through the statements in `crate::receipts`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::mail::OutboxMail;
use tijori_core::receipt::Receipt;
use tijori_core::store::{ReceiptStore, StoreError, StoreResult};

use super::PgStore;
use crate::receipts;

#[async_trait]
impl ReceiptStore for PgStore {
    async fn issue_receipt(&self, payment: &PaymentId, now: DateTime<Utc>) -> StoreResult<Receipt> {
        // Two writers can read the same highest number; the loser's insert fails on
        // the primary key and is tried again, reading the winner's number.
        let mut tries = 0;
        loop {
            let issued = self
                .write_with(async |tx| receipts::issue_receipt(tx, payment, now).await)
                .await;
            match issued {
                Err(StoreError::Database(_)) if tries < 3 => tries += 1,
                other => return other,
            }
        }
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
