//! The one rule for what a user's paid periods add up to.
//!
//! Every fulfilled subscription payment is a paid period (a row of `fulfilments`).
//! The periods are laid out one after the other, in the order they were bought, each
//! starting no earlier than the moment it was bought; the subscription is nothing but
//! a projection of that layout. Buying appends a period, a refund shortens its own
//! period, and the layout is recomputed, so:
//!
//! - a paid period is never replaced: its time is only ever moved later (queued) or,
//!   by a refund of its own payment, shortened by days not yet used;
//! - the order in which payments settle or are refunded does not matter, nor does a
//!   `now` that lags behind another settle's (two first purchases at once both count);
//! - what has been used (the layout before `now`) never changes.
//!
//! How a refund takes days back: a full refund takes all the unused days of its own
//! period. A partial refund of a fraction `f` of the price takes
//! `min(unused days of its period, f × the period's bought length)`, rounded down to
//! the second (the customer keeps the fraction of a second). Several partial refunds
//! of one payment add up: each takes for the part of the price refunded since the
//! last one.
//!
//! Switching plan now: the unused time of every period still ahead becomes seconds of
//! the new plan, pro rata by the price per second each was bought at
//! (`unused × old_price × new_seconds / (old_seconds × new_price)`, rounded down to
//! the second), added to the new period, which starts now. The time moved stays
//! linked to the payment it came from: a refund of that payment takes it back from
//! the new period, as far as it is unused there (time moved in is used before the
//! new plan's own time). Periods in another currency cannot be priced against the new
//! plan: with such a period ahead, a switch is queued instead.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{latest_end, Plan, Subscription};
use crate::id::{PaymentId, PlanId, UserId};
use crate::money::Money;

/// What the customer asked for when buying a plan other than the one they have:
/// stored with the payment, so the settle applies what the customer was promised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanChange {
    /// The new plan starts when the paid time ends (nothing is lost).
    #[default]
    Queue,
    /// The new plan starts now; the unused value of the old one becomes its days.
    SwitchNow,
}

impl PlanChange {
    /// The name stored with the payment and accepted in requests; `parse` reads it back.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanChange::Queue => "queue",
            PlanChange::SwitchNow => "switch_now",
        }
    }

    /// Reads a stored or requested choice; `None` for anything else.
    pub fn parse(s: &str) -> Option<PlanChange> {
        match s {
            "queue" => Some(PlanChange::Queue),
            "switch_now" => Some(PlanChange::SwitchNow),
            _ => None,
        }
    }
}

/// What a purchase does to the user's paid time, told to the customer before paying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeMode {
    /// Nothing paid is ahead: the plan starts now.
    New,
    /// The same plan as the last paid period: it runs on from that period's end.
    Extend,
    /// Another plan: it starts when the paid time ends.
    Queue,
    /// Another plan, now: the unused time ahead becomes days of it.
    SwitchNow,
}

impl ChangeMode {
    /// The name the API's preview shows the customer (its `mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeMode::New => "new",
            ChangeMode::Extend => "extend",
            ChangeMode::Queue => "queue",
            ChangeMode::SwitchNow => "switch_now",
        }
    }
}

/// One fulfilled subscription payment: a row of `fulfilments` and the price paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaidPeriod {
    /// The payment that bought it: one period per payment, and that payment's refunds
    /// act on it.
    pub payment_id: PaymentId,
    /// The plan bought; its length was copied into `granted_seconds` then.
    pub plan_id: PlanId,
    /// What the payment paid: the value of its bought seconds.
    pub price: Money,
    /// When it was bought: it never starts earlier.
    pub granted_at: DateTime<Utc>,
    /// The plan's length, in seconds, that the payment bought.
    pub granted_seconds: i64,
    /// Seconds taken back by refunds of this payment.
    pub taken_seconds: i64,
    /// Seconds of this period moved into another by a switch of plan.
    pub moved_seconds: i64,
    /// The period its moved seconds went to, and its claim there: what they became
    /// (seconds of that period's plan), less any taken back by a refund of this
    /// payment. A claim follows the time on if that period is switched away too.
    pub credit_to: Option<PaymentId>,
    /// That claim, in seconds of `credit_to`'s plan.
    pub credit_seconds: i64,
    /// Seconds other periods' switches added to this one (less any taken back).
    pub credit_in: i64,
    /// How much of the price refunds have already taken days back for.
    pub refunded_minor: i64,
    /// Set by a full refund.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Where the layout puts it (stored, so readers and notices need no rule).
    pub start_at: DateTime<Utc>,
    /// `start_at` plus its length (bought and moved-in seconds, less those taken back or
    /// moved out), never after `latest_end()`.
    pub end_at: DateTime<Utc>,
}

