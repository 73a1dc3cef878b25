//! The rows both backends read, and how they become domain values. PostgreSQL reads
//! them with sqlx (`FromRow`), SQLite with rusqlite (`from_sqlite`); either way a value
//! that does not parse is reported as corruption, never guessed at.

use chrono::{DateTime, Utc};

use tijori_core::account::{Email, User, Username};
use tijori_core::id::{OrderId, PaymentId, PlanId, ProductId, UserId};
use tijori_core::jobs::Job;
use tijori_core::mail::OutboxMail;
use tijori_core::money::{Currency, Money};
use tijori_core::payment::{CheckoutKind, Payment, Purpose};
use tijori_core::shop::{Order, OrderItem, Product};
use tijori_core::store::{OperatorEvent, OperatorEventKind, StoreError, StoreResult};
use tijori_core::subscription::{PaidPeriod, Plan, PlanChange, Subscription};

/// A value read back from our own database that does not parse is corruption, not
/// bad input: fail loudly with what and where.
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Database(anyhow::anyhow!("corrupt {what} in database: {value:?}"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) is_admin: bool,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) time_zone: Option<String>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId::from_trusted(r.id),
            username: Username::from_trusted(r.username),
            email: Email::from_trusted(r.email),
            is_admin: r.is_admin,
            created_at: r.created_at,
            time_zone: r.time_zone,
        }
    }
}

pub(crate) const USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.is_admin, u.created_at, u.time_zone";

#[derive(sqlx::FromRow)]
pub(crate) struct PlanRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) price_minor: i64,
    pub(crate) currency: String,
    pub(crate) duration_days: i32,
    pub(crate) active: bool,
    pub(crate) created_at: DateTime<Utc>,
}

impl TryFrom<PlanRow> for Plan {
    type Error = StoreError;

    fn try_from(r: PlanRow) -> Result<Self, StoreError> {
        let currency: Currency = r
            .currency
            .parse()
            .map_err(|_| corrupt("plan currency", &r.currency))?;
        Ok(Plan {
            id: PlanId::from_trusted(r.id),
            name: r.name,
            description: r.description,
            price: Money::from_minor(r.price_minor, currency)
                .map_err(|_| corrupt("plan price", &r.price_minor.to_string()))?,
            duration_days: u32::try_from(r.duration_days)
                .map_err(|_| corrupt("plan duration", &r.duration_days.to_string()))?,
            active: r.active,
            created_at: r.created_at,
        })
    }
}

