//! Idempotency keys and the heartbeats of their holders: `IdempotencyStore` on SQLite,
//! through the statements in `crate::idempotency`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::UserId;
use tijori_core::idempotency::{Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse};
use tijori_core::store::{IdempotencyStore, StoreResult};

use super::SqliteStore;
use crate::idempotency;

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        let (user, key, fingerprint, claimant) = (
            user.clone(),
            key.clone(),
            fingerprint.to_owned(),
            claimant.clone(),
        );
        self.write_with(async move |c| {
            idempotency::claim_idempotency_key(c, &user, &key, &fingerprint, &claimant, now).await
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
        let (user, key, holder, response) =
            (user.clone(), key.clone(), holder.clone(), response.clone());
        self.write_with(async move |c| {
            idempotency::complete_idempotency_key(c, &user, &key, &holder, &response).await
        })
        .await
    }

    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()> {
        let (user, key, holder) = (user.clone(), key.clone(), holder.clone());
        self.write_with(async move |c| {
            idempotency::release_idempotency_key(c, &user, &key, &holder).await
        })
        .await
    }

    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
        let instance = instance.clone();
        self.write_with(async move |c| idempotency::heartbeat(c, &instance, now).await)
            .await
    }

    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()> {
        let instance = instance.clone();
        self.write_with(async move |c| idempotency::retire_instance(c, &instance).await)
            .await
    }
}