impl PaidPeriod {
    /// A period just bought, before it is laid out.
    pub fn bought(
        payment_id: PaymentId,
        plan: &Plan,
        price: Money,
        now: DateTime<Utc>,
    ) -> PaidPeriod {
        PaidPeriod {
            payment_id,
            plan_id: plan.id.clone(),
            price,
            granted_at: now,
            granted_seconds: plan.duration().num_seconds(),
            taken_seconds: 0,
            moved_seconds: 0,
            credit_to: None,
            credit_seconds: 0,
            credit_in: 0,
            refunded_minor: 0,
            revoked_at: None,
            start_at: now,
            end_at: now,
        }
    }

    /// Its own bought seconds not taken back or moved out.
    fn own_room(&self) -> i64 {
        (self.granted_seconds - self.taken_seconds - self.moved_seconds).max(0)
    }

    /// Seconds of it still ahead of `now`.
    pub fn unused(&self, now: DateTime<Utc>) -> i64 {
        (self.end_at - now.max(self.start_at)).num_seconds().max(0)
    }
}

/// Periods are kept in whole seconds: a change happens at the second it is made in
/// (rounded down), so a period refunded in full ends at once, not a fraction of a
/// second later.
pub(super) fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

pub(super) fn plus(at: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    // More seconds than a `Duration` holds (a switch between absurdly priced plans)
    // runs to the latest end like any other overflow, rather than panicking.
    Duration::try_seconds(seconds.max(0))
        .and_then(|d| at.checked_add_signed(d))
        .map_or(latest_end(), |end| end.min(latest_end()))
        .max(at)
}

/// Puts the periods one after the other in the order they were bought (their stored
/// order, which laying out keeps), each no earlier than it was bought.
pub fn lay_out(periods: &mut [PaidPeriod]) {
    periods.sort_by(|a, b| {
        (a.start_at, a.end_at, a.granted_at, &a.payment_id).cmp(&(
            b.start_at,
            b.end_at,
            b.granted_at,
            &b.payment_id,
        ))
    });
    let mut latest: Option<DateTime<Utc>> = None;
    for p in periods.iter_mut() {
        let length = p
            .granted_seconds
            .saturating_add(p.credit_in)
            .saturating_sub(p.taken_seconds)
            .saturating_sub(p.moved_seconds);
        let start = latest.map_or(p.granted_at, |l| l.max(p.granted_at));
        p.start_at = start;
        p.end_at = plus(start, length);
        latest = Some(latest.map_or(p.end_at, |l| l.max(p.end_at)));
    }
}

/// What buying `plan` with `change` would do now.
pub fn change_mode(
    periods: &[PaidPeriod],
    plan: &Plan,
    change: PlanChange,
    now: DateTime<Utc>,
) -> ChangeMode {
    let ahead: Vec<&PaidPeriod> = periods.iter().filter(|p| p.unused(now) > 0).collect();
    let Some(last) = ahead.iter().max_by_key(|p| p.end_at) else {
        return ChangeMode::New;
    };
    let other_plan = ahead.iter().any(|p| p.plan_id != plan.id);
    let priceable = ahead
        .iter()
        .all(|p| p.price.currency() == plan.price.currency());
    if change == PlanChange::SwitchNow && other_plan && priceable {
        ChangeMode::SwitchNow
    } else if last.plan_id == plan.id {
        ChangeMode::Extend
    } else {
        ChangeMode::Queue
    }
}

/// What is left unused in `q` of each claim on it, by the index of the period that
/// holds the claim. Time moved in is used before `q`'s own, and claims in the order
/// their periods were laid out (`periods` must be laid out).
fn claims_left(periods: &[PaidPeriod], q: &PaidPeriod, now: DateTime<Utc>) -> Vec<(usize, i64)> {
    let claims: Vec<(usize, i64)> = periods
        .iter()
        .enumerate()
        .filter(|(_, s)| s.credit_to.as_ref() == Some(&q.payment_id))
        .map(|(i, s)| (i, s.credit_seconds.max(0)))
        .collect();
    let total: i64 = claims.iter().map(|(_, c)| c).sum();
    let unused_credit = (q.unused(now) - q.own_room()).clamp(0, total);
    let mut used = total - unused_credit;
    claims
        .into_iter()
        .map(|(i, c)| {
            let spent = used.min(c);
            used -= spent;
            (i, c - spent)
        })
        .collect()
}

