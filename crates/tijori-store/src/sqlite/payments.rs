//! Payments, their audit trail of gateway answers, settlement and subscriptions.

use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection};

use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{PaymentId, PlanId, UserId};
use tijori_core::payment::{Effect, Payment, PaymentStatus, Purpose};
use tijori_core::store::{
    AnswerKind, GatewayAnswerRecord, OperatorEventKind, Settled, Settlement, StoreError,
    StoreResult,
};
use tijori_core::subscription::{self, PaidPeriod, Plan, PlanChange, Refunded, Subscription, Tail};

use super::shop::{self, OrderFulfilment};
use super::{all, all_with, db_err, exec, exec_or, is_constraint, one, one_with, opt_ts, ts};
use super::{ctx, parse_ts, FOREIGN_KEY};
use crate::paid_periods::{changes, Segments, Writes};
use crate::rows::{
    PaymentRow, PeriodRow, PlanRow, SubscriptionRow, PAYMENT_COLUMNS, PERIOD_COLUMNS, PLAN_COLUMNS,
};

pub(super) fn insert_payment(
    c: &Connection,
    p: &Payment,
    attempt: Option<&tijori_core::idempotency::Attempt>,
) -> StoreResult<()> {
    let (plan_id, order_id, change) = match &p.purpose {
        Purpose::Subscription { plan_id, change } => {
            (Some(plan_id.as_str()), None, Some(change.as_str()))
        }
        Purpose::Order { order_id } => (None, Some(order_id.as_str()), None),
    };
    exec_or(
        c,
        "INSERT INTO payments (id, user_id, gateway, purpose, plan_id, amount_minor, currency, \
         status, provider_ref, provider_txn_id, payment_url, expires_at, status_reason, \
         created_at, updated_at, order_id, plan_change) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            p.id.as_str(),
            p.user_id.as_str(),
            p.gateway.as_str(),
            p.purpose.as_str(),
            plan_id,
            p.amount.minor(),
            p.amount.currency().code(),
            p.status.as_str(),
            p.provider_ref,
            p.provider_txn_id,
            p.payment_url,
            opt_ts(p.expires_at),
            p.status_reason,
            ts(p.created_at),
            ts(p.updated_at),
            order_id,
            change,
        ],
        db_err("failed to insert payment", "payment"),
    )?;
    if let Some(attempt) = attempt {
        shop::note_attempt(c, attempt, Some(&p.id), None)?;
    }
    Ok(())
}

pub(super) fn record_checkout(
    c: &Connection,
    id: &PaymentId,
    provider_ref: &str,
    payment_url: &str,
    expires_at: Option<DateTime<Utc>>,
    raw: &RawAnswer,
    now: DateTime<Utc>,
) -> StoreResult<Payment> {
    insert_answer(c, id, AnswerKind::Initiate, raw, now)?;
    c.prepare_cached(&format!(
        "UPDATE payments SET provider_ref = ?2, payment_url = ?3, expires_at = ?4, \
         updated_at = ?5 WHERE id = ?1 AND status = 'initiated' AND provider_ref IS NULL \
         RETURNING {PAYMENT_COLUMNS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![
                id.as_str(),
                provider_ref,
                payment_url,
                opt_ts(expires_at),
                ts(now)
            ],
            <PaymentRow as crate::rows::FromSqlite>::from_sqlite,
        )
    })
    .map_err(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => {
            StoreError::NotFound("payment awaiting its checkout")
        }
        e => db_err(
            "failed to record checkout",
            "payment with this provider reference",
        )(e),
    })?
    .try_into()
}

pub(super) fn fail_initiation(
    c: &Connection,
    id: &PaymentId,
    reason: &str,
    raw: Option<&RawAnswer>,
    now: DateTime<Utc>,
) -> StoreResult<Payment> {
    if let Some(raw) = raw {
        insert_answer(c, id, AnswerKind::Initiate, raw, now)?;
    }
    one::<PaymentRow>(
        c,
        &format!(
            "UPDATE payments SET status = 'failed', status_reason = ?2, updated_at = ?3 \
             WHERE id = ?1 AND status = 'initiated' AND provider_ref IS NULL \
             RETURNING {PAYMENT_COLUMNS}"
        ),
        params![id.as_str(), reason, ts(now)],
        "failed to mark payment failed",
    )?
    .ok_or(StoreError::NotFound("payment awaiting its checkout"))?
    .try_into()
}

