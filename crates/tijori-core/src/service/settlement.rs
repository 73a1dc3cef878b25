//! The settlement path, in one place: check at the gateway (with retries where a
//! lookup may pass), decide what the answer means (`payment::decide`), settle it
//! in the store exactly once, and announce the change to whoever watches.

use tracing::{info, warn};

use crate::account::User;
use crate::error::{Error, Result};
use crate::gateway::{Gateway, GatewayAnswer, RawAnswer};
use crate::id::PaymentId;
use crate::payment::{decide, CheckoutKind, Payment, PaymentStatus, Purpose};
use crate::store::{AnswerKind, Settled, Settlement, WebhookNote};
use crate::telemetry::{self, SettledVia};

use super::webhooks::WebhookResult;
use super::*;

impl Tijori {
    /// Asks the gateway about the caller's payment (if it is still open) and settles
    /// on its answer. Whatever a browser or redirect claimed is never consulted.
    pub async fn verify(&self, user: &User, key: &PaymentKey) -> Result<Verification> {
        let payment = self.payment_for(user, key).await?;
        self.verify_payment(payment).await
    }

    /// `verify` for a payment the caller already holds (found with `payment_for`).
    /// Looked up while that can still change anything (`Payment::worth_looking_up`:
    /// open, or a Chapa attempt that failed while its checkout takes another).
    pub async fn verify_payment(&self, payment: Payment) -> Result<Verification> {
        let payment = if payment.worth_looking_up(self.now()) {
            self.check_at_gateway(payment, SettledVia::Verify)
                .await?
                .payment
        } else {
            payment
        };
        self.verification(payment).await
    }

    /// Asks the gateway about the caller's payment now, whatever its status: "check
    /// payment status" for a customer who closed the tab, and how a refund made on
    /// the gateway's side becomes known.
    pub async fn refresh(&self, user: &User, key: &PaymentKey) -> Result<Verification> {
        let payment = self.payment_for(user, key).await?;
        // One whose checkout never opened has nothing to look up: it stands as it is.
        let payment = if payment.provider_ref.is_some() {
            self.check_at_gateway(payment, SettledVia::Refresh)
                .await?
                .payment
        } else {
            payment
        };
        self.verification(payment).await
    }

    /// Records the browser's return redirect as a signal (it proves nothing), at most
    /// `MAX_RETURN_QUERY_BYTES` of its query: a stranger chooses its length.
    pub async fn record_return_signal(&self, payment: &PaymentId, query: &str) -> Result<()> {
        let raw = RawAnswer {
            http_status: 0,
            body: kept_return_query(query).to_owned(),
        };
        Ok(self
            .store
            .record_answer(payment, AnswerKind::ReturnSignal, &raw, self.now())
            .await?)
    }

    /// Looks the payment up at its gateway and settles on the answer. A failed
    /// lookup leaves the payment as it was (still open, to be checked again) and
    /// keeps any answer the gateway did give for audit. `via` names the path that
    /// asked, for the operator's count.
    pub async fn check_at_gateway(&self, payment: Payment, via: SettledVia) -> Result<Settled> {
        self.check_at_gateway_with(payment, Patience::Interactive, via, None)
            .await
    }

    /// `check_at_gateway` for an authentic webhook delivery: the outcome the move
    /// decides is noted on the delivery in the settle's own transaction
    /// (`Settled::webhook_noted` says whether it was).
    pub(super) async fn check_at_gateway_for_webhook(
        &self,
        payment: Payment,
        delivery: FromWebhook,
    ) -> Result<Settled> {
        self.check_at_gateway_with(
            payment,
            Patience::Interactive,
            SettledVia::Webhook,
            Some(delivery),
        )
        .await
    }

    /// `check_at_gateway` for background work, where nobody waits on the answer: a
    /// lookup that timed out is tried again too (see [`Patience`]).
    pub async fn check_at_gateway_patiently(
        &self,
        payment: Payment,
        via: SettledVia,
    ) -> Result<Settled> {
        self.check_at_gateway_with(payment, Patience::Background, via, None)
            .await
    }

