//! Khalti's legacy widget (KPG-1): the customer pays in a popup on our page, the
//! browser hands us a token, and the money moves only when our server verifies the
//! token with the secret key.

use crate::telemetry::SettledVia;
use tracing::{info, warn};

use super::{Tijori, Verification};
use crate::account::{invalid, User};
use crate::error::{Error, Result};
use crate::gateway::{GatewayAnswer, GatewayError, GatewayKind, GatewayStatus, RawAnswer};
use crate::id::{OrderId, PaymentId};
use crate::money::Money;
use crate::payment::{CheckoutKind, Payment, PaymentStatus, Purpose};
use crate::store::{OperatorEventKind, StoreError};

/// What a widget payment is for.
#[derive(Clone, Debug)]
pub enum WidgetTarget {
    /// A plan on offer, by id, bought with the default choice (`PlanChange::Queue`):
    /// never a switch now.
    Plan(String),
    /// One of the caller's orders, by id, while it can still be paid.
    Order(String),
}

impl Tijori {
    /// Verifies a widget token for the caller's plan or order and settles on
    /// Khalti's answer. `amount` (paisa) is what the browser says was paid; it must
    /// be the price, or nothing is captured.
    pub async fn verify_widget(
        &self,
        user: &User,
        token: &str,
        amount: i64,
        target: &WidgetTarget,
    ) -> Result<Verification> {
        let token = token.trim();
        if token.is_empty()
            || token.len() > 128
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("token", "is not a Khalti widget token").into());
        }
        let (purpose, price) = match target {
            WidgetTarget::Plan(id) => {
                let plan = self.active_plan(id).await?;
                (
                    Purpose::Subscription {
                        plan_id: plan.id,
                        change: crate::subscription::PlanChange::Queue,
                    },
                    plan.price,
                )
            }
            WidgetTarget::Order(id) => {
                let order = match OrderId::parse(id) {
                    Some(id) => self.store.order(&id).await?,
                    None => None,
                }
                .filter(|o| o.user_id == user.id)
                .ok_or(Error::NotFound("order"))?;
                // As for a hosted checkout: nothing is captured for an order that can
                // no longer take the money.
                if order.items.is_empty() {
                    return Err(invalid("order_id", "the order has no items").into());
                }
                if !order.is_payable(self.now()) {
                    return Err(Error::Conflict {
                        code: "order_not_pending",
                        message: "the order is not pending any more, so it cannot be paid".into(),
                    });
                }
                (Purpose::Order { order_id: order.id }, order.total)
            }
        };
        let gw = self.gateway_for(GatewayKind::Khalti, price.currency())?;
        if amount != price.minor() {
            return Err(Error::Refused {
                code: "amount_mismatch",
                message: format!(
                    "amount {amount} paisa is not the price ({price} = {} paisa)",
                    price.minor()
                ),
            });
        }

        let (payment, retry) = self.widget_payment(user, token, purpose, price).await?;
        if !payment.status.is_open() {
            // Verified before (a retry after a lost answer): say how it stands.
            return self.verification(payment).await;
        }
        match gw.capture_token(token, price).await {
            Ok(answer) => {
                let settled = self.settle(&payment, answer, SettledVia::Widget).await?;
                info!(payment = %payment.id, status = %settled.payment.status, "widget payment verified");
                self.verification(settled.payment).await
            }
            // Refused on a retry: the first attempt may have captured the money before
            // its answer was lost, and whether Khalti accepts a token twice is not
            // documented (khalti.md §9.3). The payment stays open for an operator.
            Err(e @ (GatewayError::Rejected { .. } | GatewayError::NotFound { .. })) if retry => {
                warn!(payment = %payment.id, error = %e, "widget token refused on a retry");
                self.store
                    .record_operator_event(
                        OperatorEventKind::WidgetUnclear,
                        Some(&payment.id),
                        &format!(
                            "Khalti refused the widget token on a second verify ({e}); the first \
                             attempt got no answer and may have captured the money. Check the \
                             transaction in Khalti's dashboard."
                        ),
                        self.now(),
                    )
                    .await?;
                Err(e.into())
            }
            // Khalti refused the token: the payment did not happen.
            Err(e @ (GatewayError::Rejected { .. } | GatewayError::NotFound { .. })) => {
                warn!(payment = %payment.id, error = %e, "widget token refused");
                let raw = e.raw().cloned().unwrap_or(RawAnswer {
                    http_status: 0,
                    body: e.to_string(),
                });
                let refused = GatewayAnswer {
                    status: GatewayStatus::Failed,
                    amount_minor: 0,
                    currency: None,
                    transaction_id: None,
                    raw,
                };
                self.settle(&payment, refused, SettledVia::Widget).await?;
                Err(e.into())
            }
            // No answer: the payment stays open, and verifying again (the same
            // request, or "check payment status") asks Khalti once more.
            Err(e) => {
                warn!(payment = %payment.id, error = %e, "widget verify got no answer");
                if let Some(raw) = e.raw() {
                    self.store
                        .record_answer(
                            &payment.id,
                            crate::store::AnswerKind::Lookup,
                            raw,
                            self.now(),
                        )
                        .await?;
                }
                Err(e.into())
            }
        }
    }

    /// The payment for a token: a new one, or the one a previous verify of the same
    /// token created (the caller's own; a token is nobody else's to spend).
    async fn widget_payment(
        &self,
        user: &User,
        token: &str,
        purpose: Purpose,
        amount: Money,
    ) -> Result<(Payment, bool)> {
        // The token is the payment's reference: the database keeps a token to one
        // payment, so a replayed token cannot pay twice.
        let provider_ref = token.to_owned();
        let now = self.now();
        let payment = Payment {
            id: PaymentId::generate(),
            user_id: user.id.clone(),
            gateway: GatewayKind::Khalti,
            purpose: purpose.clone(),
            amount,
            status: PaymentStatus::Initiated,
            checkout: CheckoutKind::Widget,
            provider_ref: Some(provider_ref.clone()),
            provider_txn_id: None,
            payment_url: None,
            expires_at: None,
            status_reason: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_payment(&payment).await {
            Ok(()) => Ok((payment, false)),
            Err(StoreError::Conflict(_)) => {
                let existing = self
                    .store
                    .payment_by_provider_ref(GatewayKind::Khalti, &provider_ref)
                    .await?;
                match existing {
                    Some(p) if p.user_id == user.id && p.purpose == purpose => Ok((p, true)),
                    Some(_) => Err(Error::Conflict {
                        code: "token_used",
                        message: "this widget token has already been used for another payment"
                            .into(),
                    }),
                    // The conflict was the order's one open payment per gateway.
                    None => Err(Error::Conflict {
                        code: "payment_in_progress",
                        message: "another Khalti payment for this order is open; finish or \
                                  cancel it first"
                            .into(),
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
