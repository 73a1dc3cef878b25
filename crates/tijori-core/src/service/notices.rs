//! Renewal reminders and expiry notices, written to the outbox once per period and
//! delivered by a job.

use tracing::{info, warn};

use super::Tijori;
use crate::error::Result;
use crate::jobs::JobError;
use crate::mail::{compose, OutboxMail};

impl Tijori {
    /// Writes every reminder and expiry notice that is due (each once per user, kind
    /// and period, whichever worker finds it). Returns how many were written.
    pub async fn queue_notices(&self) -> Result<usize> {
        let now = self.now();
        let due = self
            .store
            .due_notices(now, self.background.remind_before, 1_000)
            .await?;
        let mut written = 0;
        for notice in due {
            let (subject, body) = compose(&notice, &self.settings.public_url);
            let mail = OutboxMail {
                id: format!("mail_{}", uuid::Uuid::now_v7().simple()),
                user_id: notice.user_id.clone(),
                to: notice.email.clone(),
                subject,
                body,
                status: "queued".into(),
                error: None,
                created_at: now,
                sent_at: None,
            };
            if self.store.record_notice(&notice, &mail, now).await? {
                info!(user = %notice.user_id, kind = notice.kind.as_str(), "subscription notice written");
                written += 1;
            }
        }
        Ok(written)
    }

    /// Delivers one outbox mail through SMTP, or, with no SMTP configured, keeps it in
    /// the outbox for the operator (it is never dropped).
    pub async fn deliver_mail(&self, id: &str) -> std::result::Result<(), JobError> {
        let mail = self
            .store
            .outbox_mail(id)
            .await
            .map_err(JobError::failed)?
            .ok_or_else(|| JobError::failed(anyhow::anyhow!("no mail {id:?} in the outbox")))?;
        if mail.status != "queued" {
            return Ok(());
        }
        let status = match &self.mailer {
            Some(mailer) => {
                if let Err(e) = mailer.send(&mail.to, &mail.subject, &mail.body).await {
                    warn!(mail = id, error = %e, "mail not sent; will retry");
                    let _ = self
                        .store
                        .mark_mail(id, "queued", Some(&e), self.now())
                        .await;
                    return Err(JobError::failed(anyhow::anyhow!("{e}")));
                }
                // A reset link's secret leaves the outbox with the mail.
                if let Some(body) = super::account_basics::without_reset_secret(&mail.body) {
                    self.store
                        .set_mail_body(id, &body)
                        .await
                        .map_err(JobError::failed)?;
                }
                "sent"
            }
            None => "kept",
        };
        self.store
            .mark_mail(id, status, None, self.now())
            .await
            .map_err(JobError::failed)
    }

    /// The outbox for the operator, newest first, at most `limit`: queued, sent and
    /// kept mail alike.
    pub async fn outbox(&self, limit: u32) -> Result<Vec<OutboxMail>> {
        Ok(self.store.outbox(limit).await?)
    }

    /// Sets the user's time zone: one of `mail::TIME_ZONES`, or a spelling of one that
    /// `mail::offset_of` reads ("Asia/Katmandu"), stored by its canonical id.
    pub async fn set_time_zone(&self, user: &crate::id::UserId, zone: &str) -> Result<()> {
        let (name, _) = crate::mail::offset_of(zone).ok_or_else(|| {
            crate::account::invalid(
                "time_zone",
                format!("must be one of {}", crate::mail::TIME_ZONES.join(", ")),
            )
        })?;
        Ok(self.store.set_time_zone(user, name).await?)
    }
}
