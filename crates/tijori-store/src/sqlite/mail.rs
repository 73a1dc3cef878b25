//! Notices and the mail outbox: `MailStore` on SQLite, through the statements in
//! `crate::mail`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use tijori_core::mail::{DueNotice, OutboxMail};
use tijori_core::store::{MailStore, StoreResult};

use super::SqliteStore;
use crate::mail;

#[async_trait]
impl MailStore for SqliteStore {
    async fn due_notices(
        &self,
        now: DateTime<Utc>,
        remind_within: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<DueNotice>> {
        self.read_with(async |c| mail::due_notices(c, now, remind_within, limit).await)
    }

    async fn record_notice(
        &self,
        notice: &DueNotice,
        mail: &OutboxMail,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (notice, outbox_mail) = (notice.clone(), mail.clone());
        self.write_with(async move |c| mail::record_notice(c, &notice, &outbox_mail, now).await)
            .await
    }

    async fn outbox_mail(&self, id: &str) -> StoreResult<Option<OutboxMail>> {
        self.read_with(async |c| mail::outbox_mail(c, id).await)
    }

    async fn mark_mail(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (id, status, error) = (id.to_owned(), status.to_owned(), error.map(str::to_owned));
        self.write_with(async move |c| {
            mail::mark_mail(c, &id, &status, error.as_deref(), now).await
        })
        .await
    }

    async fn outbox(&self, limit: u32) -> StoreResult<Vec<OutboxMail>> {
        self.read_with(async |c| mail::outbox(c, limit).await)
    }
}
