//! Outgoing events and webhook endpoints: `EventStore` on PostgreSQL, through the
//! statements in `crate::events`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::events::{
    DeliveryAttempt, EndpointSecrets, Event, FinishedDelivery, WebhookEndpoint,
};
use tijori_core::id::{EventId, WebhookEndpointId};
use tijori_core::store::{EndpointChange, EventStore, StoreResult};

use super::PgStore;
use crate::events;

#[async_trait]
impl EventStore for PgStore {
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &str,
    ) -> StoreResult<()> {
        events::create_endpoint(&mut self.pool(), endpoint, secret).await
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        events::endpoints(&mut self.pool()).await
    }

    async fn webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<(WebhookEndpoint, EndpointSecrets)>> {
        events::endpoint(&mut self.pool(), id).await
    }

    async fn update_webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
        change: &EndpointChange,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        events::update_endpoint(&mut self.pool(), id, change, now).await
    }

    async fn delete_webhook_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<bool> {
        events::delete_endpoint(&mut self.pool(), id).await
    }

    async fn rotate_webhook_secret(
        &self,
        id: &WebhookEndpointId,
        secret: &str,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        events::rotate_secret(&mut self.pool(), id, secret, previous_until, now).await
    }

    async fn disable_failing_endpoint(
        &self,
        id: &WebhookEndpointId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        events::disable_failing(&mut self.pool(), id, reason, now).await
    }

    async fn event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        events::event(&mut self.pool(), id).await
    }

    async fn events_since(&self, since: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Event>> {
        events::events(&mut self.pool(), since, limit).await
    }

    async fn queue_event_delivery(
        &self,
        event: &Event,
        endpoint: Option<&WebhookEndpointId>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        events::queue_delivery(&mut self.pool(), event, endpoint, now).await
    }

    async fn redeliver_undelivered(
        &self,
        since: DateTime<Utc>,
        endpoint: Option<&WebhookEndpointId>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        events::redeliver_undelivered(&mut self.pool(), since, endpoint, limit, now).await
    }

    async fn record_delivery_attempt(
        &self,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        self.write_with(async |tx| events::record_attempt(tx, attempt).await)
            .await
    }

    async fn finish_delivery(
        &self,
        finished: &FinishedDelivery,
    ) -> StoreResult<(Option<DateTime<Utc>>, bool)> {
        self.write_with(async |tx| events::finish_delivery(tx, finished).await)
            .await
    }

    async fn delivery_attempts(
        &self,
        endpoint: Option<&WebhookEndpointId>,
        event: Option<&EventId>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        events::attempts(&mut self.pool(), endpoint, event, limit).await
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        self.write_with(async |tx| events::prune_events(tx, before, limit).await)
            .await
    }
}