pub(super) fn payment(c: &Connection, id: &PaymentId) -> StoreResult<Option<Payment>> {
    one::<PaymentRow>(
        c,
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"),
        [id.as_str()],
        "failed to load payment",
    )?
    .map(Payment::try_from)
    .transpose()
}

pub(super) fn payment_by_provider_ref(
    c: &Connection,
    gateway: GatewayKind,
    provider_ref: &str,
) -> StoreResult<Option<Payment>> {
    one::<PaymentRow>(
        c,
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE gateway = ?1 AND provider_ref = ?2"),
        [gateway.as_str(), provider_ref],
        "failed to load payment by provider reference",
    )?
    .map(Payment::try_from)
    .transpose()
}

pub(super) fn payments_for_user(
    c: &Connection,
    user: &UserId,
    limit: u32,
) -> StoreResult<Vec<Payment>> {
    all::<PaymentRow>(
        c,
        &format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = ?1 \
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ),
        params![user.as_str(), i64::from(limit)],
        "failed to list payments",
    )?
    .into_iter()
    .map(Payment::try_from)
    .collect()
}

pub(super) fn insert_answer(
    c: &Connection,
    id: &PaymentId,
    kind: AnswerKind,
    raw: &RawAnswer,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    exec_or(
        c,
        "INSERT INTO gateway_answers (payment_id, kind, http_status, body, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id.as_str(),
            kind.as_str(),
            i32::from(raw.http_status),
            raw.body,
            ts(now)
        ],
        |e| {
            if is_constraint(&e, &[FOREIGN_KEY]) {
                StoreError::NotFound("payment")
            } else {
                ctx("failed to record gateway answer")(e)
            }
        },
    )?;
    Ok(())
}

pub(super) fn answers(c: &Connection, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>> {
    all_with(
        c,
        "SELECT kind, http_status, body, received_at FROM gateway_answers \
         WHERE payment_id = ?1 ORDER BY id",
        [id.as_str()],
        |r| {
            Ok(GatewayAnswerRecord {
                kind: r.get(0)?,
                http_status: u16::try_from(r.get::<_, i32>(1)?).unwrap_or(0),
                body: r.get(2)?,
                received_at: crate::rows::time(r, "received_at")?,
            })
        },
        "failed to list gateway answers",
    )
}

/// The atomic half of settling (`Store::settle`), inside the writer's transaction.
pub(super) fn settle(c: &Connection, settlement: &Settlement) -> StoreResult<Settled> {
    let (id, transition, provider_txn_id, kind, raw, now) = (
        &settlement.payment,
        settlement.transition.as_ref(),
        settlement.provider_txn_id.as_deref(),
        settlement.kind,
        &settlement.raw,
        settlement.now,
    );
    insert_answer(c, id, kind, raw, now)?;
    if kind == AnswerKind::Lookup {
        super::jobs::mark_checked(c, id, now)?;
    }
    let mut changed = None;
    if let Some(t) = transition {
        // The compare-and-set: only a payment still in one of `t.from` moves.
        let statuses = (0..t.from.len())
            .map(|i| format!("?{}", i + 6))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE payments SET status = ?1, status_reason = ?2, \
             provider_txn_id = COALESCE(?3, provider_txn_id), updated_at = ?4 \
             WHERE id = ?5 AND status IN ({statuses}) RETURNING {PAYMENT_COLUMNS}"
        );
        let (to, now_text, payment_id) = (t.to.as_str(), ts(now), id.as_str());
        let mut args: Vec<&dyn rusqlite::ToSql> =
            vec![&to, &t.reason, &provider_txn_id, &now_text, &payment_id];
        let from: Vec<&str> = t.from.iter().map(|s| s.as_str()).collect();
        args.extend(from.iter().map(|s| s as &dyn rusqlite::ToSql));
        let row = one::<PaymentRow>(
            c,
            &sql,
            params_from_iter(args),
            "failed to move payment status",
        )?;
        if let Some(row) = row {
            let mut payment = Payment::try_from(row)?;
            match t.effect {
                Effect::Fulfil => {
                    if let OrderFulfilment::Held(reason) = fulfil(c, &payment, now)? {
                        payment = shop::hold_for_review(c, id, &reason, now)?;
                    }
                }
                Effect::Revoke => revoke(c, &payment, now)?,
                Effect::None => {}
            }
            // Money held for review is an operator's job: put it on their list in the
            // same transaction, so it cannot be settled and forgotten.
            if payment.status == PaymentStatus::NeedsReview {
                let detail = payment
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "held for review".into());
                shop::insert_operator_event(
                    c,
                    OperatorEventKind::NeedsReview,
                    Some(id),
                    &detail,
                    now,
                )?;
            }
            changed = Some(payment);
        }
    }
    let changed_now = changed.is_some();
    let payment = match changed {
        Some(p) => p,
        None => payment(c, id)?.ok_or(StoreError::NotFound("payment"))?,
    };
    Ok(Settled {
        payment,
        changed: changed_now,
    })
}