    #[tracing::instrument(
        name = "check_at_gateway",
        skip_all,
        fields(payment_id = %payment.id, gateway = %payment.gateway, via = via.as_str())
    )]
    async fn check_at_gateway_with(
        &self,
        payment: Payment,
        patience: Patience,
        via: SettledVia,
        webhook: Option<FromWebhook>,
    ) -> Result<Settled> {
        let gw = self
            .gateways
            .get(payment.gateway)
            .ok_or_else(|| {
                Error::Unsupported(format!("the {} gateway is not configured", payment.gateway))
            })?
            .clone();
        let provider_ref = payment
            .provider_ref
            .clone()
            .ok_or_else(|| Error::Conflict {
                code: "no_checkout",
                message: "this payment never reached the gateway, so there is nothing to check"
                    .into(),
            })?;
        // A widget payment has no checkout to look up: asking again is capturing its
        // token again, which the gateway answers with the same transaction.
        let answer = match payment.checkout {
            // Not retried: a capture that reached Khalti but whose answer was lost
            // must not be sent again blindly; the next check asks again.
            CheckoutKind::Widget => gw.capture_token(&provider_ref, payment.amount).await,
            CheckoutKind::Hosted => {
                lookup_with_retry(&*gw, &provider_ref, payment.amount, patience).await
            }
        };
        match answer {
            Ok(answer) => {
                self.settle_as(&payment, answer, AnswerKind::Lookup, via, webhook)
                    .await
            }
            Err(e) => {
                warn!(payment = %payment.id, gateway = %payment.gateway, error = %e, "lookup failed");
                if let Some(raw) = e.raw() {
                    self.store
                        .record_answer(&payment.id, AnswerKind::Lookup, raw, self.now())
                        .await?;
                }
                Err(e.into())
            }
        }
    }

    /// The one way a payment's outcome is applied, whichever path (`via`) learned it.
    pub async fn settle(
        &self,
        payment: &Payment,
        answer: GatewayAnswer,
        via: SettledVia,
    ) -> Result<Settled> {
        self.settle_as(payment, answer, AnswerKind::Lookup, via, None)
            .await
    }

    /// `settle`, with the answer recorded as what it is (a lookup, a refund), and the
    /// webhook delivery it answers, if any.
    #[tracing::instrument(name = "settle", skip_all, fields(payment_id = %payment.id, via = via.as_str()))]
    pub(crate) async fn settle_as(
        &self,
        payment: &Payment,
        answer: GatewayAnswer,
        kind: AnswerKind,
        via: SettledVia,
        webhook: Option<FromWebhook>,
    ) -> Result<Settled> {
        let looked_up = kind == AnswerKind::Lookup;
        let paid = matches!(
            payment.status,
            PaymentStatus::Completed
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::NeedsReview
        );
        // A refund whose answer was lost is settled from the look-up before the
        // look-up moves the payment, so the payment's move sees it.
        if looked_up && paid {
            self.settle_unknown_refunds(payment, &answer).await?;
        }
        let transition = decide(payment, &answer);
        // A move decides a delivery's outcome only when that outcome needs no
        // operator (a contradiction is noted after, with what it contradicted).
        let webhook = webhook.zip(transition.as_ref()).and_then(|(d, t)| {
            let outcome = WebhookResult::after_verify(d.claims_paid, t.to);
            (outcome.operator_event().is_none()).then_some(WebhookNote {
                delivery: d.delivery,
                outcome: outcome.as_str(),
            })
        });
        let settled = self
            .store
            .settle(Settlement {
                payment: payment.id.clone(),
                transition,
                provider_txn_id: answer.transaction_id.clone(),
                kind,
                raw: answer.raw.clone(),
                now: self.now(),
                webhook,
            })
            .await?;
        telemetry::settled(via, settled.changed, &settled.payment);
        if settled.deliveries > 0 {
            self.jobs_queued.notify_one();
        }
        if settled.changed {
            self.announce_change(&payment.id);
            info!(
                payment = %payment.id,
                from = %payment.status,
                to = %settled.payment.status,
                "payment settled"
            );
            if settled.payment.status == PaymentStatus::NeedsReview {
                warn!(payment = %payment.id, reason = ?settled.payment.status_reason, "payment needs an operator's review");
            }
            if looked_up
                && matches!(
                    settled.payment.status,
                    PaymentStatus::Refunded | PaymentStatus::PartiallyRefunded
                )
            {
                self.refund_found(&settled.payment, payment.status).await?;
            }
        }
        // A partially refunded subscription whose status did not move this time may
        // still have a refund that succeeded since its days were last taken (a
        // further partial refund, one settled by a look-up, or one whose settle a
        // crash cut off): its share of the days goes back now, whichever path got
        // here. `take_back` counts what it took, so a repeat takes nothing.
        if !settled.changed
            && settled.payment.status == PaymentStatus::PartiallyRefunded
            && matches!(settled.payment.purpose, Purpose::Subscription { .. })
        {
            self.store.take_back(&payment.id, self.now()).await?;
        }
        Ok(settled)
    }

    /// What the payment bought (its subscription, or its order), as it stands,
    /// without asking the gateway.
    pub async fn verification(&self, payment: Payment) -> Result<Verification> {
        let (subscription, order) = match (&payment.purpose, payment.status) {
            (Purpose::Subscription { .. }, PaymentStatus::Completed) => {
                (self.my_holding(&payment.user_id).await?, None)
            }
            (Purpose::Order { order_id }, _) => (None, self.store.order(order_id).await?),
            _ => (None, None),
        };
        Ok(Verification {
            payment,
            subscription,
            order,
        })
    }
}

