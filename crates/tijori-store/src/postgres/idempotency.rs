//! Idempotency keys and the heartbeats of their holders: `IdempotencyStore` on
//! PostgreSQL, through the statements in `crate::idempotency`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::UserId;
use tijori_core::idempotency::{Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse};
use tijori_core::store::{IdempotencyStore, StoreResult};

use super::PgStore;
use crate::idempotency;

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        self.write_with(async |tx| {
            idempotency::claim_idempotency_key(tx, user, key, fingerprint, claimant, now).await
        })
        .await
    }

    async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        idempotency::complete_idempotency_key(&mut self.pool(), user, key, holder, response).await
    }

    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()> {
        idempotency::release_idempotency_key(&mut self.pool(), user, key, holder).await
    }

    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
        idempotency::heartbeat(&mut self.pool(), instance, now).await
    }

    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()> {
        idempotency::retire_instance(&mut self.pool(), instance).await
    }
}