pub(crate) const PLAN_COLUMNS: &str =
    "id, name, description, price_minor, currency, duration_days, active, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) gateway: String,
    pub(crate) purpose: String,
    pub(crate) plan_id: Option<String>,
    pub(crate) order_id: Option<String>,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    pub(crate) status: String,
    pub(crate) checkout: String,
    pub(crate) provider_ref: Option<String>,
    pub(crate) provider_txn_id: Option<String>,
    pub(crate) payment_url: Option<String>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) status_reason: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) plan_change: Option<String>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;

    fn try_from(r: PaymentRow) -> Result<Self, StoreError> {
        let currency: Currency = r
            .currency
            .parse()
            .map_err(|_| corrupt("payment currency", &r.currency))?;
        let purpose = match (r.purpose.as_str(), r.plan_id, r.order_id) {
            ("subscription", Some(plan_id), _) => Purpose::Subscription {
                plan_id: PlanId::from_trusted(plan_id),
                // Payments made before the choice existed queue, as never losing days
                // requires.
                change: match r.plan_change.as_deref() {
                    None => PlanChange::Queue,
                    Some(text) => {
                        PlanChange::parse(text).ok_or_else(|| corrupt("plan change", text))?
                    }
                },
            },
            ("order", _, Some(order_id)) => Purpose::Order {
                order_id: OrderId::from_trusted(order_id),
            },
            (other, _, _) => return Err(corrupt("payment purpose", other)),
        };
        Ok(Payment {
            id: PaymentId::from_trusted(r.id),
            user_id: UserId::from_trusted(r.user_id),
            gateway: r
                .gateway
                .parse()
                .map_err(|_| corrupt("payment gateway", &r.gateway))?,
            purpose,
            amount: Money::from_minor(r.amount_minor, currency)
                .map_err(|_| corrupt("payment amount", &r.amount_minor.to_string()))?,
            status: r
                .status
                .parse()
                .map_err(|_| corrupt("payment status", &r.status))?,
            checkout: CheckoutKind::parse(&r.checkout)
                .ok_or_else(|| corrupt("payment checkout", &r.checkout))?,
            provider_ref: r.provider_ref,
            provider_txn_id: r.provider_txn_id,
            payment_url: r.payment_url,
            expires_at: r.expires_at,
            status_reason: r.status_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) const PAYMENT_COLUMNS: &str =
    "id, user_id, gateway, purpose, plan_id, order_id, amount_minor, currency, \
     status, provider_ref, provider_txn_id, payment_url, expires_at, status_reason, created_at, \
     updated_at, plan_change, checkout";

/// The reconciler's question as SQL, for either backend (`p` is `$` or `?`): payments
/// nobody has looked at since `{p}1` (and created before then), oldest first, at most
/// `{p}2`, that `Payment::worth_looking_up` would look up: the open ones, and the
/// failed ones on a gateway that takes another attempt on the same checkout
/// (`RETRY_AFTER_FAILURE`) while that checkout lives (its own expiry after `{p}4`,
/// now, or, without one, opened after `{p}3`, now less `CHECKOUT_LIFETIME_HOURS`).
/// Two branches, so each keeps to its partial index.
pub(crate) fn stale_payments_sql(p: &str) -> String {
    use tijori_core::payment::{recheckable_statuses, PaymentStatus, RETRY_AFTER_FAILURE};
    let not_looked_at = format!(
        "provider_ref IS NOT NULL AND created_at < {p}1 \
         AND (checked_at IS NULL OR checked_at < {p}1)"
    );
    let mut sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments \
         WHERE status IN ('initiated', 'pending') AND {not_looked_at}"
    );
    let retrying: Vec<String> = RETRY_AFTER_FAILURE
        .iter()
        .filter(|g| recheckable_statuses(**g).contains(&PaymentStatus::Failed))
        .map(|g| format!("'{}'", g.as_str()))
        .collect();
    if !retrying.is_empty() {
        sql = format!(
            "SELECT * FROM ({sql} UNION ALL SELECT {PAYMENT_COLUMNS} FROM payments \
             WHERE status = 'failed' AND gateway IN ({}) AND {not_looked_at} \
             AND CASE WHEN expires_at IS NULL THEN created_at > {p}3 \
             ELSE expires_at > {p}4 END) AS stale",
            retrying.join(", ")
        );
    }
    format!("{sql} ORDER BY created_at, id LIMIT {p}2")
}

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriptionRow {
    pub(crate) user_id: String,
    pub(crate) plan_id: String,
    pub(crate) start_at: DateTime<Utc>,
    pub(crate) end_at: DateTime<Utc>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Subscription {
            user_id: UserId::from_trusted(r.user_id),
            plan_id: PlanId::from_trusted(r.plan_id),
            start_at: r.start_at,
            end_at: r.end_at,
        }
    }
}

/// A paid period: a fulfilment and the price its payment paid.
#[derive(sqlx::FromRow)]
pub(crate) struct PeriodRow {
    pub(crate) payment_id: String,
    pub(crate) plan_id: String,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) granted_seconds: i64,
    pub(crate) taken_seconds: i64,
    pub(crate) moved_seconds: i64,
    pub(crate) credit_to: Option<String>,
    pub(crate) credit_seconds: i64,
    pub(crate) credit_in: i64,
    pub(crate) refunded_minor: i64,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) period_start: DateTime<Utc>,
    pub(crate) period_end: DateTime<Utc>,
}

/// The columns of `PeriodRow`, from `fulfilments f JOIN payments p`.
pub(crate) const PERIOD_COLUMNS: &str =
    "f.payment_id, f.plan_id, p.amount_minor, p.currency, f.created_at, f.granted_seconds, \
     f.taken_seconds, f.moved_seconds, f.credit_to, f.credit_seconds, f.credit_in, \
     f.refunded_minor, \
     f.revoked_at, f.period_start, f.period_end";

