//! Plans, what a customer holds, and opening a checkout for a subscription: the
//! payment row is written before the gateway is called.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::account::User;
use crate::error::{Error, Result};
use crate::gateway::{CheckoutRequest, Gateway, GatewayKind};
use crate::id::{PaymentId, PlanId, UserId};
use crate::idempotency::Attempt;
use crate::money::{Currency, Money};
use crate::payment::{Payment, PaymentStatus, Purpose};
use crate::subscription::{
    self, ChangeMode, ChangePreview, PaidPeriod, Plan, PlanChange, Subscription,
};

use super::*;

impl Tijori {
    pub(super) async fn active_plan(&self, plan_id: &str) -> Result<Plan> {
        match PlanId::parse(plan_id) {
            Some(id) => self.plan(&id).await?,
            None => None,
        }
        .filter(|p| p.active)
        .ok_or(Error::NotFound("plan"))
    }

    /// A plan by id. Plans never change once created (there is no way to edit or
    /// withdraw one), so each is read from the store once per process.
    pub(super) async fn plan(&self, id: &PlanId) -> Result<Option<Plan>> {
        if let Some(plan) = self.known_plans.get(id) {
            return Ok(Some(plan));
        }
        let plan = self.store.plan(id).await?;
        if let Some(plan) = &plan {
            self.known_plans.insert(plan.clone());
        }
        Ok(plan)
    }

    /// The plans on offer (the active ones), cheapest first.
    pub async fn plans(&self) -> Result<Vec<Plan>> {
        Ok(self.store.plans().await?)
    }

    /// The plan the user holds now (or the last one they held) and what is queued
    /// after it, as their paid periods add up at this moment.
    pub async fn my_holding(&self, user: &UserId) -> Result<Option<Holding>> {
        let now = self.now();
        let segments = self.store.segments(user, now).await?;
        let Some((current, queued_segments)) = subscription::holding(&segments, now) else {
            return Ok(None);
        };
        let mut queued = Vec::with_capacity(queued_segments.len());
        for sub in queued_segments {
            let plan = self.plan_of(&sub).await?;
            queued.push((sub, plan));
        }
        let plan = self.plan_of(&current).await?;
        Ok(Some(Holding {
            current: (current, plan),
            queued,
        }))
    }

    /// The current part of [`Tijori::my_holding`], without what is queued after it.
    pub async fn my_subscription(&self, user: &UserId) -> Result<Option<(Subscription, Plan)>> {
        Ok(self.my_holding(user).await?.map(|h| h.current))
    }

    pub(super) async fn plan_of(&self, sub: &Subscription) -> Result<Plan> {
        self.plan(&sub.plan_id)
            .await?
            .ok_or(Error::NotFound("plan"))
    }

    /// For each of `plans`, what buying it would do now (`None` for a plan no longer
    /// on offer): the subscribe page's "starts on…" and its "switch now" offer.
    pub async fn plan_choices(
        &self,
        user: &UserId,
        plans: &[Plan],
    ) -> Result<Vec<Option<PlanChoice>>> {
        let now = self.now();
        let segments = self.store.segments(user, now).await?;
        // The whole layout only if a switch now needs it, and then once.
        let mut periods = None;
        let mut choices = Vec::with_capacity(plans.len());
        for plan in plans {
            if !plan.active {
                choices.push(None);
                continue;
            }
            let default = self
                .preview_with(&segments, &mut periods, user, plan, PlanChange::Queue, now)
                .await?;
            let switch = self
                .preview_with(
                    &segments,
                    &mut periods,
                    user,
                    plan,
                    PlanChange::SwitchNow,
                    now,
                )
                .await?;
            choices.push(Some(PlanChoice {
                default,
                switch_now: (switch.mode == ChangeMode::SwitchNow).then_some(switch),
            }));
        }
        Ok(choices)
    }

