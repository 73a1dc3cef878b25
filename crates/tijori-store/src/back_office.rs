//! What the operator's area reads (`BackOfficeStore`): the lists with their search,
//! filters, paging and totals; a payment's deliveries and events; the revenue per day
//! and the overview's counts. Every statement once, for both backends (see `db.rs`);
//! every count and sum is made by the database.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use tijori_core::account::{Email, User, Username};
use tijori_core::back_office::{
    CustomerLine, CustomerState, DeliveryOfPayment, Listed, Listing, OrderLine, PaymentLine,
    RevenueDay, ShopCounts, SubscriptionLine, SubscriptionState, COLLECTED,
};
use tijori_core::id::{OrderId, PaymentId, UserId};
use tijori_core::payment::Payment;
use tijori_core::store::{OperatorEvent, StoreError, StoreResult};

use crate::db::{ctx, query, Arg, Backend, Conn, Query};
use crate::operator::EVENT_COLUMNS;
use crate::rows::{corrupt, opt_time, time, EventRow, FromSqlite, PaymentRow, PAYMENT_COLUMNS};

/// A list's WHERE clause, built from a `Listing` with its arguments numbered as they
/// are added, so that the count and the page run the same filter.
#[derive(Clone, Default)]
struct Filter<'a> {
    clauses: Vec<String>,
    args: Vec<Arg<'a>>,
}

impl<'a> Filter<'a> {
    /// Adds an argument; its placeholder (`$N`) for the clause that uses it.
    fn arg(&mut self, a: impl Into<Arg<'a>>) -> String {
        self.args.push(a.into());
        format!("${}", self.args.len())
    }

    fn and(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// Dates bound the list's own date column.
    fn dates(&mut self, listing: &Listing, column: &str) {
        if let Some(from) = listing.from {
            let p = self.arg(from);
            self.and(format!("{column} >= {p}"));
        }
        if let Some(until) = listing.until {
            let p = self.arg(until);
            self.and(format!("{column} < {p}"));
        }
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `sql` with this filter's arguments bound, and then `extra`.
    fn bind(&self, sql: &'a str, extra: Vec<Arg<'a>>) -> Query<'a> {
        self.args
            .iter()
            .cloned()
            .chain(extra)
            .fold(query(sql), |q, a| q.bind(a))
    }

    /// The page's LIMIT and OFFSET, placeholders after the filter's own.
    fn page(&self, listing: &Listing) -> (String, Vec<Arg<'a>>) {
        let n = self.args.len();
        (
            format!(" LIMIT ${} OFFSET ${}", n + 1, n + 2),
            vec![
                Arg::from(i64::from(listing.limit)),
                Arg::from(i64::from(listing.offset)),
            ],
        )
    }
}

/// A search as the two arguments it is matched by: the text itself (ids and
/// references, exactly) and a LIKE pattern for part of a username or e-mail (lower
/// case, with LIKE's wildcards escaped so that `_` in a username is no wildcard).
struct Search {
    exact: String,
    pattern: String,
}

impl Search {
    fn of(listing: &Listing) -> Option<Search> {
        let text = listing.search.as_deref()?.trim();
        if text.is_empty() {
            return None;
        }
        let escaped: String = text
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        Some(Search {
            exact: text.to_owned(),
            pattern: format!("%{escaped}%"),
        })
    }

    /// The clause "the user `user_column` names has this in their username or
    /// e-mail".
    fn user_clause(user_column: &str, pattern: &str) -> String {
        format!(
            "{user_column} IN (SELECT id FROM users WHERE LOWER(username) LIKE {pattern} \
             ESCAPE '\\' OR LOWER(email) LIKE {pattern} ESCAPE '\\')"
        )
    }

