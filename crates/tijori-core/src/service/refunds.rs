//! Refunds an operator asks for, through the gateway's refund API.

use crate::telemetry::SettledVia;
use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use super::Tijori;
use crate::account::{invalid, User};
use crate::error::{Error, Result};
use crate::gateway::{GatewayAnswer, GatewayError, GatewayStatus, RawAnswer, RefundRequest};
use crate::id::{PaymentId, RefundId};
use crate::jobs::JobError;
use crate::money::Money;
use crate::payment::{Payment, PaymentStatus, Purpose};
use crate::refunds::{unknown_refund_outcome, RefundOutcome, UnknownRefund};
use crate::store::{
    AnswerKind, OperatorEventKind, Refund, RefundResolution, RefundStatus, StoreError,
};

/// How long the background look-up keeps asking about a refund whose outcome is
/// unknown before it leaves it to an operator (Chapa takes 1-3 business days).
pub const REFUND_CHECK_FOR_DAYS: i64 = 7;

/// How often the background look-up asks again while the gateway's answer cannot
/// tell what became of a refund.
pub const REFUND_CHECK_EVERY_MINUTES: i64 = 60;

/// How an operator settles an unknown refund by hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The money went back (seen in the gateway's dashboard, say).
    Succeeded,
    /// It did not happen.
    Failed,
}

/// A refund as it stands after a re-check or a resolution, with its payment.
#[derive(Clone, Debug)]
pub struct RefundState {
    /// The refund's payment, read again after the re-check or resolution.
    pub payment: Payment,
    /// The refund read again: still `unknown` if the gateway's answer could not tell.
    pub refund: Refund,
}

/// What an operator asks for.
#[derive(Clone, Debug, Default)]
pub struct RefundOrder {
    /// In major units ("100.00"); the rest of the payment when `None`.
    pub amount: Option<String>,
    /// Why: kept on the refund, and sent with the request to Chapa (Khalti takes none).
    pub reason: Option<String>,
    /// Put a refunded order's items back on the shelf (the goods came back).
    pub restock: bool,
    /// Ask even though an earlier refund's outcome is unknown (the operator checked
    /// with the gateway that it did not happen).
    pub force: bool,
    /// The reference of a refund the operator already made outside tijori (in a
    /// gateway's merchant portal): it is recorded as done, and the gateway is not
    /// asked. Required for a gateway with no refund API (eSewa).
    pub made_outside: Option<String>,
}

/// A refund done: the payment as it now stands and the refund's record.
#[derive(Clone, Debug)]
pub struct Refunded {
    /// The payment as it stands after the refund's settle.
    pub payment: Payment,
    /// The refund's record, succeeded.
    pub refund: Refund,
    /// Whether this refund put the order's items back on the shelf: only a full refund
    /// of an order, when `restock` was asked.
    pub restocked: bool,
}

