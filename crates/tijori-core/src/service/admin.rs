//! The operator's use-cases: plans, the operator's list, jobs, unknown refunds and
//! webhook deliveries; and the operator's area that runs the shop (`back_office`):
//! the lists, a payment's audit trail, a refund asked for once from a form, the
//! revenue and the overview's counts.

use chrono::{Duration, NaiveTime};

use crate::account::{invalid, User};
use crate::back_office::{
    CustomerLine, DeliveryOfPayment, Listed, Listing, OrderLine, PaymentLine, RevenueDay,
    ShopCounts, SubscriptionLine, MAX_EXPORT_ROWS,
};
use crate::error::{Error, Result};
use crate::id::PaymentId;
use crate::idempotency::{fingerprint, Claim, IdempotencyKey, StoredResponse};
use crate::payment::Payment;
use crate::store::{EventResolution, GatewayAnswerRecord, OperatorEvent, Refund, WebhookDelivery};
use crate::subscription::{NewPlan, Plan};

use super::refunds::{RefundOrder, Refunded};

/// The longest note an operator may leave on a resolved event.
pub const MAX_RESOLUTION_NOTE: usize = 1000;

/// The windows the revenue view offers, in days.
pub const REVENUE_WINDOWS: [u32; 2] = [30, 90];

/// Everything tijori kept about one payment, for its page in the operator's area.
#[derive(Clone, Debug)]
pub struct PaymentAudit {
    /// The payment as it stands.
    pub payment: Payment,
    /// Whose it is (`None` only if the account is gone).
    pub customer: Option<User>,
    /// Every gateway answer and signal, oldest first.
    pub answers: Vec<GatewayAnswerRecord>,
    /// Every refund asked for, whatever came of it, oldest first.
    pub refunds: Vec<Refund>,
    /// Every webhook delivery that named it, oldest first.
    pub deliveries: Vec<DeliveryOfPayment>,
    /// Every operator event about it, resolved or not, oldest first.
    pub events: Vec<OperatorEvent>,
}

/// What came of a refund asked for from a form that carries a one-time key.
#[derive(Clone, Debug)]
pub enum RefundOnce {
    /// This request made the refund.
    Made(Box<Refunded>),
    /// The same form was sent before and its refund made (a double submit, a reload):
    /// nothing was asked of the gateway again.
    AlreadyMade,
}

use super::*;

impl Tijori {
    // Operator's view ---------------------------------------------------------------
    /// The operator's list, newest first, at most 200: the unresolved events, or all
    /// with `include_resolved`. The caller checks that the user is an admin.
    pub async fn operator_events(&self, include_resolved: bool) -> Result<Vec<OperatorEvent>> {
        Ok(self.store.operator_events(include_resolved, 200).await?)
    }

    /// Marks an operator event handled, by no one in particular (a second resolve
    /// keeps the first time); `NotFound` for an unknown id. The caller checks that the
    /// user is an admin.
    pub async fn resolve_operator_event(&self, id: i64) -> Result<()> {
        Ok(self
            .store
            .resolve_operator_event(id, None, self.now())
            .await?)
    }

    /// Marks an operator event handled by `operator`, with their note of what they did
    /// (kept, with their name, on the event). A second resolve keeps the first person,
    /// time and note. `NotFound` for an unknown id, or for a caller who is no operator.
    pub async fn resolve_operator_event_by(
        &self,
        operator: &User,
        id: i64,
        note: &str,
    ) -> Result<()> {
        if !operator.is_admin {
            return Err(Error::NotFound("operator event"));
        }
        let note = note.trim();
        if note.chars().count() > MAX_RESOLUTION_NOTE {
            return Err(invalid("note", "must be at most 1000 characters").into());
        }
        let resolution = EventResolution {
            by: operator.id.clone(),
            note: note.to_owned(),
        };
        Ok(self
            .store
            .resolve_operator_event(id, Some(&resolution), self.now())
            .await?)
    }

    /// Background jobs in `status` (all when `None`), newest first.
    pub async fn jobs(
        &self,
        status: Option<crate::jobs::JobStatus>,
    ) -> Result<Vec<crate::jobs::Job>> {
        Ok(self.store.jobs(status, 200).await?)
    }