/// Grants what the payment bought. For an order that can no longer take the money the
/// payment is held for review instead (and said why).
fn fulfil(c: &Connection, payment: &Payment, now: DateTime<Utc>) -> StoreResult<OrderFulfilment> {
    match &payment.purpose {
        Purpose::Subscription { plan_id, change } => {
            grant_subscription(c, payment, plan_id, *change, now)?;
            Ok(OrderFulfilment::Paid)
        }
        Purpose::Order { order_id } => shop::fulfil_order(c, payment, order_id, now),
    }
}

fn grant_subscription(
    c: &Connection,
    payment: &Payment,
    plan_id: &PlanId,
    change: PlanChange,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let plan: Plan = one::<PlanRow>(
        c,
        &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = ?1"),
        [plan_id.as_str()],
        "failed to load plan to fulfil",
    )?
    .ok_or(StoreError::NotFound("plan"))?
    .try_into()?;
    // The writer runs one write at a time: two payments of one user settling "at
    // once" add their periods one after the other.
    let purchase = subscription::Purchase {
        payment_id: payment.id.clone(),
        plan: &plan,
        price: payment.amount,
        change,
    };
    let user = &payment.user_id;
    let tail = tail(c, user)?;
    if let Some(appended) = subscription::append(user, &tail, &purchase, now) {
        let now = tail.latest_change.map_or(now, |c| c.max(now));
        return write_periods(c, user, &Writes::appended(appended), now);
    }
    let before = paid_periods(c, user)?;
    let now = crate::paid_periods::time_of_change(&before, now);
    let mut after = before.clone();
    subscription::grant(&mut after, &purchase, now);
    write_periods(c, user, &changes(user, &before, &after)?, now)
}

