//! The use-cases. The web layer, the CLI and background work all go through here, so a
//! payment's outcome is decided in one place whichever path learned it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tracing::{error, info, warn};

use crate::account::{invalid, Email, Password, SecretToken, Session, User, Username};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::gateway::{CheckoutRequest, Gateway, GatewayAnswer, GatewayKind, Gateways, RawAnswer};
use crate::id::{PaymentId, PlanId, UserId};
use crate::idempotency::{Attempt, Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse};
use crate::money::{Currency, Money};
use crate::payment::{decide, Payment, PaymentStatus, Purpose};
use crate::shop::Order;
use crate::store::{
    AnswerKind, NewUser, OperatorEvent, Settled, Settlement, Store, WebhookDelivery,
};
use crate::subscription::{
    self, ChangeMode, ChangePreview, NewPlan, PaidPeriod, Plan, PlanChange, Subscription,
};

mod background;
mod notices;
mod orders;
mod refunds;
mod returns;
mod webhooks;
mod widget;

pub use background::{BackgroundSettings, ReconcileReport, Reconciled, Worker};
pub use refunds::{RefundOrder, RefundState, Refunded, Resolution};
pub use returns::{
    kept_return_query, return_lookup_cutoff, return_lookup_due, Returned, MAX_RETURN_QUERY_BYTES,
    RETURN_LOOKUP_EVERY_SECS,
};
pub use webhooks::WebhookOutcome;
pub use widget::{WidgetTarget, WIDGET_REF_PREFIX};

/// How long a browser session lasts.
pub const SESSION_LIFETIME_DAYS: i64 = 14;

/// How long an API token works; a client signs in again after that.
pub const API_TOKEN_LIFETIME_DAYS: i64 = 30;

/// The longest plan, in days (a century): keeps the date arithmetic of every renewal
/// far from overflow.
pub const MAX_PLAN_DAYS: u32 = 36_500;

/// How a deployment tunes the use-cases: start from [`Settings::new`] and override the
/// fields it sets.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where customers reach this tijori (no trailing slash); return URLs hang off it.
    pub public_url: String,
    /// How long an unpaid order holds its stock.
    pub order_ttl: Duration,
    /// How much one customer may hold unpaid.
    pub order_caps: crate::shop::OrderCaps,
    /// How many password hashes (sign-in, sign-up) may wait for a core; beyond that
    /// an attempt is refused at once. `None`: 8 a core.
    pub hashes_waiting: Option<usize>,
}

impl Settings {
    /// The default `order_ttl`: how long, in minutes, an unpaid order holds its stock.
    pub const DEFAULT_ORDER_TTL_MINUTES: i64 = 30;

    /// Settings for a tijori reached at `public_url` (no trailing slash), every other
    /// field at its default.
    pub fn new(public_url: impl Into<String>) -> Self {
        Settings {
            public_url: public_url.into(),
            order_ttl: Duration::minutes(Self::DEFAULT_ORDER_TTL_MINUTES),
            order_caps: crate::shop::OrderCaps::default(),
            hashes_waiting: None,
        }
    }
}

/// What a user holds: the plan running now (or the last one that ran, ended) and
/// the plans queued after it, each with its dates.
#[derive(Clone, Debug)]
pub struct Holding {
    /// The subscription running now (else the last that ended, else the first to come),
    /// with its plan.
    pub current: (Subscription, Plan),
    /// The subscriptions that follow it, in order, each with its plan.
    pub queued: Vec<(Subscription, Plan)>,
}

/// What buying a plan would do: by default, and with "switch now" when that is a
/// different thing (the customer holds another plan).
#[derive(Clone, Debug)]
pub struct PlanChoice {
    /// What paying would do with the default choice ([`PlanChange::Queue`]): start now,
    /// extend, or start when the paid time ends.
    pub default: ChangePreview,
    /// What "switch now" would do; `None` when there is nothing to switch from (no
    /// other plan ahead, or it was paid in another currency).
    pub switch_now: Option<ChangePreview>,
}

/// How a caller names the payment to verify.
#[derive(Clone, Debug)]
pub enum PaymentKey {
    /// Our payment id, as the API and the status pages name it.
    Id(PaymentId),
    /// The gateway's own reference on that gateway (Khalti's pidx, Chapa's tx_ref), as
    /// a return redirect carries it.
    ProviderRef(GatewayKind, String),
}