impl TryFrom<PeriodRow> for PaidPeriod {
    type Error = StoreError;

    fn try_from(r: PeriodRow) -> Result<Self, StoreError> {
        Ok(PaidPeriod {
            price: money(r.amount_minor, &r.currency, "paid period's price")?,
            payment_id: PaymentId::from_trusted(r.payment_id),
            plan_id: PlanId::from_trusted(r.plan_id),
            granted_at: r.created_at,
            granted_seconds: r.granted_seconds,
            taken_seconds: r.taken_seconds,
            moved_seconds: r.moved_seconds,
            credit_to: r.credit_to.map(PaymentId::from_trusted),
            credit_seconds: r.credit_seconds,
            credit_in: r.credit_in,
            refunded_minor: r.refunded_minor,
            revoked_at: r.revoked_at,
            start_at: r.period_start,
            end_at: r.period_end,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProductRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) price_minor: i64,
    pub(crate) currency: String,
    pub(crate) stock: i32,
    pub(crate) active: bool,
    pub(crate) created_at: DateTime<Utc>,
}

pub(crate) const PRODUCT_COLUMNS: &str =
    "id, name, description, price_minor, currency, stock, active, created_at";

pub(crate) fn money(minor: i64, currency: &str, what: &str) -> StoreResult<Money> {
    let currency: Currency = currency
        .parse()
        .map_err(|_| corrupt(&format!("{what} currency"), currency))?;
    Money::from_minor(minor, currency).map_err(|_| corrupt(what, &minor.to_string()))
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;

    fn try_from(r: ProductRow) -> Result<Self, StoreError> {
        Ok(Product {
            price: money(r.price_minor, &r.currency, "product price")?,
            stock: u32::try_from(r.stock).map_err(|_| corrupt("stock", &r.stock.to_string()))?,
            id: ProductId::from_trusted(r.id),
            name: r.name,
            description: r.description,
            active: r.active,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) status: String,
    pub(crate) total_minor: i64,
    pub(crate) currency: String,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

pub(crate) const ORDER_COLUMNS: &str =
    "id, user_id, status, total_minor, currency, expires_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    pub(crate) order_id: String,
    pub(crate) product_id: String,
    pub(crate) name: String,
    pub(crate) unit_price_minor: i64,
    pub(crate) quantity: i32,
}

pub(crate) fn order_from(r: OrderRow, items: Vec<ItemRow>) -> StoreResult<Order> {
    let items = items
        .into_iter()
        .map(|i| {
            Ok(OrderItem {
                unit_price: money(i.unit_price_minor, &r.currency, "order item price")?,
                quantity: u32::try_from(i.quantity)
                    .map_err(|_| corrupt("order quantity", &i.quantity.to_string()))?,
                product_id: ProductId::from_trusted(i.product_id),
                name: i.name,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Order {
        total: money(r.total_minor, &r.currency, "order total")?,
        status: r
            .status
            .parse()
            .map_err(|_| corrupt("order status", &r.status))?,
        id: OrderId::from_trusted(r.id),
        user_id: UserId::from_trusted(r.user_id),
        items,
        expires_at: r.expires_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub(crate) id: i64,
    pub(crate) gateway: String,
    pub(crate) event: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) duplicate: bool,
    pub(crate) outcome: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) payment_id: Option<String>,
    pub(crate) received_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) payment_id: Option<String>,
    pub(crate) detail: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    /// The username of the operator who resolved it (joined from `users`).
    pub(crate) resolved_by: Option<String>,
    pub(crate) resolution: Option<String>,
}

impl TryFrom<EventRow> for OperatorEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(OperatorEvent {
            id: r.id,
            kind: OperatorEventKind::parse(&r.kind)
                .ok_or_else(|| corrupt("operator event kind", &r.kind))?,
            payment_id: r.payment_id.map(PaymentId::from_trusted),
            detail: r.detail,
            created_at: r.created_at,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
            resolution: r.resolution,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefundRow {
    pub(crate) id: String,
    pub(crate) payment_id: String,
    pub(crate) amount_minor: i64,
    pub(crate) currency: String,
    pub(crate) reason: Option<String>,
    pub(crate) status: String,
    pub(crate) detail: Option<String>,
    pub(crate) requested_by: String,
    pub(crate) restock: bool,
    pub(crate) resolved_by: Option<String>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    pub(crate) resolution: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

/// The columns of `RefundRow`, from `refunds r JOIN payments p` (the currency is the
/// payment's).
pub(crate) const REFUND_COLUMNS: &str = "r.id, r.payment_id, r.amount_minor, p.currency, \
     r.reason, r.status, r.detail, r.requested_by, r.restock, r.resolved_by, r.resolved_at, \
     r.resolution, r.created_at, r.updated_at";

impl TryFrom<RefundRow> for tijori_core::store::Refund {
    type Error = StoreError;

    fn try_from(r: RefundRow) -> StoreResult<Self> {
        use tijori_core::store::RefundStatus;
        Ok(tijori_core::store::Refund {
            amount: money(r.amount_minor, &r.currency, "refund amount")?,
            status: RefundStatus::parse(&r.status)
                .ok_or_else(|| corrupt("refund status", &r.status))?,
            id: tijori_core::id::RefundId::from_trusted(r.id),
            payment_id: PaymentId::from_trusted(r.payment_id),
            reason: r.reason,
            detail: r.detail,
            requested_by: UserId::from_trusted(r.requested_by),
            restock: r.restock,
            resolved_by: r.resolved_by.map(UserId::from_trusted),
            resolved_at: r.resolved_at,
            resolution: r.resolution,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) unique_key: Option<String>,
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) max_attempts: i64,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) locked_by: Option<String>,
    pub(crate) locked_until: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

pub(crate) const JOB_COLUMNS: &str =
    "id, kind, payload, unique_key, status, attempts, max_attempts, \
     run_at, locked_by, locked_until, last_error, created_at, updated_at";

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            kind: r.kind.parse().map_err(|_| corrupt("job kind", &r.kind))?,
            status: r
                .status
                .parse()
                .map_err(|_| corrupt("job status", &r.status))?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(u32::MAX),
            id: r.id,
            payload: r.payload,
            unique_key: r.unique_key,
            run_at: r.run_at,
            locked_by: r.locked_by,
            locked_until: r.locked_until,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DueRow {
    pub(crate) user_id: String,
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) time_zone: Option<String>,
    pub(crate) plan_name: String,
    pub(crate) currency: String,
    pub(crate) end_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct MailRow {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) to_address: String,
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) sent_at: Option<DateTime<Utc>>,
}

impl From<MailRow> for OutboxMail {
    fn from(r: MailRow) -> Self {
        OutboxMail {
            id: r.id,
            user_id: UserId::from_trusted(r.user_id),
            to: r.to_address,
            subject: r.subject,
            body: r.body,
            status: r.status,
            error: r.error,
            created_at: r.created_at,
            sent_at: r.sent_at,
        }
    }
}

pub(crate) const MAIL_COLUMNS: &str =
    "id, user_id, to_address, subject, body, status, error, created_at, sent_at";

// --- Reading the rows from SQLite ----------------------------------------------------

/// A row as rusqlite reads it, by column name (so a statement's column order is free).
pub(crate) trait FromSqlite: Sized {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// A stored time (see `sqlite::engine::ts`); anything else is corruption.
pub(crate) fn time(r: &rusqlite::Row<'_>, column: &str) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = r.get(column)?;
    crate::sqlite::parse_ts(&text).ok_or_else(|| bad_time(r, column, &text))
}

pub(crate) fn opt_time(
    r: &rusqlite::Row<'_>,
    column: &str,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = r.get(column)?;
    text.map(|t| crate::sqlite::parse_ts(&t).ok_or_else(|| bad_time(r, column, &t)))
        .transpose()
}

fn bad_time(r: &rusqlite::Row<'_>, column: &str, text: &str) -> rusqlite::Error {
    let index = r.as_ref().column_index(column).unwrap_or(0);
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("corrupt time in column {column}: {text:?}").into(),
    )
}

impl FromSqlite for UserRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(UserRow {
            id: r.get("id")?,
            username: r.get("username")?,
            email: r.get("email")?,
            is_admin: r.get("is_admin")?,
            created_at: time(r, "created_at")?,
            time_zone: r.get("time_zone")?,
        })
    }
}

impl FromSqlite for PlanRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(PlanRow {
            id: r.get("id")?,
            name: r.get("name")?,
            description: r.get("description")?,
            price_minor: r.get("price_minor")?,
            currency: r.get("currency")?,
            duration_days: r.get("duration_days")?,
            active: r.get("active")?,
            created_at: time(r, "created_at")?,
        })
    }
}

impl FromSqlite for PaymentRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(PaymentRow {
            id: r.get("id")?,
            user_id: r.get("user_id")?,
            gateway: r.get("gateway")?,
            purpose: r.get("purpose")?,
            plan_id: r.get("plan_id")?,
            order_id: r.get("order_id")?,
            amount_minor: r.get("amount_minor")?,
            currency: r.get("currency")?,
            status: r.get("status")?,
            checkout: r.get("checkout")?,
            provider_ref: r.get("provider_ref")?,
            provider_txn_id: r.get("provider_txn_id")?,
            payment_url: r.get("payment_url")?,
            expires_at: opt_time(r, "expires_at")?,
            status_reason: r.get("status_reason")?,
            created_at: time(r, "created_at")?,
            updated_at: time(r, "updated_at")?,
            plan_change: r.get("plan_change")?,
        })
    }
}

impl FromSqlite for SubscriptionRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(SubscriptionRow {
            user_id: r.get("user_id")?,
            plan_id: r.get("plan_id")?,
            start_at: time(r, "start_at")?,
            end_at: time(r, "end_at")?,
        })
    }
}

