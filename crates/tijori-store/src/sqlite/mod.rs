//! The embedded default: one SQLite file in WAL mode, through rusqlite.
//!
//! The statements are PostgreSQL's (`queries.rs` and its children) with `?N` for `$N`
//! and no row locks: SQLite has one writer, and every write here runs on it (see
//! `engine`). Each subject has its module of plain functions over a connection; this
//! file maps the Store port onto them, reads where they are asked for and writes
//! through the writer.
//!
//! Why not sqlx, as for PostgreSQL: sqlx runs each SQLite connection on a thread of
//! its own and hands every statement across and back. Under load that was most of the
//! server's CPU, and the one write connection spent a checkout's dozen statements in
//! handoffs while every other write waited (BENCHMARKS.md). sqlx still applies the
//! migrations, so databases made by earlier versions carry on as they are.

use std::str::FromStr;

use anyhow::Context as _;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::Connection as _;

use tijori_core::account::{PasswordHashString, Session, TokenHash, User, Username};
use tijori_core::gateway::{GatewayKind, RawAnswer};
use tijori_core::id::{OrderId, PaymentId, PlanId, ProductId, RefundId, UserId};
use tijori_core::idempotency::{
    Attempt, Claim, Claimant, IdempotencyKey, InstanceId, StoredResponse,
};
use tijori_core::payment::Payment;
use tijori_core::shop::{NewOrder, NewProduct, Order, Product, ReserveError};
use tijori_core::store::{
    AccountStore, AnswerKind, GatewayAnswerRecord, IdempotencyStore, NewUser, NewWebhookDelivery,
    OperatorEvent, OperatorEventKind, OperatorLog, PaymentStore, RecordedDelivery, Refund,
    RefundResolution, RefundStatus, RefundStore, Settled, Settlement, ShopStore, Store, StoreError,
    StoreResult, WebhookDelivery,
};
use tijori_core::subscription::{NewPlan, PaidPeriod, Plan, Subscription};

use crate::db::{run_now, Sqlite};
use crate::rows::FromSqlite;

mod accounts;
mod engine;
mod jobs;
mod mail;
mod payments;
mod shop;

use engine::Engine;
pub use engine::Synchronous;
pub(crate) use engine::{parse_ts, ts};

/// The store on SQLite: one writer thread with group commit, reads in place.
pub struct SqliteStore {
    db: Engine,
    url: String,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file a `sqlite://path` URL names.
    pub async fn connect(url: &str, synchronous: Synchronous) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite database URL {url:?}"))?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            anyhow::bail!(
                "{url:?}: tijori needs a SQLite file (it reads and writes on several \
                 connections); use sqlite://path/to/tijori.db"
            );
        }
        let path = options.get_filename().to_owned();
        let db = tokio::task::spawn_blocking(move || Engine::open(&path, synchronous))
            .await
            .context("the SQLite opener panicked")??;
        Ok(SqliteStore {
            db,
            url: url.to_owned(),
        })
    }

    /// Runs the migrations, then lays out the periods of users paid before segments
    /// were kept.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let options = SqliteConnectOptions::from_str(&self.url)
            .with_context(|| format!("invalid SQLite database URL {:?}", self.url))?
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("failed to open {:?} to migrate it", self.url))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .context("failed to run SQLite migrations")?;
        conn.close()
            .await
            .context("failed to close the migration connection")?;
        let kept = self
            .write(|c| payments::keep_segments(c, Utc::now()))
            .await
            .context("failed to keep the segments of periods paid before they were kept")?;
        if kept > 0 {
            tracing::info!(
                users = kept,
                "laid out the paid periods of users paid before segments were kept"
            );
        }
        Ok(())
    }

    /// Lets the writer finish what is queued, then stops it.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Runs a write with owned arguments on the writer.
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.db.write(op).await
    }

    fn read<T>(&self, op: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        self.db.read(op)
    }

    /// Runs a write written over `Conn` (see `crate::db`) on the writer, in its
    /// transaction.
    async fn write_with<T: Send + 'static>(
        &self,
        op: impl AsyncFnOnce(&mut Sqlite<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.db.write(move |c| run_now(op(&mut Sqlite(c)))).await
    }

    /// Runs a read written over `Conn` on a read connection, here and now.
    fn read_with<T>(
        &self,
        op: impl AsyncFnOnce(&mut Sqlite<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.db.read(|c| run_now(op(&mut Sqlite(c))))
    }
}

