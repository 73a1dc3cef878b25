//! What a user's paid periods add up to, kept so that reading a subscription and
//! making the usual purchase cost the same for a customer with five hundred periods
//! as for one with one.
//!
//! The periods (`periods.rs`) are the truth and their rule is the only rule; this
//! module adds nothing to it. It names the segments the periods make (a stretch of
//! one plan paid by one or several periods back to back), which the stores keep
//! beside the periods, and it places a purchase queued after everything from the last
//! segment alone: such a purchase changes no period already paid, only adds one at
//! the end. Anything else (switching plan now with paid time ahead, a refund) needs
//! the whole layout and goes through `grant` and `take_back`. The property test
//! below holds both ways to the same answers.

use chrono::{DateTime, Utc};

use super::periods::{
    plus, whole_second, ChangeMode, ChangePreview, PaidPeriod, PlanChange, Purchase,
};
use super::{Plan, Subscription};
use crate::id::UserId;

/// The segments of laid-out periods, in order. If every period was refunded before
/// any of it was used, the last period, ended, is the one segment: the customer
/// still sees what they had.
pub fn segments(user: &UserId, laid_out: &[PaidPeriod]) -> Vec<Subscription> {
    let segment = |p: &PaidPeriod| Subscription {
        user_id: user.clone(),
        plan_id: p.plan_id.clone(),
        start_at: p.start_at,
        end_at: p.end_at,
    };
    let mut segments: Vec<Subscription> = Vec::new();
    for p in laid_out.iter().filter(|p| p.end_at > p.start_at) {
        match segments.last_mut() {
            Some(s) if s.plan_id == p.plan_id && s.end_at == p.start_at => s.end_at = p.end_at,
            _ => segments.push(segment(p)),
        }
    }
    if segments.is_empty() {
        segments.extend(laid_out.last().map(segment));
    }
    segments
}

/// The plan running at `now` (or the last one that ran, or failing that the first
/// to come) and the segments queued after it. `segments` may be every segment or
/// only those a reader needs: the last one that ended by `now` and every one after
/// it (all of them if none ended).
pub fn holding(
    segments: &[Subscription],
    now: DateTime<Utc>,
) -> Option<(Subscription, Vec<Subscription>)> {
    let current = segments
        .iter()
        .position(|s| s.is_active(now))
        .or_else(|| segments.iter().rposition(|s| s.end_at <= now))
        .unwrap_or(0);
    let first = segments.get(current)?.clone();
    Some((first, segments[current + 1..].to_vec()))
}

/// The whole run of paid time that ends last: the last segment and every one before
/// it with no gap between (what the `subscriptions` row keeps, for notices).
pub fn run(segments: &[Subscription]) -> Option<Subscription> {
    let mut run = segments.last()?.clone();
    for s in segments.iter().rev().skip(1) {
        if s.end_at != run.start_at {
            break;
        }
        run.start_at = s.start_at;
    }
    Some(run)
}

/// What a purchase queued after everything needs to know of what the user holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    /// The last segment.
    pub last: Option<Subscription>,
    /// The run of paid time that ends last, as stored.
    pub run: Option<Subscription>,
    /// The latest time a period was bought or refunded at: a change never happens
    /// before it (see `time_of_change` in the stores).
    pub latest_change: Option<DateTime<Utc>>,
}

/// A purchase placed after everything the user holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// What the purchase did (told to the customer before paying, too).
    pub mode: ChangeMode,
    /// The new period, laid out.
    pub period: PaidPeriod,
    /// The last segment now: it follows the last kept segment, or replaces the kept
    /// segment that starts at `replaces` (the last one, which it extends, or an ended
    /// one standing for periods all refunded before use).
    pub segment: Subscription,
    /// The start of the kept segment `segment` replaces, if it replaces one.
    pub replaces: Option<DateTime<Utc>>,
    /// The run of paid time that ends last, now (the `subscriptions` row).
    pub run: Subscription,
}

