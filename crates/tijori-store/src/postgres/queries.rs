// The Store on PostgreSQL, with sqlx (included by `postgres.rs`; `super::Db` names the
// backend). The SQLite store (`sqlite/`) runs the same statements through rusqlite;
// the rows both read, and their conversions, live in `crate::rows`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{FromRow, QueryBuilder};

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{OrderId, PaymentId, PlanId, ProductId, RefundId, UserId};
use tijori_core::idempotency::{
    Attempt, Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse,
};
use tijori_core::payment::{Effect, Payment, PaymentStatus, Purpose};
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{
    AccountStore, AnswerKind, GatewayAnswerRecord, IdempotencyStore, NewUser, NewWebhookDelivery,
    OperatorEvent, OperatorEventKind, OperatorLog, PaymentStore, RecordedDelivery, Refund,
    RefundResolution, RefundStatus, RefundStore, Settled, Settlement, ShopStore, Store, StoreError,
    StoreResult, WebhookDelivery,
};
use tijori_core::subscription::{
    self, NewPlan, PaidPeriod, Plan, PlanChange, Refunded, Subscription, Tail,
};

use super::{Db, DbStore, BEGIN_WRITE, LOCK_ROW};
use crate::paid_periods::{self, changes, Writes};
use crate::rows::{
    PaymentRow, PeriodRow, PlanRow, SubscriptionRow, UserRow, PAYMENT_COLUMNS, PERIOD_COLUMNS,
    PLAN_COLUMNS, USER_COLUMNS,
};

type Tx = sqlx::Transaction<'static, Db>;

// Parts of the same store, split by subject.
mod jobs;
mod shop;

/// Maps a unique-constraint failure to `Conflict`, and anything else to a database
/// error with the context of what we were doing.
fn db_err(what: &'static str, conflict: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(conflict),
        _ => StoreError::Database(anyhow::Error::new(e).context(what)),
    }
}

fn ctx(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Database(anyhow::Error::new(e).context(what))
}

impl DbStore {
    async fn begin_write(&self) -> StoreResult<Tx> {
        self.writer
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(ctx("failed to begin a write transaction"))
    }