    /// The clause "the customer `user_column` names is the one searched for": by
    /// their id, username or e-mail, or by one of their payments (its id, the
    /// gateway's references, or the order it paid for). For the customers' and the
    /// subscriptions' lists alike.
    fn customer_clause<'a>(f: &mut Filter<'a>, search: &'a Search, user_column: &str) -> String {
        let exact = f.arg(search.exact.as_str());
        let pattern = f.arg(search.pattern.as_str());
        let users = Search::user_clause(user_column, &pattern);
        format!(
            "({user_column} = {exact} OR {users} OR EXISTS (SELECT 1 FROM payments p \
             WHERE p.user_id = {user_column} AND (p.id = {exact} OR p.provider_ref = {exact} \
             OR p.provider_txn_id = {exact} OR p.order_id = {exact})))"
        )
    }
}

/// `column IN ('a', 'b')` for statuses named by the code (never by a visitor).
fn status_in(column: &str, names: &[&str]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("{column} IN ({})", list.join(", "))
}

fn collected_sql(column: &str) -> String {
    let names: Vec<&str> = COLLECTED.iter().map(|s| s.as_str()).collect();
    status_in(column, &names)
}

/// The UTC day of a time column, as `YYYY-MM-DD` text on either backend (SQLite keeps
/// times as RFC 3339 text in UTC).
fn day_of<C: Conn>(column: &str) -> String {
    match C::BACKEND {
        Backend::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        Backend::Sqlite => format!("substr({column}, 1, 10)"),
    }
}

async fn count<C: Conn>(c: &mut C, f: &Filter<'_>, from: &str) -> StoreResult<i64> {
    let sql = format!("SELECT COUNT(*) FROM {from}{}", f.where_sql());
    let (total,) = f
        .bind(&sql, vec![])
        .fetch_one::<(i64,)>(c)
        .await
        .map_err(ctx("failed to count a list"))?;
    Ok(total)
}

// Payments ---------------------------------------------------------------------------

fn payment_filter<'a>(listing: &'a Listing, search: Option<&'a Search>) -> Filter<'a> {
    let mut f = Filter::default();
    if let Some(s) = search {
        let exact = f.arg(s.exact.as_str());
        let pattern = f.arg(s.pattern.as_str());
        let users = Search::user_clause("user_id", &pattern);
        f.and(format!(
            "(id = {exact} OR provider_ref = {exact} OR provider_txn_id = {exact} \
             OR order_id = {exact} OR user_id = {exact} OR {users})"
        ));
    }
    if let Some(status) = &listing.status {
        let p = f.arg(status.as_str());
        f.and(format!("status = {p}"));
    }
    if let Some(g) = listing.gateway {
        let p = f.arg(g.as_str());
        f.and(format!("gateway = {p}"));
    }
    f.dates(listing, "created_at");
    f
}

#[derive(sqlx::FromRow)]
struct PaymentLineRow {
    #[sqlx(flatten)]
    payment: PaymentRow,
    username: String,
    email: String,
}

impl FromSqlite for PaymentLineRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(PaymentLineRow {
            payment: PaymentRow::from_sqlite(r)?,
            username: r.get("username")?,
            email: r.get("email")?,
        })
    }
}