/// Where a purchase of `plan` would go from the last segment alone, or `None` when
/// the whole layout is needed: switching plan now while paid time is ahead (other
/// periods' unused time moves into the new one).
fn place(
    last: Option<&Subscription>,
    plan: &Plan,
    change: PlanChange,
    now: DateTime<Utc>,
) -> Option<(ChangeMode, DateTime<Utc>, DateTime<Utc>)> {
    // An ended segment of periods all refunded before use holds no time.
    let last = last.filter(|s| s.end_at > s.start_at);
    let mode = match last.filter(|s| s.end_at > now) {
        None => ChangeMode::New,
        // Only the segment running now is ahead, and it is this plan: nothing to
        // switch from.
        Some(s) if s.plan_id == plan.id && (change == PlanChange::Queue || s.start_at <= now) => {
            ChangeMode::Extend
        }
        Some(_) if change == PlanChange::Queue => ChangeMode::Queue,
        Some(_) => return None,
    };
    let start = last.map_or(now, |s| s.end_at.max(now));
    Some((mode, start, plus(start, plan.duration().num_seconds())))
}

/// `grant`, for a purchase that goes after everything the user holds, from the
/// tail alone; `None` when it needs the whole layout (see `place`) or the tail does
/// not hang together (a stored run that does not end with the last segment), so
/// that the caller runs `grant`, which lays everything out again.
pub fn append(
    user: &UserId,
    tail: &Tail,
    purchase: &Purchase,
    now: DateTime<Utc>,
) -> Option<Appended> {
    let now = whole_second(tail.latest_change.map_or(now, |c| c.max(now)));
    let last = tail.last.as_ref();
    let (mode, start, end) = place(last, purchase.plan, purchase.change, now)?;
    let mut period = PaidPeriod::bought(
        purchase.payment_id.clone(),
        purchase.plan,
        purchase.price,
        now,
    );
    (period.start_at, period.end_at) = (start, end);
    let ended = last.filter(|s| s.end_at <= s.start_at).map(|s| s.start_at);
    let last = last.filter(|s| s.end_at > s.start_at);
    let (segment, replaces) = match last {
        Some(s) if s.plan_id == period.plan_id && s.end_at == start => (
            Subscription {
                end_at: end,
                ..s.clone()
            },
            Some(s.start_at),
        ),
        _ => (
            Subscription {
                user_id: user.clone(),
                plan_id: period.plan_id.clone(),
                start_at: start,
                end_at: end,
            },
            ended,
        ),
    };
    let run = match (last, &tail.run) {
        (Some(s), Some(r)) if r.end_at == s.end_at => Subscription {
            start_at: if s.end_at == start { r.start_at } else { start },
            ..segment.clone()
        },
        (Some(_), _) => return None,
        (None, _) => segment.clone(),
    };
    Some(Appended {
        mode,
        period,
        segment,
        replaces,
        run,
    })
}

/// `preview`, from the segments a reader loads (see `holding`); `None` when it needs
/// the whole layout.
pub fn preview_from(
    segments: &[Subscription],
    plan: &Plan,
    change: PlanChange,
    now: DateTime<Utc>,
) -> Option<ChangePreview> {
    let (mode, starts_at, ends_at) = place(segments.last(), plan, change, whole_second(now))?;
    Some(ChangePreview {
        mode,
        starts_at,
        ends_at,
    })
}

/// The segments a reader needs at `now` (see `holding`), as the stores select them.
pub fn needed_at(segments: &[Subscription], now: DateTime<Utc>) -> &[Subscription] {
    let from = segments.iter().rposition(|s| s.end_at <= now).unwrap_or(0);
    &segments[from..]
}

#[cfg(test)]
mod tests {
    use super::super::periods::tests::{ops, plans, t, Op, DAY};
    use super::super::periods::{grant, lay_out, preview, project, take_back, Refunded};
    use super::*;
    use crate::id::PaymentId;
    use chrono::Duration;
    use proptest::prelude::*;

