//! What both backends do around `tijori_core::subscription`'s rule when they write a
//! user's paid periods: which time a change happens at, and which rows it changed.
//! The rule itself is the core's; nothing here decides days.

use chrono::{DateTime, Utc};

use tijori_core::id::UserId;
use tijori_core::store::{StoreError, StoreResult};
use tijori_core::subscription::{self, Appended, PaidPeriod, Subscription};

/// The time a grant or refund happens at, taken under the user's lock: never before
/// anything already written for the user. A settle takes its `now` before it waits
/// for the lock, so the one that waited may hold a time earlier than what the other
/// just committed; time must not run backwards for one user's periods.
pub(crate) fn time_of_change(periods: &[PaidPeriod], now: DateTime<Utc>) -> DateTime<Utc> {
    periods
        .iter()
        .flat_map(|p| [Some(p.granted_at), p.revoked_at])
        .flatten()
        .fold(now, DateTime::max)
}

/// The rows to write after the rule changed `before` into `after`.
pub(crate) struct Writes {
    /// Periods that were there and changed.
    pub(crate) changed: Vec<PaidPeriod>,
    /// The period a grant added.
    pub(crate) added: Option<PaidPeriod>,
    /// The `subscriptions` row: the latest run of paid time.
    pub(crate) run: Subscription,
    pub(crate) segments: Segments,
}

/// How the kept segments change.
pub(crate) enum Segments {
    /// These are every segment: they replace the kept ones.
    All(Vec<Subscription>),
    /// A purchase placed after everything: the last segment now follows the last
    /// kept one, or replaces the one that starts at `replaces`. Written row by row
    /// (a statement that may change several rows costs SQLite a statement journal,
    /// a temporary file, inside the writer's savepoints).
    Last {
        segment: Subscription,
        replaces: Option<DateTime<Utc>>,
    },
}

impl Writes {
    /// What a purchase placed after everything writes: its period, the last segment
    /// and the run; no other period changes.
    pub(crate) fn appended(a: Appended) -> Writes {
        Writes {
            changed: Vec::new(),
            added: Some(a.period),
            run: a.run,
            segments: Segments::Last {
                segment: a.segment,
                replaces: a.replaces,
            },
        }
    }
}

/// The rows to write after the whole rule (`grant`, `take_back`, or laying out
/// again) changed `before` into `after`, which it left laid out.
pub(crate) fn changes(
    user: &UserId,
    before: &[PaidPeriod],
    after: &[PaidPeriod],
) -> StoreResult<Writes> {
    let mut changed = Vec::new();
    let mut added = None;
    // By id: a customer with many periods must not cost a settle the square of them.
    let before: std::collections::HashMap<_, _> =
        before.iter().map(|b| (&b.payment_id, b)).collect();
    for p in after {
        match before.get(&p.payment_id).copied() {
            Some(b) if b == p => {}
            Some(_) => changed.push(p.clone()),
            None => added = Some(p.clone()),
        }
    }
    let segments = subscription::segments(user, after);
    let run = subscription::run(&segments)
        .ok_or_else(|| StoreError::Database(anyhow::anyhow!("no paid period to write")))?;
    Ok(Writes {
        changed,
        added,
        run,
        segments: Segments::All(segments),
    })
}