/// A verify's outcome: the payment as it now stands and, once it is paid, what it
/// bought (the subscription, or the order).
#[derive(Clone, Debug)]
pub struct Verification {
    /// As it stands after the lookup, if one was made.
    pub payment: Payment,
    /// What the customer holds now; only for a completed subscription payment, and
    /// `None` if they hold nothing.
    pub subscription: Option<Holding>,
    /// The order it pays for, whatever the payment's status; `None` for a subscription.
    pub order: Option<Order>,
}

/// The use-cases over one store and its gateways. Clones share the store, the change
/// feed and the caches: each request, worker and lookup task holds one.
#[derive(Clone)]
pub struct Tijori {
    store: Arc<dyn Store>,
    gateways: Gateways,
    clock: Arc<dyn Clock>,
    settings: Settings,
    background: BackgroundSettings,
    /// Payments whose status just changed (here, or, with PostgreSQL, in another
    /// tijori process), for the live status pages watching them.
    changes: Arc<crate::changes::ChangeFeed>,
    /// Delivers outbox mail; without one, mail stays in the outbox for the operator.
    mailer: Option<Arc<dyn crate::mail::Mailer>>,
    known_plans: Arc<KnownPlans>,
    /// This process, as the holder of the idempotency keys it handles.
    instance: InstanceId,
    hasher: Arc<Hasher>,
}

/// Plans read so far (see `Tijori::plan`), at most a few thousand.
#[derive(Default)]
struct KnownPlans(std::sync::RwLock<std::collections::HashMap<PlanId, Plan>>);

impl KnownPlans {
    const MOST: usize = 4_096;

    fn get(&self, id: &PlanId) -> Option<Plan> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn insert(&self, plan: Plan) {
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        if known.len() < Self::MOST {
            known.insert(plan.id.clone(), plan);
        }
    }
}

impl Tijori {
    /// A tijori with the default background pacing, no mailer (mail stays in the
    /// outbox), and a fresh instance id for the idempotency keys it holds.
    pub fn new(
        store: Arc<dyn Store>,
        gateways: Gateways,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        let hasher = Arc::new(Hasher::new(settings.hashes_waiting));
        Tijori {
            store,
            gateways,
            clock,
            settings,
            background: BackgroundSettings::default(),
            changes: crate::changes::ChangeFeed::new(),
            mailer: None,
            known_plans: Arc::default(),
            instance: InstanceId::generate(),
            hasher,
        }
    }

    /// This process, as the holder of the idempotency keys it is handling.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// Notes that this process is alive (every `HEARTBEAT_EVERY_SECS`): while it
    /// does, the keys it holds are its own until their lease ends; once it stops,
    /// other processes take them over within `HOLDER_GONE_AFTER_SECS`.
    pub async fn heartbeat(&self) -> Result<()> {
        Ok(self.store.heartbeat(&self.instance, self.now()).await?)
    }

    /// Says this process is stopping: the keys it still holds are free at once.
    pub async fn retire(&self) -> Result<()> {
        Ok(self.store.retire_instance(&self.instance).await?)
    }