    /// What buying `plan` with `change` would do now: from the segments when they
    /// tell, or else from the whole layout (loaded into `periods` the first time).
    pub(super) async fn preview_with(
        &self,
        segments: &[Subscription],
        periods: &mut Option<Vec<PaidPeriod>>,
        user: &UserId,
        plan: &Plan,
        change: PlanChange,
        now: DateTime<Utc>,
    ) -> Result<ChangePreview> {
        if let Some(p) = subscription::preview_from(segments, plan, change, now) {
            return Ok(p);
        }
        let periods = match periods {
            Some(periods) => periods,
            None => periods.insert(self.store.paid_periods(user).await?),
        };
        Ok(subscription::preview(periods, plan, change, now))
    }

    // Payments -------------------------------------------------------------------
    /// Starts paying for a plan. The customer's choice for the plan they hold is kept
    /// with the payment: the settle applies it to the periods as they are then. Under
    /// an idempotency key a previous holder of which opened a checkout, that checkout
    /// is the answer again.
    pub async fn initiate_subscription(
        &self,
        user: &User,
        plan_id: &str,
        gateway: GatewayKind,
        change: PlanChange,
        attempt: Option<&Attempt>,
    ) -> Result<(Payment, ChangePreview)> {
        let plan = self.active_plan(plan_id).await?;
        let now = self.now();
        let segments = self.store.segments(&user.id, now).await?;
        let preview = self
            .preview_with(&segments, &mut None, &user.id, &plan, change, now)
            .await?;
        if let Some(left) = self.left_checkout(attempt).await? {
            return Ok((left, preview));
        }
        let payment = self
            .open_checkout(
                user,
                Purpose::Subscription {
                    plan_id: plan.id.clone(),
                    change,
                },
                plan.price,
                format!("{} subscription ({} days)", plan.name, plan.duration_days),
                gateway,
                attempt,
            )
            .await?;
        Ok((payment, preview))
    }

    /// The gateway that takes payments in `currency`, or why there is none.
    pub(super) fn gateway_for(
        &self,
        gateway: GatewayKind,
        currency: Currency,
    ) -> Result<Arc<dyn Gateway>> {
        let gw = self
            .gateways
            .get(gateway)
            .ok_or_else(|| Error::Unsupported(format!("the {gateway} gateway is not configured")))?
            .clone();
        if !gw.supports(currency) {
            let others = self.gateways.for_currency(currency);
            let hint = match others.first() {
                Some(other) => format!("; pay with {other} instead"),
                None => String::new(),
            };
            return Err(Error::Unsupported(format!(
                "{gateway} cannot take payments in {currency}{hint}"
            )));
        }
        Ok(gw)
    }