    /// What a store keeps after the whole rule ran: the periods laid out, their
    /// segments, the run and the latest change.
    fn kept(user: &UserId, periods: &[PaidPeriod]) -> (Vec<Subscription>, Tail) {
        let mut laid = periods.to_vec();
        lay_out(&mut laid);
        let segments = segments(user, &laid);
        let latest_change = periods
            .iter()
            .flat_map(|p| [Some(p.granted_at), p.revoked_at])
            .flatten()
            .max();
        let tail = Tail {
            last: segments.last().cloned(),
            run: run(&segments),
            latest_change,
        };
        (segments, tail)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever the history (purchases queued or switched now, refunds full or
        /// partial, time passing): reading from the kept segments gives what the
        /// whole rule projects, and a purchase placed from the tail adds exactly the
        /// period, segments and run the whole rule would, changing no other period.
        #[test]
        fn the_tail_answers_as_the_whole_layout_does(
            ops in ops(true),
            probe in 0..3usize,
            switch in any::<bool>(),
            lag in prop_oneof![Just(0i64), 0..5 * DAY],
        ) {
            let user = UserId::generate();
            let plans = plans();
            let mut now = t(0) + Duration::milliseconds(250);
            let mut periods: Vec<PaidPeriod> = Vec::new();
            let mut bought: Vec<PaymentId> = Vec::new();
            for op in ops {
                let (segs, tail) = kept(&user, &periods);
                let whole = project(&user, &periods, now);
                prop_assert_eq!(run(&segs), whole.run.clone());
                let read = holding(needed_at(&segs, now), now);
                prop_assert_eq!(read.clone().map(|r| r.0), whole.current.clone());
                prop_assert_eq!(read.map(|r| r.1).unwrap_or_default(), whole.queued.clone());

                // A purchase of the probe plan, both ways.
                let plan = &plans[probe];
                let change = if switch { PlanChange::SwitchNow } else { PlanChange::Queue };
                let purchase = Purchase { payment_id: PaymentId::generate(), plan, price: plan.price, change };
                if let Some(p) = preview_from(needed_at(&segs, now), plan, change, now) {
                    prop_assert_eq!(p, preview(&periods, plan, change, now));
                }
                // A settle that waited for the user's lock may hold an earlier `now`.
                let waited = now - Duration::seconds(lag);
                if let Some(fast) = append(&user, &tail, &purchase, waited) {
                    let mut after = periods.clone();
                    let toc = tail.latest_change.map_or(waited, |c| c.max(waited));
                    let mode = grant(&mut after, &purchase, toc);
                    prop_assert_eq!(fast.mode, mode);
                    let new = after.iter().find(|p| p.payment_id == purchase.payment_id).unwrap();
                    prop_assert_eq!(&fast.period, new);
                    let mut laid = periods.clone();
                    lay_out(&mut laid);
                    for p in &laid {
                        let a = after.iter().find(|q| q.payment_id == p.payment_id).unwrap();
                        prop_assert_eq!(a, p, "a purchase at the end changes no other period");
                    }
                    let (want, want_tail) = kept(&user, &after);
                    let mut got: Vec<Subscription> = segs
                        .iter()
                        .filter(|s| Some(s.start_at) != fast.replaces)
                        .cloned()
                        .collect();
                    got.push(fast.segment.clone());
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(Some(fast.run), want_tail.run);
                } else {
                    prop_assert!(change == PlanChange::SwitchNow, "only a switch needs the whole layout");
                }

                match op {
                    Op::Buy { plan, switch } => {
                        let change = if switch { PlanChange::SwitchNow } else { PlanChange::Queue };
                        let id = PaymentId::generate();
                        let toc = tail.latest_change.map_or(now, |c| c.max(now));
                        grant(&mut periods, &Purchase { payment_id: id.clone(), plan: &plans[plan], price: plans[plan].price, change }, toc);
                        bought.push(id);
                    }
                    Op::Refund { which, percent } => {
                        if bought.is_empty() { continue; }
                        let id = bought[which % bought.len()].clone();
                        let p = periods.iter().find(|p| p.payment_id == id).unwrap().clone();
                        let refunded = match percent {
                            None => Refunded::Everything,
                            Some(pct) => Refunded::Amount(p.refunded_minor + p.price.minor() * i64::from(pct) / 100),
                        };
                        let toc = tail.latest_change.map_or(now, |c| c.max(now));
                        take_back(&mut periods, &id, refunded, toc);
                    }
                    Op::Step { seconds } => now += Duration::seconds(seconds) + Duration::milliseconds(7),
                }
            }
        }
    }
}