pub(crate) async fn list_payments<C: Conn>(
    c: &mut C,
    listing: &Listing,
) -> StoreResult<Listed<PaymentLine>> {
    let search = Search::of(listing);
    let f = payment_filter(listing, search.as_ref());
    let total = count(c, &f, "payments").await?;
    let (page, extra) = f.page(listing);
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS}, \
         (SELECT username FROM users WHERE users.id = payments.user_id) AS username, \
         (SELECT email FROM users WHERE users.id = payments.user_id) AS email \
         FROM payments{} ORDER BY created_at DESC, id DESC{page}",
        f.where_sql()
    );
    let rows = f
        .bind(&sql, extra)
        .fetch_all::<PaymentLineRow>(c)
        .await
        .map_err(ctx("failed to list payments"))?;
    let rows = rows
        .into_iter()
        .map(|r| {
            Ok(PaymentLine {
                payment: Payment::try_from(r.payment)?,
                username: r.username,
                email: r.email,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(Listed { rows, total })
}

// Orders -----------------------------------------------------------------------------

fn order_filter<'a>(listing: &'a Listing, search: Option<&'a Search>) -> Filter<'a> {
    let mut f = Filter::default();
    if let Some(s) = search {
        let exact = f.arg(s.exact.as_str());
        let pattern = f.arg(s.pattern.as_str());
        let users = Search::user_clause("o.user_id", &pattern);
        f.and(format!(
            "(o.id = {exact} OR o.user_id = {exact} OR EXISTS (SELECT 1 FROM payments p \
             WHERE p.order_id = o.id AND (p.id = {exact} OR p.provider_ref = {exact} \
             OR p.provider_txn_id = {exact})) OR {users})"
        ));
    }
    if let Some(status) = &listing.status {
        let p = f.arg(status.as_str());
        f.and(format!("o.status = {p}"));
    }
    if let Some(g) = listing.gateway {
        let p = f.arg(g.as_str());
        f.and(format!(
            "EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.gateway = {p})"
        ));
    }
    f.dates(listing, "o.created_at");
    f
}

#[derive(sqlx::FromRow)]
struct OrderLineRow {
    id: String,
    status: String,
    total_minor: i64,
    currency: String,
    paid_payment_id: Option<String>,
    units: i64,
    username: String,
    email: String,
    created_at: DateTime<Utc>,
}

impl FromSqlite for OrderLineRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(OrderLineRow {
            id: r.get("id")?,
            status: r.get("status")?,
            total_minor: r.get("total_minor")?,
            currency: r.get("currency")?,
            paid_payment_id: r.get("paid_payment_id")?,
            units: r.get("units")?,
            username: r.get("username")?,
            email: r.get("email")?,
            created_at: time(r, "created_at")?,
        })
    }
}

impl TryFrom<OrderLineRow> for OrderLine {
    type Error = StoreError;

    fn try_from(r: OrderLineRow) -> StoreResult<OrderLine> {
        Ok(OrderLine {
            status: r
                .status
                .parse()
                .map_err(|_| corrupt("order status", &r.status))?,
            currency: r
                .currency
                .parse()
                .map_err(|_| corrupt("order currency", &r.currency))?,
            id: OrderId::from_trusted(r.id),
            total_minor: r.total_minor,
            paid_payment_id: r.paid_payment_id.map(PaymentId::from_trusted),
            units: r.units,
            username: r.username,
            email: r.email,
            created_at: r.created_at,
        })
    }
}

pub(crate) async fn list_orders<C: Conn>(
    c: &mut C,
    listing: &Listing,
) -> StoreResult<Listed<OrderLine>> {
    let search = Search::of(listing);
    let f = order_filter(listing, search.as_ref());
    let total = count(c, &f, "orders o").await?;
    let (page, extra) = f.page(listing);
    let sql = format!(
        "SELECT o.id, o.status, o.total_minor, o.currency, o.paid_payment_id, o.created_at, \
         CAST((SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i \
         WHERE i.order_id = o.id) AS BIGINT) AS units, u.username, u.email \
         FROM orders o JOIN users u ON u.id = o.user_id{} \
         ORDER BY o.created_at DESC, o.id DESC{page}",
        f.where_sql()
    );
    let rows = f
        .bind(&sql, extra)
        .fetch_all::<OrderLineRow>(c)
        .await
        .map_err(ctx("failed to list orders"))?
        .into_iter()
        .map(OrderLine::try_from)
        .collect::<StoreResult<_>>()?;
    Ok(Listed { rows, total })
}

// Customers --------------------------------------------------------------------------

fn customer_filter<'a>(
    listing: &'a Listing,
    search: Option<&'a Search>,
    now: DateTime<Utc>,
) -> StoreResult<Filter<'a>> {
    let mut f = Filter::default();
    if let Some(s) = search {
        let clause = Search::customer_clause(&mut f, s, "u.id");
        f.and(clause);
    }
    if let Some(status) = &listing.status {
        let state = CustomerState::parse(status).ok_or_else(|| {
            StoreError::Database(anyhow::anyhow!("unchecked customer state {status:?}"))
        })?;
        let p = f.arg(now);
        f.and(match state {
            CustomerState::Subscribed => format!("s.end_at > {p}"),
            CustomerState::NotSubscribed => format!("(s.end_at IS NULL OR s.end_at <= {p})"),
        });
    }
    if let Some(g) = listing.gateway {
        let p = f.arg(g.as_str());
        f.and(format!(
            "EXISTS (SELECT 1 FROM payments p WHERE p.user_id = u.id AND p.gateway = {p})"
        ));
    }
    f.dates(listing, "u.created_at");
    Ok(f)
}

