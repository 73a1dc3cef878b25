//! Outgoing events and webhook endpoints: `EventStore` on SQLite, through the
//! statements in `crate::events`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::events::{
    DeliveryAttempt, EndpointSecrets, Event, FinishedDelivery, WebhookEndpoint,
};
use tijori_core::id::{EventId, WebhookEndpointId};
use tijori_core::store::{EndpointChange, EventStore, StoreResult};

use super::SqliteStore;
use crate::events;

#[async_trait]
impl EventStore for SqliteStore {
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &str,
    ) -> StoreResult<()> {
        let (endpoint, secret) = (endpoint.clone(), secret.to_owned());
        self.write_with(async move |c| events::create_endpoint(c, &endpoint, &secret).await)
            .await
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        self.read_with(async |c| events::endpoints(c).await)
    }

    async fn webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
    ) -> StoreResult<Option<(WebhookEndpoint, EndpointSecrets)>> {
        self.read_with(async |c| events::endpoint(c, id).await)
    }

    async fn update_webhook_endpoint(
        &self,
        id: &WebhookEndpointId,
        change: &EndpointChange,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (id, change) = (id.clone(), change.clone());
        self.write_with(async move |c| events::update_endpoint(c, &id, &change, now).await)
            .await
    }

    async fn delete_webhook_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<bool> {
        let id = id.clone();
        self.write_with(async move |c| events::delete_endpoint(c, &id).await)
            .await
    }

    async fn rotate_webhook_secret(
        &self,
        id: &WebhookEndpointId,
        secret: &str,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, secret) = (id.clone(), secret.to_owned());
        self.write_with(async move |c| {
            events::rotate_secret(c, &id, &secret, previous_until, now).await
        })
        .await
    }

    async fn disable_failing_endpoint(
        &self,
        id: &WebhookEndpointId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, reason) = (id.clone(), reason.to_owned());
        self.write_with(async move |c| events::disable_failing(c, &id, &reason, now).await)
            .await
    }

    async fn event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        self.read_with(async |c| events::event(c, id).await)
    }

    async fn events_since(&self, since: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Event>> {
        self.read_with(async |c| events::events(c, since, limit).await)
    }

    async fn queue_event_delivery(
        &self,
        event: &Event,
        endpoint: Option<&WebhookEndpointId>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (event, endpoint) = (event.clone(), endpoint.cloned());
        self.write_with(async move |c| {
            events::queue_delivery(c, &event, endpoint.as_ref(), now).await
        })
        .await
    }

    async fn redeliver_undelivered(
        &self,
        since: DateTime<Utc>,
        endpoint: Option<&WebhookEndpointId>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let endpoint = endpoint.cloned();
        self.write_with(async move |c| {
            events::redeliver_undelivered(c, since, endpoint.as_ref(), limit, now).await
        })
        .await
    }

    async fn record_delivery_attempt(
        &self,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let attempt = attempt.clone();
        self.write_with(async move |c| events::record_attempt(c, &attempt).await)
            .await
    }

    async fn finish_delivery(
        &self,
        finished: &FinishedDelivery,
    ) -> StoreResult<(Option<DateTime<Utc>>, bool)> {
        let finished = finished.clone();
        self.write_with(async move |c| events::finish_delivery(c, &finished).await)
            .await
    }

    async fn delivery_attempts(
        &self,
        endpoint: Option<&WebhookEndpointId>,
        event: Option<&EventId>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        self.read_with(async |c| events::attempts(c, endpoint, event, limit).await)
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        self.write_with(async move |c| events::prune_events(c, before, limit).await)
            .await
    }
}
