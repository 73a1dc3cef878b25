//! Plans and the rules for granting, extending and revoking a subscription.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::id::{PlanId, UserId};
use crate::money::Money;

mod periods;
mod segments;
pub use periods::{
    change_mode, grant, lay_out, preview, project, take_back, ChangeMode, ChangePreview,
    PaidPeriod, PlanChange, Projection, Purchase, Refunded,
};
pub use segments::{append, holding, needed_at, preview_from, run, segments, Appended, Tail};

/// Something to subscribe to: one purchase pays `price` for `duration_days`. Plans are
/// never edited once created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What payments, paid periods and subscriptions name the plan by.
    pub id: PlanId,
    /// Shown to customers, and in the checkout's description at the gateway.
    pub name: String,
    /// Free text shown with the plan; may be empty.
    pub description: String,
    /// What one purchase costs; never zero (checked when the plan is created).
    pub price: Money,
    /// The length one purchase buys: 1 to `MAX_PLAN_DAYS` days.
    pub duration_days: u32,
    /// Only an active plan can be bought or offered (`plan_choices`); an inactive one
    /// still names the periods paid for it.
    pub active: bool,
    /// When the plan was created.
    pub created_at: DateTime<Utc>,
}

impl Plan {
    /// One purchase's length: `duration_days` days of exactly 86 400 seconds each.
    pub fn duration(&self) -> Duration {
        Duration::days(i64::from(self.duration_days))
    }
}

/// What `tijori plan create` and the demo seed hand to the store.
#[derive(Clone, Debug)]
pub struct NewPlan {
    /// `Tijori::create_plan` refuses a blank one.
    pub name: String,
    /// Free text; may be empty.
    pub description: String,
    /// Must be more than zero.
    pub price: Money,
    /// 1 to `MAX_PLAN_DAYS`.
    pub duration_days: u32,
}

/// A stretch of one plan: the plan running now, one queued after it, or the whole
/// run of paid time (see `Projection`). The fulfilments (`PaidPeriod`) are the truth;
/// this is what they add up to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// Whose paid time this is.
    pub user_id: UserId,
    /// The plan of the whole stretch: periods of one plan back to back make one stretch.
    pub plan_id: PlanId,
    /// When the stretch starts: where the layout put its first period.
    pub start_at: DateTime<Utc>,
    /// When it ends, exclusive: it is over at this instant. Never after `latest_end()`.
    pub end_at: DateTime<Utc>,
}

impl Subscription {
    /// Whether `now` falls inside it: from `start_at` up to, not including, `end_at`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.start_at <= now && now < self.end_at
    }
}

/// The furthest a subscription can run: the last moment a four-digit year can write
/// (dates are stored as RFC 3339 text). Only a customer stacking thousands of years
/// of renewals gets there.
pub fn latest_end() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).expect("9999-12-31T23:59:59Z is a valid time")
}