#[derive(sqlx::FromRow)]
struct CustomerLineRow {
    id: String,
    username: String,
    email: String,
    is_admin: bool,
    created_at: DateTime<Utc>,
    time_zone: Option<String>,
    payments: i64,
    paid: i64,
    orders: i64,
    subscribed_until: Option<DateTime<Utc>>,
}

impl FromSqlite for CustomerLineRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(CustomerLineRow {
            id: r.get("id")?,
            username: r.get("username")?,
            email: r.get("email")?,
            is_admin: r.get("is_admin")?,
            created_at: time(r, "created_at")?,
            time_zone: r.get("time_zone")?,
            payments: r.get("payments")?,
            paid: r.get("paid")?,
            orders: r.get("orders")?,
            subscribed_until: opt_time(r, "subscribed_until")?,
        })
    }
}

pub(crate) async fn list_customers<C: Conn>(
    c: &mut C,
    listing: &Listing,
    now: DateTime<Utc>,
) -> StoreResult<Listed<CustomerLine>> {
    let search = Search::of(listing);
    let f = customer_filter(listing, search.as_ref(), now)?;
    let from = "users u LEFT JOIN subscriptions s ON s.user_id = u.id";
    let total = count(c, &f, from).await?;
    let (page, extra) = f.page(listing);
    let sql = format!(
        "SELECT u.id, u.username, u.email, u.is_admin, u.created_at, u.time_zone, \
         (SELECT COUNT(*) FROM payments p WHERE p.user_id = u.id) AS payments, \
         (SELECT COUNT(*) FROM payments p WHERE p.user_id = u.id AND {}) AS paid, \
         (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) AS orders, \
         s.end_at AS subscribed_until FROM {from}{} \
         ORDER BY u.created_at DESC, u.id DESC{page}",
        collected_sql("p.status"),
        f.where_sql()
    );
    let rows = f
        .bind(&sql, extra)
        .fetch_all::<CustomerLineRow>(c)
        .await
        .map_err(ctx("failed to list customers"))?
        .into_iter()
        .map(|r| CustomerLine {
            user: User {
                id: UserId::from_trusted(r.id),
                username: Username::from_trusted(r.username),
                email: Email::from_trusted(r.email),
                is_admin: r.is_admin,
                created_at: r.created_at,
                time_zone: r.time_zone,
            },
            payments: r.payments,
            paid: r.paid,
            orders: r.orders,
            subscribed_until: r.subscribed_until,
        })
        .collect();
    Ok(Listed { rows, total })
}

// Subscriptions ----------------------------------------------------------------------