/// The authentic webhook delivery a lookup was made for (`check_at_gateway_for_webhook`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FromWebhook {
    /// The delivery, as recorded.
    pub delivery: i64,
    /// Whether it said the payment was paid.
    pub claims_paid: bool,
}

/// How long a caller can wait for a lookup that fails in a way that may pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Patience {
    /// A customer or a gateway is waiting on the answer: a 5xx or a refused
    /// connection is tried again within about a second, but a timeout is not (it
    /// already took the whole timeout; the reconciler looks again later).
    Interactive,
    /// The reconciler: nobody waits, so a timeout is tried again as well.
    Background,
}

/// Looks a payment up, trying again (after 200 ms, then 400 ms, with jitter) when the
/// gateway failed in a way that may pass: a 5xx or a refused connection, and, for
/// background work, a timeout. Lookups are safe to repeat; opening a checkout (and a
/// refund) is never retried this way, since a repeat could charge twice.
async fn lookup_with_retry(
    gw: &dyn Gateway,
    provider_ref: &str,
    amount: crate::money::Money,
    patience: Patience,
) -> std::result::Result<GatewayAnswer, crate::gateway::GatewayError> {
    use crate::gateway::GatewayError as E;
    const ATTEMPTS: u32 = 3;
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        let result = gw.lookup(provider_ref, amount).await;
        let transient = match &result {
            Err(E::Unreachable { .. }) => true,
            Err(E::BadAnswer { raw: Some(raw), .. }) => raw.http_status >= 500,
            Err(E::Timeout { .. }) => patience == Patience::Background,
            _ => false,
        };
        let out_of_time = patience == Patience::Interactive
            && started.elapsed() > std::time::Duration::from_secs(2);
        if !transient || attempt == ATTEMPTS || out_of_time {
            return result;
        }
        let pause = 200u64 << (attempt - 1);
        let jitter = rand::random::<u64>() % (pause / 2 + 1);
        tokio::time::sleep(std::time::Duration::from_millis(pause + jitter)).await;
        attempt += 1;
    }
}