    /// Opens a hosted checkout for `amount`: the payment row exists before the gateway
    /// is asked, so a crash or a timeout mid-call leaves a trace, never a lost charge.
    /// Its lines are logged in a span with the new payment's id.
    #[tracing::instrument(name = "open_checkout", skip_all, fields(%gateway, payment_id = tracing::field::Empty))]
    pub(super) async fn open_checkout(
        &self,
        user: &User,
        purpose: Purpose,
        amount: Money,
        description: String,
        gateway: GatewayKind,
        attempt: Option<&Attempt>,
    ) -> Result<Payment> {
        let gw = self.gateway_for(gateway, amount.currency())?;
        let now = self.now();
        let id = PaymentId::generate();
        tracing::Span::current().record("payment_id", id.as_str());
        let payment = Payment {
            id,
            user_id: user.id.clone(),
            gateway,
            purpose,
            amount,
            status: PaymentStatus::Initiated,
            checkout: crate::payment::CheckoutKind::Hosted,
            provider_ref: None,
            provider_txn_id: None,
            payment_url: None,
            expires_at: None,
            status_reason: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_payment_for(&payment, attempt).await?;

        let request = CheckoutRequest {
            payment_id: payment.id.clone(),
            amount,
            description,
            return_url: self.return_url(),
            website_url: format!("{}/", self.settings.public_url),
            customer_name: user.username.as_str().to_owned(),
            customer_email: user.email.as_str().to_owned(),
        };
        match gw.initiate(&request).await {
            Ok(checkout) => {
                let payment = self
                    .store
                    .record_checkout(
                        &payment.id,
                        &checkout.provider_ref,
                        &checkout.payment_url,
                        checkout.expires_at,
                        &checkout.raw,
                        self.now(),
                    )
                    .await
                    .map_err(|e| {
                        // The gateway holds a checkout we could not note down: the log
                        // is the only place its reference survives.
                        error!(
                            payment = %payment.id,
                            %gateway,
                            provider_ref = checkout.provider_ref,
                            payment_url = checkout.payment_url,
                            error = %format!("{e:#}"),
                            "checkout opened at the gateway but could not be recorded"
                        );
                        Error::Internal(anyhow::anyhow!("failed to record the checkout: {e}"))
                    })?;
                info!(payment = %payment.id, %gateway, provider_ref = checkout.provider_ref, "checkout opened");
                Ok(payment)
            }
            Err(e) => {
                warn!(payment = %payment.id, %gateway, error = %e, "checkout could not be opened");
                self.fail_initiation(&payment.id, &e.to_string(), e.raw())
                    .await?;
                self.announce_change(&payment.id);
                Err(e.into())
            }
        }
    }

    /// The form the browser posts to open an open payment's checkout at a gateway
    /// that opens none itself (eSewa's signed form), rebuilt as it was signed when the
    /// payment was initiated; `None` for other gateways and for a payment no longer
    /// open. What the form carries is no secret: it is signed, not encrypted, and is
    /// what the payer's browser sends.
    pub fn checkout_form(&self, payment: &Payment) -> Option<crate::gateway::CheckoutForm> {
        if !matches!(
            payment.status,
            PaymentStatus::Initiated | PaymentStatus::Pending
        ) || payment.provider_ref.is_none()
        {
            return None;
        }
        let gw = self.gateways.get(payment.gateway)?;
        gw.checkout_form(&CheckoutRequest {
            payment_id: payment.id.clone(),
            amount: payment.amount,
            description: String::new(),
            return_url: self.return_url(),
            website_url: format!("{}/", self.settings.public_url),
            customer_name: String::new(),
            customer_email: String::new(),
        })
    }

    /// `checkout_form` for the payment `id`, whoever asks: tijori's page that posts it
    /// stands in for the gateway's hosted page, which anyone holding its link may open.
    pub async fn checkout_form_of(
        &self,
        id: &PaymentId,
    ) -> Result<Option<crate::gateway::CheckoutForm>> {
        Ok(self
            .store
            .payment(id)
            .await?
            .and_then(|p| self.checkout_form(&p)))
    }

    /// Where every gateway sends the browser back (eSewa appends its `?data=`).
    fn return_url(&self) -> String {
        format!("{}/payment-success/", self.settings.public_url)
    }

    /// The caller's own payment (or any payment, for an admin). Someone else's
    /// payment is "not found", not "forbidden": its existence is not the caller's
    /// business.
    pub async fn payment_for(&self, user: &User, key: &PaymentKey) -> Result<Payment> {
        let payment = match key {
            PaymentKey::Id(id) => self.store.payment(id).await?,
            PaymentKey::ProviderRef(gw, r) => self.store.payment_by_provider_ref(*gw, r).await?,
        };
        payment
            .filter(|p| p.user_id == user.id || user.is_admin)
            .ok_or(Error::NotFound("payment"))
    }

    /// The user's payments, newest first, at most `limit`.
    pub async fn payment_history(&self, user: &UserId, limit: u32) -> Result<Vec<Payment>> {
        Ok(self.store.payments_for_user(user, limit).await?)
    }
}