    async fn payment_in(tx: &mut Tx, id: &PaymentId) -> StoreResult<Option<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(ctx("failed to load payment"))?
        .map(Payment::try_from)
        .transpose()
    }

    async fn insert_answer(
        tx: &mut Tx,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO gateway_answers (payment_id, kind, http_status, body, received_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str())
        .bind(kind.as_str())
        .bind(i32::from(raw.http_status))
        .bind(&raw.body)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StoreError::NotFound("payment")
            }
            _ => StoreError::Database(
                anyhow::Error::new(e).context("failed to record gateway answer"),
            ),
        })?;
        Ok(())
    }

    /// Serialises every change to one user's subscription. The user's row always
    /// exists, unlike the subscription's on a first purchase: locking the
    /// subscription row would let two first purchases both see "none" and the second
    /// overwrite the first's grant.
    async fn lock_user(tx: &mut Tx, user: &UserId) -> StoreResult<()> {
        sqlx::query(&format!("SELECT id FROM users WHERE id = $1{LOCK_ROW}"))
            .bind(user.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(ctx("failed to lock the user's subscription"))?
            .ok_or(StoreError::NotFound("user"))?;
        Ok(())
    }

    /// Grants what the payment bought. For an order that can no longer take the money
    /// the payment is held for review instead (and said why).
    async fn fulfil(
        tx: &mut Tx,
        payment: &Payment,
        now: DateTime<Utc>,
    ) -> StoreResult<shop::OrderFulfilment> {
        match &payment.purpose {
            Purpose::Subscription { plan_id, change } => {
                Self::grant_subscription(tx, payment, plan_id, *change, now).await?;
                Ok(shop::OrderFulfilment::Paid)
            }
            Purpose::Order { order_id } => Self::fulfil_order(tx, payment, order_id, now).await,
        }
    }

    /// The user's paid periods, read by a statement of its own once the user's row is
    /// locked: a statement that waited for the lock would see the others' rows as
    /// they were before it waited.
    async fn periods_in(tx: &mut Tx, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
        Self::periods_of(&mut **tx, user).await
    }

    /// A user's paid periods, on the pool or in a transaction.
    async fn periods_of<'e>(
        executor: impl sqlx::Executor<'e, Database = Db>,
        user: &UserId,
    ) -> StoreResult<Vec<PaidPeriod>> {
        sqlx::query_as::<_, PeriodRow>(&format!(
            "SELECT {PERIOD_COLUMNS} FROM fulfilments f JOIN payments p ON p.id = f.payment_id \
             WHERE f.user_id = $1"
        ))
        .bind(user.as_str())
        .fetch_all(executor)
        .await
        .map_err(ctx("failed to load the paid periods"))?
        .into_iter()
        .map(PaidPeriod::try_from)
        .collect()
    }

    async fn grant_subscription(
        tx: &mut Tx,
        payment: &Payment,
        plan_id: &PlanId,
        change: PlanChange,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let plan: Plan = sqlx::query_as::<_, PlanRow>(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"
        ))
        .bind(plan_id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(ctx("failed to load plan to fulfil"))?
        .ok_or(StoreError::NotFound("plan"))?
        .try_into()?;
        // Two payments of one user settling at once add their periods one after the
        // other: the second waits here for the first to commit.
        let user = &payment.user_id;
        Self::lock_user(tx, user).await?;
        let purchase = subscription::Purchase {
            payment_id: payment.id.clone(),
            plan: &plan,
            price: payment.amount,
            change,
        };
        let tail = Self::tail_in(tx, user).await?;
        if let Some(appended) = subscription::append(user, &tail, &purchase, now) {
            let now = tail.latest_change.map_or(now, |c| c.max(now));
            return Self::write_periods(tx, user, &Writes::appended(appended), now).await;
        }
        let before = Self::periods_in(tx, user).await?;
        let now = paid_periods::time_of_change(&before, now);
        let mut after = before.clone();
        subscription::grant(&mut after, &purchase, now);
        Self::write_periods(tx, user, &changes(user, &before, &after)?, now).await
    }

    /// What a purchase placed after everything needs (`subscription::Tail`), by
    /// look-ups in indexes whatever the number of periods; read once the user's row
    /// is locked, by a statement of its own (see `periods_in`).
    async fn tail_in(tx: &mut Tx, user: &UserId) -> StoreResult<Tail> {
        type Row = (
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT (SELECT MAX(created_at) FROM fulfilments WHERE user_id = $1), \
             (SELECT MAX(revoked_at) FROM fulfilments WHERE user_id = $1 \
             AND revoked_at IS NOT NULL), \
             s.plan_id, s.start_at, s.end_at, r.plan_id, r.start_at, r.end_at \
             FROM users u \
             LEFT JOIN subscription_segments s ON s.user_id = u.id AND s.start_at = \
             (SELECT MAX(start_at) FROM subscription_segments WHERE user_id = u.id) \
             LEFT JOIN subscriptions r ON r.user_id = u.id \
             WHERE u.id = $1",
        )
        .bind(user.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(ctx("failed to load the end of the paid periods"))?;
        let (granted, revoked, s_plan, s_start, s_end, r_plan, r_start, r_end) =
            row.ok_or(StoreError::NotFound("user"))?;
        let segment = |plan: Option<String>, start, end| match (plan, start, end) {
            (Some(plan), Some(start_at), Some(end_at)) => Some(Subscription {
                user_id: user.clone(),
                plan_id: PlanId::from_trusted(plan),
                start_at,
                end_at,
            }),
            _ => None,
        };
        Ok(Tail {
            latest_change: granted.max(revoked),
            last: segment(s_plan, s_start, s_end),
            run: segment(r_plan, r_start, r_end),
        })
    }

    /// Writes what a grant or a refund changed in the user's periods, and the
    /// `subscriptions` row they now project to, in one statement. The primary key on
    /// fulfilments' payment_id makes a new period the exactly-once guard: should the
    /// status compare-and-set ever be bypassed, a second grant fails here and rolls
    /// the whole settlement back.
    async fn write_periods(
        tx: &mut Tx,
        user: &UserId,
        writes: &Writes,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (changed, added, run) = (&writes.changed, writes.added.as_ref(), &writes.run);
        let (segments_from, segments) = writes.segments.as_replacement();
        let col = |f: &dyn Fn(&PaidPeriod) -> i64| changed.iter().map(f).collect::<Vec<i64>>();
        sqlx::query(
            "WITH changed AS (UPDATE fulfilments f SET period_start = u.period_start, \
             period_end = u.period_end, taken_seconds = u.taken, moved_seconds = u.moved, \
             credit_to = u.credit_to, credit_seconds = u.credit, credit_in = u.credit_in, \
             refunded_minor = u.refunded, revoked_at = u.revoked_at \
             FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], \
             $5::bigint[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], \
             $10::timestamptz[]) \
             AS u(payment_id, period_start, period_end, taken, moved, credit_to, credit, \
             credit_in, refunded, revoked_at) WHERE f.payment_id = u.payment_id), \
             added AS (INSERT INTO fulfilments (payment_id, user_id, plan_id, granted_seconds, \
             period_start, period_end, created_at, credit_in) \
             SELECT $11::text, $12::text, $13::text, $14::bigint, $15::timestamptz, \
             $16::timestamptz, $17::timestamptz, $18::bigint WHERE $11::text IS NOT NULL), \
             gone AS (DELETE FROM subscription_segments WHERE user_id = $12 \
             AND ($23::timestamptz IS NULL OR start_at >= $23 OR end_at <= start_at) \
             AND start_at <> ALL($24::timestamptz[])), \
             kept AS (INSERT INTO subscription_segments (user_id, start_at, end_at, plan_id) \
             SELECT $12, * FROM UNNEST($24::timestamptz[], $25::timestamptz[], $26::text[]) \
             ON CONFLICT (user_id, start_at) DO UPDATE SET end_at = excluded.end_at, \
             plan_id = excluded.plan_id) \
             INSERT INTO subscriptions (user_id, plan_id, start_at, end_at, updated_at) \
             VALUES ($12, $19, $20, $21, $22) \
             ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id, \
             start_at = excluded.start_at, end_at = excluded.end_at, \
             updated_at = excluded.updated_at",
        )
        .bind(
            changed
                .iter()
                .map(|p| p.payment_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(changed.iter().map(|p| p.start_at).collect::<Vec<_>>())
        .bind(changed.iter().map(|p| p.end_at).collect::<Vec<_>>())
        .bind(col(&|p| p.taken_seconds))
        .bind(col(&|p| p.moved_seconds))
        .bind(
            changed
                .iter()
                .map(|p| p.credit_to.as_ref().map(|c| c.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(col(&|p| p.credit_seconds))
        .bind(col(&|p| p.credit_in))
        .bind(col(&|p| p.refunded_minor))
        .bind(changed.iter().map(|p| p.revoked_at).collect::<Vec<_>>())
        .bind(added.map(|p| p.payment_id.as_str()))
        .bind(user.as_str())
        .bind(added.map(|p| p.plan_id.as_str()))
        .bind(added.map(|p| p.granted_seconds))
        .bind(added.map(|p| p.start_at))
        .bind(added.map(|p| p.end_at))
        .bind(added.map(|p| p.granted_at))
        .bind(added.map(|p| p.credit_in))
        .bind(run.plan_id.as_str())
        .bind(run.start_at)
        .bind(run.end_at)
        .bind(now)
        .bind(segments_from)
        .bind(segments.iter().map(|s| s.start_at).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.end_at).collect::<Vec<_>>())
        .bind(
            segments
                .iter()
                .map(|s| s.plan_id.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await
        .map_err(db_err("failed to write the paid periods", "fulfilment"))?;
        Ok(())
    }

    async fn revoke(tx: &mut Tx, payment: &Payment, now: DateTime<Utc>) -> StoreResult<()> {
        if let Purpose::Order { order_id } = &payment.purpose {
            // An order is taken back only when refunded in full.
            if payment.status == PaymentStatus::Refunded {
                return Self::revoke_order(tx, payment, order_id, now).await;
            }
            return Ok(());
        }
        let refunded = match payment.status {
            PaymentStatus::Refunded => Refunded::Everything,
            PaymentStatus::PartiallyRefunded => {
                let (sum,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(SUM(amount_minor), 0)::BIGINT FROM refunds \
                     WHERE payment_id = $1 AND status = 'succeeded'",
                )
                .bind(payment.id.as_str())
                .fetch_one(&mut **tx)
                .await
                .map_err(ctx("failed to add up a payment's refunds"))?;
                Refunded::Amount(sum)
            }
            _ => return Ok(()),
        };
        let user = &payment.user_id;
        Self::lock_user(tx, user).await?;
        let before = Self::periods_in(tx, user).await?;
        let now = paid_periods::time_of_change(&before, now);
        let mut after = before.clone();
        if !subscription::take_back(&mut after, &payment.id, refunded, now) {
            return Ok(()); // it bought no period, or nothing more is due back
        }
        Self::write_periods(tx, user, &changes(user, &before, &after)?, now).await
    }

    /// Lays out again, and keeps the segments of, the periods of every user who has
    /// periods but no segments: those paid before segments were kept. Runs when the
    /// database is migrated; each user under their lock, so that several processes
    /// starting at once lay each user out once.
    pub(super) async fn keep_segments(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let users: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT f.user_id FROM fulfilments f WHERE NOT EXISTS \
             (SELECT 1 FROM subscription_segments s WHERE s.user_id = f.user_id)",
        )
        .fetch_all(&self.writer)
        .await
        .map_err(ctx("failed to find the users whose segments are not kept"))?;
        for (user,) in &users {
            let user = UserId::from_trusted(user.clone());
            let mut tx = self.begin_write().await?;
            Self::lock_user(&mut tx, &user).await?;
            let before = Self::periods_in(&mut tx, &user).await?;
            let mut after = before.clone();
            subscription::lay_out(&mut after);
            let now = paid_periods::time_of_change(&before, now);
            Self::write_periods(&mut tx, &user, &changes(&user, &before, &after)?, now).await?;
            tx.commit()
                .await
                .map_err(ctx("failed to commit the kept segments"))?;
        }
        Ok(users.len())
    }
}

#[async_trait]
impl Store for DbStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(ctx("database did not answer"))?;
        Ok(())
    }
}

#[async_trait]
impl PaymentStore for DbStore {
    async fn insert_payment_for(&self, p: &Payment, attempt: Option<&Attempt>) -> StoreResult<()> {
        let (plan_id, order_id, change) = match &p.purpose {
            Purpose::Subscription { plan_id, change } => {
                (Some(plan_id.as_str()), None, Some(change.as_str()))
            }
            Purpose::Order { order_id } => (None, Some(order_id.as_str()), None),
        };
        // Without a key, one statement (no transaction of its own, as it was).
        let mut tx = match attempt {
            Some(_) => Some(self.begin_write().await?),
            None => None,
        };
        let insert = sqlx::query(
            "INSERT INTO payments (id, user_id, gateway, purpose, plan_id, amount_minor, currency, \
             status, provider_ref, provider_txn_id, payment_url, expires_at, status_reason, \
             created_at, updated_at, order_id, plan_change) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
        .bind(change);
        match (&mut tx, attempt) {
            (Some(tx), Some(attempt)) => {
                insert
                    .execute(&mut **tx)
                    .await
                    .map_err(db_err("failed to insert payment", "payment"))?;
                Self::note_attempt(tx, attempt, Some(&p.id), None).await?;
            }
            _ => {
                insert
                    .execute(&self.writer)
                    .await
                    .map_err(db_err("failed to insert payment", "payment"))?;
            }
        }
        if let Some(tx) = tx {
            tx.commit()
                .await
                .map_err(ctx("failed to commit a payment"))?;
        }
        Ok(())
    }

    async fn record_checkout(
        &self,
        id: &PaymentId,
        provider_ref: &str,
        payment_url: &str,
        expires_at: Option<DateTime<Utc>>,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        // One statement (atomic on its own), not a transaction of two: each round trip
        // to PostgreSQL costs about as much as the work. The answer is kept only with
        // the checkout it opened.
        let row = sqlx::query_as::<_, PaymentRow>(&format!(
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
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err(
            "failed to record checkout",
            "payment with this provider reference",
        ))?
        .ok_or(StoreError::NotFound("payment awaiting its checkout"))?;
        row.try_into()
    }

    async fn fail_initiation(
        &self,
        id: &PaymentId,
        reason: &str,
        raw: Option<&RawAnswer>,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        let mut tx = self.begin_write().await?;
        if let Some(raw) = raw {
            Self::insert_answer(&mut tx, id, AnswerKind::Initiate, raw, now).await?;
        }
        let row = sqlx::query_as::<_, PaymentRow>(&format!(
            "UPDATE payments SET status = 'failed', status_reason = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'initiated' AND provider_ref IS NULL RETURNING {PAYMENT_COLUMNS}"
        ))
        .bind(id.as_str())
        .bind(reason)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ctx("failed to mark payment failed"))?
        .ok_or(StoreError::NotFound("payment awaiting its checkout"))?;
        tx.commit()
            .await
            .map_err(ctx("failed to commit failed initiation"))?;
        row.try_into()
    }

    async fn payment(&self, id: &PaymentId) -> StoreResult<Option<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(ctx("failed to load payment"))?
        .map(Payment::try_from)
        .transpose()
    }

    async fn payment_by_provider_ref(
        &self,
        gateway: GatewayKind,
        provider_ref: &str,
    ) -> StoreResult<Option<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE gateway = $1 AND provider_ref = $2"
        ))
        .bind(gateway.as_str())
        .bind(provider_ref)
        .fetch_optional(&self.reader)
        .await
        .map_err(ctx("failed to load payment by provider reference"))?
        .map(Payment::try_from)
        .transpose()
    }

    async fn payments_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Payment>> {
        sqlx::query_as::<_, PaymentRow>(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(user.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list payments"))?
        .into_iter()
        .map(Payment::try_from)
        .collect()
    }

    async fn record_answer(
        &self,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        Self::insert_answer(&mut tx, id, kind, raw, now).await?;
        tx.commit()
            .await
            .map_err(ctx("failed to commit gateway answer"))
    }

    async fn answers(&self, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>> {
        #[derive(FromRow)]
        struct Row {
            kind: String,
            http_status: i32,
            body: String,
            received_at: DateTime<Utc>,
        }
        Ok(sqlx::query_as::<_, Row>(
            "SELECT kind, http_status, body, received_at FROM gateway_answers WHERE payment_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to list gateway answers"))?
        .into_iter()
        .map(|r| GatewayAnswerRecord {
            kind: r.kind,
            http_status: u16::try_from(r.http_status).unwrap_or(0),
            body: r.body,
            received_at: r.received_at,
        })
        .collect())
    }

    async fn settle(&self, settlement: Settlement) -> StoreResult<Settled> {
        let (id, transition, provider_txn_id, kind, raw, now) = (
            &settlement.payment,
            settlement.transition.as_ref(),
            settlement.provider_txn_id.as_deref(),
            settlement.kind,
            &settlement.raw,
            settlement.now,
        );
        let mut tx = self.begin_write().await?;
        let looked_up = kind == AnswerKind::Lookup;
        let mut changed = None;
        if let Some(t) = transition {
            // The compare-and-set: only a payment still in one of `t.from` moves. A
            // concurrent settle blocks on the row lock and then sees the new status,
            // so it matches nothing. The answer is recorded, and every tijori process
            // told of the change (on commit), by the same statement.
            let mut q = QueryBuilder::<Db>::new(
                "WITH answer AS (INSERT INTO gateway_answers (payment_id, kind, http_status, \
                 body, received_at) VALUES (",
            );
            q.push_bind(id.as_str())
                .push(", ")
                .push_bind(kind.as_str())
                .push(", ")
                .push_bind(i32::from(raw.http_status))
                .push(", ")
                .push_bind(&raw.body)
                .push(", ")
                .push_bind(now)
                .push(")), moved AS (UPDATE payments SET status = ")
                .push_bind(t.to.as_str())
                .push(", status_reason = ")
                .push_bind(t.reason.as_deref())
                .push(", provider_txn_id = COALESCE(")
                .push_bind(provider_txn_id)
                .push(", provider_txn_id), updated_at = ")
                .push_bind(now)
                .push(", checked_at = CASE WHEN ")
                .push_bind(looked_up)
                .push(" THEN ")
                .push_bind(now)
                .push(" ELSE checked_at END WHERE id = ")
                .push_bind(id.as_str())
                .push(" AND status IN (");
            let mut statuses = q.separated(", ");
            for s in t.from {
                statuses.push_bind(s.as_str());
            }
            q.push(format!(
                ") RETURNING {PAYMENT_COLUMNS}) SELECT moved.*, \
                 pg_notify('tijori_payment_changes', moved.id) FROM moved"
            ));
            let row = q
                .build_query_as::<PaymentRow>()
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                        StoreError::NotFound("payment")
                    }
                    _ => ctx("failed to move payment status")(e),
                })?;
            if let Some(row) = row {
                let mut payment = Payment::try_from(row)?;
                match t.effect {
                    Effect::Fulfil => {
                        if let shop::OrderFulfilment::Held(reason) =
                            Self::fulfil(&mut tx, &payment, now).await?
                        {
                            payment = Self::hold_for_review(&mut tx, id, &reason, now).await?;
                        }
                    }
                    Effect::Revoke => Self::revoke(&mut tx, &payment, now).await?,
                    Effect::None => {}
                }
                // Money held for review is an operator's job: put it on their list in
                // the same transaction, so it cannot be settled and forgotten.
                if payment.status == PaymentStatus::NeedsReview {
                    let detail = payment
                        .status_reason
                        .clone()
                        .unwrap_or_else(|| "held for review".into());
                    Self::insert_operator_event(
                        &mut *tx,
                        OperatorEventKind::NeedsReview,
                        Some(id),
                        &detail,
                        now,
                    )
                    .await?;
                }
                changed = Some(payment);
            }
        }
        let changed_now = changed.is_some();
        let payment = match changed {
            Some(p) => p,
            None => {
                // Nothing moved (no transition, or another settle got there first):
                // the answer is still kept, and a lookup still counts as a check.
                if transition.is_none() {
                    Self::insert_answer(&mut tx, id, kind, raw, now).await?;
                }
                if looked_up {
                    sqlx::query("UPDATE payments SET checked_at = $2 WHERE id = $1")
                        .bind(id.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(ctx("failed to note a payment's check"))?;
                }
                Self::payment_in(&mut tx, id)
                    .await?
                    .ok_or(StoreError::NotFound("payment"))?
            }
        };
        tx.commit()
            .await
            .map_err(ctx("failed to commit settlement"))?;
        Ok(Settled {
            payment,
            changed: changed_now,
        })
    }

    async fn subscription(&self, user: &UserId) -> StoreResult<Option<Subscription>> {
        Ok(sqlx::query_as::<_, SubscriptionRow>(
            "SELECT user_id, plan_id, start_at, end_at FROM subscriptions WHERE user_id = $1",
        )
        .bind(user.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(ctx("failed to load subscription"))?
        .map(Subscription::from))
    }

    async fn paid_periods(&self, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
        Self::periods_of(&self.reader, user).await
    }

    async fn segments(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Subscription>> {
        Ok(sqlx::query_as::<_, SubscriptionRow>(
            "SELECT user_id, plan_id, start_at, end_at FROM subscription_segments \
             WHERE user_id = $1 AND start_at >= COALESCE((SELECT MAX(start_at) \
             FROM subscription_segments WHERE user_id = $1 AND end_at <= $2), '-infinity') \
             ORDER BY start_at",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_all(&self.reader)
        .await
        .map_err(ctx("failed to load the subscription's segments"))?
        .into_iter()
        .map(Subscription::from)
        .collect())
    }

    async fn take_back(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let payment = Self::payment_in(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound("payment"))?;
        Self::revoke(&mut tx, &payment, now).await?;
        tx.commit()
            .await
            .map_err(ctx("failed to commit a refund's take-back"))
    }

    async fn stale_payments(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        self.stale_payments_impl(checked_before, now, limit).await
    }

    async fn claim_lookup(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.claim_lookup_impl(id, now, not_after).await
    }

    async fn mark_checked(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        self.mark_checked_impl(id, now).await
    }
}

#[async_trait]
impl ShopStore for DbStore {
    async fn create_product(
        &self,
        product: NewProduct,
        now: DateTime<Utc>,
    ) -> StoreResult<Product> {
        self.create_product_impl(product, now).await
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        self.products_impl().await
    }

    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        self.product_impl(id).await
    }

    async fn create_order_for(
        &self,
        order: &NewOrder,
        now: DateTime<Utc>,
        attempt: Option<&Attempt>,
    ) -> StoreResult<Result<Order, ReserveError>> {
        self.create_order_impl(order, now, attempt).await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        self.order_impl(id).await
    }

    async fn orders_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Order>> {
        self.orders_for_user_impl(user, limit).await
    }

    async fn open_payment_for_order(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>> {
        self.open_payment_for_order_impl(order, gateway).await
    }

    async fn restock_order(&self, order: &OrderId, now: DateTime<Utc>) -> StoreResult<bool> {
        self.restock_order_impl(order, now).await
    }

    async fn expire_orders(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OrderId>> {
        self.expire_orders_impl(now, limit).await
    }
}

#[async_trait]
impl RefundStore for DbStore {
    async fn begin_refund(&self, refund: &Refund) -> StoreResult<()> {
        self.begin_refund_impl(refund).await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.finish_refund_impl(id, status, detail, now).await
    }

    async fn refunds_of(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
        self.refunds_of_impl(payment).await
    }

    async fn refund(&self, id: &RefundId) -> StoreResult<Option<Refund>> {
        self.refund_impl(id).await
    }

    async fn settle_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: &str,
        resolution: Option<&RefundResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.settle_refund_impl(id, status, detail, resolution, now)
            .await
    }

    async fn unknown_refunds(&self, limit: u32) -> StoreResult<Vec<Refund>> {
        self.unknown_refunds_impl(limit).await
    }

    async fn payments_to_audit(
        &self,
        paid_since: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        self.payments_to_audit_impl(paid_since, checked_before, limit)
            .await
    }
}

#[async_trait]
impl IdempotencyStore for DbStore {
    async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        self.claim_idempotency_key_impl(user, key, fingerprint, claimant, now)
            .await
    }

    async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        self.complete_idempotency_key_impl(user, key, holder, response)
            .await
    }

    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
        self.heartbeat_impl(instance, now).await
    }

    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()> {
        self.retire_instance_impl(instance).await
    }

    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()> {
        self.release_idempotency_key_impl(user, key, holder).await
    }
}

#[async_trait]
impl OperatorLog for DbStore {
    async fn record_webhook(&self, delivery: &NewWebhookDelivery) -> StoreResult<RecordedDelivery> {
        self.record_webhook_impl(delivery).await
    }

    async fn finish_webhook(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        self.finish_webhook_impl(id, payment, outcome, detail).await
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.webhook_deliveries_impl(limit).await
    }

    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        Self::insert_operator_event(&self.writer, kind, payment, detail, now).await
    }

    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>> {
        self.operator_events_impl(include_resolved, limit).await
    }

    async fn resolve_operator_event(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.resolve_operator_event_impl(id, now).await
    }

    async fn resolve_operator_events_naming(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        named: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE operator_events SET resolved_at = $4 WHERE resolved_at IS NULL \
             AND kind = $1 AND payment_id = $2 AND strpos(detail, $3) > 0",
        )
        .bind(kind.as_str())
        .bind(payment.as_str())
        .bind(named)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(ctx("failed to resolve operator events"))?;
        Ok(())
    }
}