fn subscription_filter<'a>(
    listing: &'a Listing,
    search: Option<&'a Search>,
    now: DateTime<Utc>,
) -> StoreResult<Filter<'a>> {
    let mut f = Filter::default();
    if let Some(s) = search {
        let clause = Search::customer_clause(&mut f, s, "s.user_id");
        f.and(clause);
    }
    if let Some(status) = &listing.status {
        let state = SubscriptionState::parse(status).ok_or_else(|| {
            StoreError::Database(anyhow::anyhow!("unchecked subscription state {status:?}"))
        })?;
        let p = f.arg(now);
        match state {
            SubscriptionState::Active => f.and(format!("s.end_at > {p}")),
            SubscriptionState::Ended => f.and(format!("s.end_at <= {p}")),
            SubscriptionState::RenewalDue => {
                let week = f.arg(now + chrono::Duration::days(7));
                f.and(format!("s.end_at > {p} AND s.end_at <= {week}"));
            }
        }
    }
    if let Some(g) = listing.gateway {
        let p = f.arg(g.as_str());
        f.and(format!(
            "EXISTS (SELECT 1 FROM fulfilments fu JOIN payments p ON p.id = fu.payment_id \
             WHERE fu.user_id = s.user_id AND p.gateway = {p})"
        ));
    }
    f.dates(listing, "s.end_at");
    Ok(f)
}

pub(crate) async fn list_subscriptions<C: Conn>(
    c: &mut C,
    listing: &Listing,
    now: DateTime<Utc>,
) -> StoreResult<Listed<SubscriptionLine>> {
    let search = Search::of(listing);
    let f = subscription_filter(listing, search.as_ref(), now)?;
    let from = "subscriptions s JOIN users u ON u.id = s.user_id \
                JOIN plans pl ON pl.id = s.plan_id";
    let total = count(c, &f, from).await?;
    let (page, extra) = f.page(listing);
    let sql = format!(
        "SELECT s.user_id, u.username, u.email, pl.name, s.start_at, s.end_at FROM {from}{} \
         ORDER BY s.end_at, s.user_id{page}",
        f.where_sql()
    );
    type Line = (String, String, String, String, DateTime<Utc>, DateTime<Utc>);
    let rows = f
        .bind(&sql, extra)
        .fetch_all::<Line>(c)
        .await
        .map_err(ctx("failed to list subscriptions"))?
        .into_iter()
        .map(
            |(user_id, username, email, plan_name, start_at, end_at)| SubscriptionLine {
                user_id: UserId::from_trusted(user_id),
                username,
                email,
                plan_name,
                start_at,
                end_at,
            },
        )
        .collect();
    Ok(Listed { rows, total })
}

// Revenue and counts -----------------------------------------------------------------

pub(crate) async fn revenue<C: Conn>(
    c: &mut C,
    since: DateTime<Utc>,
) -> StoreResult<Vec<RevenueDay>> {
    let collected = format!(
        "SELECT {} AS day, gateway, currency, CAST(SUM(amount_minor) AS BIGINT) \
         FROM payments WHERE created_at >= $1 AND {} GROUP BY 1, gateway, currency",
        day_of::<C>("created_at"),
        collected_sql("status")
    );
    let refunded = format!(
        "SELECT {} AS day, p.gateway, p.currency, CAST(SUM(r.amount_minor) AS BIGINT) \
         FROM refunds r JOIN payments p ON p.id = r.payment_id \
         WHERE r.status = 'succeeded' AND r.updated_at >= $1 GROUP BY 1, p.gateway, p.currency",
        day_of::<C>("r.updated_at")
    );
    type Sum = (String, String, String, i64);
    let collected: Vec<Sum> = query(&collected)
        .bind(since)
        .fetch_all(c)
        .await
        .map_err(ctx("failed to sum the money collected"))?;
    let refunded: Vec<Sum> = query(&refunded)
        .bind(since)
        .fetch_all(c)
        .await
        .map_err(ctx("failed to sum the money refunded"))?;
    let mut days: BTreeMap<(String, String, String), (i64, i64)> = BTreeMap::new();
    for (day, gateway, currency, sum) in collected {
        days.entry((day, gateway, currency)).or_default().0 += sum;
    }
    for (day, gateway, currency, sum) in refunded {
        days.entry((day, gateway, currency)).or_default().1 += sum;
    }
    days.into_iter()
        .map(|((day, gateway, currency), (collected, refunded))| {
            Ok(RevenueDay {
                day: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .map_err(|_| corrupt("day", &day))?,
                gateway: gateway.parse().map_err(|_| corrupt("gateway", &gateway))?,
                currency: currency
                    .parse()
                    .map_err(|_| corrupt("currency", &currency))?,
                collected_minor: collected,
                refunded_minor: refunded,
            })
        })
        .collect()
}

