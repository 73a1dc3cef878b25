//! Payments from their creation to their settlement, their audit trail of gateway
//! answers, and the subscription periods they pay for: every statement and the
//! settlement's orchestration once, for both backends (see `db.rs`).

use chrono::{DateTime, Utc};

use tijori_core::events::{self, EventType, Granted, NewEvent};
use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{PaymentId, PlanId, UserId};
use tijori_core::idempotency::Attempt;
use tijori_core::payment::{Effect, Payment, PaymentStatus, Purpose, CHECKOUT_LIFETIME_HOURS};
use tijori_core::store::{
    AnswerKind, GatewayAnswerRecord, OperatorEventKind, Settled, Settlement, StoreError,
    StoreResult,
};
use tijori_core::subscription::{self, PaidPeriod, Plan, PlanChange, Refunded, Subscription, Tail};

use crate::db::{ctx, db_err, query, Backend, Conn, DbFail, Params};
use crate::paid_periods::{self, changes, Segments, Writes};
use crate::rows::{
    opt_time, stale_payments_sql, FromSqlite, PaymentRow, PeriodRow, PlanRow, SubscriptionRow,
    PAYMENT_COLUMNS, PERIOD_COLUMNS,
};
use crate::shop::{self, OrderFulfilment};

/// Stores a new payment, noting it on the idempotency key of the request making it
/// (`PaymentStore::insert_payment_for`).
pub(crate) async fn insert_payment(
    c: &mut impl Conn,
    p: &Payment,
    attempt: Option<&Attempt>,
) -> StoreResult<()> {
    let (plan_id, order_id, change) = match &p.purpose {
        Purpose::Subscription { plan_id, change } => {
            (Some(plan_id.as_str()), None, Some(change.as_str()))
        }
        Purpose::Order { order_id } => (None, Some(order_id.as_str()), None),
    };
    query(
        "INSERT INTO payments (id, user_id, gateway, purpose, plan_id, amount_minor, currency, \
         status, provider_ref, provider_txn_id, payment_url, expires_at, status_reason, \
         created_at, updated_at, order_id, plan_change, checkout) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18)",
    )
    .bind(p.id.as_str())
    .bind(p.user_id.as_str())
    .bind(p.gateway.as_str())
    .bind(p.purpose.as_str())
    .bind(plan_id)
    .bind(p.amount.minor())
    .bind(p.amount.currency().code())
    .bind(p.status.as_str())
    .bind(&p.provider_ref)
    .bind(&p.provider_txn_id)
    .bind(&p.payment_url)
    .bind(p.expires_at)
    .bind(&p.status_reason)
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(order_id)
    .bind(change)
    .bind(p.checkout.as_str())
    .execute(c)
    .await
    .map_err(db_err("failed to insert payment", "payment"))?;
    if let Some(attempt) = attempt {
        crate::idempotency::note_attempt(c, attempt, Some(&p.id), None).await?;
    }
    Ok(())
}

/// Records the opened checkout on a payment still waiting for it, with the answer
/// that opened it (kept only with the checkout it opened).
pub(crate) async fn record_checkout<C: Conn>(
    c: &mut C,
    id: &PaymentId,
    provider_ref: &str,
    payment_url: &str,
    expires_at: Option<DateTime<Utc>>,
    raw: &RawAnswer,
    now: DateTime<Utc>,
) -> StoreResult<Payment> {
    let moved = match C::BACKEND {
        // One statement (atomic on its own), not a transaction of two: each round
        // trip to PostgreSQL costs about as much as the work.
        Backend::Postgres => {
            query(&format!(
                "WITH moved AS (UPDATE payments SET provider_ref = $2, payment_url = $3, \
                 expires_at = $4, updated_at = $5 \
                 WHERE id = $1 AND status = 'initiated' AND provider_ref IS NULL \
                 RETURNING {PAYMENT_COLUMNS}), \
                 answer AS (INSERT INTO gateway_answers (payment_id, kind, http_status, body, \
                 received_at) SELECT id, 'initiate', $6, $7, $5 FROM moved) \
                 SELECT * FROM moved"
            ))
            .bind(id.as_str())
            .bind(provider_ref)
            .bind(payment_url)
            .bind(expires_at)
            .bind(now)
            .bind(i32::from(raw.http_status))
            .bind(&raw.body)
            .fetch_optional::<PaymentRow>(c)
            .await
        }
        // In the writer's transaction: the answer goes if the payment does not move.
        Backend::Sqlite => {
            insert_answer(c, id, AnswerKind::Initiate, raw, now).await?;
            query(&format!(
                "UPDATE payments SET provider_ref = $2, payment_url = $3, expires_at = $4, \
                 updated_at = $5 WHERE id = $1 AND status = 'initiated' \
                 AND provider_ref IS NULL RETURNING {PAYMENT_COLUMNS}"
            ))
            .bind(id.as_str())
            .bind(provider_ref)
            .bind(payment_url)
            .bind(expires_at)
            .bind(now)
            .fetch_optional::<PaymentRow>(c)
            .await
        }
    };
    moved
        .map_err(db_err(
            "failed to record checkout",
            "payment with this provider reference",
        ))?
        .ok_or(StoreError::NotFound("payment awaiting its checkout"))?
        .try_into()
}