// --- Helpers shared by the modules ---------------------------------------------------

fn ctx(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database(anyhow::Error::new(e).context(what))
}

/// A unique-constraint failure is `Conflict`; anything else a database error.
fn db_err(
    what: &'static str,
    conflict: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        if is_constraint(&e, &[UNIQUE, PRIMARY_KEY]) {
            StoreError::Conflict(conflict)
        } else {
            StoreError::Database(anyhow::Error::new(e).context(what))
        }
    }
}

const UNIQUE: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
const FOREIGN_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;

fn is_constraint(e: &rusqlite::Error, kinds: &[i32]) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if kinds.contains(&f.extended_code))
}

/// The row `sql` finds, if any.
fn one<T: FromSqlite>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    what: &'static str,
) -> StoreResult<Option<T>> {
    one_with(c, sql, params, T::from_sqlite, what)
}

fn one_with<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    what: &'static str,
) -> StoreResult<Option<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, row).optional())
        .map_err(ctx(what))
}

/// Every row `sql` finds.
fn all<T: FromSqlite>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    what: &'static str,
) -> StoreResult<Vec<T>> {
    all_with(c, sql, params, T::from_sqlite, what)
}

fn all_with<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    what: &'static str,
) -> StoreResult<Vec<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, row)?.collect())
        .map_err(ctx(what))
}

/// Runs a statement; the number of rows it changed.
fn exec(c: &Connection, sql: &str, params: impl Params, what: &'static str) -> StoreResult<usize> {
    exec_or(c, sql, params, ctx(what))
}

fn exec_or(
    c: &Connection,
    sql: &str,
    params: impl Params,
    err: impl FnOnce(rusqlite::Error) -> StoreError,
) -> StoreResult<usize> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(err)
}

/// An optional time, as stored.
fn opt_ts(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(ts)
}

// --- The port ----------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            one_with(
                c,
                "SELECT 1",
                [],
                |r| r.get::<_, i64>(0),
                "database did not answer",
            )
            .map(drop)
        })
    }
}

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn insert_payment_for(
        &self,
        payment: &Payment,
        attempt: Option<&Attempt>,
    ) -> StoreResult<()> {
        let (payment, attempt) = (payment.clone(), attempt.cloned());
        self.write(move |c| payments::insert_payment(c, &payment, attempt.as_ref()))
            .await
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
        let (id, provider_ref, url, raw) = (
            id.clone(),
            provider_ref.to_owned(),
            payment_url.to_owned(),
            raw.clone(),
        );
        self.write(move |c| {
            payments::record_checkout(c, &id, &provider_ref, &url, expires_at, &raw, now)
        })
        .await
    }

    async fn fail_initiation(
        &self,
        id: &PaymentId,
        reason: &str,
        raw: Option<&RawAnswer>,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment> {
        let (id, reason, raw) = (id.clone(), reason.to_owned(), raw.cloned());
        self.write(move |c| payments::fail_initiation(c, &id, &reason, raw.as_ref(), now))
            .await
    }

    async fn payment(&self, id: &PaymentId) -> StoreResult<Option<Payment>> {
        self.read(|c| payments::payment(c, id))
    }

    async fn payment_by_provider_ref(
        &self,
        gateway: GatewayKind,
        provider_ref: &str,
    ) -> StoreResult<Option<Payment>> {
        self.read(|c| payments::payment_by_provider_ref(c, gateway, provider_ref))
    }

    async fn payments_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Payment>> {
        self.read(|c| payments::payments_for_user(c, user, limit))
    }

    async fn record_answer(
        &self,
        id: &PaymentId,
        kind: AnswerKind,
        raw: &RawAnswer,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (id, raw) = (id.clone(), raw.clone());
        self.write(move |c| payments::insert_answer(c, &id, kind, &raw, now))
            .await
    }

    async fn answers(&self, id: &PaymentId) -> StoreResult<Vec<GatewayAnswerRecord>> {
        self.read(|c| payments::answers(c, id))
    }

    async fn settle(&self, settlement: Settlement) -> StoreResult<Settled> {
        self.write(move |c| payments::settle(c, &settlement)).await
    }

    async fn subscription(&self, user: &UserId) -> StoreResult<Option<Subscription>> {
        self.read(|c| payments::subscription(c, user))
    }

    async fn paid_periods(&self, user: &UserId) -> StoreResult<Vec<PaidPeriod>> {
        self.read(|c| payments::paid_periods(c, user))
    }

    async fn segments(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<Vec<Subscription>> {
        self.read(|c| payments::segments(c, user, now))
    }

    async fn take_back(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        let id = id.clone();
        self.write(move |c| {
            let payment = payments::payment(c, &id)?.ok_or(StoreError::NotFound("payment"))?;
            payments::revoke(c, &payment, now)
        })
        .await
    }

    async fn stale_payments(
        &self,
        checked_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        self.read(|c| jobs::stale_payments(c, checked_before, now, limit))
    }

    async fn claim_lookup(
        &self,
        id: &PaymentId,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |c| jobs::claim_lookup(c, &id, now, not_after))
            .await
    }

    async fn mark_checked(&self, id: &PaymentId, now: DateTime<Utc>) -> StoreResult<()> {
        let id = id.clone();
        self.write(move |c| jobs::mark_checked(c, &id, now)).await
    }
}

