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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub duration_days: u32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl Plan {
    pub fn duration(&self) -> Duration {
        Duration::days(i64::from(self.duration_days))
    }
}

/// What `tijori plan create` and the demo seed hand to the store.
#[derive(Clone, Debug)]
pub struct NewPlan {
    pub name: String,
    pub description: String,
    pub price: Money,
    pub duration_days: u32,
}

/// A stretch of one plan: the plan running now, one queued after it, or the whole
/// run of paid time (see `Projection`). The fulfilments (`PaidPeriod`) are the truth;
/// this is what they add up to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub user_id: UserId,
    pub plan_id: PlanId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
}

impl Subscription {
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