impl Tijori {
    /// Refunds (part of) a paid payment at its gateway, records it, and settles the
    /// payment: a refund of everything left takes back all that is unused of what it
    /// bought; a partial one takes back its share of the days (see
    /// `subscription::take_back`), and an order only goes back when refunded in full. The caller must be an admin.
    #[tracing::instrument(name = "refund", skip_all, fields(payment_id = %id, operator = %operator.id))]
    pub async fn refund(
        &self,
        operator: &User,
        id: &PaymentId,
        order: &RefundOrder,
    ) -> Result<Refunded> {
        if !operator.is_admin {
            return Err(Error::NotFound("payment"));
        }
        let payment = self
            .store
            .payment(id)
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
        let mut earlier = self.store.refunds_of(&payment.id).await?;
        if earlier.iter().any(|r| r.status == RefundStatus::Unknown) {
            if !order.force {
                return Err(Error::Conflict {
                    code: "refund_outcome_unknown",
                    message: "an earlier refund of this payment got no answer from the \
                              gateway; re-check it (POST /api/admin/refunds/{id}/recheck), \
                              resolve it, or ask again with force if you checked that it \
                              did not happen"
                        .into(),
                });
            }
            // Force is the operator's word that the earlier refunds did not happen:
            // recorded as their resolution, so what is left counts them no more.
            let why = format!(
                "asked to refund again with force{}",
                order
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            for unknown in earlier.iter().filter(|r| r.status == RefundStatus::Unknown) {
                self.resolve_by_hand(operator, unknown, Resolution::Failed, &why)
                    .await?;
            }
            earlier = self.store.refunds_of(&payment.id).await?;
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
            restock: order.restock,
            resolved_by: None,
            resolved_at: None,
            resolution: None,
            created_at: now,
            updated_at: now,
        };
        // Before anything is recorded: a refund row must never wait on a gateway that
        // is not there.
        let gw = self.gateway_for(payment.gateway, currency)?;
        let made_outside = match order.made_outside.as_deref().map(str::trim) {
            Some(r) if r.is_empty() || r.len() > 100 || r.chars().any(char::is_control) => {
                return Err(invalid(
                    "made_outside",
                    "must be the refund's reference, 1 to 100 characters",
                )
                .into())
            }
            Some(r) => Some(r.to_owned()),
            None if !gw.has_refund_api() => {
                return Err(Error::Refused {
                    code: "refund_made_outside_required",
                    message: format!(
                        "{} has no refund API: refund in its merchant portal, then record \
                         the refund here with its reference (made_outside)",
                        payment.gateway
                    ),
                })
            }
            None => None,
        };
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
        let asked = match &made_outside {
            // The operator's word, kept on the audit trail as the gateway's answer is.
            Some(reference) => Ok(RawAnswer {
                http_status: 0,
                body: format!(
                    "refund {} of {amount} made outside tijori, reference {reference:?}, \
                     recorded by {}",
                    refund.id,
                    operator.username.as_str()
                ),
            }),
            None => gw.refund(&request).await,
        };
        let raw = match asked {
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
                let recorded = self
                    .store
                    .finish_refund(&refund.id, status, Some(&e.to_string()), self.now())
                    .await?;
                if let Some(raw) = kept.or_else(|| e.raw().cloned()) {
                    self.store
                        .record_answer(&payment.id, AnswerKind::Refund, &raw, self.now())
                        .await?;
                }
                if status == RefundStatus::Unknown && recorded {
                    self.store
                        .record_operator_event(
                            OperatorEventKind::RefundUnknown,
                            Some(&payment.id),
                            &format!(
                                "refund {} of {amount} got no answer from {}: {e}. It is \
                                 looked up in the background; re-check or resolve it on the \
                                 admin page.",
                                refund.id, payment.gateway
                            ),
                            self.now(),
                        )
                        .await?;
                }
                return Err(e.into());
            }
        };
        if !self
            .store
            .finish_refund(&refund.id, RefundStatus::Succeeded, None, self.now())
            .await?
        {
            // The call outlived its lease and the refund was decided meanwhile (and
            // took effect then, if it succeeded): the gateway's late word changes
            // nothing, and the operator reads the decision on the payment.
            warn!(payment = %payment.id, refund = %refund.id, "a refund's answer came after it was decided");
            return Err(Error::Conflict {
                code: "refund_decided",
                message: "the gateway answered after this refund was settled by a look-up or \
                          an operator; see the payment's refunds"
                    .into(),
            });
        }
        let (settled, restocked) = self
            .refund_took_effect(&payment, full, order.restock, raw)
            .await?;
        info!(payment = %payment.id, refund = %refund.id, %amount, full, "refunded");
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

impl Tijori {
    /// What a refund that went through does, whenever that became known: the payment
    /// becomes refunded (revoking what it bought) or partially refunded, and a fully
    /// refunded order's items go back on the shelf if the operator asked for it.
    async fn refund_took_effect(
        &self,
        payment: &Payment,
        full: bool,
        restock: bool,
        raw: RawAnswer,
    ) -> Result<(crate::store::Settled, bool)> {
        let answer = GatewayAnswer {
            status: if full {
                GatewayStatus::Refunded
            } else {
                GatewayStatus::PartiallyRefunded
            },
            amount_minor: payment.amount.minor(),
            currency: Some(payment.amount.currency()),
            transaction_id: None,
            raw,
        };
        // A further partial refund leaves the status as it is; `settle_as` still
        // takes its share of the days.
        let settled = self
            .settle_as(
                payment,
                answer,
                AnswerKind::Refund,
                SettledVia::Refund,
                None,
            )
            .await?;
        let restocked = self.restock_if(&settled.payment, full && restock).await?;
        Ok((settled, restocked))
    }

    async fn restock_if(&self, payment: &Payment, restock: bool) -> Result<bool> {
        Ok(match (&payment.purpose, restock) {
            (Purpose::Order { order_id }, true) => {
                self.store.restock_order(order_id, self.now()).await?
            }
            _ => false,
        })
    }

    /// Settles the payment's refunds whose outcome is unknown from a look-up's
    /// answer (see `unknown_refund_outcome`). Called by `settle` before the answer
    /// moves the payment, so the refund is settled first whichever path looked the
    /// payment up: the check job, an operator's re-check, the refund audit, "check
    /// payment status", or Chapa's `charge.refunded` webhook.
    pub(super) async fn settle_unknown_refunds(
        &self,
        payment: &Payment,
        answer: &GatewayAnswer,
    ) -> Result<()> {
        let refunds = self.store.refunds_of(&payment.id).await?;
        if !refunds.iter().any(|r| r.status == RefundStatus::Unknown) {
            return Ok(());
        }
        let at_once = self
            .gateways
            .get(payment.gateway)
            .is_none_or(|g| g.refunds_show_at_once());
        let mut succeeded: i64 = refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount.minor())
            .sum();
        for refund in refunds.iter().filter(|r| r.status == RefundStatus::Unknown) {
            let outcome = unknown_refund_outcome(
                UnknownRefund {
                    paid: payment.amount.minor(),
                    succeeded_before: succeeded,
                    amount: refund.amount.minor(),
                },
                &answer.status,
                at_once,
            );
            let status = match outcome {
                RefundOutcome::Succeeded => RefundStatus::Succeeded,
                RefundOutcome::Failed => RefundStatus::Failed,
                RefundOutcome::StillUnknown => continue,
            };
            let detail = format!(
                "settled by a look-up: {} reports the payment {:?}",
                payment.gateway, answer.status
            );
            if self
                .store
                .settle_refund(&refund.id, status, &detail, None, self.now())
                .await?
            {
                self.close_unknown_refund_notice(refund).await?;
                info!(payment = %payment.id, refund = %refund.id, status = status.as_str(), "an unknown refund was settled by a look-up");
                if status == RefundStatus::Succeeded {
                    succeeded += refund.amount.minor();
                }
            }
        }
        Ok(())
    }

    /// After a look-up moved a payment to refunded or partially refunded: if the
    /// refunds made through tijori do not account for it, it was refunded elsewhere
    /// (the gateway's dashboard), which the operator is told of. A fully refunded
    /// order is restocked when a refund of ours asked for it, or, for a refund made
    /// elsewhere, when `TIJORI_RESTOCK_FOUND_REFUNDS` says so (off by default: a
    /// refund in a dashboard says nothing about the goods coming back).
    pub(super) async fn refund_found(&self, payment: &Payment, was: PaymentStatus) -> Result<()> {
        let refunds = self.store.refunds_of(&payment.id).await?;
        let ours: Vec<&Refund> = refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .collect();
        let succeeded: i64 = ours.iter().map(|r| r.amount.minor()).sum();
        let full = payment.status == PaymentStatus::Refunded;
        let explained = if full {
            succeeded >= payment.amount.minor()
        } else {
            succeeded > 0
        };
        let restock = full
            && (ours.iter().any(|r| r.restock)
                || (!explained && self.background.restock_found_refunds));
        let restocked = self.restock_if(payment, restock).await?;
        if !explained {
            let done = Money::from_minor(succeeded, payment.amount.currency())
                .map(|m| m.to_string())
                .unwrap_or_default();
            warn!(payment = %payment.id, status = %payment.status, "a refund made outside tijori was found");
            self.store
                .record_operator_event(
                    OperatorEventKind::RefundFound,
                    Some(&payment.id),
                    &format!(
                        "{} reports payment {} {} (it was {was}); the refunds made through \
                         tijori come to {done}, so it was refunded outside tijori (e.g. in \
                         the gateway's dashboard).{}",
                        payment.gateway,
                        payment.id,
                        payment.status,
                        match (full, restocked) {
                            (_, true) => " Its order was restocked.",
                            (true, false) if matches!(payment.purpose, Purpose::Order { .. }) =>
                                " Its order was not restocked: put the items back by hand if \
                                 they came back.",
                            _ => "",
                        }
                    ),
                    self.now(),
                )
                .await?;
        }
        Ok(())
    }

    /// Marks the operator's "refund_unknown" notice of a refund resolved once the
    /// refund is settled, so the list shows what still needs a person.
    async fn close_unknown_refund_notice(&self, refund: &Refund) -> Result<()> {
        Ok(self
            .store
            .resolve_operator_events_naming(
                OperatorEventKind::RefundUnknown,
                &refund.payment_id,
                refund.id.as_str(),
                self.now(),
            )
            .await?)
    }

    fn refund_of_admin<'a>(&self, operator: &'a User) -> Result<&'a User> {
        if operator.is_admin {
            Ok(operator)
        } else {
            Err(Error::NotFound("refund"))
        }
    }

    async fn unknown_refund(&self, id: &RefundId) -> Result<(Refund, Payment)> {
        let refund = self
            .store
            .refund(id)
            .await?
            .ok_or(Error::NotFound("refund"))?;
        let payment = self
            .store
            .payment(&refund.payment_id)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        Ok((refund, payment))
    }

    async fn refund_state(&self, refund: &RefundId, payment: &PaymentId) -> Result<RefundState> {
        let refund = self
            .store
            .refund(refund)
            .await?
            .ok_or(Error::NotFound("refund"))?;
        let payment = self
            .store
            .payment(payment)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        Ok(RefundState { payment, refund })
    }

    /// An operator's "re-check": looks the refund's payment up at the gateway now and
    /// settles the refund from the answer if it tells (a refund that is not unknown
    /// is answered as it stands).
    pub async fn recheck_refund(
        &self,
        operator: &User,
        refund_id: &RefundId,
    ) -> Result<RefundState> {
        self.refund_of_admin(operator)?;
        let (refund, payment) = self.unknown_refund(refund_id).await?;
        if refund.status == RefundStatus::Unknown {
            self.check_at_gateway(payment.clone(), SettledVia::RefundCheck)
                .await?;
        }
        self.refund_state(&refund.id, &payment.id).await
    }

    /// An operator settles an unknown refund by hand, with a reason: who, when and
    /// why stay on the refund and in the operator's log. A refund settled as
    /// succeeded has the effects of one answered at once.
    pub async fn resolve_refund(
        &self,
        operator: &User,
        refund_id: &RefundId,
        resolution: Resolution,
        reason: &str,
    ) -> Result<RefundState> {
        self.refund_of_admin(operator)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(invalid("reason", "say why (it is kept in the audit trail)").into());
        }
        if reason.chars().count() > 1_000 {
            return Err(invalid("reason", "at most 1000 characters").into());
        }
        let (refund, _) = self.unknown_refund(refund_id).await?;
        if refund.status != RefundStatus::Unknown {
            return Err(Error::Conflict {
                code: "refund_not_unknown",
                message: format!("this refund is already {}", refund.status.as_str()),
            });
        }
        self.resolve_by_hand(operator, &refund, resolution, reason)
            .await?;
        self.refund_state(&refund.id, &refund.payment_id).await
    }

    async fn resolve_by_hand(
        &self,
        operator: &User,
        refund: &Refund,
        resolution: Resolution,
        reason: &str,
    ) -> Result<()> {
        let status = match resolution {
            Resolution::Succeeded => RefundStatus::Succeeded,
            Resolution::Failed => RefundStatus::Failed,
        };
        let by = RefundResolution {
            by: operator.id.clone(),
            reason: reason.to_owned(),
        };
        let detail = format!(
            "resolved by {} as {}: {reason}",
            operator.username.as_str(),
            status.as_str()
        );
        if !self
            .store
            .settle_refund(&refund.id, status, &detail, Some(&by), self.now())
            .await?
        {
            return Err(Error::Conflict {
                code: "refund_not_unknown",
                message: "this refund was settled meanwhile".into(),
            });
        }
        self.close_unknown_refund_notice(refund).await?;
        self.store
            .record_operator_event(
                OperatorEventKind::RefundResolved,
                Some(&refund.payment_id),
                &format!("refund {} of {} {detail}", refund.id, refund.amount),
                self.now(),
            )
            .await?;
        info!(refund = %refund.id, by = operator.username.as_str(), status = status.as_str(), "refund resolved by hand");
        if status == RefundStatus::Succeeded {
            let payment = self
                .store
                .payment(&refund.payment_id)
                .await?
                .ok_or(Error::NotFound("payment"))?;
            let succeeded: i64 = self
                .store
                .refunds_of(&payment.id)
                .await?
                .iter()
                .filter(|r| r.status == RefundStatus::Succeeded)
                .map(|r| r.amount.minor())
                .sum();
            let raw = RawAnswer {
                http_status: 0,
                body: serde_json::json!({
                    "resolved_by": operator.username.as_str(),
                    "refund": refund.id.to_string(),
                    "status": status.as_str(),
                    "reason": reason,
                })
                .to_string(),
            };
            self.refund_took_effect(
                &payment,
                succeeded >= payment.amount.minor(),
                refund.restock,
                raw,
            )
            .await?;
        }
        Ok(())
    }

    /// The `check_refund` job: looks the refund's payment up (which settles the
    /// refund if the answer tells). Queued again in an hour while the answer cannot
    /// tell, for up to a week; then it is left to an operator. `Err` is a look-up
    /// that failed (retried with backoff).
    pub(super) async fn check_refund_job(
        &self,
        id: &RefundId,
    ) -> std::result::Result<Option<DateTime<Utc>>, JobError> {
        let describe = |e: Error| JobError::failed(e);
        let Some(refund) = self
            .store
            .refund(id)
            .await
            .map_err(|e| describe(e.into()))?
        else {
            return Ok(None);
        };
        if refund.status != RefundStatus::Unknown {
            return Ok(None);
        }
        let payment = self
            .store
            .payment(&refund.payment_id)
            .await
            .map_err(|e| describe(e.into()))?
            .ok_or_else(|| JobError::failed(anyhow::anyhow!("refund {id} names no payment")))?;
        self.check_at_gateway_patiently(payment, SettledVia::RefundCheck)
            .await
            .map_err(describe)?;
        let still = self
            .store
            .refund(id)
            .await
            .map_err(|e| describe(e.into()))?
            .is_some_and(|r| r.status == RefundStatus::Unknown);
        if !still {
            return Ok(None);
        }
        let now = self.now();
        if now - refund.created_at < Duration::days(REFUND_CHECK_FOR_DAYS) {
            return Ok(Some(now + Duration::minutes(REFUND_CHECK_EVERY_MINUTES)));
        }
        self.store
            .record_operator_event(
                OperatorEventKind::RefundStillUnknown,
                Some(&refund.payment_id),
                &format!(
                    "refund {id} of {} is still unknown after {REFUND_CHECK_FOR_DAYS} days of \
                     look-ups: check the gateway's dashboard and resolve it by hand",
                    refund.amount
                ),
                now,
            )
            .await
            .map_err(|e| describe(e.into()))?;
        Ok(None)
    }
}
