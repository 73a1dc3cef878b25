//! Refunds an operator asks for, through the gateway's refund API.

use tracing::{info, warn};

use super::Tijori;
use crate::account::{invalid, User};
use crate::error::{Error, Result};
use crate::gateway::{GatewayAnswer, GatewayError, GatewayStatus, RefundRequest};
use crate::id::{PaymentId, RefundId};
use crate::money::Money;
use crate::payment::{Payment, PaymentStatus, Purpose};
use crate::store::{AnswerKind, Refund, RefundStatus, StoreError};

/// What an operator asks for.
#[derive(Clone, Debug, Default)]
pub struct RefundOrder {
    /// In major units ("100.00"); the rest of the payment when `None`.
    pub amount: Option<String>,
    pub reason: Option<String>,
    /// Put a refunded order's items back on the shelf (the goods came back).
    pub restock: bool,
    /// Ask even though an earlier refund's outcome is unknown (the operator checked
    /// with the gateway that it did not happen).
    pub force: bool,
}

/// A refund done: the payment as it now stands and the refund's record.
#[derive(Clone, Debug)]
pub struct Refunded {
    pub payment: Payment,
    pub refund: Refund,
    pub restocked: bool,
}

impl Tijori {
    /// Refunds (part of) a paid payment at its gateway, records it, and settles the
    /// payment: a refund of everything left takes back all that is unused of what it
    /// bought; a partial one takes back its share of the days (see
    /// `subscription::take_back`), and an order only goes back when refunded in full. The caller must be an admin.
    pub async fn refund(
        &self,
        operator: &User,
        payment_id: &str,
        order: &RefundOrder,
    ) -> Result<Refunded> {
        if !operator.is_admin {
            return Err(Error::NotFound("payment"));
        }
        let id = PaymentId::parse(payment_id).ok_or(Error::NotFound("payment"))?;
        let payment = self
            .store
            .payment(&id)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        if !matches!(
            payment.status,
            PaymentStatus::Completed
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::NeedsReview
        ) {
            return Err(Error::Conflict {
                code: "not_refundable",
                message: format!("a {} payment cannot be refunded", payment.status),
            });
        }
        let transaction_id = payment.provider_txn_id.clone().ok_or(Error::Conflict {
            code: "not_refundable",
            message:
                "the gateway has not given this payment a transaction id; check its status first"
                    .into(),
        })?;
        let earlier = self.store.refunds_of(&payment.id).await?;
        if !order.force && earlier.iter().any(|r| r.status == RefundStatus::Unknown) {
            return Err(Error::Conflict {
                code: "refund_outcome_unknown",
                message: "an earlier refund of this payment got no answer from the gateway; \
                          check there, then ask again with force"
                    .into(),
            });
        }
        let refunded: i64 = earlier
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount.minor())
            .sum();
        let currency = payment.amount.currency();
        let left = payment.amount.minor() - refunded;
        let amount = match &order.amount {
            None => left,
            Some(text) => Money::parse_major(text, currency)
                .map_err(|e| invalid("amount", e.to_string()))?
                .minor(),
        };
        if amount <= 0 || amount > left {
            return Err(Error::Refused {
                code: "invalid_refund_amount",
                message: format!(
                    "the amount must be more than zero and at most what is left to refund ({})",
                    Money::from_minor(left.max(0), currency).expect("not negative")
                ),
            });
        }
        let amount = Money::from_minor(amount, currency).expect("checked above");
        let full = amount.minor() == left;

        let now = self.now();
        let refund = Refund {
            id: RefundId::generate(),
            payment_id: payment.id.clone(),
            amount,
            reason: order.reason.clone(),
            status: RefundStatus::Requested,
            detail: None,
            requested_by: operator.id.clone(),
            created_at: now,
            updated_at: now,
        };
        // Before anything is recorded: a refund row must never wait on a gateway that
        // is not there.
        let gw = self.gateway_for(payment.gateway, currency)?;
        self.store
            .begin_refund(&refund)
            .await
            .map_err(|e| match e {
                StoreError::Conflict("refund larger than what is left") => Error::Refused {
                    code: "invalid_refund_amount",
                    message: "the amount is more than is left to refund".into(),
                },
                StoreError::Conflict(_) => Error::Conflict {
                    code: "refund_in_progress",
                    message: "another refund of this payment is being made".into(),
                },
                other => other.into(),
            })?;
        let request = RefundRequest {
            transaction_id,
            amount,
            // The gateway's "everything" only when nothing was refunded before.
            full: full && refunded == 0,
            reason: order.reason.clone(),
            refund_id: refund.id.to_string(),
        };
        let raw = match gw.refund(&request).await {
            Ok(raw) => raw,
            Err(e) => {
                let (status, kept) = match &e {
                    // Refused: nothing happened, the operator may try otherwise.
                    GatewayError::Rejected { .. }
                    | GatewayError::Unauthorized { .. }
                    | GatewayError::NotFound { .. } => (RefundStatus::Failed, None),
                    // No answer we can read: it may have happened.
                    _ => (RefundStatus::Unknown, e.raw().cloned()),
                };
                warn!(payment = %payment.id, refund = %refund.id, error = %e, "refund failed");
                self.store
                    .finish_refund(&refund.id, status, Some(&e.to_string()), self.now())
                    .await?;
                if let Some(raw) = kept.or_else(|| e.raw().cloned()) {
                    self.store
                        .record_answer(&payment.id, AnswerKind::Refund, &raw, self.now())
                        .await?;
                }
                if status == RefundStatus::Unknown {
                    self.store
                        .record_operator_event(
                            "refund_unknown",
                            Some(&payment.id),
                            &format!(
                                "a refund of {amount} got no answer from {}: {e}. Check it \
                                 there before refunding again.",
                                payment.gateway
                            ),
                            self.now(),
                        )
                        .await?;
                }
                return Err(e.into());
            }
        };
        self.store
            .finish_refund(&refund.id, RefundStatus::Succeeded, None, self.now())
            .await?;
        let answer = GatewayAnswer {
            status: if full {
                GatewayStatus::Refunded
            } else {
                GatewayStatus::PartiallyRefunded
            },
            amount_minor: payment.amount.minor(),
            currency: Some(currency),
            transaction_id: None,
            raw,
        };
        let mut settled = self.settle_as(&payment, answer, AnswerKind::Refund).await?;
        if !full && !settled.changed && settled.payment.status == PaymentStatus::PartiallyRefunded {
            // A further partial refund: the status stays, but its share of the days
            // still goes back.
            self.store.take_back(&payment.id, self.now()).await?;
            settled.payment = self
                .store
                .payment(&payment.id)
                .await?
                .unwrap_or(settled.payment);
        }
        info!(payment = %payment.id, refund = %refund.id, %amount, full, "refunded");
        let restocked = match (&payment.purpose, full && order.restock) {
            (Purpose::Order { order_id }, true) => {
                self.store.restock_order(order_id, self.now()).await?
            }
            _ => false,
        };
        let refund = self
            .store
            .refunds_of(&payment.id)
            .await?
            .into_iter()
            .find(|r| r.id == refund.id)
            .unwrap_or(refund);
        Ok(Refunded {
            payment: settled.payment,
            refund,
            restocked,
        })
    }
}
