//! Webhook deliveries and the operator's events: `OperatorLog` on PostgreSQL, through
//! the statements in `crate::operator`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::store::{
    EventResolution, Gauges, NewWebhookDelivery, OperatorEvent, OperatorEventKind, OperatorLog,
    RecordedDelivery, StoreResult, WebhookDelivery,
};

use super::PgStore;
use crate::operator;

#[async_trait]
impl OperatorLog for PgStore {
    async fn record_webhook(&self, delivery: &NewWebhookDelivery) -> StoreResult<RecordedDelivery> {
        operator::record_webhook(&mut self.pool(), delivery).await
    }

    async fn finish_webhook(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        operator::finish_webhook(&mut self.pool(), id, payment, outcome, detail).await
    }

    async fn gauges(&self, overdue_before: DateTime<Utc>) -> StoreResult<Gauges> {
        operator::gauges(&mut self.pool(), overdue_before).await
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        operator::webhook_deliveries(&mut self.pool(), limit).await
    }

    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        operator::insert_operator_event(&mut self.pool(), kind, payment, detail, now).await
    }

    async fn record_operator_event_once(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        operator::insert_operator_event_once(&mut self.pool(), kind, payment, detail, now).await
    }

    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>> {
        operator::operator_events(&mut self.pool(), include_resolved, limit).await
    }

    async fn resolve_operator_event(
        &self,
        id: i64,
        resolution: Option<&EventResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        operator::resolve_operator_event(&mut self.pool(), id, resolution, now).await
    }

    async fn resolve_operator_events_naming(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        named: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        operator::resolve_operator_events_naming(&mut self.pool(), kind, payment, named, now).await
    }
}
