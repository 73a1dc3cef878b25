//! Receipts: issued for a paid payment, on its page or by the receipt job, and
//! mailed once (written to the outbox with its delivery job).

use chrono::Duration;
use tracing::info;

use super::Tijori;
use crate::account::User;
use crate::error::{Error, Result};
use crate::id::PaymentId;
use crate::mail::OutboxMail;
use crate::payment::{Payment, PaymentStatus, Purpose};
use crate::receipt::{compose_mail, refunded, Merchant, Receipt, RECEIPT_MAIL_WINDOW_DAYS};
use crate::store::Refund;

/// Everything a receipt shows.
#[derive(Clone, Debug)]
pub struct ReceiptDetails {
    /// Its number and date.
    pub receipt: Receipt,
    /// The payment it is for: amount, gateway, the gateway's transaction id.
    pub payment: Payment,
    /// What was bought, in words ("Basic plan, 30 days"; "2 × Coffee").
    pub item: String,
    /// The payment's refunds, whatever their status, oldest first.
    pub refunds: Vec<Refund>,
    /// What was refunded so far (succeeded refunds).
    pub refunded: Option<crate::money::Money>,
    /// Who issued it.
    pub merchant: Merchant,
}

/// Whether a payment earns a receipt now: it was paid and fulfilled (a later partial
/// refund keeps it; money held for review or refunded unneeded never had one).
fn receipt_due(payment: &Payment) -> bool {
    matches!(
        payment.status,
        PaymentStatus::Completed | PaymentStatus::PartiallyRefunded
    )
}

impl Tijori {
    /// A payment's receipt for its owner (or an operator), issuing it the first time
    /// it is asked for. `NotFound` for a payment they may not see, or one that was
    /// never paid.
    pub async fn receipt_for(&self, viewer: &User, id: &PaymentId) -> Result<ReceiptDetails> {
        let payment = self
            .store
            .payment(id)
            .await?
            .filter(|p| p.user_id == viewer.id || viewer.is_admin)
            .ok_or(Error::NotFound("payment"))?;
        let receipt = match self.store.receipt_of(id).await? {
            Some(r) => r,
            None if receipt_due(&payment) => self.store.issue_receipt(id, self.now()).await?,
            None => return Err(Error::NotFound("receipt")),
        };
        self.details(receipt, payment).await
    }

    async fn details(&self, receipt: Receipt, payment: Payment) -> Result<ReceiptDetails> {
        let refunds = self.store.refunds_of(&payment.id).await?;
        Ok(ReceiptDetails {
            item: self.item_of(&payment).await?,
            refunded: refunded(payment.amount.currency(), &refunds),
            refunds,
            receipt,
            payment,
            merchant: self.settings.merchant.clone(),
        })
    }

    /// What a payment bought, in words.
    async fn item_of(&self, payment: &Payment) -> Result<String> {
        Ok(match &payment.purpose {
            Purpose::Subscription { plan_id, .. } => match self.store.plan(plan_id).await? {
                Some(plan) => format!("{} plan, {} days", plan.name, plan.duration_days),
                None => "A subscription".into(),
            },
            Purpose::Order { order_id } => match self.store.order(order_id).await? {
                Some(order) => order.items_in_words(),
                None => format!("Order {order_id}"),
            },
        })
    }

    /// Issues and mails the receipt of every payment completed in the last
    /// [`RECEIPT_MAIL_WINDOW_DAYS`] that was not mailed one yet (each once, whichever
    /// worker finds it). Returns how many were written.
    pub async fn queue_receipts(&self) -> Result<usize> {
        let now = self.now();
        let since = now - Duration::days(RECEIPT_MAIL_WINDOW_DAYS);
        let mut written = 0;
        for id in self.store.receipts_to_mail(since, 500).await? {
            let Some(payment) = self.store.payment(&id).await? else {
                continue;
            };
            let Some(user) = self.store.user(&payment.user_id).await? else {
                continue;
            };
            let receipt = self.store.issue_receipt(&id, now).await?;
            let item = self.item_of(&payment).await?;
            let (subject, body) = compose_mail(
                &receipt,
                &payment,
                &item,
                &self.settings.merchant,
                user.username.as_str(),
                user.time_zone.as_deref(),
                &self.settings.public_url,
            );
            let mail = OutboxMail {
                id: format!("mail_{}", uuid::Uuid::now_v7().simple()),
                user_id: user.id.clone(),
                to: user.email.as_str().to_owned(),
                subject,
                body,
                status: "queued".into(),
                error: None,
                created_at: now,
                sent_at: None,
            };
            if self
                .store
                .record_receipt_mail(receipt.number, &mail, now)
                .await?
            {
                info!(payment = %id, receipt = receipt.number, "receipt written");
                written += 1;
            }
        }
        Ok(written)
    }
}
