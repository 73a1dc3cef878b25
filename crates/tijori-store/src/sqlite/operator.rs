//! Webhook deliveries and the operator's events: `OperatorLog` on SQLite, through the
//! statements in `crate::operator`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::id::PaymentId;
use tijori_core::store::{
    EventResolution, Gauges, NewWebhookDelivery, OperatorEvent, OperatorEventKind, OperatorLog,
    RecordedDelivery, StoreResult, WebhookDelivery,
};

use super::SqliteStore;
use crate::operator;

#[async_trait]
impl OperatorLog for SqliteStore {
    async fn record_webhook(&self, delivery: &NewWebhookDelivery) -> StoreResult<RecordedDelivery> {
        let delivery = delivery.clone();
        self.write_with(async move |c| operator::record_webhook(c, &delivery).await)
            .await
    }

    async fn finish_webhook(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        let (payment, outcome, detail) = (
            payment.cloned(),
            outcome.to_owned(),
            detail.map(str::to_owned),
        );
        self.write_with(async move |c| {
            operator::finish_webhook(c, id, payment.as_ref(), &outcome, detail.as_deref()).await
        })
        .await
    }

    async fn gauges(&self, overdue_before: DateTime<Utc>) -> StoreResult<Gauges> {
        self.read_with(async |c| operator::gauges(c, overdue_before).await)
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.read_with(async |c| operator::webhook_deliveries(c, limit).await)
    }

    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (payment, detail) = (payment.cloned(), detail.to_owned());
        self.write_with(async move |c| {
            operator::insert_operator_event(c, kind, payment.as_ref(), &detail, now).await
        })
        .await
    }

    async fn record_operator_event_once(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (payment, detail) = (payment.clone(), detail.to_owned());
        self.write_with(async move |c| {
            operator::insert_operator_event_once(c, kind, &payment, &detail, now).await
        })
        .await
    }

    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>> {
        self.read_with(async |c| operator::operator_events(c, include_resolved, limit).await)
    }

    async fn resolve_operator_event(
        &self,
        id: i64,
        resolution: Option<&EventResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let resolution = resolution.cloned();
        self.write_with(async move |c| {
            operator::resolve_operator_event(c, id, resolution.as_ref(), now).await
        })
        .await
    }

    async fn resolve_operator_events_naming(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        named: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (payment, named) = (payment.clone(), named.to_owned());
        self.write_with(async move |c| {
            operator::resolve_operator_events_naming(c, kind, &payment, &named, now).await
        })
        .await
    }
}
