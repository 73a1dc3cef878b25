//! Plans and the rules for granting, extending and revoking a subscription.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::id::{PlanId, UserId};
use crate::money::Money;

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

/// A user's current subscription: one row per user, extended or replaced by each
/// fulfilled payment. The payments' fulfilment records keep the history.
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

/// The period a fulfilled payment grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
}

/// Renewing the plan one already has, while it runs, extends it from its current end
/// so no paid day is lost; any other purchase (a different plan, or after the old one
/// ended) starts now.
pub fn grant(current: Option<&Subscription>, plan: &Plan, now: DateTime<Utc>) -> Grant {
    let (start_at, from) = match current {
        Some(sub) if sub.plan_id == plan.id && sub.is_active(now) => (sub.start_at, sub.end_at),
        _ => (now, now),
    };
    Grant {
        start_at,
        end_at: from
            .checked_add_signed(plan.duration())
            .map_or(latest_end(), |end| end.min(latest_end())),
    }
}

/// The furthest a subscription can run: the last moment a four-digit year can write
/// (dates are stored as RFC 3339 text). Only a customer stacking thousands of years
/// of renewals gets there.
pub fn latest_end() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).expect("9999-12-31T23:59:59Z is a valid time")
}

/// The new end of `sub` once the refunded `period` (what one fulfilled payment
/// granted) is taken back, or `None` when nothing of it is left to take.
///
/// Only the part of the period still ahead of `now` is taken: days already used are
/// not clawed back. A period that is not part of the current subscription (it lapsed,
/// or a purchase of another plan replaced it) takes nothing from it.
pub fn revoke(sub: &Subscription, period: Grant, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if period.start_at < sub.start_at || period.end_at > sub.end_at {
        return None;
    }
    let unused = period.end_at - now.max(period.start_at);
    (unused > Duration::zero()).then(|| sub.end_at - unused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn plan(id: &PlanId, days: u32) -> Plan {
        Plan {
            id: id.clone(),
            name: "Basic".into(),
            description: String::new(),
            price: Money::from_minor(50_000, Currency::Npr).unwrap(),
            duration_days: days,
            active: true,
            created_at: Utc::now(),
        }
    }

    fn t(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
    }

    #[test]
    fn renewals_stop_at_the_year_9999() {
        let p = plan(&PlanId::generate(), 36_500);
        let mut sub = Subscription {
            user_id: UserId::generate(),
            plan_id: p.id.clone(),
            start_at: t(0),
            end_at: t(1),
        };
        for _ in 0..100 {
            let g = grant(Some(&sub), &p, t(0));
            assert!(g.end_at <= latest_end() && g.end_at >= sub.end_at);
            sub.end_at = g.end_at;
        }
        assert_eq!(sub.end_at, latest_end());
        assert_eq!(latest_end().to_rfc3339(), "9999-12-31T23:59:59+00:00");
    }

    #[test]
    fn first_purchase_starts_now() {
        let p = plan(&PlanId::generate(), 30);
        assert_eq!(
            grant(None, &p, t(0)),
            Grant {
                start_at: t(0),
                end_at: t(30)
            }
        );
    }

    #[test]
    fn renewing_the_same_active_plan_extends_from_its_end() {
        let p = plan(&PlanId::generate(), 30);
        let sub = Subscription {
            user_id: UserId::generate(),
            plan_id: p.id.clone(),
            start_at: t(0),
            end_at: t(30),
        };
        assert_eq!(
            grant(Some(&sub), &p, t(20)),
            Grant {
                start_at: t(0),
                end_at: t(60)
            }
        );
    }

    #[test]
    fn a_different_plan_or_an_ended_one_starts_now() {
        let p = plan(&PlanId::generate(), 30);
        let other = plan(&PlanId::generate(), 90);
        let sub = Subscription {
            user_id: UserId::generate(),
            plan_id: p.id.clone(),
            start_at: t(0),
            end_at: t(30),
        };
        assert_eq!(
            grant(Some(&sub), &other, t(10)),
            Grant {
                start_at: t(10),
                end_at: t(100)
            }
        );
        assert_eq!(
            grant(Some(&sub), &p, t(31)),
            Grant {
                start_at: t(31),
                end_at: t(61)
            }
        );
    }

    #[test]
    fn a_refund_takes_back_only_the_unused_part_of_its_own_period() {
        // Two paid periods back to back: 0-30 and 30-60.
        let sub = Subscription {
            user_id: UserId::generate(),
            plan_id: PlanId::generate(),
            start_at: t(0),
            end_at: t(60),
        };
        let first = Grant {
            start_at: t(0),
            end_at: t(30),
        };
        let second = Grant {
            start_at: t(30),
            end_at: t(60),
        };
        // Refunding the second at day 5 takes all of it; the first at day 5 takes its
        // 25 unused days. Either way the customer keeps what the other paid for.
        assert_eq!(revoke(&sub, second, t(5)), Some(t(30)));
        assert_eq!(revoke(&sub, first, t(5)), Some(t(35)));
        // A period already used up takes nothing.
        assert_eq!(revoke(&sub, first, t(31)), None);
    }

    #[test]
    fn a_refund_of_a_lapsed_or_replaced_period_takes_nothing() {
        // The old period (0-30) lapsed; a new purchase runs 40-70.
        let sub = Subscription {
            user_id: UserId::generate(),
            plan_id: PlanId::generate(),
            start_at: t(40),
            end_at: t(70),
        };
        assert_eq!(
            revoke(
                &sub,
                Grant {
                    start_at: t(0),
                    end_at: t(30)
                },
                t(45)
            ),
            None
        );
    }
}