    /// Queues a dead job again (an operator's retry).
    pub async fn retry_job(&self, id: i64) -> Result<()> {
        self.store
            .retry_job(id, self.now())
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => Error::Conflict {
                    code: "job_already_queued",
                    message: "the same work is already queued".into(),
                },
                other => other.into(),
            })
    }

    /// Refunds whose outcome is still unknown, oldest first (the operator's list).
    pub async fn unknown_refunds(&self) -> Result<Vec<crate::store::Refund>> {
        Ok(self.store.unknown_refunds(200).await?)
    }

    /// The latest 200 webhook deliveries, newest first. The caller checks that the user
    /// is an admin.
    pub async fn webhook_deliveries(&self) -> Result<Vec<WebhookDelivery>> {
        Ok(self.store.webhook_deliveries(200).await?)
    }

    // Plans ----------------------------------------------------------------------
    /// Adds a plan (the CLI's `plan create`): a name, 1 to [`MAX_PLAN_DAYS`] days and a
    /// price above zero. A plan cannot be edited or withdrawn afterwards.
    pub async fn create_plan(&self, plan: NewPlan) -> Result<Plan> {
        if plan.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty").into());
        }
        // A century keeps the date arithmetic of every renewal far from overflow.
        if !(1..=MAX_PLAN_DAYS).contains(&plan.duration_days) {
            return Err(invalid("days", "must be from 1 to 36500").into());
        }
        if plan.price.minor() == 0 {
            return Err(invalid("price", "must be more than zero").into());
        }
        Ok(self.store.create_plan(plan, self.now()).await?)
    }

    // The operator's area -------------------------------------------------------
    /// A page of payments matching `listing`, with how many match. The caller checks
    /// that the user is an admin.
    pub async fn list_payments(&self, listing: &Listing) -> Result<Listed<PaymentLine>> {
        Ok(self.store.list_payments(&bounded(listing)).await?)
    }

    /// A page of orders matching `listing`, with how many match.
    pub async fn list_orders(&self, listing: &Listing) -> Result<Listed<OrderLine>> {
        Ok(self.store.list_orders(&bounded(listing)).await?)
    }

    /// A page of customers matching `listing`, with how many match.
    pub async fn list_customers(&self, listing: &Listing) -> Result<Listed<CustomerLine>> {
        Ok(self
            .store
            .list_customers(&bounded(listing), self.now())
            .await?)
    }

    /// A page of subscriptions (each customer's latest run of paid time) matching
    /// `listing`, with how many match.
    pub async fn list_subscriptions(&self, listing: &Listing) -> Result<Listed<SubscriptionLine>> {
        Ok(self
            .store
            .list_subscriptions(&bounded(listing), self.now())
            .await?)
    }

    /// Everything kept about a payment, for its page. `NotFound` for an unknown id,
    /// or for a caller who is no operator.
    pub async fn payment_audit(&self, operator: &User, id: &PaymentId) -> Result<PaymentAudit> {
        if !operator.is_admin {
            return Err(Error::NotFound("payment"));
        }
        let payment = self
            .store
            .payment(id)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        Ok(PaymentAudit {
            customer: self.store.user(&payment.user_id).await?,
            answers: self.store.answers(id).await?,
            refunds: self.store.refunds_of(id).await?,
            deliveries: self.store.deliveries_of(&payment).await?,
            events: self.store.operator_events_of(id).await?,
            payment,
        })
    }

    /// [`Tijori::refund`], at most once per `key`: the refund form carries a key made
    /// when it was shown, so that a double submit or a reload after it refunds once
    /// (the second finds the first's answer, or is told it is still running) whatever
    /// the amount asked. The core refund's own rules (what is left, one refund in
    /// flight, unknown outcomes) hold as for any refund.
    pub async fn refund_once(
        &self,
        operator: &User,
        id: &PaymentId,
        order: &RefundOrder,
        key: &IdempotencyKey,
    ) -> Result<RefundOnce> {
        let asked = format!(
            "amount={:?} reason={:?} restock={} force={}",
            order.amount, order.reason, order.restock, order.force
        );
        let print = fingerprint(
            "POST",
            &format!("/admin/payments/{id}/refund"),
            asked.as_bytes(),
        );
        match self
            .claim_idempotency_key(&operator.id, key, &print)
            .await?
        {
            Claim::New | Claim::TakenOver(_) => {}
            Claim::Replay(_) => return Ok(RefundOnce::AlreadyMade),
            Claim::InProgress => {
                return Err(Error::Conflict {
                    code: "refund_in_progress",
                    message: "this refund is being made; reload the payment's page in a moment"
                        .into(),
                })
            }
            Claim::Mismatch => {
                return Err(Error::Conflict {
                    code: "refund_form_reused",
                    message: "this refund form was already sent with other values; open the \
                              payment's page again to refund more"
                        .into(),
                })
            }
        }
        match self.refund(operator, id, order).await {
            Ok(refunded) => {
                let done = StoredResponse {
                    status: 200,
                    content_type: "text/plain".into(),
                    body: refunded.refund.id.to_string().into_bytes(),
                };
                self.complete_idempotency_key(&operator.id, key, &done)
                    .await?;
                Ok(RefundOnce::Made(Box::new(refunded)))
            }
            Err(e) => {
                // Nothing was refunded by this request (or its outcome is unknown and
                // the refund's own record now stops another): the form may be sent
                // again.
                self.release_idempotency_key(&operator.id, key).await?;
                Err(e)
            }
        }
    }

    /// Money collected, refunded and net per UTC day, gateway and currency over the
    /// last `days` days (today included), summed by the database.
    pub async fn revenue(&self, days: u32) -> Result<Vec<RevenueDay>> {
        Ok(self.store.revenue(self.revenue_since(days)).await?)
    }

    /// The start (midnight UTC) of the first day of a revenue window of `days` days
    /// ending today.
    pub fn revenue_since(&self, days: u32) -> chrono::DateTime<chrono::Utc> {
        let today = self.now().date_naive();
        let first = today - Duration::days(i64::from(days.max(1)) - 1);
        first.and_time(NaiveTime::MIN).and_utc()
    }

    /// The overview's counts now: active subscriptions, renewals due within the week,
    /// payments open and held for review.
    pub async fn shop_counts(&self) -> Result<ShopCounts> {
        let now = self.now();
        Ok(self.store.shop_counts(now, now + Duration::days(7)).await?)
    }
}

/// `listing` with its page size within bounds: an export may ask for up to
/// [`MAX_EXPORT_ROWS`], and asking for none gets one row rather than an empty page.
fn bounded(listing: &Listing) -> Listing {
    Listing {
        limit: listing.limit.clamp(1, MAX_EXPORT_ROWS),
        ..listing.clone()
    }
}