/// Marks a payment whose checkout could not be opened failed, with the answer that
/// said so, if any.
pub(crate) async fn fail_initiation(
    c: &mut impl Conn,
    id: &PaymentId,
    reason: &str,
    raw: Option<&RawAnswer>,
    now: DateTime<Utc>,
) -> StoreResult<Payment> {
    if let Some(raw) = raw {
        insert_answer(c, id, AnswerKind::Initiate, raw, now).await?;
    }
    let payment: Payment = query(&format!(
        "UPDATE payments SET status = 'failed', status_reason = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'initiated' AND provider_ref IS NULL \
         RETURNING {PAYMENT_COLUMNS}"
    ))
    .bind(id.as_str())
    .bind(reason)
    .bind(now)
    .fetch_optional::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to mark payment failed"))?
    .ok_or(StoreError::NotFound("payment awaiting its checkout"))?
    .try_into()?;
    crate::events::emit(c, &events::settled(&payment, Granted::Nothing, false), now).await?;
    Ok(payment)
}

pub(crate) async fn payment(c: &mut impl Conn, id: &PaymentId) -> StoreResult<Option<Payment>> {
    query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to load payment"))?
    .map(Payment::try_from)
    .transpose()
}

pub(crate) async fn payment_by_provider_ref(
    c: &mut impl Conn,
    gateway: GatewayKind,
    provider_ref: &str,
) -> StoreResult<Option<Payment>> {
    query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE gateway = $1 AND provider_ref = $2"
    ))
    .bind(gateway.as_str())
    .bind(provider_ref)
    .fetch_optional::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to load payment by provider reference"))?
    .map(Payment::try_from)
    .transpose()
}