pub(crate) async fn shop_counts(
    c: &mut impl Conn,
    now: DateTime<Utc>,
    renewals_before: DateTime<Utc>,
) -> StoreResult<ShopCounts> {
    let (active, due, open, held) = query(
        "SELECT (SELECT COUNT(*) FROM subscriptions WHERE end_at > $1), \
         (SELECT COUNT(*) FROM subscriptions WHERE end_at > $1 AND end_at <= $2), \
         (SELECT COUNT(*) FROM payments WHERE status IN ('initiated', 'pending')), \
         (SELECT COUNT(*) FROM payments WHERE status = 'needs_review')",
    )
    .bind(now)
    .bind(renewals_before)
    .fetch_one::<(i64, i64, i64, i64)>(c)
    .await
    .map_err(ctx("failed to count the shop's overview"))?;
    Ok(ShopCounts {
        active_subscriptions: active,
        renewals_due: due,
        payments_open: open,
        payments_held: held,
    })
}

// A payment's audit trail ------------------------------------------------------------

pub(crate) async fn deliveries_of(
    c: &mut impl Conn,
    payment: &Payment,
) -> StoreResult<Vec<DeliveryOfPayment>> {
    // Two reads, each by its index, rather than one OR that neither index serves; a
    // delivery found by both is kept once, in arrival order.
    let columns = "id, gateway, event, status, duplicate, outcome, detail, body, received_at";
    let by_id = format!("SELECT {columns} FROM webhook_deliveries WHERE payment_id = $1");
    let by_ref =
        format!("SELECT {columns} FROM webhook_deliveries WHERE gateway = $1 AND reference = $2");
    let mut queries = vec![query(&by_id).bind(payment.id.as_str())];
    if let Some(reference) = &payment.provider_ref {
        queries.push(
            query(&by_ref)
                .bind(payment.gateway.as_str())
                .bind(reference.as_str()),
        );
    }
    let mut found = BTreeMap::new();
    for q in queries {
        let rows: Vec<DeliveryLineRow> = q
            .fetch_all(c)
            .await
            .map_err(ctx("failed to read a payment's webhook deliveries"))?;
        found.extend(rows.into_iter().map(|r| (r.id, r)));
    }
    Ok(found
        .into_values()
        .map(|r| DeliveryOfPayment {
            id: r.id,
            gateway: r.gateway,
            event: r.event,
            status: r.status,
            duplicate: r.duplicate,
            outcome: r.outcome,
            detail: r.detail,
            body: r.body,
            received_at: r.received_at,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct DeliveryLineRow {
    id: i64,
    gateway: String,
    event: Option<String>,
    status: Option<String>,
    duplicate: bool,
    outcome: Option<String>,
    detail: Option<String>,
    body: String,
    received_at: DateTime<Utc>,
}

impl FromSqlite for DeliveryLineRow {
    fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(DeliveryLineRow {
            id: r.get("id")?,
            gateway: r.get("gateway")?,
            event: r.get("event")?,
            status: r.get("status")?,
            duplicate: r.get("duplicate")?,
            outcome: r.get("outcome")?,
            detail: r.get("detail")?,
            body: r.get("body")?,
            received_at: time(r, "received_at")?,
        })
    }
}

pub(crate) async fn operator_events_of(
    c: &mut impl Conn,
    payment: &PaymentId,
) -> StoreResult<Vec<OperatorEvent>> {
    query(&format!(
        "SELECT {EVENT_COLUMNS} WHERE e.payment_id = $1 ORDER BY e.id"
    ))
    .bind(payment.as_str())
    .fetch_all::<EventRow>(c)
    .await
    .map_err(ctx("failed to read a payment's operator events"))?
    .into_iter()
    .map(OperatorEvent::try_from)
    .collect()
}