/// What a purchase placed after everything needs (`subscription::Tail`), by three
/// look-ups in indexes whatever the number of periods.
fn tail(c: &Connection, user: &UserId) -> StoreResult<Tail> {
    let time = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        r.get::<_, Option<String>>(i)?
            .map(|t| {
                parse_ts(&t).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        format!("not a time: {t:?}").into(),
                    )
                })
            })
            .transpose()
    };
    let segment = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<Option<Subscription>> {
        let plan: Option<String> = r.get(i)?;
        Ok(match (plan, time(r, i + 1)?, time(r, i + 2)?) {
            (Some(plan), Some(start_at), Some(end_at)) => Some(Subscription {
                user_id: user.clone(),
                plan_id: PlanId::from_trusted(plan),
                start_at,
                end_at,
            }),
            _ => None,
        })
    };
    one_with(
        c,
        "SELECT (SELECT MAX(created_at) FROM fulfilments WHERE user_id = ?1), \
         (SELECT MAX(revoked_at) FROM fulfilments WHERE user_id = ?1 AND revoked_at IS NOT NULL), \
         s.plan_id, s.start_at, s.end_at, r.plan_id, r.start_at, r.end_at \
         FROM users u \
         LEFT JOIN subscription_segments s ON s.user_id = u.id AND s.start_at = \
         (SELECT MAX(start_at) FROM subscription_segments WHERE user_id = u.id) \
         LEFT JOIN subscriptions r ON r.user_id = u.id \
         WHERE u.id = ?1",
        [user.as_str()],
        |r| {
            Ok(Tail {
                latest_change: time(r, 0)?.max(time(r, 1)?),
                last: segment(r, 2)?,
                run: segment(r, 5)?,
            })
        },
        "failed to load the end of the paid periods",
    )?
    .ok_or(StoreError::NotFound("user"))
}

/// Writes what a grant or a refund changed in the user's periods, and the
/// `subscriptions` row they now project to. The primary key on fulfilments'
/// payment_id makes a new period the exactly-once guard: should the status
/// compare-and-set ever be bypassed, a second grant fails here and rolls the whole
/// settlement back.
fn write_periods(
    c: &Connection,
    user: &UserId,
    writes: &Writes,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for p in &writes.changed {
        exec(
            c,
            "UPDATE fulfilments SET period_start = ?2, period_end = ?3, taken_seconds = ?4, \
             moved_seconds = ?5, credit_to = ?6, credit_seconds = ?7, refunded_minor = ?8, \
             revoked_at = ?9, credit_in = ?10 WHERE payment_id = ?1",
            params![
                p.payment_id.as_str(),
                ts(p.start_at),
                ts(p.end_at),
                p.taken_seconds,
                p.moved_seconds,
                p.credit_to.as_ref().map(|c| c.as_str()),
                p.credit_seconds,
                p.refunded_minor,
                opt_ts(p.revoked_at),
                p.credit_in,
            ],
            "failed to update a paid period",
        )?;
    }
    if let Some(p) = &writes.added {
        exec_or(
            c,
            "INSERT INTO fulfilments (payment_id, user_id, plan_id, granted_seconds, \
             period_start, period_end, created_at, credit_in) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                p.payment_id.as_str(),
                user.as_str(),
                p.plan_id.as_str(),
                p.granted_seconds,
                ts(p.start_at),
                ts(p.end_at),
                ts(p.granted_at),
                p.credit_in
            ],
            db_err("failed to record fulfilment", "fulfilment"),
        )?;
    }
    let run = &writes.run;
    exec(
        c,
        "INSERT INTO subscriptions (user_id, plan_id, start_at, end_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id, \
         start_at = excluded.start_at, end_at = excluded.end_at, updated_at = excluded.updated_at",
        params![
            user.as_str(),
            run.plan_id.as_str(),
            ts(run.start_at),
            ts(run.end_at),
            ts(now)
        ],
        "failed to write subscription",
    )?;
    // The usual purchase changes one row: the last segment, extended or added.
    let new = match &writes.segments {
        Segments::All(list) => {
            exec(
                c,
                "DELETE FROM subscription_segments WHERE user_id = ?1",
                [user.as_str()],
                "failed to replace the subscription's segments",
            )?;
            list.as_slice()
        }
        Segments::Last { segment, replaces } => {
            if let Some(start) = replaces.filter(|start| *start != segment.start_at) {
                exec(
                    c,
                    "DELETE FROM subscription_segments WHERE user_id = ?1 AND start_at = ?2",
                    params![user.as_str(), ts(start)],
                    "failed to replace the subscription's ended segment",
                )?;
            }
            std::slice::from_ref(segment)
        }
    };
    for s in new {
        exec(
            c,
            "INSERT INTO subscription_segments (user_id, start_at, end_at, plan_id) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (user_id, start_at) DO UPDATE SET end_at = excluded.end_at, \
             plan_id = excluded.plan_id",
            params![
                user.as_str(),
                ts(s.start_at),
                ts(s.end_at),
                s.plan_id.as_str()
            ],
            "failed to write a subscription segment",
        )?;
    }
    Ok(())
}

