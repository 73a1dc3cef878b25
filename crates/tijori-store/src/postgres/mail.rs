//! Notices and the mail outbox: `MailStore` on PostgreSQL, through the statements in
//! `crate::mail`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::mail::{DueNotice, OutboxMail};
use tijori_core::store::{MailStore, StoreResult};

use super::PgStore;
use crate::mail;

#[async_trait]
impl MailStore for PgStore {
    async fn due_notices(
        &self,
        now: DateTime<Utc>,
        remind_within: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<DueNotice>> {
        mail::due_notices(&mut self.pool(), now, remind_within, limit).await
    }

    async fn record_notice(
        &self,
        notice: &DueNotice,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write_with(async |tx| mail::record_notice(tx, notice, mail, now).await)
            .await
    }

    async fn outbox_mail(&self, id: &str) -> StoreResult<Option<OutboxMail>> {
        mail::outbox_mail(&mut self.pool(), id).await
    }

    async fn mark_mail(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        mail::mark_mail(&mut self.pool(), id, status, error, now).await
    }

    async fn outbox(&self, limit: u32) -> StoreResult<Vec<OutboxMail>> {
        mail::outbox(&mut self.pool(), limit).await
    }
}