impl FromSqlite for PeriodRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(PeriodRow {
            payment_id: r.get("payment_id")?,
            plan_id: r.get("plan_id")?,
            amount_minor: r.get("amount_minor")?,
            currency: r.get("currency")?,
            created_at: time(r, "created_at")?,
            granted_seconds: r.get("granted_seconds")?,
            taken_seconds: r.get("taken_seconds")?,
            moved_seconds: r.get("moved_seconds")?,
            credit_to: r.get("credit_to")?,
            credit_seconds: r.get("credit_seconds")?,
            credit_in: r.get("credit_in")?,
            refunded_minor: r.get("refunded_minor")?,
            revoked_at: opt_time(r, "revoked_at")?,
            period_start: time(r, "period_start")?,
            period_end: time(r, "period_end")?,
        })
    }
}

impl FromSqlite for ProductRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(ProductRow {
            id: r.get("id")?,
            name: r.get("name")?,
            description: r.get("description")?,
            price_minor: r.get("price_minor")?,
            currency: r.get("currency")?,
            stock: r.get("stock")?,
            active: r.get("active")?,
            created_at: time(r, "created_at")?,
        })
    }
}

impl FromSqlite for OrderRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(OrderRow {
            id: r.get("id")?,
            user_id: r.get("user_id")?,
            status: r.get("status")?,
            total_minor: r.get("total_minor")?,
            currency: r.get("currency")?,
            expires_at: time(r, "expires_at")?,
            created_at: time(r, "created_at")?,
            updated_at: time(r, "updated_at")?,
        })
    }
}

