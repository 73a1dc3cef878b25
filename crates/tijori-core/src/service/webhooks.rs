//! Server-to-server notices from a gateway: Chapa's signed webhook and its callback.
//! Both are signals. The payment is settled on the gateway's verify answer alone.

use crate::telemetry::{self, SettledVia};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::settlement::FromWebhook;
use super::{returns, Tijori};
use crate::error::{Error, Result};
use crate::gateway::{GatewayKind, RawAnswer, WebhookError, WebhookNotice};
use crate::payment::{Payment, PaymentStatus};
use crate::store::{AnswerKind, NewWebhookDelivery, OperatorEventKind};

/// What handling an authenticated webhook came to (also kept on the delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookOutcome {
    /// What the delivery came to.
    pub outcome: WebhookResult,
    /// An identical body was delivered before.
    pub duplicate: bool,
    /// The payment it named, as it now stands, if it named one of ours.
    pub payment: Option<Payment>,
}

/// What an authentic webhook delivery came to: kept on the delivery by its name and
/// answered to the gateway. The last five need a person (`operator_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookResult {
    /// Verified at the gateway, and settled on its answer.
    Verified,
    /// The payment was already paid: nothing to ask the gateway.
    AlreadySettled,
    /// A redelivery of a body received before, of a paid payment.
    Duplicate,
    /// A notice about something other than a payment's outcome.
    Ignored,
    /// Authentic, but its body could not be read.
    Unreadable,
    /// It names no payment of ours.
    Unmatched,
    /// It could not be processed (the database failed); the gateway delivers again.
    Unprocessed,
    /// The gateway could not be asked about its payment; the reconciler asks later.
    Unverified,
    /// It said paid, and the gateway's own answer says otherwise.
    Contradicted,
}

impl WebhookResult {
    /// Its name on the delivery: an outcome that needs a person is named by its
    /// operator event.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookResult::Verified => "verified",
            WebhookResult::AlreadySettled => "already_settled",
            WebhookResult::Duplicate => "duplicate",
            WebhookResult::Ignored => "ignored",
            WebhookResult::Unreadable
            | WebhookResult::Unmatched
            | WebhookResult::Unprocessed
            | WebhookResult::Unverified
            | WebhookResult::Contradicted => self
                .operator_event()
                .map_or("needs_operator", OperatorEventKind::as_str),
        }
    }

    /// Its label on the operator's count (`telemetry::WEBHOOKS_RECEIVED`).
    pub fn label(self) -> &'static str {
        match self {
            WebhookResult::Verified => "verified",
            WebhookResult::AlreadySettled => "already_settled",
            WebhookResult::Duplicate => "duplicate",
            WebhookResult::Ignored => "ignored",
            WebhookResult::Unreadable => "unreadable",
            WebhookResult::Unmatched => "unmatched",
            WebhookResult::Unprocessed => "unprocessed",
            WebhookResult::Unverified => "unverifiable",
            WebhookResult::Contradicted => "contradicted",
        }
    }

    /// What a delivery verified at the gateway came to, by the payment's status after
    /// the settle: one that said paid is contradicted unless the payment is paid, or
    /// held for review (already on the operator's list). Decided once, here, whether
    /// the settle notes it (`check_at_gateway_for_webhook`) or the delivery's handler.
    pub(crate) fn after_verify(claims_paid: bool, status: PaymentStatus) -> WebhookResult {
        if claims_paid
            && !matches!(
                status,
                PaymentStatus::Completed | PaymentStatus::NeedsReview
            )
        {
            WebhookResult::Contradicted
        } else {
            WebhookResult::Verified
        }
    }

    /// The operator event it raises, when a person must look.
    pub fn operator_event(self) -> Option<OperatorEventKind> {
        match self {
            WebhookResult::Verified
            | WebhookResult::AlreadySettled
            | WebhookResult::Duplicate
            | WebhookResult::Ignored => None,
            WebhookResult::Unreadable => Some(OperatorEventKind::WebhookUnreadable),
            WebhookResult::Unmatched => Some(OperatorEventKind::WebhookUnmatched),
            WebhookResult::Unprocessed => Some(OperatorEventKind::WebhookUnprocessed),
            WebhookResult::Unverified => Some(OperatorEventKind::WebhookUnverified),
            WebhookResult::Contradicted => Some(OperatorEventKind::WebhookContradicted),
        }
    }
}