    /// Delivers outbox mail through `mailer`; without one, mail is kept for the
    /// operator.
    pub fn with_mailer(mut self, mailer: Arc<dyn crate::mail::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Watches one payment's status changes, as they happen. (The watcher is woken;
    /// it reads the payment itself.)
    pub fn watch_payment(&self, payment: &PaymentId) -> crate::changes::ChangeWatcher {
        self.changes.watch(payment)
    }

    /// Announces a change (made here, or reported by another process).
    pub fn announce_change(&self, payment: &PaymentId) {
        self.changes.announce(payment);
    }

    /// Replaces the default pacing of background work.
    pub fn with_background(mut self, background: BackgroundSettings) -> Self {
        self.background = background;
        self
    }

    /// The store underneath, for what no use-case covers (the health check pings it); a
    /// payment's outcome still goes through [`Tijori::settle`].
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The time on the injected clock: use it, not `Utc::now()`, so tests can move
    /// time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The gateways configured here; a kind not among them is refused as unsupported.
    pub fn gateways(&self) -> &Gateways {
        &self.gateways
    }

    // Accounts -------------------------------------------------------------------

    /// Creates an account, admins included (the CLI's `user create`); customers sign up
    /// through [`Tijori::register`]. A username or e-mail already registered is a
    /// `username_taken` conflict.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User> {
        let username = Username::parse(username)?;
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let password_hash = self.hasher.run(move || password.hash()).await?;
        let user = self
            .store
            .create_user(
                NewUser {
                    username,
                    email,
                    password_hash,
                    is_admin,
                },
                self.now(),
            )
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => Error::Conflict {
                    code: "username_taken",
                    message: "that username or e-mail is already registered".into(),
                },
                other => other.into(),
            })?;
        info!(user = %user.id, username = user.username.as_str(), "user created");
        Ok(user)
    }

    /// A customer signing up: `create_user` with the zone they chose for their
    /// dates, checked before anything is stored so a bad zone creates no account.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        time_zone: Option<&str>,
    ) -> Result<User> {
        let zone = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
            Some(z) => Some(
                crate::mail::offset_of(z)
                    .ok_or_else(|| {
                        invalid(
                            "time_zone",
                            format!("must be one of {}", crate::mail::TIME_ZONES.join(", ")),
                        )
                    })?
                    .0,
            ),
            None => None,
        };
        let mut user = self.create_user(username, email, password, false).await?;
        if let Some(zone) = zone {
            self.store.set_time_zone(&user.id, zone).await?;
            user.time_zone = Some(zone.to_owned());
        }
        Ok(user)
    }

    /// Checks a username and password. A wrong username and a wrong password are the
    /// same answer, and take about as long, so neither leaks which accounts exist.
    pub async fn check_credentials(&self, username: &str, password: &str) -> Result<User> {
        let password = Password::parse(password).map_err(|_| Error::BadCredentials)?;
        let found = match Username::parse(username) {
            Ok(u) => self.store.user_credentials(&u).await?,
            Err(_) => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, dummy_hash().clone()),
        };
        let ok = self.hasher.run(move || password.verify(&hash)).await?;
        match user {
            Some(user) if ok => Ok(user),
            _ => Err(Error::BadCredentials),
        }
    }

    /// A new API token for the user, valid [`API_TOKEN_LIFETIME_DAYS`]. Only its hash
    /// is stored: this is the one time its secret is seen.
    pub async fn issue_api_token(&self, user: &UserId) -> Result<SecretToken> {
        let token = SecretToken::generate();
        let now = self.now();
        let expires = now + Duration::days(API_TOKEN_LIFETIME_DAYS);
        self.store
            .create_api_token(user, &token.hash(), expires, now)
            .await?;
        Ok(token)
    }

    /// The user a presented bearer token signs in; `None` for an unknown or expired
    /// one.
    pub async fn user_by_api_token(&self, presented: &str) -> Result<Option<User>> {
        Ok(self
            .store
            .user_by_api_token(&SecretToken::from_presented(presented).hash(), self.now())
            .await?)
    }

    /// Revokes an API token (signing an API client out).
    pub async fn revoke_api_token(&self, presented: &str) -> Result<()> {
        Ok(self
            .store
            .delete_api_token(&SecretToken::from_presented(presented).hash())
            .await?)
    }

    /// Opens a browser session: the cookie's secret and the session's CSRF token.
    pub async fn start_session(&self, user: &UserId) -> Result<(SecretToken, String)> {
        let token = SecretToken::generate();
        let csrf = SecretToken::generate().expose().to_owned();
        let now = self.now();
        let expires = now + Duration::days(SESSION_LIFETIME_DAYS);
        self.store
            .create_session(user, &token.hash(), &csrf, expires, now)
            .await?;
        Ok((token, csrf))
    }

    /// The live session a presented cookie secret opens; `None` for an unknown or
    /// expired one.
    pub async fn session(&self, presented: &str) -> Result<Option<Session>> {
        Ok(self
            .store
            .session(&SecretToken::from_presented(presented).hash(), self.now())
            .await?)
    }

    /// Signs a browser session out; an unknown secret is no error.
    pub async fn end_session(&self, presented: &str) -> Result<()> {
        Ok(self
            .store
            .delete_session(&SecretToken::from_presented(presented).hash())
            .await?)
    }

    // Idempotency keys -----------------------------------------------------------

    /// Claims `key` for this process (see `Store::claim_idempotency_key`).
    pub async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Claim> {
        let now = self.now();
        let claimant = Claimant::new(self.instance.clone(), now);
        Ok(self
            .store
            .claim_idempotency_key(user, key, fingerprint, &claimant, now)
            .await?)
    }

    /// The attempt a claimed key stands for, for the use-case the request runs.
    pub fn attempt(&self, user: &UserId, key: &IdempotencyKey, claim: &Claim) -> Option<Attempt> {
        let left = match claim {
            Claim::New => Default::default(),
            Claim::TakenOver(left) => left.clone(),
            _ => return None,
        };
        Some(Attempt {
            user: user.clone(),
            key: key.clone(),
            holder: self.instance.clone(),
            left,
        })
    }

    /// Keeps the response to replay for the key's repeats, if this process still holds
    /// the key (a successor's answer is never overwritten).
    pub async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> Result<()> {
        Ok(self
            .store
            .complete_idempotency_key(user, key, &self.instance, response)
            .await?)
    }

    /// Forgets a claim whose request did not complete, so a retry runs again (if this
    /// process still holds the key).
    pub async fn release_idempotency_key(&self, user: &UserId, key: &IdempotencyKey) -> Result<()> {
        Ok(self
            .store
            .release_idempotency_key(user, key, &self.instance)
            .await?)
    }

    /// What a previous holder of the request's key left of a checkout: the payment,
    /// if its checkout opened (handed back rather than opening a second one for the
    /// same key). One whose checkout never opened (the process died before or during
    /// the gateway call) is closed now, so it blocks nothing; the gateway may hold a
    /// checkout for it that nobody was ever sent to.
    async fn left_checkout(&self, attempt: Option<&Attempt>) -> Result<Option<Payment>> {
        let Some(id) = attempt.and_then(|a| a.left.payment.as_ref()) else {
            return Ok(None);
        };
        let Some(payment) = self.store.payment(id).await? else {
            return Ok(None);
        };
        if payment.provider_ref.is_some() && payment.payment_url.is_some() {
            info!(payment = %payment.id, "idempotent retry: reusing the checkout its first attempt opened");
            return Ok(Some(payment));
        }
        if payment.status == PaymentStatus::Initiated {
            warn!(payment = %payment.id, "idempotent retry: closing the payment its first attempt left unopened");
            match self
                .store
                .fail_initiation(
                    &payment.id,
                    "the request opening its checkout stopped before the gateway answered",
                    None,
                    self.now(),
                )
                .await
            {
                Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
                    self.announce_change(&payment.id)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    // Operator's view ---------------------------------------------------------------

    /// The operator's list, newest first, at most 200: the unresolved events, or all
    /// with `include_resolved`. The caller checks that the user is an admin.
    pub async fn operator_events(&self, include_resolved: bool) -> Result<Vec<OperatorEvent>> {
        Ok(self.store.operator_events(include_resolved, 200).await?)
    }

    /// Marks an operator event handled (a second resolve keeps the first time);
    /// `NotFound` for an unknown id. The caller checks that the user is an admin.
    pub async fn resolve_operator_event(&self, id: i64) -> Result<()> {
        Ok(self.store.resolve_operator_event(id, self.now()).await?)
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

    async fn active_plan(&self, plan_id: &str) -> Result<Plan> {
        match PlanId::parse(plan_id) {
            Some(id) => self.plan(&id).await?,
            None => None,
        }
        .filter(|p| p.active)
        .ok_or(Error::NotFound("plan"))
    }

    /// A plan by id. Plans never change once created (there is no way to edit or
    /// withdraw one), so each is read from the store once per process.
    async fn plan(&self, id: &PlanId) -> Result<Option<Plan>> {
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

    async fn plan_of(&self, sub: &Subscription) -> Result<Plan> {
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
    async fn preview_with(
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
    fn gateway_for(&self, gateway: GatewayKind, currency: Currency) -> Result<Arc<dyn Gateway>> {
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
    async fn open_checkout(
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
        let payment = Payment {
            id: PaymentId::generate(),
            user_id: user.id.clone(),
            gateway,
            purpose,
            amount,
            status: PaymentStatus::Initiated,
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
            return_url: format!("{}/payment-success/", self.settings.public_url),
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
                self.store
                    .fail_initiation(&payment.id, &e.to_string(), e.raw(), self.now())
                    .await?;
                self.announce_change(&payment.id);
                Err(e.into())
            }
        }
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
            self.check_at_gateway(payment).await?.payment
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
            self.check_at_gateway(payment).await?.payment
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
    /// keeps any answer the gateway did give for audit.
    pub async fn check_at_gateway(&self, payment: Payment) -> Result<Settled> {
        self.check_at_gateway_with(payment, Patience::Interactive)
            .await
    }

    /// `check_at_gateway` for background work, where nobody waits on the answer: a
    /// lookup that timed out is tried again too (see [`Patience`]).
    pub async fn check_at_gateway_patiently(&self, payment: Payment) -> Result<Settled> {
        self.check_at_gateway_with(payment, Patience::Background)
            .await
    }

    async fn check_at_gateway_with(&self, payment: Payment, patience: Patience) -> Result<Settled> {
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
        let answer = match provider_ref.strip_prefix(WIDGET_REF_PREFIX) {
            // Not retried: a capture that reached Khalti but whose answer was lost
            // must not be sent again blindly; the next check asks again.
            Some(token) => gw.capture_token(token, payment.amount).await,
            None => lookup_with_retry(&*gw, &provider_ref, patience).await,
        };
        match answer {
            Ok(answer) => self.settle(&payment, answer).await,
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

    /// The one way a payment's outcome is applied, whichever path learned it.
    pub async fn settle(&self, payment: &Payment, answer: GatewayAnswer) -> Result<Settled> {
        self.settle_as(payment, answer, AnswerKind::Lookup).await
    }

    /// `settle`, with the answer recorded as what it is (a lookup, a refund).
    pub async fn settle_as(
        &self,
        payment: &Payment,
        answer: GatewayAnswer,
        kind: AnswerKind,
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
        let settled = self
            .store
            .settle(Settlement {
                payment: payment.id.clone(),
                transition,
                provider_txn_id: answer.transaction_id.clone(),
                kind,
                raw: answer.raw.clone(),
                now: self.now(),
            })
            .await?;
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
    patience: Patience,
) -> std::result::Result<GatewayAnswer, crate::gateway::GatewayError> {
    use crate::gateway::GatewayError as E;
    const ATTEMPTS: u32 = 3;
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        let result = gw.lookup(provider_ref).await;
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

/// Runs password hashing off the async threads, at most one hash per core at a time:
/// each takes 19 MiB and tens of milliseconds, and sign-in is open to anyone. A flood
/// must neither spawn a thread (and its memory) per attempt nor build a queue whose
/// wait grows without end: a few hashes' worth wait their turn, and beyond that an
/// attempt is refused at once (503, try again in a second).
pub(crate) struct Hasher {
    permits: Arc<tokio::sync::Semaphore>,
    /// Hashes running or waiting for a permit.
    admitted: std::sync::atomic::AtomicUsize,
    most_admitted: usize,
}

impl Hasher {
    /// How many hashes may wait per core by default: about a second of work.
    pub const WAITING_PER_CORE: usize = 8;

    /// At most `waiting` hashes wait (by default [`Self::WAITING_PER_CORE`] a core).
    fn new(waiting: Option<usize>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            admitted: std::sync::atomic::AtomicUsize::new(0),
            most_admitted: cores + waiting.unwrap_or(cores * Self::WAITING_PER_CORE),
        }
    }

    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        use std::sync::atomic::Ordering;
        /// Gives the place back however the hash ends (finished, failed, cancelled).
        struct Admitted(Arc<Hasher>);
        impl Drop for Admitted {
            fn drop(&mut self) {
                self.0.admitted.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.most_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            warn!("password hashing is saturated: refusing a sign-in or sign-up (503)");
            return Err(Error::Overloaded {
                message: "too many sign-ins at once; try again in a moment",
                retry_after_secs: 1,
            });
        }
        let place = Admitted(Arc::clone(self));
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("hashing semaphore closed: {e}")))?;
        // The place and the permit go with the hash itself: a client that hangs up
        // cancels this future, not the hash, which keeps its core until it ends.
        tokio::task::spawn_blocking(move || {
            let _held = (place, permit);
            f()
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("blocking task failed: {e}")))
    }
}

/// A real hash to verify against when the username is unknown, so that case costs
/// the same time as a wrong password.
fn dummy_hash() -> &'static crate::account::PasswordHashString {
    static HASH: std::sync::OnceLock<crate::account::PasswordHashString> =
        std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        Password::parse("not-a-real-password")
            .expect("valid")
            .hash()
    })
}
