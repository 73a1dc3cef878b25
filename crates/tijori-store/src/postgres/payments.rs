//! Payments, their settlement and the subscription periods they pay for: `PaymentStore`
//! on PostgreSQL, through the statements in `crate::payments`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{PaymentId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::payment::Payment;
use tijori_core::store::{
    AnswerKind, GatewayAnswerRecord, PaymentStore, Settled, Settlement, StoreResult,
};
use tijori_core::subscription::{PaidPeriod, Subscription};

use super::PgStore;
use crate::payments;

#[async_trait]
impl PaymentStore for PgStore {
    async fn insert_payment_for(
        &self,
        payment: &Payment,
        attempt: Option<&Attempt>,
    ) -> StoreResult<()> {
        match attempt {
            // The key notes the payment in the same transaction.
            Some(_) => {
                self.write_with(async |tx| payments::insert_payment(tx, payment, attempt).await)
                    .await
            }
            // Without a key, one statement (no transaction of its own).
            None => payments::insert_payment(&mut self.pool(), payment, None).await,
        }
    }

    async fn record_checkout(
        &self,
        id: &PaymentId,
        provider_ref: &str,
        payment_url: &str,
        expires_at: Option<DateTime<Utc>>,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        payments::record_checkout(
            &mut self.pool(),
            id,
            provider_ref,
            payment_url,
            expires_at,
            raw,
            now,
        )
        .await
    }

    async fn fail_initiation(
        &self,
        id: &PaymentId,
        reason: &str,
        raw: Option<&RawAnswer>,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        self.write_with(async |tx| payments::fail_initiation(tx, id, reason, raw, now).await)
            .await
    }

    async fn payment(&self, id: &PaymentId) -> StoreResult<Option<Payment>> {
        payments::payment(&mut self.pool(), id).await
    }

    async fn payment_by_provider_ref(
        &self,
        gateway: GatewayKind,
        provider_ref: &str,
    ) -> StoreResult<Option<Payment>> {
        payments::payment_by_provider_ref(&mut self.pool(), gateway, provider_ref).await
    }

    async fn payments_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Payment>> {
        payments::payments_for_user(&mut self.pool(), user, limit).await
    }

    async fn record_answer(
        &self,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        payments::insert_answer(&mut self.pool(), id, kind, raw, now).await
    }

    async fn answers(&self, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>> {
        payments::answers(&mut self.pool(), id).await
    }

    async fn settle(&self, settlement: Settlement) -> StoreResult<Settled> {
        let own_listener = self.own_listener();
        self.write_with(async |tx| payments::settle(tx, &settlement, own_listener).await)
            .await
    }

    async fn subscription(&self, user: &UserId) -> StoreResult<Option<Subscription>> {
        payments::subscription(&mut self.pool(), user).await
    }

    async fn paid_periods(&self, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
        payments::paid_periods(&mut self.pool(), user).await
    }

    async fn segments(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Subscription>> {
        payments::segments(&mut self.pool(), user, now).await
    }

    async fn take_back(&self, payment: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        self.write_with(async |tx| payments::take_back(tx, payment, now).await)
            .await
    }

    async fn stale_payments(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        payments::stale_payments(&mut self.pool(), checked_before, now, limit).await
    }

    async fn mark_checked(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        payments::mark_checked(&mut self.pool(), id, now).await
    }

    async fn claim_lookup(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool> {
        payments::claim_lookup(&mut self.pool(), id, now, not_after).await
    }
}

impl PgStore {
    /// Lays out again, and keeps the segments of, the periods of every user paid
    /// before segments were kept: each user in a transaction of their own, under
    /// their lock.
    pub(crate) async fn keep_segments(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let users = payments::users_without_segments(&mut self.pool()).await?;
        for user in &users {
            self.write_with(async |tx| payments::keep_segments_of(tx, user, now).await)
                .await?;
        }
        Ok(users.len())
    }
}