/// `seconds` of a period bought at `price` for `granted` seconds, in seconds of a plan
/// sold at `new_price` for `new_granted`: the same value, rounded down.
fn convert(seconds: i64, price: i64, granted: i64, new_price: i64, new_granted: i64) -> i64 {
    let per = i128::from(granted.max(1)) * i128::from(new_price.max(1));
    i128::from(seconds)
        .checked_mul(i128::from(price))
        .and_then(|v| v.checked_mul(i128::from(new_granted)))
        .and_then(|value| i64::try_from(value / per).ok())
        .unwrap_or(i64::MAX / 4)
}

/// A purchase to add to the user's periods.
#[derive(Clone, Debug)]
pub struct Purchase<'a> {
    /// The payment paying for it; the new period carries its id, so its refunds find it.
    pub payment_id: PaymentId,
    /// What was bought: the new period gets its length.
    pub plan: &'a Plan,
    /// What was paid (the value the bought seconds are priced at).
    pub price: Money,
    /// What the customer chose; `grant` may extend or queue instead (see `change_mode`).
    pub change: PlanChange,
}

/// Adds the purchase to `periods` (laying them all out again) and says what it did.
/// The new period is the one with `purchase.payment_id`.
pub fn grant(periods: &mut Vec<PaidPeriod>, purchase: &Purchase, now: DateTime<Utc>) -> ChangeMode {
    let now = whole_second(now);
    lay_out(periods);
    let mode = change_mode(periods, purchase.plan, purchase.change, now);
    let mut new = PaidPeriod::bought(
        purchase.payment_id.clone(),
        purchase.plan,
        purchase.price,
        now,
    );
    if mode == ChangeMode::SwitchNow {
        // Every period ahead ends now; what is left of it becomes claims on the new
        // period: its own unused seconds for itself, and what is left of the claims
        // others had on it for them (a claim follows the time it stands for).
        let (new_price, new_seconds) = (purchase.price.minor(), new.granted_seconds);
        let mut claims: Vec<(usize, i64)> = Vec::new();
        let mut moved: Vec<(usize, i64)> = Vec::new();
        for (i, p) in periods.iter().enumerate() {
            let unused = p.unused(now);
            if unused == 0 {
                continue;
            }
            let convert = |secs| {
                convert(
                    secs,
                    p.price.minor(),
                    p.granted_seconds,
                    new_price,
                    new_seconds,
                )
            };
            let mut theirs = 0;
            for (s, left) in claims_left(periods, p, now) {
                theirs += left;
                claims.push((s, convert(left)));
            }
            claims.push((i, convert(unused - theirs)));
            moved.push((i, unused));
        }
        for (i, unused) in moved {
            periods[i].moved_seconds += unused;
        }
        for (i, credit) in claims {
            let p = &mut periods[i];
            p.credit_to = Some(new.payment_id.clone());
            p.credit_seconds = credit;
            new.credit_in = new.credit_in.saturating_add(credit);
        }
        new.start_at = now;
    } else {
        let end = periods.iter().map(|p| p.end_at).max();
        new.start_at = end.map_or(now, |e| e.max(now));
    }
    new.end_at = new.start_at;
    periods.push(new);
    lay_out(periods);
    mode
}

/// How much of a payment has been refunded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refunded {
    /// All of it: every unused day of its period goes.
    Everything,
    /// This much in all so far, in the payment's minor units.
    Amount(i64),
}

