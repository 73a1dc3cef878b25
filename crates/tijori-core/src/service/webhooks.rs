//! Server-to-server notices from a gateway: Chapa's signed webhook and its callback.
//! Both are signals. The payment is settled on the gateway's verify answer alone.

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::Tijori;
use crate::error::{Error, Result};
use crate::gateway::{GatewayKind, RawAnswer, WebhookError, WebhookNotice};
use crate::payment::{Payment, PaymentStatus};
use crate::store::{AnswerKind, NewWebhookDelivery};

/// What handling an authenticated webhook came to (also kept on the delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub outcome: &'static str,
    pub duplicate: bool,
    pub payment: Option<Payment>,
}

impl Tijori {
    /// Handles a webhook delivery: authenticate (refusing before anything is stored
    /// or parsed), record, then verify at the gateway and settle. Every delivery
    /// that is authentic gets an answer of success, whatever verify says, because
    /// redelivering it cannot change the outcome; what needs a person is put on the
    /// operator's list.
    pub async fn handle_webhook(
        &self,
        gateway: GatewayKind,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let gw = self
            .gateways
            .get(gateway)
            .ok_or(WebhookError::Unsupported(gateway))?
            .clone();
        let read = gw.read_webhook(headers, body);
        if let Err(e @ (WebhookError::Unauthenticated(_) | WebhookError::Unsupported(_))) = &read {
            warn!(%gateway, error = %e, "webhook refused");
            return Err(e.clone());
        }
        let now = self.now();
        let notice = read.as_ref().ok();
        let delivery = NewWebhookDelivery {
            gateway,
            body_sha256: hex::encode(Sha256::digest(body)),
            event: notice.map(|n| n.event.clone()),
            reference: notice.and_then(|n| n.reference.clone()),
            status: notice.and_then(|n| n.status.clone()),
            body: String::from_utf8_lossy(body).into_owned(),
            received_at: now,
        };
        // An authentic delivery we cannot store is answered with an error so that the
        // gateway delivers it again later.
        let recorded = self.store.record_webhook(&delivery).await.map_err(|e| {
            warn!(%gateway, error = %format!("{e:#}"), "could not record a webhook");
            WebhookError::Unavailable(e.to_string())
        })?;
        let outcome = self
            .process_webhook(gateway, read, recorded.duplicate)
            .await;
        let (name, detail, payment) = match &outcome {
            Ok((name, payment)) => (*name, None, payment.clone()),
            Err((name, detail, payment)) => (*name, Some(detail.as_str()), payment.clone()),
        };
        if let Err(e) = self
            .store
            .finish_webhook(recorded.id, payment.as_ref().map(|p| &p.id), name, detail)
            .await
        {
            warn!(delivery = recorded.id, error = %format!("{e:#}"), "could not note a webhook's outcome");
        }
        if let Err((kind, detail, payment)) = &outcome {
            warn!(%gateway, delivery = recorded.id, kind, detail, "webhook needs an operator");
            if let Err(e) = self
                .store
                .record_operator_event(kind, payment.as_ref().map(|p| &p.id), detail, now)
                .await
            {
                warn!(error = %format!("{e:#}"), "could not record an operator event");
            }
        }
        Ok(WebhookOutcome {
            outcome: name,
            duplicate: recorded.duplicate,
            payment,
        })
    }

    /// The outcome's name and the payment, or (the operator event's kind, what the
    /// operator should know, the payment).
    async fn process_webhook(
        &self,
        gateway: GatewayKind,
        read: Result<WebhookNotice, WebhookError>,
        duplicate: bool,
    ) -> Result<(&'static str, Option<Payment>), (&'static str, String, Option<Payment>)> {
        let notice = read.map_err(|e| ("webhook_unreadable", e.to_string(), None))?;
        if notice.unrelated {
            return Ok(("ignored", None));
        }
        let Some(reference) = &notice.reference else {
            return Err((
                "webhook_unmatched",
                format!("a {gateway} {} webhook names no payment", notice.event),
                None,
            ));
        };
        let payment = self
            .store
            .payment_by_provider_ref(gateway, reference)
            .await
            .map_err(|e| ("webhook_unprocessed", format!("{e:#}"), None))?
            .ok_or_else(|| {
                (
                    "webhook_unmatched",
                    format!(
                        "a {gateway} {} webhook names {reference:?}, which is no payment of ours",
                        notice.event
                    ),
                    None,
                )
            })?;
        if payment.status == PaymentStatus::Completed && notice.claims_paid {
            return Ok((
                if duplicate {
                    "duplicate"
                } else {
                    "already_settled"
                },
                Some(payment),
            ));
        }
        let settled = self.check_at_gateway(payment.clone()).await.map_err(|e| {
            (
                "webhook_unverified",
                format!(
                    "a {gateway} {} webhook for {} could not be verified: {e}; the payment is \
                     left {} to be checked again",
                    notice.event, payment.id, payment.status
                ),
                Some(payment.clone()),
            )
        })?;
        let now = settled.payment;
        info!(payment = %now.id, status = %now.status, changed = settled.changed, "webhook verified");
        // Held for review is already on the operator's list.
        if notice.claims_paid
            && !matches!(
                now.status,
                PaymentStatus::Completed | PaymentStatus::NeedsReview
            )
        {
            return Err((
                "webhook_contradicted",
                format!(
                    "a {gateway} webhook said {} paid, but {gateway}'s verify leaves it {}",
                    now.id, now.status
                ),
                Some(now),
            ));
        }
        Ok(("verified", Some(now)))
    }

    /// Chapa's callback (`?trx_ref=…&status=…`): recorded, then verified.
    pub async fn handle_callback(
        &self,
        gateway: GatewayKind,
        reference: &str,
        query: &str,
    ) -> Result<Payment> {
        let payment = self
            .store
            .payment_by_provider_ref(gateway, reference)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        // The callback is anonymous and may be replayed by anyone who saw it: once the
        // payment is settled for good it says nothing new, and keeping each replay
        // would grow its audit trail without bound.
        if !payment.may_still_be_paid() {
            return Ok(payment);
        }
        self.store
            .record_answer(
                &payment.id,
                AnswerKind::Callback,
                &RawAnswer {
                    http_status: 0,
                    body: query.to_owned(),
                },
                self.now(),
            )
            .await?;
        Ok(self.check_at_gateway(payment).await?.payment)
    }
}