#[async_trait]
impl ShopStore for SqliteStore {
    async fn create_product(
        &self,
        product: NewProduct,
        now: DateTime<Utc>,
    ) -> StoreResult<Product> {
        self.write(move |c| shop::create_product(c, product, now))
            .await
    }

    async fn products(&self) -> StoreResult<Vec<Product>> {
        self.read(shop::products)
    }

    async fn product(&self, id: &ProductId) -> StoreResult<Option<Product>> {
        self.read(|c| shop::product(c, id))
    }

    async fn create_order_for(
        &self,
        order: &NewOrder,
        now: DateTime<Utc>,
        attempt: Option<&Attempt>,
    ) -> StoreResult<Result<Order, ReserveError>> {
        let (order, attempt) = (order.clone(), attempt.cloned());
        self.write(move |c| shop::create_order(c, &order, now, attempt.as_ref()))
            .await
    }

    async fn order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        self.read(|c| shop::order(c, id))
    }

    async fn orders_for_user(&self, user: &UserId, limit: u32) -> StoreResult<Vec<Order>> {
        self.read(|c| shop::orders_for_user(c, user, limit))
    }

    async fn open_payment_for_order(
        &self,
        order: &OrderId,
        gateway: GatewayKind,
    ) -> StoreResult<Option<Payment>> {
        self.read(|c| shop::open_payment_for_order(c, order, gateway))
    }

    async fn restock_order(&self, order: &OrderId, now: DateTime<Utc>) -> StoreResult<bool> {
        let order = order.clone();
        self.write(move |c| shop::restock_order(c, &order, now))
            .await
    }

    async fn expire_orders(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<OrderId>> {
        let due = self.read(|c| jobs::orders_due_to_expire(c, now, limit))?;
        let mut expired = Vec::with_capacity(due.len());
        // One transaction each: one order's failure leaves the others expired.
        for id in due {
            let order = id.clone();
            if self
                .write(move |c| jobs::expire_order(c, &order, now))
                .await?
            {
                expired.push(id);
            }
        }
        Ok(expired)
    }
}

#[async_trait]
impl RefundStore for SqliteStore {
    async fn begin_refund(&self, refund: &Refund) -> StoreResult<()> {
        let refund = refund.clone();
        self.write(move |c| shop::begin_refund(c, &refund)).await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (id, detail) = (id.clone(), detail.map(str::to_owned));
        self.write(move |c| shop::finish_refund(c, &id, status, detail.as_deref(), now))
            .await
    }

    async fn refunds_of(&self, payment: &PaymentId) -> StoreResult<Vec<Refund>> {
        self.read(|c| shop::refunds_of(c, payment))
    }

    async fn refund(&self, id: &RefundId) -> StoreResult<Option<Refund>> {
        self.read(|c| shop::refund(c, id))
    }