/// Takes back the days refunds of `payment` paid for, if it bought a period; `false`
/// when there is nothing (more) to take. Only unused days are taken.
pub fn take_back(
    periods: &mut [PaidPeriod],
    payment: &PaymentId,
    refunded: Refunded,
    now: DateTime<Utc>,
) -> bool {
    let now = whole_second(now);
    lay_out(periods);
    let Some(i) = periods.iter().position(|p| &p.payment_id == payment) else {
        return false;
    };
    let p = &periods[i];
    if p.revoked_at.is_some() {
        return false;
    }
    let price = p.price.minor().max(1);
    let (want, refunded_minor) = match refunded {
        Refunded::Everything => (i64::MAX, price),
        Refunded::Amount(total) => {
            let total = total.clamp(0, price);
            let newly = total - p.refunded_minor;
            if newly <= 0 {
                return false;
            }
            let want = i128::from(newly) * i128::from(p.granted_seconds) / i128::from(price);
            (i64::try_from(want).unwrap_or(i64::MAX), total)
        }
    };
    // Its own bought seconds first (time moved in from another plan is used first,
    // so what is unused of a period is its own as far as its own goes).
    let own = want.min(p.unused(now)).min(p.own_room());
    // Then what a switch moved into another period, as far as its claim there is
    // unused: `x` of its own seconds stood for `y` of that period's.
    let mut moved = (0, 0, None);
    if let (Some(to), true) = (&p.credit_to, want > own) {
        if let Some(q) = periods.iter().position(|q| &q.payment_id == to) {
            let left = claims_left(periods, &periods[q], now)
                .into_iter()
                .find(|(s, _)| *s == i)
                .map_or(0, |(_, left)| left);
            let (c, m) = (i128::from(p.credit_seconds), i128::from(p.moved_seconds));
            if c > 0 && m > 0 {
                let mut x = i128::from(want - own).min(m);
                let mut y = x * c / m;
                if y > i128::from(left) {
                    y = i128::from(left);
                    x = ((y * m + c - 1) / c).min(m);
                }
                moved = (
                    i64::try_from(x).unwrap_or(0),
                    i64::try_from(y).unwrap_or(0),
                    Some(q),
                );
            }
        }
    }
    if let Some(q) = moved.2 {
        periods[q].credit_in -= moved.1;
    }
    let p = &mut periods[i];
    p.taken_seconds += own + moved.0;
    p.moved_seconds -= moved.0;
    p.credit_seconds -= moved.1;
    p.refunded_minor = refunded_minor;
    if refunded == Refunded::Everything {
        p.revoked_at = Some(now);
    }
    lay_out(periods);
    true
}

/// The user's subscription as the periods make it: the plan running now (or the last
/// one that ran), what is queued after it, and the whole run of paid time that ends
/// last (what the `subscriptions` row keeps, for notices: its end is when the paid
/// time runs out, its plan the one that runs out then).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    /// The stretch running at `now`, else the last that ran, else the first to come;
    /// `None` when there are no periods.
    pub current: Option<Subscription>,
    /// The stretches after `current`, in order.
    pub queued: Vec<Subscription>,
    /// The run of paid time that ends last (its end is when the paid time runs out);
    /// `None` when there are no periods.
    pub run: Option<Subscription>,
}

/// See `Projection`. A stretch of one plan paid by several periods is one entry.
pub fn project(user: &UserId, periods: &[PaidPeriod], now: DateTime<Utc>) -> Projection {
    let mut periods = periods.to_vec();
    lay_out(&mut periods);
    let segments = super::segments::segments(user, &periods);
    let (current, queued) = super::segments::holding(&segments, now).unzip();
    Projection {
        current,
        queued: queued.unwrap_or_default(),
        run: super::segments::run(&segments),
    }
}

/// What a purchase would do if it were paid now: its mode and the period it would
/// get. The settle recomputes it from the stored choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ChangePreview {
    /// How it would join the paid time; `SwitchNow` only if the switch can be priced
    /// (see `change_mode`).
    pub mode: ChangeMode,
    /// When the bought period would start: now for a new plan or a switch, else when the
    /// paid time ends.
    pub starts_at: DateTime<Utc>,
    /// When it would end: the plan's length on from `starts_at`, plus for a switch the
    /// unused time converted into it.
    pub ends_at: DateTime<Utc>,
}