impl FromSqlite for ItemRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(ItemRow {
            order_id: r.get("order_id")?,
            product_id: r.get("product_id")?,
            name: r.get("name")?,
            unit_price_minor: r.get("unit_price_minor")?,
            quantity: r.get("quantity")?,
        })
    }
}

impl FromSqlite for DeliveryRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(DeliveryRow {
            id: r.get("id")?,
            gateway: r.get("gateway")?,
            event: r.get("event")?,
            reference: r.get("reference")?,
            status: r.get("status")?,
            duplicate: r.get("duplicate")?,
            outcome: r.get("outcome")?,
            detail: r.get("detail")?,
            payment_id: r.get("payment_id")?,
            received_at: time(r, "received_at")?,
        })
    }
}

impl FromSqlite for EventRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(EventRow {
            id: r.get("id")?,
            kind: r.get("kind")?,
            payment_id: r.get("payment_id")?,
            detail: r.get("detail")?,
            created_at: time(r, "created_at")?,
            resolved_at: opt_time(r, "resolved_at")?,
            resolved_by: r.get("resolved_by")?,
            resolution: r.get("resolution")?,
        })
    }
}

impl FromSqlite for RefundRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RefundRow {
            id: r.get("id")?,
            payment_id: r.get("payment_id")?,
            amount_minor: r.get("amount_minor")?,
            currency: r.get("currency")?,
            reason: r.get("reason")?,
            status: r.get("status")?,
            detail: r.get("detail")?,
            requested_by: r.get("requested_by")?,
            restock: r.get("restock")?,
            resolved_by: r.get("resolved_by")?,
            resolved_at: opt_time(r, "resolved_at")?,
            resolution: r.get("resolution")?,
            created_at: time(r, "created_at")?,
            updated_at: time(r, "updated_at")?,
        })
    }
}