pub(crate) async fn payments_for_user(
    c: &mut impl Conn,
    user: &UserId,
    limit: u32,
) -> StoreResult<Vec<Payment>> {
    query(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(user.as_str())
    .bind(i64::from(limit))
    .fetch_all::<PaymentRow>(c)
    .await
    .map_err(ctx("failed to list payments"))?
    .into_iter()
    .map(Payment::try_from)
    .collect()
}

/// Keeps a gateway's answer in the payment's audit trail; `NotFound` for an unknown
/// payment.
pub(crate) async fn insert_answer(
    c: &mut impl Conn,
    id: &PaymentId,
    kind: AnswerKind,
    raw: &RawAnswer,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "INSERT INTO gateway_answers (payment_id, kind, http_status, body, received_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(kind.as_str())
    .bind(i32::from(raw.http_status))
    .bind(&raw.body)
    .bind(now)
    .execute(c)
    .await
    .map_err(unknown_payment_or("failed to record gateway answer"))?;
    Ok(())
}

/// A row naming a payment that does not exist is `NotFound("payment")`.
fn unknown_payment_or(what: &'static str) -> impl FnOnce(DbFail) -> StoreError {
    move |e| {
        if e.is_foreign_key() {
            StoreError::NotFound("payment")
        } else {
            ctx(what)(e)
        }
    }
}

pub(crate) async fn answers(
    c: &mut impl Conn,
    id: &PaymentId,
) -> StoreResult<Vec<GatewayAnswerRecord>> {
    Ok(query(
        "SELECT kind, http_status, body, received_at FROM gateway_answers \
         WHERE payment_id = $1 ORDER BY id",
    )
    .bind(id.as_str())
    .fetch_all::<(String, i32, String, DateTime<Utc>)>(c)
    .await
    .map_err(ctx("failed to list gateway answers"))?
    .into_iter()
    .map(
        |(kind, http_status, body, received_at)| GatewayAnswerRecord {
            kind,
            http_status: u16::try_from(http_status).unwrap_or(0),
            body,
            received_at,
        },
    )
    .collect())
}

/// Notes that the gateway was asked about a payment.
pub(crate) async fn mark_checked(
    c: &mut impl Conn,
    id: &PaymentId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query("UPDATE payments SET checked_at = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(now)
        .execute(c)
        .await
        .map_err(ctx("failed to note a payment's check"))?;
    Ok(())
}

/// Takes the right to ask the gateway about a payment now, unless someone asked
/// after `not_after`.
pub(crate) async fn claim_lookup(
    c: &mut impl Conn,
    id: &PaymentId,
    now: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = query(
        "UPDATE payments SET checked_at = $2 \
         WHERE id = $1 AND (checked_at IS NULL OR checked_at <= $3)",
    )
    .bind(id.as_str())
    .bind(now)
    .bind(not_after)
    .execute(c)
    .await
    .map_err(ctx("failed to claim a payment's lookup"))?;
    Ok(done == 1)
}

pub(crate) async fn stale_payments(
    c: &mut impl Conn,
    checked_before: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Payment>> {
    query(&stale_payments_sql("$"))
        .bind(checked_before)
        .bind(i64::from(limit))
        .bind(now - chrono::Duration::hours(CHECKOUT_LIFETIME_HOURS))
        .bind(now)
        .fetch_all::<PaymentRow>(c)
        .await
        .map_err(ctx("failed to find stale payments"))?
        .into_iter()
        .map(Payment::try_from)
        .collect()
}

/// The atomic half of settling (`PaymentStore::settle`), in one write transaction:
/// the answer kept, the compare-and-set of the status, and what the move does to a
/// subscription, an order and the operator's list. On PostgreSQL a move is
/// announced to the change listeners of the other processes, if any: every one
/// registered but `own_listener` (this process's; 0 for none).
pub(crate) async fn settle<C: Conn>(
    c: &mut C,
    settlement: &Settlement,
    own_listener: i32,
) -> StoreResult<Settled> {
    let Settlement {
        payment: id,
        transition,
        provider_txn_id,
        kind,
        raw,
        now,
        webhook,
    } = settlement;
    let (kind, now) = (*kind, *now);
    let looked_up = kind == AnswerKind::Lookup;
    // On PostgreSQL a transition's statement also keeps the answer and notes the
    // check, in one round trip; elsewhere they are statements of their own.
    let in_one = C::BACKEND == Backend::Postgres && transition.is_some();
    if !in_one {
        insert_answer(c, id, kind, raw, now).await?;
        if looked_up {
            mark_checked(c, id, now).await?;
        }
    }
    let mut changed = None;
    let mut deliveries = 0;
    if let Some(t) = transition {
        // The compare-and-set: only a payment still in one of `t.from` moves. On
        // PostgreSQL a concurrent settle blocks on the row lock and then sees the new
        // status, so it matches nothing; SQLite's writer runs one at a time.
        // `$1` to `$5` in both; PostgreSQL's answer takes `$6` to `$9`, and its
        // listener `$10`; then the statuses the payment may move from.
        let first_status = if in_one { 11 } else { 6 };
        let statuses = (0..t.from.len())
            .map(|i| format!("${}", i + first_status))
            .collect::<Vec<_>>()
            .join(", ");
        let set = "status = $1, status_reason = $2, \
                   provider_txn_id = COALESCE($3, provider_txn_id), updated_at = $4";
        let sql = if in_one {
            // The answer is recorded, the user's row locked for what the move does
            // to their subscription and orders (`lock_user`), and the other tijori
            // processes told of the change (on commit), by the same statement. No
            // NOTIFY when none listens: it would hold every other notifying commit
            // up (see `PgStore::listen_for_changes`).
            format!(
                "WITH answer AS (INSERT INTO gateway_answers (payment_id, kind, http_status, \
                 body, received_at) VALUES ($5, $6, $7, $8, $4)), \
                 moved AS (UPDATE payments SET {set}, \
                 checked_at = CASE WHEN $9 THEN $4 ELSE checked_at END \
                 WHERE id = $5 AND status IN ({statuses}) RETURNING {PAYMENT_COLUMNS}), \
                 locked AS (SELECT id FROM users WHERE id = (SELECT user_id FROM moved)\
                 {lock}) \
                 SELECT moved.*, CASE WHEN EXISTS (SELECT 1 FROM change_listeners \
                 WHERE pid <> $10) THEN pg_notify('tijori_payment_changes', moved.id) END \
                 FROM moved LEFT JOIN locked ON TRUE",
                lock = C::LOCK_ROW
            )
        } else {
            format!(
                "UPDATE payments SET {set} WHERE id = $5 AND status IN ({statuses}) \
                 RETURNING {PAYMENT_COLUMNS}"
            )
        };
        let mut q = query(&sql)
            .bind(t.to.as_str())
            .bind(t.reason.as_deref())
            .bind(provider_txn_id.as_deref())
            .bind(now)
            .bind(id.as_str());
        if in_one {
            q = q
                .bind(kind.as_str())
                .bind(i32::from(raw.http_status))
                .bind(&raw.body)
                .bind(looked_up)
                .bind(own_listener);
        }
        for s in t.from {
            q = q.bind(s.as_str());
        }
        let row = q
            .fetch_optional::<PaymentRow>(c)
            .await
            .map_err(unknown_payment_or("failed to move payment status"))?;
        if let Some(row) = row {
            let mut payment = Payment::try_from(row)?;
            let (mut granted, mut revoked) = (Granted::Nothing, false);
            match t.effect {
                Effect::Fulfil => match fulfil(c, &payment, now).await? {
                    (_, OrderFulfilment::Held(reason)) => {
                        payment = shop::hold_for_review(c, id, &reason, now).await?;
                    }
                    (g, OrderFulfilment::Paid) => granted = g,
                },
                Effect::Revoke => revoked = revoke(c, &payment, now).await?,
                Effect::None => {}
            }
            // In the same transaction: no change without its events, and no event of
            // a change that rolled back.
            deliveries =
                crate::events::emit(c, &events::settled(&payment, granted, revoked), now).await?;
            if let Some(detail) = payment.operator_notice() {
                crate::operator::insert_operator_event(
                    c,
                    OperatorEventKind::NeedsReview,
                    Some(id),
                    &detail,
                    now,
                )
                .await?;
            }
            // The delivery this answer was asked for is noted with the move, whose
            // outcome it is: one durable write less than noting it after.
            if let Some(note) = webhook {
                crate::operator::finish_webhook(c, note.delivery, Some(id), note.outcome, None)
                    .await?;
            }
            changed = Some(payment);
        }
    }
    let changed_now = changed.is_some();
    let payment = match changed {
        Some(p) => p,
        None => {
            // Nothing moved (another settle got there first): the answer was kept,
            // and a lookup still counts as a check.
            if in_one && looked_up {
                mark_checked(c, id, now).await?;
            }
            payment(c, id)
                .await?
                .ok_or(StoreError::NotFound("payment"))?
        }
    };
    Ok(Settled {
        payment,
        changed: changed_now,
        deliveries,
        webhook_noted: changed_now && webhook.is_some(),
    })
}

/// Grants what the payment bought. For an order that can no longer take the money
/// the payment is held for review instead (and said why).
async fn fulfil<C: Conn>(
    c: &mut C,
    payment: &Payment,
    now: DateTime<Utc>,
) -> StoreResult<(Granted, OrderFulfilment)> {
    match &payment.purpose {
        Purpose::Subscription { plan_id, change } => {
            let granted = grant_subscription(c, payment, plan_id, *change, now).await?;
            Ok((granted, OrderFulfilment::Paid))
        }
        Purpose::Order { order_id } => Ok((
            Granted::Nothing,
            shop::fulfil_order(c, payment, order_id, now).await?,
        )),
    }
}

/// Serialises every change to one user's subscription (and their orders' caps). The
/// user's row always exists, unlike the subscription's on a first purchase: locking
/// the subscription row would let two first purchases both see "none" and the second
/// overwrite the first's grant. SQLite's one writer already runs them one at a time.
pub(crate) async fn lock_user<C: Conn>(c: &mut C, user: &UserId) -> StoreResult<()> {
    if C::BACKEND == Backend::Sqlite {
        return Ok(());
    }
    query(&format!(
        "SELECT id FROM users WHERE id = $1{}",
        C::LOCK_ROW
    ))
    .bind(user.as_str())
    .fetch_optional::<(String,)>(c)
    .await
    .map_err(ctx("failed to lock the user's subscription"))?
    .ok_or(StoreError::NotFound("user"))?;
    Ok(())
}

async fn grant_subscription<C: Conn>(
    c: &mut C,
    payment: &Payment,
    plan_id: &PlanId,
    change: PlanChange,
    now: DateTime<Utc>,
) -> StoreResult<Granted> {
    // Two payments of one user settling at once add their periods one after the
    // other: on PostgreSQL the settle's compare-and-set locked the user's row, so
    // the second waited there for the first to commit (SQLite's one writer runs
    // them one at a time).
    let user = &payment.user_id;
    let (plan, tail) = plan_and_tail(c, user, plan_id).await?;
    let purchase = subscription::Purchase {
        payment_id: payment.id.clone(),
        plan: &plan,
        price: payment.amount,
        change,
    };
    let granted = Granted::at(tail.last.as_ref().map(|s| s.end_at), now);
    if let Some(appended) = subscription::append(user, &tail, &purchase, now) {
        let now = tail.latest_change.map_or(now, |c| c.max(now));
        write_periods(c, user, &Writes::appended(appended), now).await?;
        return Ok(granted);
    }
    let before = paid_periods(c, user).await?;
    let now = paid_periods::time_of_change(&before, now);
    let mut after = before.clone();
    subscription::grant(&mut after, &purchase, now);
    write_periods(c, user, &changes(user, &before, &after)?, now).await?;
    Ok(granted)
}

/// The plan bought (which never changes) and what a purchase placed after
/// everything needs (`subscription::Tail`), in one statement of index look-ups
/// whatever the number of periods. Read once the user's row is locked, by a
/// statement of its own: a statement that waited for the lock would see the
/// others' rows as they were before it waited.
async fn plan_and_tail(
    c: &mut impl Conn,
    user: &UserId,
    plan_id: &PlanId,
) -> StoreResult<(Plan, Tail)> {
    let row: TailRow = query(
        "SELECT (SELECT MAX(created_at) FROM fulfilments WHERE user_id = $1) AS granted, \
         (SELECT MAX(revoked_at) FROM fulfilments WHERE user_id = $1 \
         AND revoked_at IS NOT NULL) AS revoked, \
         s.plan_id AS last_plan, s.start_at AS last_start, s.end_at AS last_end, \
         r.plan_id AS run_plan, r.start_at AS run_start, r.end_at AS run_end, \
         p.id, p.name, p.description, p.price_minor, p.currency, p.duration_days, \
         p.active, p.created_at \
         FROM users u JOIN plans p ON p.id = $2 \
         LEFT JOIN subscription_segments s ON s.user_id = u.id AND s.start_at = \
         (SELECT MAX(start_at) FROM subscription_segments WHERE user_id = u.id) \
         LEFT JOIN subscriptions r ON r.user_id = u.id \
         WHERE u.id = $1",
    )
    .bind(user.as_str())
    .bind(plan_id.as_str())
    .fetch_optional(c)
    .await
    .map_err(ctx(
        "failed to load the plan and the end of the paid periods",
    ))?
    .ok_or(StoreError::NotFound("plan"))?;
    let segment = |plan: Option<String>, start, end| match (plan, start, end) {
        (Some(plan), Some(start_at), Some(end_at)) => Some(Subscription {
            user_id: user.clone(),
            plan_id: PlanId::from_trusted(plan),
            start_at,
            end_at,
        }),
        _ => None,
    };
    let tail = Tail {
        latest_change: row.granted.max(row.revoked),
        last: segment(row.last_plan, row.last_start, row.last_end),
        run: segment(row.run_plan, row.run_start, row.run_end),
    };
    Ok((row.plan.try_into()?, tail))
}

/// `plan_and_tail`'s row.
#[derive(sqlx::FromRow)]
struct TailRow {
    granted: Option<DateTime<Utc>>,
    revoked: Option<DateTime<Utc>>,
    last_plan: Option<String>,
    last_start: Option<DateTime<Utc>>,
    last_end: Option<DateTime<Utc>>,
    run_plan: Option<String>,
    run_start: Option<DateTime<Utc>>,
    run_end: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    plan: PlanRow,
}

impl FromSqlite for TailRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(TailRow {
            granted: opt_time(r, "granted")?,
            revoked: opt_time(r, "revoked")?,
            last_plan: r.get("last_plan")?,
            last_start: opt_time(r, "last_start")?,
            last_end: opt_time(r, "last_end")?,
            run_plan: r.get("run_plan")?,
            run_start: opt_time(r, "run_start")?,
            run_end: opt_time(r, "run_end")?,
            plan: PlanRow::from_sqlite(r)?,
        })
    }
}

/// Writes what a grant or a refund changed in the user's periods, their segments,
/// and the `subscriptions` row they now project to. The primary key on
/// fulfilments' payment_id makes a new period the exactly-once guard: should the
/// status compare-and-set ever be bypassed, a second grant fails here and rolls the
/// whole settlement back.
async fn write_periods<C: Conn>(
    c: &mut C,
    user: &UserId,
    writes: &Writes,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    match C::BACKEND {
        Backend::Postgres => write_periods_at_once(c, user, writes, now).await,
        Backend::Sqlite => write_periods_one_by_one(c, user, writes, now).await,
    }
}

/// PostgreSQL: one statement, whatever changed (a round trip costs about as much as
/// the work), made of the parts this change needs: the usual purchase adds a period
/// and writes its segment and the run, and a statement with parts for the rest
/// (periods changed, segments laid out again) cost it their planning and their
/// look-ups too.
async fn write_periods_at_once(
    c: &mut impl Conn,
    user: &UserId,
    writes: &Writes,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut p = Params::default();
    let u = p.add(user.as_str());
    let mut parts = Vec::new();
    let changed = &writes.changed;
    if !changed.is_empty() {
        let col = |f: &dyn Fn(&PaidPeriod) -> i64| changed.iter().map(f).collect::<Vec<i64>>();
        let columns = [
            p.add(
                changed
                    .iter()
                    .map(|p| p.payment_id.as_str())
                    .collect::<Vec<_>>(),
            ),
            p.add(changed.iter().map(|p| p.start_at).collect::<Vec<_>>()),
            p.add(changed.iter().map(|p| p.end_at).collect::<Vec<_>>()),
            p.add(col(&|p| p.taken_seconds)),
            p.add(col(&|p| p.moved_seconds)),
            p.add(
                changed
                    .iter()
                    .map(|p| p.credit_to.as_ref().map(|c| c.as_str()))
                    .collect::<Vec<_>>(),
            ),
            p.add(col(&|p| p.credit_seconds)),
            p.add(col(&|p| p.credit_in)),
            p.add(col(&|p| p.refunded_minor)),
            p.add(changed.iter().map(|p| p.revoked_at).collect::<Vec<_>>()),
        ];
        parts.push(format!(
            "changed AS (UPDATE fulfilments f SET period_start = u.period_start, \
             period_end = u.period_end, taken_seconds = u.taken, moved_seconds = u.moved, \
             credit_to = u.credit_to, credit_seconds = u.credit, credit_in = u.credit_in, \
             refunded_minor = u.refunded, revoked_at = u.revoked_at \
             FROM UNNEST({}::text[], {}::timestamptz[], {}::timestamptz[], {}::bigint[], \
             {}::bigint[], {}::text[], {}::bigint[], {}::bigint[], {}::bigint[], \
             {}::timestamptz[]) \
             AS u(payment_id, period_start, period_end, taken, moved, credit_to, credit, \
             credit_in, refunded, revoked_at) WHERE f.payment_id = u.payment_id)",
            columns[0],
            columns[1],
            columns[2],
            columns[3],
            columns[4],
            columns[5],
            columns[6],
            columns[7],
            columns[8],
            columns[9],
        ));
    }
    if let Some(a) = &writes.added {
        parts.push(format!(
            "added AS (INSERT INTO fulfilments (payment_id, user_id, plan_id, \
             granted_seconds, period_start, period_end, created_at, credit_in) \
             VALUES ({}, {u}, {}, {}, {}, {}, {}, {}))",
            p.add(a.payment_id.as_str()),
            p.add(a.plan_id.as_str()),
            p.add(a.granted_seconds),
            p.add(a.start_at),
            p.add(a.end_at),
            p.add(a.granted_at),
            p.add(a.credit_in),
        ));
    }
    let upsert_segment = "ON CONFLICT (user_id, start_at) DO UPDATE SET end_at = excluded.end_at, \
                          plan_id = excluded.plan_id";
    match &writes.segments {
        // Every segment: the kept ones not among them go.
        Segments::All(list) => {
            let starts = p.add(list.iter().map(|s| s.start_at).collect::<Vec<_>>());
            parts.push(format!(
                "gone AS (DELETE FROM subscription_segments WHERE user_id = {u} \
                 AND start_at <> ALL({starts}::timestamptz[]))"
            ));
            if !list.is_empty() {
                parts.push(format!(
                    "kept AS (INSERT INTO subscription_segments (user_id, start_at, end_at, \
                     plan_id) SELECT {u}, * FROM UNNEST({starts}::timestamptz[], \
                     {}::timestamptz[], {}::text[]) {upsert_segment})",
                    p.add(list.iter().map(|s| s.end_at).collect::<Vec<_>>()),
                    p.add(list.iter().map(|s| s.plan_id.as_str()).collect::<Vec<_>>()),
                ));
            }
        }
        // The usual purchase changes one row: the last segment, extended or added
        // (as on SQLite).
        Segments::Last { segment, replaces } => {
            if let Some(start) = replaces.filter(|start| *start != segment.start_at) {
                parts.push(format!(
                    "gone AS (DELETE FROM subscription_segments WHERE user_id = {u} \
                     AND start_at = {})",
                    p.add(start)
                ));
            }
            parts.push(format!(
                "kept AS (INSERT INTO subscription_segments (user_id, start_at, end_at, \
                 plan_id) VALUES ({u}, {}, {}, {}) {upsert_segment})",
                p.add(segment.start_at),
                p.add(segment.end_at),
                p.add(segment.plan_id.as_str()),
            ));
        }
    }
    let run = &writes.run;
    let sql = format!(
        "WITH {} INSERT INTO subscriptions (user_id, plan_id, start_at, end_at, updated_at) \
         VALUES ({u}, {}, {}, {}, {}) \
         ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id, \
         start_at = excluded.start_at, end_at = excluded.end_at, \
         updated_at = excluded.updated_at",
        parts.join(", "),
        p.add(run.plan_id.as_str()),
        p.add(run.start_at),
        p.add(run.end_at),
        p.add(now),
    );
    p.query(&sql)
        .execute(c)
        .await
        .map_err(db_err("failed to write the paid periods", "fulfilment"))?;
    Ok(())
}

/// SQLite: a statement a row (no arrays; a statement costs microseconds in process).
async fn write_periods_one_by_one(
    c: &mut impl Conn,
    user: &UserId,
    writes: &Writes,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for p in &writes.changed {
        query(
            "UPDATE fulfilments SET period_start = $2, period_end = $3, taken_seconds = $4, \
             moved_seconds = $5, credit_to = $6, credit_seconds = $7, refunded_minor = $8, \
             revoked_at = $9, credit_in = $10 WHERE payment_id = $1",
        )
        .bind(p.payment_id.as_str())
        .bind(p.start_at)
        .bind(p.end_at)
        .bind(p.taken_seconds)
        .bind(p.moved_seconds)
        .bind(p.credit_to.as_ref().map(|c| c.as_str()))
        .bind(p.credit_seconds)
        .bind(p.refunded_minor)
        .bind(p.revoked_at)
        .bind(p.credit_in)
        .execute(c)
        .await
        .map_err(ctx("failed to update a paid period"))?;
    }
    if let Some(p) = &writes.added {
        query(
            "INSERT INTO fulfilments (payment_id, user_id, plan_id, granted_seconds, \
             period_start, period_end, created_at, credit_in) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(p.payment_id.as_str())
        .bind(user.as_str())
        .bind(p.plan_id.as_str())
        .bind(p.granted_seconds)
        .bind(p.start_at)
        .bind(p.end_at)
        .bind(p.granted_at)
        .bind(p.credit_in)
        .execute(c)
        .await
        .map_err(db_err("failed to record fulfilment", "fulfilment"))?;
    }
    let run = &writes.run;
    query(
        "INSERT INTO subscriptions (user_id, plan_id, start_at, end_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id, \
         start_at = excluded.start_at, end_at = excluded.end_at, \
         updated_at = excluded.updated_at",
    )
    .bind(user.as_str())
    .bind(run.plan_id.as_str())
    .bind(run.start_at)
    .bind(run.end_at)
    .bind(now)
    .execute(c)
    .await
    .map_err(ctx("failed to write subscription"))?;
    // The usual purchase changes one row: the last segment, extended or added.
    let new = match &writes.segments {
        Segments::All(list) => {
            query("DELETE FROM subscription_segments WHERE user_id = $1")
                .bind(user.as_str())
                .execute(c)
                .await
                .map_err(ctx("failed to replace the subscription's segments"))?;
            list.as_slice()
        }
        Segments::Last { segment, replaces } => {
            if let Some(start) = replaces.filter(|start| *start != segment.start_at) {
                query("DELETE FROM subscription_segments WHERE user_id = $1 AND start_at = $2")
                    .bind(user.as_str())
                    .bind(start)
                    .execute(c)
                    .await
                    .map_err(ctx("failed to replace the subscription's ended segment"))?;
            }
            std::slice::from_ref(segment)
        }
    };
    for s in new {
        query(
            "INSERT INTO subscription_segments (user_id, start_at, end_at, plan_id) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, start_at) DO UPDATE SET end_at = excluded.end_at, \
             plan_id = excluded.plan_id",
        )
        .bind(user.as_str())
        .bind(s.start_at)
        .bind(s.end_at)
        .bind(s.plan_id.as_str())
        .execute(c)
        .await
        .map_err(ctx("failed to write a subscription segment"))?;
    }
    Ok(())
}

/// Takes back what a refunded payment bought: an order refunded in full, or the
/// part of a subscription's periods the refunds add up to. Says whether paid days
/// were taken back (`subscription.revoked`).
pub(crate) async fn revoke<C: Conn>(
    c: &mut C,
    payment: &Payment,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    if let Purpose::Order { order_id } = &payment.purpose {
        // An order is taken back only when refunded in full.
        if payment.status == PaymentStatus::Refunded {
            shop::revoke_order(c, payment, order_id, now).await?;
        }
        return Ok(false);
    }
    let refunded = match payment.status {
        PaymentStatus::Refunded => Refunded::Everything,
        PaymentStatus::PartiallyRefunded => {
            let (sum,) = query(
                "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM refunds \
                 WHERE payment_id = $1 AND status = 'succeeded'",
            )
            .bind(payment.id.as_str())
            .fetch_one::<(i64,)>(c)
            .await
            .map_err(ctx("failed to add up a payment's refunds"))?;
            Refunded::Amount(sum)
        }
        _ => return Ok(false),
    };
    let user = &payment.user_id;
    lock_user(c, user).await?;
    let before = paid_periods(c, user).await?;
    let now = paid_periods::time_of_change(&before, now);
    let mut after = before.clone();
    if !subscription::take_back(&mut after, &payment.id, refunded, now) {
        return Ok(false); // it bought no period, or nothing more is due back
    }
    write_periods(c, user, &changes(user, &before, &after)?, now).await?;
    Ok(true)
}

/// `revoke` for a payment named by its id (`PaymentStore::take_back`).
pub(crate) async fn take_back<C: Conn>(
    c: &mut C,
    id: &PaymentId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let payment = payment(c, id)
        .await?
        .ok_or(StoreError::NotFound("payment"))?;
    if revoke(c, &payment, now).await? {
        let revoked = NewEvent::about_payment(EventType::SubscriptionRevoked, &payment);
        crate::events::emit(c, &[revoked], now).await?;
    }
    Ok(())
}

/// The users who have periods but no segments: those paid before segments were
/// kept.
pub(crate) async fn users_without_segments(c: &mut impl Conn) -> StoreResult<Vec<UserId>> {
    Ok(query(
        "SELECT DISTINCT f.user_id FROM fulfilments f WHERE NOT EXISTS \
         (SELECT 1 FROM subscription_segments s WHERE s.user_id = f.user_id)",
    )
    .fetch_all::<(String,)>(c)
    .await
    .map_err(ctx("failed to find the users whose segments are not kept"))?
    .into_iter()
    .map(|(id,)| UserId::from_trusted(id))
    .collect())
}

/// Lays out a user's periods again and keeps their segments (when the database is
/// migrated), under the user's lock, so that several processes starting at once
/// lay each user out once.
pub(crate) async fn keep_segments_of<C: Conn>(
    c: &mut C,
    user: &UserId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    lock_user(c, user).await?;
    let before = paid_periods(c, user).await?;
    let mut after = before.clone();
    subscription::lay_out(&mut after);
    let now = paid_periods::time_of_change(&before, now);
    write_periods(c, user, &changes(user, &before, &after)?, now).await
}

/// The segments a reader needs at `now` (`subscription::needed_at`).
pub(crate) async fn segments<C: Conn>(
    c: &mut C,
    user: &UserId,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Subscription>> {
    // Before every stored time: SQLite keeps times as text.
    let before_all = match C::BACKEND {
        Backend::Postgres => "'-infinity'",
        Backend::Sqlite => "''",
    };
    Ok(query(&format!(
        "SELECT user_id, plan_id, start_at, end_at FROM subscription_segments \
         WHERE user_id = $1 AND start_at >= COALESCE((SELECT MAX(start_at) \
         FROM subscription_segments WHERE user_id = $1 AND end_at <= $2), {before_all}) \
         ORDER BY start_at"
    ))
    .bind(user.as_str())
    .bind(now)
    .fetch_all::<SubscriptionRow>(c)
    .await
    .map_err(ctx("failed to load the subscription's segments"))?
    .into_iter()
    .map(Subscription::from)
    .collect())
}

pub(crate) async fn paid_periods(c: &mut impl Conn, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
    query(&format!(
        "SELECT {PERIOD_COLUMNS} FROM fulfilments f JOIN payments p ON p.id = f.payment_id \
         WHERE f.user_id = $1"
    ))
    .bind(user.as_str())
    .fetch_all::<PeriodRow>(c)
    .await
    .map_err(ctx("failed to load the paid periods"))?
    .into_iter()
    .map(PaidPeriod::try_from)
    .collect()
}

pub(crate) async fn subscription(
    c: &mut impl Conn,
    user: &UserId,
) -> StoreResult<Option<Subscription>> {
    Ok(
        query("SELECT user_id, plan_id, start_at, end_at FROM subscriptions WHERE user_id = $1")
            .bind(user.as_str())
            .fetch_optional::<SubscriptionRow>(c)
            .await
            .map_err(ctx("failed to load subscription"))?
            .map(Subscription::from),
    )
}