/// See `ChangePreview`.
pub fn preview(
    periods: &[PaidPeriod],
    plan: &Plan,
    change: PlanChange,
    now: DateTime<Utc>,
) -> ChangePreview {
    let mut periods = periods.to_vec();
    let id = PaymentId::from_trusted("pay_preview".into());
    let mode = grant(
        &mut periods,
        &Purchase {
            payment_id: id.clone(),
            plan,
            price: plan.price,
            change,
        },
        now,
    );
    let new = periods
        .iter()
        .find(|p| p.payment_id == id)
        .expect("grant adds the period");
    ChangePreview {
        mode,
        starts_at: new.start_at,
        ends_at: new.end_at,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::money::Currency;
    use proptest::prelude::*;

    pub(in crate::subscription) const DAY: i64 = 86_400;

    pub(in crate::subscription) fn t(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
    }

    fn plan(days: u32, price_minor: i64) -> Plan {
        Plan {
            id: PlanId::generate(),
            name: format!("{days} days"),
            description: String::new(),
            price: Money::from_minor(price_minor, Currency::Npr).unwrap(),
            duration_days: days,
            active: true,
            created_at: t(0),
        }
    }

    fn buy(
        periods: &mut Vec<PaidPeriod>,
        plan: &Plan,
        change: PlanChange,
        now: DateTime<Utc>,
    ) -> (PaymentId, ChangeMode) {
        let id = PaymentId::generate();
        let mode = grant(
            periods,
            &Purchase {
                payment_id: id.clone(),
                plan,
                price: plan.price,
                change,
            },
            now,
        );
        (id, mode)
    }

    fn period<'a>(periods: &'a [PaidPeriod], id: &PaymentId) -> &'a PaidPeriod {
        periods.iter().find(|p| &p.payment_id == id).unwrap()
    }

    fn paid_until(periods: &[PaidPeriod], user: &UserId) -> DateTime<Utc> {
        project(user, periods, t(0)).run.unwrap().end_at
    }

    #[test]
    fn renewals_extend_from_the_end_and_stop_at_the_year_9999() {
        let user = UserId::generate();
        let basic = plan(30, 50_000);
        let mut periods = Vec::new();
        assert_eq!(
            buy(&mut periods, &basic, PlanChange::Queue, t(0)).1,
            ChangeMode::New
        );
        assert_eq!(
            buy(&mut periods, &basic, PlanChange::Queue, t(10)).1,
            ChangeMode::Extend
        );
        let p = project(&user, &periods, t(10));
        let cur = p.current.unwrap();
        assert_eq!((cur.start_at, cur.end_at), (t(0), t(60)));
        assert!(p.queued.is_empty());

        let long = plan(36_500, 50_000);
        for _ in 0..100 {
            buy(&mut periods, &long, PlanChange::Queue, t(10));
        }
        assert_eq!(paid_until(&periods, &user), latest_end());
    }

    #[test]
    fn two_first_purchases_both_count_whatever_now_each_holds() {
        // The settle that waited for the lock holds the earlier `now` (item 0).
        let user = UserId::generate();
        let basic = plan(30, 50_000);
        let mut periods = Vec::new();
        let later = t(0) + Duration::seconds(1);
        buy(&mut periods, &basic, PlanChange::Queue, later);
        assert_eq!(
            buy(&mut periods, &basic, PlanChange::Queue, t(0)).1,
            ChangeMode::Extend
        );
        let run = project(&user, &periods, later).run.unwrap();
        assert_eq!(
            (run.start_at, run.end_at),
            (later, later + Duration::days(60))
        );
    }

    #[test]
    fn refunding_the_older_renewal_first_then_the_newer_ends_now() {
        let user = UserId::generate();
        let basic = plan(30, 50_000);
        let mut periods = Vec::new();
        let (first, _) = buy(&mut periods, &basic, PlanChange::Queue, t(0));
        let (second, _) = buy(&mut periods, &basic, PlanChange::Queue, t(0));
        assert!(take_back(&mut periods, &first, Refunded::Everything, t(5)));
        assert_eq!(
            paid_until(&periods, &user),
            t(35),
            "5 used + the second's 30"
        );
        assert!(take_back(&mut periods, &second, Refunded::Everything, t(5)));
        assert_eq!(paid_until(&periods, &user), t(5));
        assert!(!take_back(
            &mut periods,
            &second,
            Refunded::Everything,
            t(6)
        ));
    }

    #[test]
    fn a_partial_refund_takes_its_share_of_the_period_and_adds_up() {
        let user = UserId::generate();
        let basic = plan(30, 50_000);
        let mut periods = Vec::new();
        let (id, _) = buy(&mut periods, &basic, PlanChange::Queue, t(0));
        // A fifth of the price: a fifth of 30 days.
        assert!(take_back(&mut periods, &id, Refunded::Amount(10_000), t(1)));
        assert_eq!(paid_until(&periods, &user), t(24));
        // The same total again takes nothing more; another fifth takes 6 more days.
        assert!(!take_back(
            &mut periods,
            &id,
            Refunded::Amount(10_000),
            t(2)
        ));
        assert!(take_back(&mut periods, &id, Refunded::Amount(20_000), t(2)));
        assert_eq!(paid_until(&periods, &user), t(18));
        // Late in the period only the unused days can go.
        assert!(take_back(
            &mut periods,
            &id,
            Refunded::Amount(45_000),
            t(16)
        ));
        assert_eq!(paid_until(&periods, &user), t(16));
    }

    #[test]
    fn switching_between_absurdly_priced_plans_runs_to_the_latest_end_without_panicking() {
        // A day for a fortune, then 100 years for one paisa, switched now: the unused
        // value is worth more seconds than time can hold.
        let user = UserId::generate();
        let dear = plan(1, 10_000_000_000_000);
        let cheap = plan(36_500, 1);
        let mut periods = Vec::new();
        buy(&mut periods, &dear, PlanChange::Queue, t(0));
        let preview = preview(&periods, &cheap, PlanChange::SwitchNow, t(0));
        assert_eq!(preview.ends_at, latest_end());
        buy(&mut periods, &cheap, PlanChange::SwitchNow, t(0));
        assert_eq!(paid_until(&periods, &user), latest_end());
        buy(&mut periods, &dear, PlanChange::SwitchNow, t(1));
        assert!(paid_until(&periods, &user) <= latest_end());
    }

    #[test]
    fn another_plan_is_queued_after_the_paid_time() {
        let user = UserId::generate();
        let basic = plan(30, 50_000);
        let yearly = plan(365, 400_000);
        let mut periods = Vec::new();
        buy(&mut periods, &basic, PlanChange::Queue, t(0));
        let (y, mode) = buy(&mut periods, &yearly, PlanChange::Queue, t(10));
        assert_eq!(mode, ChangeMode::Queue);
        let p = project(&user, &periods, t(10));
        assert_eq!(p.current.as_ref().unwrap().plan_id, basic.id);
        assert_eq!(p.current.unwrap().end_at, t(30));
        assert_eq!(p.queued.len(), 1);
        assert_eq!(p.queued[0].plan_id, yearly.id);
        assert_eq!((p.queued[0].start_at, p.queued[0].end_at), (t(30), t(395)));
        // Once Basic ends, the yearly plan is current.
        let later = project(&user, &periods, t(31));
        assert_eq!(later.current.unwrap().plan_id, yearly.id);
        assert!(later.queued.is_empty());
        // Refunding the queued plan takes all of it; Basic runs on.
        assert!(take_back(&mut periods, &y, Refunded::Everything, t(11)));
        assert_eq!(paid_until(&periods, &user), t(30));
    }

    #[test]
    fn switching_now_turns_the_unused_value_into_days_of_the_new_plan() {
        let user = UserId::generate();
        let basic = plan(30, 50_000); // 500.00 for 30 days
        let premium = plan(30, 100_000); // twice the price per day
        let mut periods = Vec::new();
        let (b, _) = buy(&mut periods, &basic, PlanChange::Queue, t(0));
        let preview = preview(&periods, &premium, PlanChange::SwitchNow, t(10));
        assert_eq!(preview.mode, ChangeMode::SwitchNow);
        // 20 unused Basic days are worth 10 Premium days.
        assert_eq!((preview.starts_at, preview.ends_at), (t(10), t(50)));
        let (p, mode) = buy(&mut periods, &premium, PlanChange::SwitchNow, t(10));
        assert_eq!(mode, ChangeMode::SwitchNow);
        let proj = project(&user, &periods, t(10));
        let cur = proj.current.unwrap();
        assert_eq!(
            (cur.plan_id.clone(), cur.start_at, cur.end_at),
            (premium.id.clone(), t(10), t(50))
        );
        assert_eq!(period(&periods, &b).end_at, t(10), "Basic's used days stay");

        // Refunding Basic takes back the days it became, as far as unused.
        assert!(take_back(&mut periods, &b, Refunded::Everything, t(12)));
        // (two Premium days used: the moved days are used first; 8 are left)
        assert_eq!(paid_until(&periods, &user), t(42));
        // Refunding Premium takes its own 30 days, and no more.
        assert!(take_back(&mut periods, &p, Refunded::Everything, t(12)));
        assert_eq!(paid_until(&periods, &user), t(12));
    }

    #[test]
    fn switching_to_the_plan_one_has_extends_and_another_currency_queues() {
        let basic = plan(30, 50_000);
        let mut usd = plan(30, 1_000);
        usd.price = Money::from_minor(1_000, Currency::Usd).unwrap();
        let mut periods = Vec::new();
        buy(&mut periods, &basic, PlanChange::Queue, t(0));
        assert_eq!(
            preview(&periods, &basic, PlanChange::SwitchNow, t(1)).mode,
            ChangeMode::Extend
        );
        assert_eq!(
            preview(&periods, &usd, PlanChange::SwitchNow, t(1)).mode,
            ChangeMode::Queue
        );
        assert_eq!(
            preview(&periods, &usd, PlanChange::SwitchNow, t(31)).mode,
            ChangeMode::New
        );
    }

    // Property tests --------------------------------------------------------------

    #[derive(Clone, Debug)]
    pub(in crate::subscription) enum Op {
        Buy {
            plan: usize,
            switch: bool,
        },
        /// Refund the `which`-th payment (modulo how many there are): all of what is
        /// left, or `percent` of its price more.
        Refund {
            which: usize,
            percent: Option<u8>,
        },
        Step {
            seconds: i64,
        },
    }

    pub(in crate::subscription) fn ops(switches: bool) -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            3 => (0..3usize, any::<bool>()).prop_map(move |(plan, s)| Op::Buy { plan, switch: s && switches }),
            3 => (any::<usize>(), proptest::option::of(1..=100u8))
                .prop_map(|(which, percent)| Op::Refund { which, percent }),
            3 => (0..45 * DAY).prop_map(|seconds| Op::Step { seconds }),
        ];
        proptest::collection::vec(op, 1..25)
    }

    pub(in crate::subscription) fn plans() -> [Plan; 3] {
        [plan(30, 50_000), plan(30, 100_000), plan(90, 120_000)]
    }

    /// What the user had, plan by plan, up to `now`: laid out, never to change.
    fn history(
        periods: &[PaidPeriod],
        now: DateTime<Utc>,
    ) -> Vec<(PlanId, DateTime<Utc>, DateTime<Utc>)> {
        let mut periods = periods.to_vec();
        lay_out(&mut periods);
        let mut out: Vec<(PlanId, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for p in &periods {
            let end = p.end_at.min(now);
            if end <= p.start_at {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.0 == p.plan_id && last.2 == p.start_at => last.2 = end,
                _ => out.push((p.plan_id.clone(), p.start_at, end)),
            }
        }
        out
    }

    fn ahead(periods: &[PaidPeriod], now: DateTime<Utc>) -> i64 {
        periods.iter().map(|p| p.unused(now)).sum()
    }

    /// The paid time ahead has no holes, and the subscription ends exactly when it
    /// runs out: end = now + the unused paid seconds.
    fn check_layout(
        user: &UserId,
        periods: &[PaidPeriod],
        now: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let left = ahead(periods, now);
        let proj = project(user, periods, now);
        if left > 0 {
            let run = proj.run.clone().unwrap();
            prop_assert_eq!(run.end_at, now + Duration::seconds(left));
            prop_assert!(run.start_at <= now);
            let cur = proj.current.unwrap();
            prop_assert!(cur.is_active(now));
            let last = proj.queued.last().unwrap_or(&cur);
            prop_assert_eq!(last.end_at, run.end_at);
        } else if let Some(run) = proj.run {
            prop_assert!(run.end_at <= now);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Purchases (same plan, other plans queued), renewals, full and partial
        /// refunds in any order, and time passing, against a model that keeps only
        /// each payment's unused seconds: the rule gives every payment exactly what
        /// the model does, so the end is the start plus the unrefunded paid time.
        #[test]
        fn refunds_in_any_order_take_only_their_own_unused_days(ops in ops(false)) {
            let user = UserId::generate();
            let plans = plans();
            let mut now = t(0);
            let mut periods: Vec<PaidPeriod> = Vec::new();
            // The model: payments in the order bought, each with its unused seconds.
            let mut model: Vec<(PaymentId, usize, i64, i64, bool)> = Vec::new();
            for op in ops.iter().cloned().chain(
                // Then everything refunded, newest first: nothing may be left.
                (0..30).rev().map(|which| Op::Refund { which, percent: None }),
            ) {
                let (then, before) = (now, history(&periods, now));
                match op {
                    Op::Buy { plan, .. } => {
                        let (id, _) = buy(&mut periods, &plans[plan], PlanChange::Queue, now);
                        model.push((id, plan, plans[plan].duration().num_seconds(), 0, false));
                    }
                    Op::Refund { which, percent } => {
                        if model.is_empty() { continue; }
                        let which = which % model.len();
                        let (id, plan, left, refunded, revoked) = model[which].clone();
                        let price = plans[plan].price.minor();
                        let g = plans[plan].duration().num_seconds();
                        match percent {
                            None => {
                                let changed = take_back(&mut periods, &id, Refunded::Everything, now);
                                prop_assert_eq!(changed, !revoked);
                                model[which].2 = 0;
                                model[which].3 = price;
                                model[which].4 = true;
                            }
                            Some(pct) => {
                                let total = (refunded + price * i64::from(pct) / 100).min(price);
                                take_back(&mut periods, &id, Refunded::Amount(total), now);
                                if !revoked && total > refunded {
                                    let want = (total - refunded) * g / price;
                                    model[which].2 = left - want.min(left);
                                    model[which].3 = total;
                                }
                            }
                        }
                    }
                    Op::Step { seconds } => {
                        now += Duration::seconds(seconds);
                        let mut step = seconds;
                        for m in model.iter_mut() {
                            let used = step.min(m.2);
                            m.2 -= used;
                            step -= used;
                        }
                    }
                }
                prop_assert_eq!(&history(&periods, then), &before, "used time never changes");
                for (id, _, left, _, _) in &model {
                    prop_assert_eq!(period(&periods, id).unused(now), *left);
                }
                check_layout(&user, &periods, now)?;
            }
            prop_assert_eq!(ahead(&periods, now), 0);
        }

        /// With "switch now" as well: used time never changes, the paid time ahead has
        /// no holes, a switch keeps the value of the unused time (to the second), a
        /// purchase adds exactly its plan, a refund takes at most what its payment
        /// bought or moved, and once everything is refunded nothing is left.
        #[test]
        fn switching_plans_never_loses_paid_value(ops in ops(true)) {
            let user = UserId::generate();
            let plans = plans();
            let mut now = t(0);
            let mut periods: Vec<PaidPeriod> = Vec::new();
            let mut bought: Vec<PaymentId> = Vec::new();
            for op in ops.iter().cloned().chain(
                (0..30).map(|which| Op::Refund { which, percent: None }),
            ) {
                let (then, before) = (now, history(&periods, now));
                let left = ahead(&periods, now);
                match op {
                    Op::Buy { plan, switch } => {
                        let new = &plans[plan];
                        let g = new.duration().num_seconds();
                        let change = if switch { PlanChange::SwitchNow } else { PlanChange::Queue };
                        // What the unused time ahead is worth in seconds of the new plan.
                        let worth: i64 = periods.iter().map(|p| {
                            i64::try_from(i128::from(p.unused(now)) * i128::from(p.price.minor()) * i128::from(g)
                                / (i128::from(p.granted_seconds) * i128::from(new.price.minor()))).unwrap()
                        }).sum();
                        let (id, mode) = buy(&mut periods, new, change, now);
                        bought.push(id.clone());
                        let after = ahead(&periods, now);
                        if mode == ChangeMode::SwitchNow {
                            // Converted period by period, each rounded down.
                            prop_assert!(after <= g + worth && after >= g + worth - 2 * periods.len() as i64,
                                "{} of {}", after, g + worth);
                            prop_assert_eq!(period(&periods, &id).start_at, now);
                        } else {
                            prop_assert_eq!(after, left + g);
                        }
                    }
                    Op::Refund { which, percent } => {
                        if bought.is_empty() { continue; }
                        let id = bought[which % bought.len()].clone();
                        let p = period(&periods, &id).clone();
                        let others: std::collections::HashMap<PaymentId, i64> =
                            periods.iter().map(|q| (q.payment_id.clone(), q.unused(now))).collect();
                        let most = p.unused(now) + p.credit_seconds;
                        let refunded = match percent {
                            None => Refunded::Everything,
                            Some(pct) => Refunded::Amount(p.refunded_minor + p.price.minor() * i64::from(pct) / 100),
                        };
                        take_back(&mut periods, &id, refunded, now);
                        let after = ahead(&periods, now);
                        prop_assert!(after <= left, "a refund never adds time");
                        prop_assert!(left - after <= most, "took {} of at most {}", left - after, most);
                        for q in periods.iter().filter(|q| q.payment_id != id && Some(&q.payment_id) != p.credit_to.as_ref()) {
                            prop_assert_eq!(q.unused(now), others[&q.payment_id], "another payment's days stay");
                        }
                    }
                    Op::Step { seconds } => now += Duration::seconds(seconds),
                }
                prop_assert_eq!(&history(&periods, then), &before, "used time never changes");
                check_layout(&user, &periods, now)?;
            }
            prop_assert_eq!(ahead(&periods, now), 0, "everything refunded leaves nothing");
        }
    }
}