impl FromSqlite for JobRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(JobRow {
            id: r.get("id")?,
            kind: r.get("kind")?,
            payload: r.get("payload")?,
            unique_key: r.get("unique_key")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            max_attempts: r.get("max_attempts")?,
            run_at: time(r, "run_at")?,
            locked_by: r.get("locked_by")?,
            locked_until: opt_time(r, "locked_until")?,
            last_error: r.get("last_error")?,
            created_at: time(r, "created_at")?,
            updated_at: time(r, "updated_at")?,
        })
    }
}

impl FromSqlite for DueRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(DueRow {
            user_id: r.get("user_id")?,
            username: r.get("username")?,
            email: r.get("email")?,
            time_zone: r.get("time_zone")?,
            plan_name: r.get("plan_name")?,
            currency: r.get("currency")?,
            end_at: time(r, "end_at")?,
        })
    }
}

impl FromSqlite for MailRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(MailRow {
            id: r.get("id")?,
            user_id: r.get("user_id")?,
            to_address: r.get("to_address")?,
            subject: r.get("subject")?,
            body: r.get("body")?,
            status: r.get("status")?,
            error: r.get("error")?,
            created_at: time(r, "created_at")?,
            sent_at: opt_time(r, "sent_at")?,
        })
    }
}

/// A value read by its position, for rows read as tuples (counts, sums, a few
/// columns): SQLite keeps times as text (`sqlite::engine::ts`).
pub(crate) trait SqliteValue: Sized {
    fn get(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self>;
}

macro_rules! plain_values {
    ($($t:ty),*) => {$(
        impl SqliteValue for $t {
            fn get(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
                r.get(index)
            }
        }
    )*};
}
plain_values!(
    String,
    i64,
    i32,
    bool,
    Option<String>,
    Option<i64>,
    Option<i32>
);

impl SqliteValue for Option<DateTime<Utc>> {
    fn get(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        let text: Option<String> = r.get(index)?;
        text.map(|t| {
            crate::sqlite::parse_ts(&t).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Text,
                    format!("corrupt time in column {index}: {t:?}").into(),
                )
            })
        })
        .transpose()
    }
}

impl SqliteValue for DateTime<Utc> {
    fn get(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Self> {
        Option::<DateTime<Utc>>::get(r, index)?.ok_or(rusqlite::Error::InvalidColumnType(
            index,
            "time".into(),
            rusqlite::types::Type::Null,
        ))
    }
}

macro_rules! tuple_rows {
    ($(($($t:ident $i:tt),+)),*) => {$(
        impl<$($t: SqliteValue),+> FromSqlite for ($($t,)+) {
            fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($($t::get(r, $i)?,)+))
            }
        }
    )*};
}
tuple_rows!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
);