pub(super) fn revoke(c: &Connection, payment: &Payment, now: DateTime<Utc>) -> StoreResult<()> {
    if let Purpose::Order { order_id } = &payment.purpose {
        // An order is taken back only when refunded in full.
        if payment.status == PaymentStatus::Refunded {
            return shop::revoke_order(c, payment, order_id, now);
        }
        return Ok(());
    }
    let refunded = match payment.status {
        PaymentStatus::Refunded => Refunded::Everything,
        PaymentStatus::PartiallyRefunded => Refunded::Amount(
            one_with(
                c,
                "SELECT COALESCE(SUM(amount_minor), 0) FROM refunds \
                 WHERE payment_id = ?1 AND status = 'succeeded'",
                [payment.id.as_str()],
                |r| r.get::<_, i64>(0),
                "failed to add up a payment's refunds",
            )?
            .unwrap_or(0),
        ),
        _ => return Ok(()),
    };
    let user = &payment.user_id;
    let before = paid_periods(c, user)?;
    let now = crate::paid_periods::time_of_change(&before, now);
    let mut after = before.clone();
    if !subscription::take_back(&mut after, &payment.id, refunded, now) {
        return Ok(()); // it bought no period, or nothing more is due back
    }
    write_periods(c, user, &changes(user, &before, &after)?, now)
}

/// The segments a reader needs at `now` (`subscription::needed_at`).
pub(super) fn segments(
    c: &Connection,
    user: &UserId,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Subscription>> {
    Ok(all::<SubscriptionRow>(
        c,
        "SELECT user_id, plan_id, start_at, end_at FROM subscription_segments \
         WHERE user_id = ?1 AND start_at >= COALESCE((SELECT MAX(start_at) \
         FROM subscription_segments WHERE user_id = ?1 AND end_at <= ?2), '') \
         ORDER BY start_at",
        params![user.as_str(), ts(now)],
        "failed to load the subscription's segments",
    )?
    .into_iter()
    .map(Subscription::from)
    .collect())
}

/// Lays out again, and keeps the segments of, the periods of every user who has
/// periods but no segments: those paid before segments were kept. Runs once, when
/// the database is migrated.
pub(super) fn keep_segments(c: &Connection, now: DateTime<Utc>) -> StoreResult<usize> {
    let users: Vec<String> = all_with(
        c,
        "SELECT DISTINCT f.user_id FROM fulfilments f WHERE NOT EXISTS \
         (SELECT 1 FROM subscription_segments s WHERE s.user_id = f.user_id)",
        [],
        |r| r.get(0),
        "failed to find the users whose segments are not kept",
    )?;
    for user in &users {
        let user = UserId::from_trusted(user.clone());
        let before = paid_periods(c, &user)?;
        let mut after = before.clone();
        subscription::lay_out(&mut after);
        let now = crate::paid_periods::time_of_change(&before, now);
        write_periods(c, &user, &changes(&user, &before, &after)?, now)?;
    }
    Ok(users.len())
}

pub(super) fn paid_periods(c: &Connection, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
    all::<PeriodRow>(
        c,
        &format!(
            "SELECT {PERIOD_COLUMNS} FROM fulfilments f JOIN payments p ON p.id = f.payment_id \
             WHERE f.user_id = ?1"
        ),
        [user.as_str()],
        "failed to load the paid periods",
    )?
    .into_iter()
    .map(PaidPeriod::try_from)
    .collect()
}

pub(super) fn subscription(c: &Connection, user: &UserId) -> StoreResult<Option<Subscription>> {
    Ok(one::<SubscriptionRow>(
        c,
        "SELECT user_id, plan_id, start_at, end_at FROM subscriptions WHERE user_id = ?1",
        [user.as_str()],
        "failed to load subscription",
    )?
    .map(Subscription::from))
}