/// What processing a delivery came to, what an operator should know of it (when
/// one must look), and its payment.
struct Processed {
    result: WebhookResult,
    detail: Option<String>,
    payment: Option<Payment>,
    /// The settle noted the outcome on the delivery already.
    noted: bool,
}

impl Processed {
    fn done(result: WebhookResult, payment: Option<Payment>) -> Processed {
        Processed {
            result,
            detail: None,
            payment,
            noted: false,
        }
    }

    fn for_operator(result: WebhookResult, detail: String, payment: Option<Payment>) -> Processed {
        Processed {
            result,
            detail: Some(detail),
            payment,
            noted: false,
        }
    }
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
        let received = |outcome: &'static str| {
            metrics::counter!(
                telemetry::WEBHOOKS_RECEIVED,
                "gateway" => gateway.as_str(),
                "outcome" => outcome,
            )
            .increment(1);
        };
        let read = gw.read_webhook(headers, body);
        if let Err(e @ (WebhookError::Unauthenticated(_) | WebhookError::Unsupported(_))) = &read {
            warn!(%gateway, error = %e, "webhook refused");
            received(match e {
                WebhookError::Unauthenticated(_) => "bad_signature",
                _ => "unsupported",
            });
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
            received("not_recorded");
            WebhookError::Unavailable(e.to_string())
        })?;
        let processed = match self
            .process_webhook(gateway, read, recorded.id, recorded.duplicate)
            .await
        {
            Ok(done) | Err(done) => done,
        };
        received(processed.result.label());
        let payment = processed.payment.as_ref().map(|p| &p.id);
        let detail = processed.detail.as_deref();
        if !processed.noted {
            if let Err(e) = self
                .store
                .finish_webhook(recorded.id, payment, processed.result.as_str(), detail)
                .await
            {
                warn!(delivery = recorded.id, error = %format!("{e:#}"), "could not note a webhook's outcome");
            }
        }
        if let Some(kind) = processed.result.operator_event() {
            let detail = detail.unwrap_or_default();
            warn!(%gateway, delivery = recorded.id, %kind, detail, "webhook needs an operator");
            if let Err(e) = self
                .store
                .record_operator_event(kind, payment, detail, now)
                .await
            {
                warn!(error = %format!("{e:#}"), "could not record an operator event");
            }
        }
        Ok(WebhookOutcome {
            outcome: processed.result,
            duplicate: recorded.duplicate,
            payment: processed.payment,
        })
    }

    /// What the delivery came to; `Err` when an operator must look (the early
    /// returns of `?`), `Ok` otherwise.
    async fn process_webhook(
        &self,
        gateway: GatewayKind,
        read: Result<WebhookNotice, WebhookError>,
        delivery: i64,
        duplicate: bool,
    ) -> Result<Processed, Processed> {
        use WebhookResult::*;
        let notice = read.map_err(|e| Processed::for_operator(Unreadable, e.to_string(), None))?;
        if notice.unrelated {
            return Ok(Processed::done(Ignored, None));
        }
        let Some(reference) = &notice.reference else {
            return Err(Processed::for_operator(
                Unmatched,
                format!("a {gateway} {} webhook names no payment", notice.event),
                None,
            ));
        };
        let payment = self
            .store
            .payment_by_provider_ref(gateway, reference)
            .await
            .map_err(|e| Processed::for_operator(Unprocessed, format!("{e:#}"), None))?
            .ok_or_else(|| {
                Processed::for_operator(
                    Unmatched,
                    format!(
                        "a {gateway} {} webhook names {reference:?}, which is no payment of ours",
                        notice.event
                    ),
                    None,
                )
            })?;
        if payment.status == PaymentStatus::Completed && notice.claims_paid {
            let result = if duplicate { Duplicate } else { AlreadySettled };
            return Ok(Processed::done(result, Some(payment)));
        }
        let from = FromWebhook {
            delivery,
            claims_paid: notice.claims_paid,
        };
        let settled = self
            .check_at_gateway_for_webhook(payment.clone(), from)
            .await
            .map_err(|e| {
                Processed::for_operator(
                    Unverified,
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
        if WebhookResult::after_verify(notice.claims_paid, now.status) == Contradicted {
            return Err(Processed::for_operator(
                Contradicted,
                format!(
                    "a {gateway} webhook said {} paid, but {gateway}'s verify leaves it {}",
                    now.id, now.status
                ),
                Some(now),
            ));
        }
        Ok(Processed {
            noted: settled.webhook_noted,
            ..Processed::done(Verified, Some(now))
        })
    }

    /// Chapa's callback (`?trx_ref=…&status=…`): recorded (the query capped), then
    /// verified; once the checkout has closed, at most once every few seconds.
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
        // While its checkout lives a callback is looked into at once: it is how Chapa
        // tells us of a payment, often beside the customer's own return. After that
        // only late money can count, and a replay of the URL is looked into (and kept)
        // at most once every few seconds for the payment, as the return page is.
        let now = self.now();
        if !payment.worth_looking_up(now)
            && !self
                .store
                .claim_lookup(&payment.id, now, returns::return_lookup_cutoff(now))
                .await?
        {
            return Ok(payment);
        }
        self.store
            .record_answer(
                &payment.id,
                AnswerKind::Callback,
                &RawAnswer {
                    http_status: 0,
                    body: returns::kept_return_query(query).to_owned(),
                },
                now,
            )
            .await?;
        Ok(self
            .check_at_gateway(payment, SettledVia::Callback)
            .await?
            .payment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_paid_claim_the_gateway_denies_is_contradicted() {
        use PaymentStatus::*;
        use WebhookResult::{Contradicted, Verified};
        // (status after the settle, a delivery that said paid, one that did not)
        let table = [
            (Initiated, Contradicted, Verified),
            (Pending, Contradicted, Verified),
            (Completed, Verified, Verified),
            (NeedsReview, Verified, Verified),
            (Failed, Contradicted, Verified),
            (Expired, Contradicted, Verified),
            (Canceled, Contradicted, Verified),
            (Refunded, Contradicted, Verified),
            (PartiallyRefunded, Contradicted, Verified),
        ];
        for (status, said_paid, said_otherwise) in table {
            assert_eq!(
                WebhookResult::after_verify(true, status),
                said_paid,
                "{status}"
            );
            assert_eq!(
                WebhookResult::after_verify(false, status),
                said_otherwise,
                "{status}"
            );
        }
    }

    #[test]
    fn stored_names_are_those_deliveries_and_events_always_had() {
        use WebhookResult::*;
        let names: Vec<&str> = [
            Verified,
            AlreadySettled,
            Duplicate,
            Ignored,
            Unreadable,
            Unmatched,
            Unprocessed,
            Unverified,
            Contradicted,
        ]
        .map(WebhookResult::as_str)
        .to_vec();
        assert_eq!(
            names,
            [
                "verified",
                "already_settled",
                "duplicate",
                "ignored",
                "webhook_unreadable",
                "webhook_unmatched",
                "webhook_unprocessed",
                "webhook_unverified",
                "webhook_contradicted"
            ]
        );
        for kind in OperatorEventKind::ALL {
            assert_eq!(OperatorEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(OperatorEventKind::parse("needs review"), None);
    }
}