    async fn settle_refund(
        &self,
        id: &RefundId,
        status: RefundStatus,
        detail: &str,
        resolution: Option<&RefundResolution>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (id, detail, resolution) = (id.clone(), detail.to_owned(), resolution.cloned());
        self.write(move |c| shop::settle_refund(c, &id, status, &detail, resolution.as_ref(), now))
            .await
    }

    async fn unknown_refunds(&self, limit: u32) -> StoreResult<Vec<Refund>> {
        self.read(|c| shop::unknown_refunds(c, limit))
    }

    async fn payments_to_audit(
        &self,
        paid_since: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Payment>> {
        self.read(|c| shop::payments_to_audit(c, paid_since, checked_before, limit))
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        fingerprint: &str,
        claimant: &Claimant,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        let (user, key, fingerprint, claimant) = (
            user.clone(),
            key.clone(),
            fingerprint.to_owned(),
            claimant.clone(),
        );
        self.write(move |c| {
            shop::claim_idempotency_key(c, &user, &key, &fingerprint, &claimant, now)
        })
        .await
    }

    async fn complete_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let (user, key, holder, response) =
            (user.clone(), key.clone(), holder.clone(), response.clone());
        self.write(move |c| shop::complete_idempotency_key(c, &user, &key, &holder, &response))
            .await
    }

    async fn heartbeat(&self, instance: &InstanceId, now: DateTime<Utc>) -> StoreResult<()> {
        let instance = instance.clone();
        self.write(move |c| shop::heartbeat(c, &instance, now))
            .await
    }

    async fn retire_instance(&self, instance: &InstanceId) -> StoreResult<()> {
        let instance = instance.clone();
        self.write(move |c| shop::retire_instance(c, &instance))
            .await
    }

    async fn release_idempotency_key(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        holder: &InstanceId,
    ) -> StoreResult<()> {
        let (user, key, holder) = (user.clone(), key.clone(), holder.clone());
        self.write(move |c| shop::release_idempotency_key(c, &user, &key, &holder))
            .await
    }
}

#[async_trait]
impl OperatorLog for SqliteStore {
    async fn record_webhook(&self, delivery: &NewWebhookDelivery) -> StoreResult<RecordedDelivery> {
        let delivery = delivery.clone();
        self.write(move |c| shop::record_webhook(c, &delivery))
            .await
    }

    async fn finish_webhook(
        &self,
        id: i64,
        payment: Option<&PaymentId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> StoreResult<()> {
        let (payment, outcome, detail) = (
            payment.cloned(),
            outcome.to_owned(),
            detail.map(str::to_owned),
        );
        self.write(move |c| {
            shop::finish_webhook(c, id, payment.as_ref(), &outcome, detail.as_deref())
        })
        .await
    }

    async fn webhook_deliveries(&self, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
        self.read(|c| shop::webhook_deliveries(c, limit))
    }

    async fn record_operator_event(
        &self,
        kind: OperatorEventKind,
        payment: Option<&PaymentId>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (payment, detail) = (payment.cloned(), detail.to_owned());
        self.write(move |c| shop::insert_operator_event(c, kind, payment.as_ref(), &detail, now))
            .await
    }

    async fn operator_events(
        &self,
        include_resolved: bool,
        limit: u32,
    ) -> StoreResult<Vec<OperatorEvent>> {
        self.read(|c| shop::operator_events(c, include_resolved, limit))
    }

    async fn resolve_operator_event(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(move |c| shop::resolve_operator_event(c, id, now))
            .await
    }

    async fn resolve_operator_events_naming(
        &self,
        kind: OperatorEventKind,
        payment: &PaymentId,
        named: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (payment, named) = (payment.clone(), named.to_owned());
        self.write(move |c| {
            exec(
                c,
                "UPDATE operator_events SET resolved_at = ?4 WHERE resolved_at IS NULL \
                 AND kind = ?1 AND payment_id = ?2 AND instr(detail, ?3) > 0",
                rusqlite::params![kind.as_str(), payment.as_str(), named, ts(now)],
                "failed to resolve operator events",
            )
            .map(|_| ())
        })
        .await
    }
}
