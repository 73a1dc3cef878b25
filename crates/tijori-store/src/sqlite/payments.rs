//! Payments, their settlement and the subscription periods they pay for: `PaymentStore`
//! on SQLite, through the statements in `crate::payments`.

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

use super::SqliteStore;
use crate::payments;

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn insert_payment_for(
        &self,
        payment: &Payment,
        attempt: Option<&Attempt>,
    ) -> StoreResult<()> {
        let payment = payment.clone();
        let attempt = attempt.cloned();
        self.write_with(async move |c| {
            payments::insert_payment(c, &payment, attempt.as_ref()).await
        })
        .await
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
        let id = id.clone();
        let provider_ref = provider_ref.to_owned();
        let payment_url = payment_url.to_owned();
        let raw = raw.clone();
        self.write_with(async move |c| {
            payments::record_checkout(c, &id, &provider_ref, &payment_url, expires_at, &raw, now)
                .await
        })
        .await
    }

    async fn fail_initiation(
        &self,
        id: &PaymentId,
        reason: &str,
        raw: Option<&RawAnswer>,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        let id = id.clone();
        let reason = reason.to_owned();
        let raw = raw.cloned();
        self.write_with(async move |c| {
            payments::fail_initiation(c, &id, &reason, raw.as_ref(), now).await
        })
        .await
    }

    async fn payment(&self, id: &PaymentId) -> StoreResult<Option<Payment>> {
        self.read_with(async |c| payments::payment(c, id).await)
    }

    async fn payment_by_provider_ref(
        &self,
        gateway: GatewayKind,
        provider_ref: &str,
    ) -> StoreResult<Option<Payment>> {
        self.read_with(async |c| payments::payment_by_provider_ref(c, gateway, provider_ref).await)
    }

    async fn payments_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Payment>> {
        self.read_with(async |c| payments::payments_for_user(c, user, limit).await)
    }

    async fn record_answer(
        &self,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let id = id.clone();
        let raw = raw.clone();
        self.write_with(async move |c| payments::insert_answer(c, &id, kind, &raw, now).await)
            .await
    }

    async fn answers(&self, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>> {
        self.read_with(async |c| payments::answers(c, id).await)
    }

    async fn settle(&self, settlement: Settlement) -> StoreResult<Settled> {
        self.write_with(async move |c| payments::settle(c, &settlement, 0).await)
            .await
    }

    async fn subscription(&self, user: &UserId) -> StoreResult<Option<Subscription>> {
        self.read_with(async |c| payments::subscription(c, user).await)
    }

    async fn paid_periods(&self, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
        self.read_with(async |c| payments::paid_periods(c, user).await)
    }

    async fn segments(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Subscription>> {
        self.read_with(async |c| payments::segments(c, user, now).await)
    }

    async fn take_back(&self, payment: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        let payment = payment.clone();
        self.write_with(async move |c| payments::take_back(c, &payment, now).await)
            .await
    }

    async fn stale_payments(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        self.read_with(async |c| payments::stale_payments(c, checked_before, now, limit).await)
    }

    async fn mark_checked(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        let id = id.clone();
        self.write_with(async move |c| payments::mark_checked(c, &id, now).await)
            .await
    }

    async fn claim_lookup(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let id = id.clone();
        self.write_with(async move |c| payments::claim_lookup(c, &id, now, not_after).await)
            .await
    }
}

impl SqliteStore {
    /// Lays out again, and keeps the segments of, the periods of every user paid
    /// before segments were kept, in one write.
    pub(crate) async fn keep_segments(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        self.write_with(async move |c| {
            let users = payments::users_without_segments(c).await?;
            for user in &users {
                payments::keep_segments_of(c, user, now).await?;
            }
            Ok(users.len())
        })
        .await
    }
}
