//! The Store port against real databases: every test runs on SQLite and on
//! PostgreSQL (`<group>::<test>::sqlite`, `<group>::<test>::postgres`), each on a
//! fresh database of its own (tijori-testkit).
//!
//! Time is passed in explicitly (`now`), from a fixed instant on whole seconds, so
//! every timestamp the store hands back can be compared exactly on both backends.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::str::FromStr as _;
use std::sync::Arc;

use anyhow::{ensure, Context as _, Result};
use chrono::{DateTime, Duration, Utc};
use sqlx::Connection as _;
use tokio::sync::Barrier;

use tijori_core::account::{Email, PasswordHashString, TokenHash, User, Username};
use tijori_core::gateway::{GatewayAnswer, GatewayKind, GatewayStatus, RawAnswer};
use tijori_core::id::{PaymentId, PlanId, RefundId, UserId};
use tijori_core::money::{Currency, Money};
use tijori_core::payment::{decide, CheckoutKind, Payment, PaymentStatus, Purpose};
use tijori_core::store::{
    AnswerKind, NewUser, Settled, Settlement, Store, StoreError, WebhookNote,
};
use tijori_core::subscription::{self, NewPlan, Plan, PlanChange, Subscription};
use tijori_store::Database;
use tijori_testkit::{test_both, Backend, TestDatabase};

// Fixtures -----------------------------------------------------------------------

/// Runs one statement on the database `url` names, on a connection of its own (also
/// before the store has migrated it).
async fn execute(url: &str, backend: Backend, sql: &str) -> Result<()> {
    match backend {
        Backend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            sqlx::query(sql).execute(&mut conn).await?;
            conn.close().await?;
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query(sql).execute(&mut conn).await?;
            conn.close().await?;
        }
    }
    Ok(())
}

/// An open, migrated store on a test database, plus a side door for the few facts
/// the Store port does not expose (rows in `fulfilments`).
struct Harness {
    store: Arc<dyn Store>,
    database: Database,
    url: String,
    backend: Backend,
}

impl Harness {
    async fn open(db: &TestDatabase) -> Result<Harness> {
        let database = Database::connect(&db.url).await?;
        database.migrate().await?;
        Ok(Harness {
            store: database.store(),
            database,
            url: db.url.clone(),
            backend: db.backend(),
        })
    }

    /// One integer from a query with one text parameter, on a connection of its own.
    async fn scalar(&self, sql: &str, arg: &str) -> Result<i64> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let options =
                    sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?.read_only(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                let n = sqlx::query_scalar(sql)
                    .bind(arg)
                    .fetch_one(&mut conn)
                    .await?;
                conn.close().await?;
                n
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let n = sqlx::query_scalar(sql)
                    .bind(arg)
                    .fetch_one(&mut conn)
                    .await?;
                conn.close().await?;
                n
            }
        })
    }

    /// Runs one statement, on a connection of its own.
    async fn execute(&self, sql: &str) -> Result<()> {
        execute(&self.url, self.backend, sql).await
    }

    /// What readers and the usual purchase take from the kept segments is what the
    /// whole layout of the periods projects to at `now`.
    async fn segments_agree(&self, user: &User, now: DateTime<Utc>) -> Result<()> {
        let periods = self.store.paid_periods(&user.id).await?;
        let whole = subscription::project(&user.id, &periods, now);
        let read = subscription::holding(&self.store.segments(&user.id, now).await?, now);
        ensure!(
            read.clone().map(|r| r.0) == whole.current,
            "current at {now}: {read:?} against {whole:?}"
        );
        ensure!(
            read.clone().map(|r| r.1).unwrap_or_default() == whole.queued,
            "queued at {now}: {read:?} against {whole:?}"
        );
        ensure!(
            self.subscription(user).await? == whole.run,
            "run: {:?} against {whole:?}",
            self.subscription(user).await?
        );
        Ok(())
    }

    async fn fulfilments(&self, payment: &PaymentId) -> Result<i64> {
        self.scalar(
            "SELECT COUNT(*) FROM fulfilments WHERE payment_id = $1",
            payment.as_str(),
        )
        .await
    }

    async fn revoked_fulfilments(&self, payment: &PaymentId) -> Result<i64> {
        self.scalar(
            "SELECT COUNT(*) FROM fulfilments WHERE payment_id = $1 AND revoked_at IS NOT NULL",
            payment.as_str(),
        )
        .await
    }

    async fn user(&self, name: &str) -> Result<User> {
        Ok(self
            .store
            .create_user(
                NewUser {
                    username: Username::parse(name)?,
                    email: Email::parse(&format!("{name}@example.com"))?,
                    password_hash: PasswordHashString(format!("$argon2id$v=19$fake${name}")),
                    is_admin: false,
                },
                t0(),
            )
            .await?)
    }

    async fn plan(&self, name: &str, price_minor: i64, days: u32) -> Result<Plan> {
        Ok(self
            .store
            .create_plan(
                NewPlan {
                    name: name.into(),
                    description: format!("{name}: {days} days of everything"),
                    price: npr(price_minor),
                    duration_days: days,
                },
                t0(),
            )
            .await?)
    }

    /// A payment as `initiate` leaves it: stored, then its Khalti checkout recorded.
    async fn checkout(&self, user: &User, plan: &Plan, now: DateTime<Utc>) -> Result<Payment> {
        self.checkout_with(user, plan, PlanChange::Queue, now).await
    }

    /// `checkout`, with the customer's choice for the plan they hold.
    async fn checkout_with(
        &self,
        user: &User,
        plan: &Plan,
        change: PlanChange,
        now: DateTime<Utc>,
    ) -> Result<Payment> {
        let mut payment = new_payment(user, plan, now);
        payment.purpose = Purpose::Subscription {
            plan_id: plan.id.clone(),
            change,
        };
        self.store.insert_payment(&payment).await?;
        let pidx = pidx_for(&payment.id);
        Ok(self
            .store
            .record_checkout(
                &payment.id,
                &pidx,
                &format!("https://test-pay.khalti.com/?pidx={pidx}"),
                Some(now + Duration::minutes(60)),
                &initiate_answer(&pidx),
                now,
            )
            .await?)
    }

    /// What `settle` does: decide from the answer, then apply atomically.
    async fn settle(
        &self,
        payment: &Payment,
        answer: &GatewayAnswer,
        now: DateTime<Utc>,
    ) -> Result<Settled> {
        settle(&*self.store, payment, answer, now).await
    }

    async fn subscription(&self, user: &User) -> Result<Option<Subscription>> {
        Ok(self.store.subscription(&user.id).await?)
    }

    async fn status(&self, payment: &Payment) -> Result<PaymentStatus> {
        Ok(self
            .store
            .payment(&payment.id)
            .await?
            .context("payment vanished")?
            .status)
    }
}

async fn settle(
    store: &dyn Store,
    payment: &Payment,
    answer: &GatewayAnswer,
    now: DateTime<Utc>,
) -> Result<Settled> {
    let transition = decide(payment, answer);
    Ok(store
        .settle(Settlement {
            payment: payment.id.clone(),
            transition,
            provider_txn_id: answer.transaction_id.clone(),
            kind: AnswerKind::Lookup,
            raw: answer.raw.clone(),
            now,
            webhook: None,
        })
        .await?)
}

/// A fixed instant on a whole second (PostgreSQL keeps microseconds, SQLite more).
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn npr(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Npr).unwrap()
}

fn new_payment(user: &User, plan: &Plan, now: DateTime<Utc>) -> Payment {
    Payment {
        id: PaymentId::generate(),
        user_id: user.id.clone(),
        gateway: GatewayKind::Khalti,
        purpose: Purpose::Subscription {
            plan_id: plan.id.clone(),
            change: PlanChange::Queue,
        },
        amount: plan.price,
        status: PaymentStatus::Initiated,
        checkout: CheckoutKind::Hosted,
        provider_ref: None,
        provider_txn_id: None,
        payment_url: None,
        expires_at: None,
        status_reason: None,
        created_at: now,
        updated_at: now,
    }
}

/// A pidx shaped like Khalti's, unique per payment.
fn pidx_for(id: &PaymentId) -> String {
    format!("pidx{}", &id.as_str()[4..])
}

fn initiate_answer(pidx: &str) -> RawAnswer {
    RawAnswer {
        http_status: 200,
        body: format!(
            r#"{{"pidx":"{pidx}","payment_url":"https://test-pay.khalti.com/?pidx={pidx}","expires_at":"2030-03-17T12:46:40+05:45","expires_in":3600}}"#
        ),
    }
}

/// Khalti's lookup answer for `payment` in `status` (Khalti's own words), as the
/// gateway adapter would normalise it.
fn lookup(payment: &Payment, status: &str, total_amount: i64) -> GatewayAnswer {
    let pidx = payment.provider_ref.clone().unwrap_or_default();
    let (normalised, http_status, txn) = match status {
        "Completed" => (GatewayStatus::Paid, 200, Some(format!("txn-{pidx}"))),
        "Pending" => (GatewayStatus::Pending, 200, None),
        "Initiated" => (GatewayStatus::Unpaid, 200, None),
        // Khalti answers these two with HTTP 400 and a normal lookup body.
        "Expired" => (GatewayStatus::Expired, 400, None),
        "User canceled" => (GatewayStatus::Canceled, 400, None),
        "Refunded" => (GatewayStatus::Refunded, 200, Some(format!("txn-{pidx}"))),
        "Partially Refunded" => (
            GatewayStatus::PartiallyRefunded,
            200,
            Some(format!("txn-{pidx}")),
        ),
        other => panic!("no fixture for Khalti status {other:?}"),
    };
    let txn_json = txn
        .as_ref()
        .map_or("null".to_owned(), |t| format!("\"{t}\""));
    GatewayAnswer {
        status: normalised,
        amount_minor: total_amount,
        currency: None,
        transaction_id: txn,
        raw: RawAnswer {
            http_status,
            body: format!(
                r#"{{"pidx":"{pidx}","total_amount":{total_amount},"status":"{status}","transaction_id":{txn_json},"fee":0,"refunded":{}}}"#,
                status.contains("Refunded")
            ),
        },
    }
}

fn paid(payment: &Payment) -> GatewayAnswer {
    lookup(payment, "Completed", payment.amount.minor())
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected StoreError::NotFound, got {other:?}"),
    }
}

// Schema ---------------------------------------------------------------------------

mod schema {
    use super::*;

    async fn migrations_twice_are_a_no_op_and_ping_works(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        h.store.ping().await?;
        let user = h.user("sita").await?;
        h.database.migrate().await?;
        h.database.close().await;

        // A restart: connect again and migrate again; the data is still there.
        let again = Database::connect(&db.url).await?;
        assert_eq!(again.backend(), db.backend().as_str());
        again.migrate().await?;
        again.store().ping().await?;
        assert_eq!(again.store().user(&user.id).await?, Some(user));
        let migrations = h
            .scalar(
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE success AND description <> $1",
                "",
            )
            .await?;
        let files = std::fs::read_dir(format!(
            "{}/migrations/{}",
            env!("CARGO_MANIFEST_DIR"),
            db.backend().as_str()
        ))?
        .count() as i64;
        assert_eq!(migrations, files, "each migration recorded exactly once");
        Ok(())
    }

    async fn unsupported_urls_are_refused(_db: TestDatabase) -> Result<()> {
        let err = Database::connect("mysql://root:hunter2@localhost/tijori")
            .await
            .err()
            .context("a mysql:// URL was accepted")?;
        let message = err.to_string();
        ensure!(message.contains("sqlite://"), "unhelpful error: {message}");
        ensure!(!message.contains("hunter2"), "password leaked: {message}");
        Ok(())
    }

    /// Runs the migrations issue 8 left (0001–0006) on an empty database.
    async fn migrate_as_before_paid_periods(db: &TestDatabase) -> Result<()> {
        migrate_only_the_first(db, 6).await
    }

    /// Applies the first `count` migrations only: a database as an earlier version
    /// left it.
    async fn migrate_only_the_first(db: &TestDatabase, count: usize) -> Result<()> {
        use sqlx::migrate::Migrator;
        use std::borrow::Cow;
        let all = match db.backend() {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let before = Migrator {
            migrations: Cow::Owned(all.migrations[..count].to_vec()),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        match db.backend() {
            Backend::Sqlite => {
                let options =
                    sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)?.create_if_missing(true);
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                before.run(&mut conn).await?;
                conn.close().await?;
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await?;
                before.run(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }

    /// Widget payments made when a "widget:" prefix on `provider_ref` told them apart
    /// are, after the migrations, widget payments by their `checkout`, with the bare
    /// token as their reference; hosted ones are left as they were.
    async fn widget_payments_are_told_apart_by_a_column_after_the_migration(
        db: TestDatabase,
    ) -> Result<()> {
        migrate_only_the_first(&db, 11).await?;
        let at = t0().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let (plan, user) = (PlanId::generate(), UserId::generate());
        let (widget, hosted) = (PaymentId::generate(), PaymentId::generate());
        for sql in [
            format!(
                "INSERT INTO plans (id, name, price_minor, currency, duration_days, created_at) \
                 VALUES ('{plan}', 'Basic', 50000, 'NPR', 30, '{at}')"
            ),
            format!(
                "INSERT INTO users (id, username, email, password_hash, created_at) \
                 VALUES ('{user}', 'sita', 'sita@example.com', 'x', '{at}')"
            ),
            format!(
                "INSERT INTO payments (id, user_id, gateway, purpose, plan_id, amount_minor, \
                 currency, status, provider_ref, created_at, updated_at) VALUES \
                 ('{widget}', '{user}', 'khalti', 'subscription', '{plan}', 50000, 'NPR', \
                 'completed', 'widget:8ZKcm2kGjW5NxnbHbQHrLb', '{at}', '{at}'), \
                 ('{hosted}', '{user}', 'khalti', 'subscription', '{plan}', 50000, 'NPR', \
                 'pending', 'HT6o6PEZRWFJ5ygavzHWd5', '{at}', '{at}')"
            ),
        ] {
            execute(&db.url, db.backend(), &sql).await?;
        }
        let h = Harness::open(&db).await?;
        let w = h.store.payment(&widget).await?.context("widget payment")?;
        ensure!(w.checkout == CheckoutKind::Widget, "{w:?}");
        ensure!(
            w.provider_ref.as_deref() == Some("8ZKcm2kGjW5NxnbHbQHrLb"),
            "{w:?}"
        );
        let found = h
            .store
            .payment_by_provider_ref(GatewayKind::Khalti, "8ZKcm2kGjW5NxnbHbQHrLb")
            .await?;
        ensure!(found.map(|p| p.id) == Some(widget));
        let p = h.store.payment(&hosted).await?.context("hosted payment")?;
        ensure!(p.checkout == CheckoutKind::Hosted, "{p:?}");
        ensure!(
            p.provider_ref.as_deref() == Some("HT6o6PEZRWFJ5ygavzHWd5"),
            "{p:?}"
        );
        Ok(())
    }

    /// Subscriptions written before they were the sum of their paid periods (renewed,
    /// replaced by another plan bought while one ran, refunded in full, refunded in
    /// part) are, after the migrations, what their customers held before; and a
    /// purchase afterwards adds up.
    async fn customers_hold_after_the_paid_periods_migration_what_they_held_before(
        db: TestDatabase,
    ) -> Result<()> {
        migrate_as_before_paid_periods(&db).await?;
        let at = |d: i64| (t0() + days(d)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let (basic, yearly) = (PlanId::generate(), PlanId::generate());
        let [sita, ram, hari, gita] = ["sita", "ram", "hari", "gita"].map(|_| UserId::generate());
        let pay: Vec<PaymentId> = (0..6).map(|_| PaymentId::generate()).collect();
        let mut sql = vec![format!(
            "INSERT INTO plans (id, name, price_minor, currency, duration_days, created_at) \
                 VALUES ('{basic}', 'Basic', 50000, 'NPR', 30, '{0}'), \
                 ('{yearly}', 'Yearly', 500000, 'NPR', 365, '{0}')",
            at(0)
        )];
        for (user, name) in [
            (&sita, "sita"),
            (&ram, "ram"),
            (&hari, "hari"),
            (&gita, "gita"),
        ] {
            sql.push(format!(
                "INSERT INTO users (id, username, email, password_hash, created_at) \
                 VALUES ('{user}', '{name}', '{name}@example.com', 'x', '{}')",
                at(0)
            ));
        }
        // (payment, user, plan, price, status, start, end, bought, revoked), in days.
        type OldPeriod<'a> = (
            &'a PaymentId,
            &'a UserId,
            &'a PlanId,
            i64,
            &'a str,
            i64,
            i64,
            i64,
            Option<i64>,
        );
        let rows: [OldPeriod; 6] = [
            (&pay[0], &sita, &basic, 50000, "completed", 0, 30, 0, None),
            (&pay[1], &sita, &basic, 50000, "completed", 30, 60, 5, None),
            (&pay[2], &ram, &basic, 50000, "completed", 0, 30, 0, None),
            (
                &pay[3],
                &ram,
                &yearly,
                500000,
                "completed",
                10,
                375,
                10,
                None,
            ),
            (
                &pay[4],
                &hari,
                &basic,
                50000,
                "refunded",
                0,
                30,
                0,
                Some(10),
            ),
            (
                &pay[5],
                &gita,
                &basic,
                50000,
                "partially_refunded",
                0,
                30,
                0,
                None,
            ),
        ];
        for (id, user, plan, price, status, start, end, bought, revoked) in rows {
            sql.push(format!(
                "INSERT INTO payments (id, user_id, gateway, purpose, plan_id, amount_minor, \
                 currency, status, created_at, updated_at) VALUES ('{id}', '{user}', 'khalti', \
                 'subscription', '{plan}', {price}, 'NPR', '{status}', '{0}', '{0}')",
                at(bought)
            ));
            sql.push(format!(
                "INSERT INTO fulfilments (payment_id, user_id, plan_id, granted_seconds, \
                 period_start, period_end, revoked_at, created_at) VALUES ('{id}', '{user}', \
                 '{plan}', {}, '{}', '{}', {}, '{}')",
                (end - start).min(if price == 500000 { 365 } else { 30 }) * 86_400,
                at(start),
                at(end),
                revoked.map_or("NULL".to_owned(), |r| format!("'{}'", at(r))),
                at(bought)
            ));
        }
        sql.push(format!(
            "INSERT INTO refunds (id, payment_id, amount_minor, status, requested_by, \
             created_at, updated_at) VALUES ('{}', '{}', 10000, 'succeeded', '{gita}', '{2}', '{2}')",
            RefundId::generate(),
            pay[5],
            at(3)
        ));
        // The subscription rows as the old rule left them.
        for (user, plan, start, end) in [
            (&sita, &basic, 0, 60),
            (&ram, &yearly, 10, 375),
            (&hari, &basic, 0, 10),
            (&gita, &basic, 0, 30),
        ] {
            sql.push(format!(
                "INSERT INTO subscriptions (user_id, plan_id, start_at, end_at, updated_at) \
                 VALUES ('{user}', '{plan}', '{}', '{}', '{}')",
                at(start),
                at(end),
                at(start)
            ));
        }
        let h = Harness {
            store: Database::connect(&db.url).await?.store(),
            database: Database::connect(&db.url).await?,
            url: db.url.clone(),
            backend: db.backend(),
        };
        for statement in &sql {
            h.execute(statement).await?;
        }

        h.database.migrate().await?;
        let now = t0() + days(15);
        let held = |user: &UserId| {
            let (user, store) = (user.clone(), h.store.clone());
            async move {
                let segments = store.segments(&user, now).await?;
                let (current, queued) =
                    subscription::holding(&segments, now).context("no subscription")?;
                let run = store.subscription(&user).await?.context("no run")?;
                anyhow::Ok((
                    (current.plan_id, current.start_at, current.end_at),
                    queued.len(),
                    (run.plan_id, run.end_at),
                ))
            }
        };
        let t = |d: i64| t0() + days(d);
        assert_eq!(
            held(&sita).await?,
            ((basic.clone(), t(0), t(60)), 0, (basic.clone(), t(60)))
        );
        assert_eq!(
            held(&ram).await?,
            ((yearly.clone(), t(10), t(375)), 0, (yearly.clone(), t(375))),
            "the yearly plan that replaced Basic on day 10"
        );
        assert_eq!(
            held(&hari).await?,
            ((basic.clone(), t(0), t(10)), 0, (basic.clone(), t(10))),
            "refunded on day 10"
        );
        assert_eq!(
            held(&gita).await?,
            ((basic.clone(), t(0), t(30)), 0, (basic.clone(), t(30))),
            "a partial refund took no days then"
        );
        let taken_for = h
            .scalar(
                "SELECT refunded_minor FROM fulfilments WHERE payment_id = $1",
                pay[5].as_str(),
            )
            .await?;
        assert_eq!(
            taken_for, 10000,
            "the next partial refund takes only its own share"
        );

        // Sita renews after the upgrade: from the end of what she held.
        let sita_user = h.store.user(&sita).await?.context("sita")?;
        let plan = h.store.plan(&basic).await?.context("basic")?;
        let renewal = h.checkout(&sita_user, &plan, now).await?;
        h.settle(&renewal, &paid(&renewal), now).await?;
        assert_eq!(
            held(&sita).await?,
            ((basic.clone(), t(0), t(90)), 0, (basic.clone(), t(90)))
        );
        Ok(())
    }

    test_both!(
        migrations_twice_are_a_no_op_and_ping_works,
        unsupported_urls_are_refused,
        customers_hold_after_the_paid_periods_migration_what_they_held_before,
        widget_payments_are_told_apart_by_a_column_after_the_migration,
    );
}

// Users, tokens, sessions ------------------------------------------------------------

mod users {
    use super::*;

    async fn create_and_look_up(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let ram = h.user("ram").await?;
        assert_ne!(sita.id, ram.id);
        assert_eq!(sita.username.as_str(), "sita");
        assert_eq!(sita.email.as_str(), "sita@example.com");
        assert!(!sita.is_admin);
        assert_eq!(sita.created_at, t0());

        assert_eq!(h.store.user(&sita.id).await?, Some(sita.clone()));
        assert_eq!(h.store.user(&UserId::generate()).await?, None);

        let (user, hash) = h
            .store
            .user_credentials(&Username::parse("sita")?)
            .await?
            .context("no credentials for sita")?;
        assert_eq!(user, sita);
        assert_eq!(hash.0, "$argon2id$v=19$fake$sita");
        assert!(h
            .store
            .user_credentials(&Username::parse("nobody")?)
            .await?
            .is_none());

        let admin = h
            .store
            .create_user(
                NewUser {
                    username: Username::parse("boss")?,
                    email: Email::parse("boss@example.com")?,
                    password_hash: PasswordHashString("h".into()),
                    is_admin: true,
                },
                t0(),
            )
            .await?;
        assert!(h.store.user(&admin.id).await?.context("admin")?.is_admin);
        Ok(())
    }

    async fn duplicate_username_is_a_conflict(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        // Usernames are case-insensitive: "Sita" parses to "sita".
        let again = h
            .store
            .create_user(
                NewUser {
                    username: Username::parse("Sita")?,
                    email: Email::parse("other@example.com")?,
                    password_hash: PasswordHashString("h".into()),
                    is_admin: false,
                },
                t0(),
            )
            .await;
        assert_conflict(again, "same username");
        let (user, _) = h
            .store
            .user_credentials(&Username::parse("sita")?)
            .await?
            .context("sita")?;
        assert_eq!(user, sita, "the first account is untouched");
        Ok(())
    }

    async fn duplicate_email_is_a_conflict(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        h.user("sita").await?;
        let again = h
            .store
            .create_user(
                NewUser {
                    username: Username::parse("sita2")?,
                    email: Email::parse("SITA@example.com")?,
                    password_hash: PasswordHashString("h".into()),
                    is_admin: false,
                },
                t0(),
            )
            .await;
        assert_conflict(again, "same email");
        assert!(h
            .store
            .user_credentials(&Username::parse("sita2")?)
            .await?
            .is_none());
        Ok(())
    }

    async fn set_password_replaces_the_hash(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        h.store
            .set_password(&sita.id, &PasswordHashString("new-hash".into()))
            .await?;
        let (_, hash) = h
            .store
            .user_credentials(&sita.username)
            .await?
            .context("sita")?;
        assert_eq!(hash.0, "new-hash");
        assert_not_found(
            h.store
                .set_password(&UserId::generate(), &PasswordHashString("x".into()))
                .await,
            "set_password for an unknown user",
        );
        Ok(())
    }

    async fn api_tokens_resolve_to_their_user(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let ram = h.user("ram").await?;
        let (a, b, c) = (
            TokenHash("a".repeat(64)),
            TokenHash("b".repeat(64)),
            TokenHash("c".repeat(64)),
        );
        let until = t0() + days(30);
        h.store.create_api_token(&sita.id, &a, until, t0()).await?;
        h.store.create_api_token(&sita.id, &b, until, t0()).await?;
        h.store.create_api_token(&ram.id, &c, until, t0()).await?;
        assert_eq!(
            h.store.user_by_api_token(&a, t0()).await?,
            Some(sita.clone())
        );
        assert_eq!(
            h.store.user_by_api_token(&b, t0()).await?,
            Some(sita.clone())
        );
        assert_eq!(
            h.store.user_by_api_token(&c, t0()).await?,
            Some(ram.clone())
        );
        assert_eq!(
            h.store
                .user_by_api_token(&TokenHash("d".repeat(64)), t0())
                .await?,
            None
        );
        assert_conflict(
            h.store.create_api_token(&ram.id, &a, until, t0()).await,
            "a token hash given twice",
        );
        assert_eq!(
            h.store.user_by_api_token(&a, t0()).await?,
            Some(sita),
            "a clashing token must not move to another user"
        );
        Ok(())
    }

    async fn api_tokens_expire_and_can_be_revoked(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let (a, b) = (TokenHash("a".repeat(64)), TokenHash("b".repeat(64)));
        let until = t0() + days(30);
        h.store.create_api_token(&sita.id, &a, until, t0()).await?;
        h.store.create_api_token(&sita.id, &b, until, t0()).await?;
        assert!(h
            .store
            .user_by_api_token(&a, until - Duration::seconds(1))
            .await?
            .is_some());
        assert!(
            h.store.user_by_api_token(&a, until).await?.is_none(),
            "expired at its end"
        );

        h.store.delete_api_token(&b).await?;
        assert!(
            h.store.user_by_api_token(&b, t0()).await?.is_none(),
            "revoked"
        );
        assert!(
            h.store.user_by_api_token(&a, t0()).await?.is_some(),
            "only that one"
        );
        h.store.delete_api_token(&b).await?; // twice is harmless

        // A new token for her forgets the expired one.
        let c = TokenHash("c".repeat(64));
        h.store
            .create_api_token(&sita.id, &c, until + days(30), until)
            .await?;
        let sql = "SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1";
        assert_eq!(h.scalar(sql, &a.0).await?, 0);
        assert_eq!(h.scalar(sql, &c.0).await?, 1);
        Ok(())
    }

    async fn sessions_live_until_they_expire(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let token = TokenHash("5".repeat(64));
        let expires = t0() + Duration::hours(12);
        h.store
            .create_session(&sita.id, &token, "csrf-123", expires, t0())
            .await?;

        for now in [t0(), expires - Duration::seconds(1)] {
            let session = h
                .store
                .session(&token, now)
                .await?
                .with_context(|| format!("no session at {now}"))?;
            assert_eq!(session.user, sita);
            assert_eq!(session.csrf_token, "csrf-123");
            assert_eq!(session.expires_at, expires);
        }
        for now in [expires, expires + Duration::seconds(1), expires + days(30)] {
            assert!(
                h.store.session(&token, now).await?.is_none(),
                "session still live at {now}, expiry {expires}"
            );
        }
        assert!(h
            .store
            .session(&TokenHash("6".repeat(64)), t0())
            .await?
            .is_none());

        h.store.delete_session(&token).await?;
        assert!(h.store.session(&token, t0()).await?.is_none());
        // Signing out twice is harmless.
        h.store.delete_session(&token).await?;
        Ok(())
    }

    async fn signing_in_forgets_the_users_ended_sessions(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let ram = h.user("ram").await?;
        let old = TokenHash("7".repeat(64));
        let others = TokenHash("8".repeat(64));
        h.store
            .create_session(&sita.id, &old, "a", t0() + days(1), t0())
            .await?;
        h.store
            .create_session(&ram.id, &others, "b", t0() + days(1), t0())
            .await?;

        let later = t0() + days(2);
        let fresh = TokenHash("9".repeat(64));
        h.store
            .create_session(&sita.id, &fresh, "c", later + days(14), later)
            .await?;
        let sql = "SELECT COUNT(*) FROM sessions WHERE token_hash = $1";
        assert_eq!(
            h.scalar(sql, &old.0).await?,
            0,
            "sita's ended session is gone"
        );
        assert_eq!(
            h.scalar(sql, &others.0).await?,
            1,
            "only her own are pruned"
        );
        assert_eq!(h.scalar(sql, &fresh.0).await?, 1);
        Ok(())
    }

    async fn sub_second_expiry_is_compared_as_time(db: TestDatabase) -> Result<()> {
        // SQLite keeps timestamps as text: its comparisons must still order by time
        // when the two sides carry different numbers of fractional digits.
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let token = TokenHash("7".repeat(64));
        let expires = t0() + Duration::milliseconds(500);
        h.store
            .create_session(&sita.id, &token, "csrf", expires, t0())
            .await?;
        assert!(h.store.session(&token, t0()).await?.is_some());
        assert!(h
            .store
            .session(&token, t0() + Duration::microseconds(499_999))
            .await?
            .is_some());
        assert!(h
            .store
            .session(&token, t0() + Duration::milliseconds(500))
            .await?
            .is_none());
        assert!(h
            .store
            .session(&token, t0() + Duration::seconds(1))
            .await?
            .is_none());
        Ok(())
    }

    /// Item 13 of issue 9: expired tokens and sessions are deleted by the pruning
    /// job's query, live ones are kept.
    async fn expired_credentials_are_pruned(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let (old, live) = (TokenHash("a".repeat(64)), TokenHash("b".repeat(64)));
        h.store
            .create_api_token(&sita.id, &old, t0() + days(1), t0())
            .await?;
        h.store
            .create_api_token(&sita.id, &live, t0() + days(30), t0())
            .await?;
        let (old_s, live_s) = (TokenHash("c".repeat(64)), TokenHash("d".repeat(64)));
        h.store
            .create_session(&sita.id, &old_s, "csrf1", t0() + days(1), t0())
            .await?;
        h.store
            .create_session(&sita.id, &live_s, "csrf2", t0() + days(14), t0())
            .await?;

        let pruned = h.store.prune_expired_credentials(t0() + days(2), 1).await?;
        assert_eq!(pruned, (1, 1));
        assert_eq!(
            h.store
                .prune_expired_credentials(t0() + days(2), 100)
                .await?,
            (0, 0),
            "nothing more to prune"
        );
        // Looked up as of before their expiry: the pruned ones are gone for good.
        assert!(h.store.user_by_api_token(&old, t0()).await?.is_none());
        assert!(h.store.session(&old_s, t0()).await?.is_none());
        assert!(h.store.user_by_api_token(&live, t0()).await?.is_some());
        assert!(h.store.session(&live_s, t0()).await?.is_some());
        Ok(())
    }

    test_both!(
        expired_credentials_are_pruned,
        create_and_look_up,
        duplicate_username_is_a_conflict,
        duplicate_email_is_a_conflict,
        set_password_replaces_the_hash,
        api_tokens_resolve_to_their_user,
        api_tokens_expire_and_can_be_revoked,
        sessions_live_until_they_expire,
        signing_in_forgets_the_users_ended_sessions,
        sub_second_expiry_is_compared_as_time,
    );
}

// Plans ------------------------------------------------------------------------------

mod plans {
    use super::*;

    async fn create_list_and_get(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        assert!(h.store.plans().await?.is_empty());
        let pro = h.plan("Pro", 120_000, 30).await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let yearly = h.plan("Yearly", 1_000_000, 365).await?;
        let basic_too = h.plan("Basic too", 50_000, 7).await?;

        assert_eq!(pro.price, npr(120_000));
        assert_eq!(pro.duration_days, 30);
        assert!(pro.active);
        assert_eq!(pro.created_at, t0());

        // Cheapest first; equal prices in the order they were created.
        let listed = h.store.plans().await?;
        assert_eq!(
            listed,
            vec![basic.clone(), basic_too, pro.clone(), yearly.clone()]
        );

        assert_eq!(h.store.plan(&yearly.id).await?, Some(yearly));
        assert_eq!(h.store.plan(&PlanId::generate()).await?, None);
        Ok(())
    }

    async fn prices_keep_their_currency(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let etb = h
            .store
            .create_plan(
                NewPlan {
                    name: "Birr".into(),
                    description: String::new(),
                    price: Money::from_minor(99_999, Currency::Etb)?,
                    duration_days: 1,
                },
                t0(),
            )
            .await?;
        let read = h.store.plan(&etb.id).await?.context("plan")?;
        assert_eq!(read.price, Money::from_minor(99_999, Currency::Etb)?);
        assert_eq!(read.description, "");
        Ok(())
    }

    test_both!(create_list_and_get, prices_keep_their_currency);
}

// Payments -----------------------------------------------------------------------------

mod payments {
    use super::*;

    async fn insert_then_record_checkout(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = new_payment(&sita, &plan, t0());
        h.store.insert_payment(&payment).await?;
        assert_eq!(h.store.payment(&payment.id).await?, Some(payment.clone()));
        assert!(h.store.answers(&payment.id).await?.is_empty());

        let later = t0() + Duration::seconds(2);
        let expires = t0() + Duration::minutes(60);
        let raw = initiate_answer("bZQLD9wRVWo4CdESSfuSsB");
        let opened = h
            .store
            .record_checkout(
                &payment.id,
                "bZQLD9wRVWo4CdESSfuSsB",
                "https://test-pay.khalti.com/?pidx=bZQLD9wRVWo4CdESSfuSsB",
                Some(expires),
                &raw,
                later,
            )
            .await?;
        let expected = Payment {
            checkout: CheckoutKind::Hosted,
            provider_ref: Some("bZQLD9wRVWo4CdESSfuSsB".into()),
            payment_url: Some("https://test-pay.khalti.com/?pidx=bZQLD9wRVWo4CdESSfuSsB".into()),
            expires_at: Some(expires),
            updated_at: later,
            ..payment.clone()
        };
        assert_eq!(opened, expected);
        assert_eq!(opened.status, PaymentStatus::Initiated);
        assert_eq!(h.store.payment(&payment.id).await?, Some(expected));

        let answers = h.store.answers(&payment.id).await?;
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].kind, "initiate");
        assert_eq!(answers[0].http_status, 200);
        assert_eq!(answers[0].body, raw.body);
        assert_eq!(answers[0].received_at, later);

        // A checkout is opened once: a second one for the same payment is refused and
        // leaves no trace.
        assert_not_found(
            h.store
                .record_checkout(&payment.id, "other", "https://x", None, &raw, later)
                .await,
            "a second checkout",
        );
        assert_eq!(h.store.answers(&payment.id).await?.len(), 1);
        assert_eq!(
            h.store
                .payment(&payment.id)
                .await?
                .context("payment")?
                .provider_ref
                .as_deref(),
            Some("bZQLD9wRVWo4CdESSfuSsB")
        );
        Ok(())
    }

    async fn a_provider_ref_names_one_payment(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        let pidx = first.provider_ref.clone().context("pidx")?;

        let second = new_payment(&sita, &plan, t0());
        h.store.insert_payment(&second).await?;
        assert_conflict(
            h.store
                .record_checkout(
                    &second.id,
                    &pidx,
                    "https://x",
                    None,
                    &initiate_answer(&pidx),
                    t0(),
                )
                .await,
            "the same pidx on a second payment",
        );
        let second_now = h.store.payment(&second.id).await?.context("second")?;
        assert_eq!(second_now.provider_ref, None);
        assert!(
            h.store.answers(&second.id).await?.is_empty(),
            "the refused checkout's answer must roll back with it"
        );
        assert_eq!(
            h.store
                .payment_by_provider_ref(GatewayKind::Khalti, &pidx)
                .await?
                .map(|p| p.id),
            Some(first.id.clone())
        );

        // The same reference at the other gateway is another payment.
        let chapa = Payment {
            gateway: GatewayKind::Chapa,
            ..new_payment(&sita, &plan, t0())
        };
        h.store.insert_payment(&chapa).await?;
        h.store
            .record_checkout(
                &chapa.id,
                &pidx,
                "https://checkout.chapa.co/x",
                None,
                &initiate_answer(&pidx),
                t0(),
            )
            .await?;
        assert_eq!(
            h.store
                .payment_by_provider_ref(GatewayKind::Chapa, &pidx)
                .await?
                .map(|p| p.id),
            Some(chapa.id)
        );
        assert_eq!(
            h.store
                .payment_by_provider_ref(GatewayKind::Khalti, &pidx)
                .await?
                .map(|p| p.id),
            Some(first.id)
        );
        assert_eq!(
            h.store
                .payment_by_provider_ref(GatewayKind::Khalti, "unknown")
                .await?,
            None
        );

        // Inserting a payment id twice is refused too.
        assert_conflict(h.store.insert_payment(&second).await, "same payment id");
        Ok(())
    }

    async fn fail_initiation_only_from_initiated(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;

        // No checkout could be opened: the payment fails, with the gateway's refusal
        // kept.
        let refused = new_payment(&sita, &plan, t0());
        h.store.insert_payment(&refused).await?;
        let raw = RawAnswer {
            http_status: 400,
            body: r#"{"amount":["Amount should be greater than Rs. 10, that is 1000 paisa."],"error_key":"validation_error"}"#.into(),
        };
        let later = t0() + Duration::seconds(1);
        let failed = h
            .store
            .fail_initiation(
                &refused.id,
                "Khalti rejected the request",
                Some(&raw),
                later,
            )
            .await?;
        assert_eq!(failed.status, PaymentStatus::Failed);
        assert_eq!(
            failed.status_reason.as_deref(),
            Some("Khalti rejected the request")
        );
        assert_eq!(failed.updated_at, later);
        let answers = h.store.answers(&refused.id).await?;
        assert_eq!(answers.len(), 1);
        assert_eq!(
            (answers[0].kind.as_str(), answers[0].http_status),
            ("initiate", 400)
        );
        assert_eq!(answers[0].body, raw.body);

        // Without a gateway answer (a timeout) nothing is recorded but the status.
        let timed_out = new_payment(&sita, &plan, t0());
        h.store.insert_payment(&timed_out).await?;
        h.store
            .fail_initiation(&timed_out.id, "Khalti did not answer in time", None, later)
            .await?;
        assert_eq!(h.status(&timed_out).await?, PaymentStatus::Failed);
        assert!(h.store.answers(&timed_out.id).await?.is_empty());

        // Not again, and not once a checkout is open or the payment has moved on.
        assert_not_found(
            h.store
                .fail_initiation(&refused.id, "again", Some(&raw), later)
                .await,
            "failing a failed payment",
        );
        assert_eq!(h.store.answers(&refused.id).await?.len(), 1);
        let open = h.checkout(&sita, &plan, t0()).await?;
        assert_not_found(
            h.store.fail_initiation(&open.id, "late", None, later).await,
            "failing a payment whose checkout is open",
        );
        assert_eq!(h.status(&open).await?, PaymentStatus::Initiated);
        let pending = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&pending, &lookup(&pending, "Pending", 50_000), later)
            .await?;
        assert_not_found(
            h.store
                .fail_initiation(&pending.id, "late", None, later)
                .await,
            "failing a pending payment",
        );
        assert_eq!(h.status(&pending).await?, PaymentStatus::Pending);
        Ok(())
    }

    async fn payments_for_user_newest_first(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let ram = h.user("ram").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let mut mine = Vec::new();
        // Out of order, and two at the same instant (the id breaks the tie).
        for offset in [5, 1, 9, 9, 3] {
            let p = h
                .checkout(&sita, &plan, t0() + Duration::seconds(offset))
                .await?;
            mine.push(p);
        }
        h.checkout(&ram, &plan, t0() + Duration::seconds(100))
            .await?;
        let mut expected: Vec<PaymentId> = mine.iter().map(|p| p.id.clone()).collect();
        expected.sort_by_key(|id| {
            let p = mine.iter().find(|p| &p.id == id).unwrap();
            std::cmp::Reverse((p.created_at, p.id.clone()))
        });

        let listed: Vec<PaymentId> = h
            .store
            .payments_for_user(&sita.id, 50)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(listed, expected);
        let first_two: Vec<PaymentId> = h
            .store
            .payments_for_user(&sita.id, 2)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(first_two, expected[..2]);
        assert!(h
            .store
            .payments_for_user(&UserId::generate(), 50)
            .await?
            .is_empty());
        Ok(())
    }

    async fn answers_keep_every_body_in_order(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        let other = h.checkout(&sita, &plan, t0()).await?;

        let long = format!(r#"{{"detail":"{}"}}"#, "x".repeat(100_000));
        let recorded = [
            (
                AnswerKind::ReturnSignal,
                200,
                "pidx=abc&status=Completed&purchase_order_name=सदस्यता".to_owned(),
                // Microseconds survive on both backends.
                t0() + Duration::microseconds(1_234_567),
            ),
            (
                AnswerKind::Lookup,
                503,
                "<html>Service Unavailable</html>".to_owned(),
                t0() + Duration::seconds(3),
            ),
            // Received "earlier" (a clock step back): still listed in arrival order.
            (AnswerKind::Lookup, 200, long, t0() + Duration::seconds(2)),
            (
                AnswerKind::Lookup,
                200,
                "quote ' and backslash \\ and nul-free".to_owned(),
                t0() + Duration::seconds(4),
            ),
        ];
        for (kind, status, body, at) in &recorded {
            h.store
                .record_answer(
                    &payment.id,
                    *kind,
                    &RawAnswer {
                        http_status: *status,
                        body: body.clone(),
                    },
                    *at,
                )
                .await?;
        }
        let answers = h.store.answers(&payment.id).await?;
        assert_eq!(answers.len(), 1 + recorded.len());
        assert_eq!(answers[0].kind, "initiate");
        for (got, (kind, status, body, at)) in answers[1..].iter().zip(&recorded) {
            assert_eq!(got.kind, kind.as_str());
            assert_eq!(got.http_status, *status);
            assert_eq!(&got.body, body);
            assert_eq!(got.received_at, *at);
        }
        assert_eq!(
            h.store.answers(&other.id).await?.len(),
            1,
            "answers stay with their own payment"
        );
        Ok(())
    }

    async fn unknown_payments_read_as_nothing(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let ghost = PaymentId::generate(); // never inserted
        assert_eq!(h.store.payment(&ghost).await?, None);
        assert!(h.store.answers(&ghost).await?.is_empty());
        assert_not_found(
            h.store.fail_initiation(&ghost, "x", None, t0()).await,
            "fail_initiation of an unknown payment",
        );
        Ok(())
    }

    /// A write about a payment that is not there is `NotFound` ("the row the write
    /// refers to is not there"), not a database failure (a 500 and an alarm).
    async fn writes_about_an_unknown_payment_are_not_found(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let ghost = new_payment(&sita, &plan, t0()); // never inserted
        let raw = initiate_answer("ghost");
        assert_not_found(
            h.store
                .record_checkout(&ghost.id, "ghost", "https://x", None, &raw, t0())
                .await,
            "record_checkout of an unknown payment",
        );
        assert_not_found(
            h.store
                .fail_initiation(&ghost.id, "x", Some(&raw), t0())
                .await,
            "fail_initiation (with the gateway's answer) of an unknown payment",
        );
        assert_not_found(
            h.store
                .record_answer(&ghost.id, AnswerKind::ReturnSignal, &raw, t0())
                .await,
            "record_answer for an unknown payment",
        );
        let answer = paid(&ghost);
        assert_not_found(
            h.store
                .settle(Settlement {
                    payment: ghost.id.clone(),
                    transition: decide(&ghost, &answer),
                    provider_txn_id: None,
                    kind: AnswerKind::Lookup,
                    raw: answer.raw.clone(),
                    now: t0(),
                    webhook: None,
                })
                .await,
            "settle of an unknown payment",
        );
        assert_eq!(h.subscription(&sita).await?, None);
        Ok(())
    }

    test_both!(
        insert_then_record_checkout,
        a_provider_ref_names_one_payment,
        fail_initiation_only_from_initiated,
        payments_for_user_newest_first,
        answers_keep_every_body_in_order,
        unknown_payments_read_as_nothing,
        writes_about_an_unknown_payment_are_not_found,
    );
}

// Settling -------------------------------------------------------------------------------

mod settle {
    use super::*;
    use tijori_core::id::RefundId;
    use tijori_core::store::{Refund, RefundStatus};

    async fn paid_completes_and_grants_once(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        let answer = paid(&payment);
        let now = t0() + Duration::minutes(3);

        let settled = h.settle(&payment, &answer, now).await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Completed);
        assert_eq!(settled.payment.updated_at, now);
        assert_eq!(
            settled.payment.provider_txn_id.as_deref(),
            answer.transaction_id.as_deref()
        );
        let granted = Subscription {
            user_id: sita.id.clone(),
            plan_id: plan.id.clone(),
            start_at: now,
            end_at: now + days(30),
        };
        assert_eq!(h.subscription(&sita).await?, Some(granted.clone()));
        assert_eq!(h.store.payment(&payment.id).await?, Some(settled.payment));
        assert_eq!(h.fulfilments(&payment.id).await?, 1);

        // The same answer again (the webhook after the return page): nothing new.
        let later = now + Duration::minutes(1);
        let again = h.settle(&payment, &answer, later).await?;
        assert!(!again.changed);
        assert_eq!(again.payment.status, PaymentStatus::Completed);
        assert_eq!(
            again.payment.updated_at, now,
            "an unchanged payment keeps its time"
        );
        assert_eq!(h.subscription(&sita).await?, Some(granted.clone()));
        assert_eq!(h.subscription(&sita).await?, Some(granted));
        assert_eq!(h.fulfilments(&payment.id).await?, 1);

        // Both answers are on record, the second although it changed nothing.
        let answers = h.store.answers(&payment.id).await?;
        let kinds: Vec<&str> = answers.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["initiate", "lookup", "lookup"]);
        assert_eq!(answers[1].body, answer.raw.body);
        assert_eq!(answers[1].received_at, now);
        assert_eq!(answers[2].received_at, later);
        Ok(())
    }

    async fn concurrent_settles_fulfil_once(db: TestDatabase) -> Result<()> {
        const N: usize = 20;
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = Arc::new(h.checkout(&sita, &plan, t0()).await?);
        let answer = Arc::new(paid(&payment));
        let now = t0() + Duration::minutes(3);

        let barrier = Arc::new(Barrier::new(N));
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (store, payment, answer, barrier) = (
                    h.store.clone(),
                    payment.clone(),
                    answer.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    settle(&*store, &payment, &answer, now).await
                })
            })
            .collect();
        let mut changed = 0;
        for task in tasks {
            let settled = task.await??;
            assert_eq!(settled.payment.status, PaymentStatus::Completed);
            changed += usize::from(settled.changed);
        }
        assert_eq!(changed, 1, "exactly one settle changes the payment");
        let sub = h.subscription(&sita).await?.context("no subscription")?;
        assert_eq!((sub.start_at, sub.end_at), (now, now + days(30)));
        assert_eq!(h.fulfilments(&payment.id).await?, 1);
        assert_eq!(
            h.store.answers(&payment.id).await?.len(),
            1 + N,
            "every settle's answer is recorded"
        );
        Ok(())
    }

    /// Settles all `payments` at once (all at `now`), each with its Paid answer.
    async fn settle_all_at_once(
        h: &Harness,
        payments: &[Payment],
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let barrier = Arc::new(Barrier::new(payments.len()));
        let tasks: Vec<_> = payments
            .iter()
            .map(|p| {
                let (store, payment, barrier) = (h.store.clone(), p.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    settle(&*store, &payment, &paid(&payment), now).await
                })
            })
            .collect();
        let mut changed = 0;
        for task in tasks {
            changed += usize::from(task.await??.changed);
        }
        Ok(changed)
    }

    async fn concurrent_first_purchases_add_up(db: TestDatabase) -> Result<()> {
        // Two payments of one user for one plan, settled at the same moment, with no
        // subscription yet: both periods count. Five users at once, so that the
        // settles really overlap.
        let h = Harness::open(&db).await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let mut users = Vec::new();
        let mut payments = Vec::new();
        for i in 0..5 {
            let user = h.user(&format!("user{i}")).await?;
            payments.push(h.checkout(&user, &plan, t0()).await?);
            payments.push(h.checkout(&user, &plan, t0()).await?);
            users.push(user);
        }
        let now = t0() + Duration::minutes(3);
        assert_eq!(
            settle_all_at_once(&h, &payments, now).await?,
            payments.len()
        );
        for user in &users {
            let sub = h.subscription(user).await?.context("no subscription")?;
            assert_eq!(
                (sub.start_at, sub.end_at),
                (now, now + days(60)),
                "{}: two paid periods must add up to 60 days",
                user.username.as_str()
            );
        }
        for p in &payments {
            assert_eq!(h.fulfilments(&p.id).await?, 1);
        }
        Ok(())
    }

    async fn concurrent_renewals_add_up(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;

        let mut renewals = Vec::new();
        for _ in 0..4 {
            renewals.push(h.checkout(&sita, &plan, t0()).await?);
        }
        let now = t0() + days(10);
        assert_eq!(settle_all_at_once(&h, &renewals, now).await?, 4);
        let sub = h.subscription(&sita).await?.context("no subscription")?;
        assert_eq!((sub.start_at, sub.end_at), (t0(), t0() + days(30 * 5)));
        Ok(())
    }

    async fn renewal_extends_an_active_subscription_from_its_end(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;

        let second = h.checkout(&sita, &plan, t0() + days(10)).await?;
        assert!(
            h.settle(&second, &paid(&second), t0() + days(10))
                .await?
                .changed
        );
        let sub = h.subscription(&sita).await?.context("no subscription")?;
        assert_eq!(sub.plan_id, plan.id);
        assert_eq!((sub.start_at, sub.end_at), (t0(), t0() + days(60)));

        // Once it has run out, a purchase starts afresh.
        let third = h.checkout(&sita, &plan, t0() + days(70)).await?;
        assert!(
            h.settle(&third, &paid(&third), t0() + days(70))
                .await?
                .changed
        );
        let sub = h.subscription(&sita).await?.context("no subscription")?;
        assert_eq!(
            (sub.start_at, sub.end_at),
            (t0() + days(70), t0() + days(100))
        );
        Ok(())
    }

    async fn a_settle_that_waited_with_an_earlier_now_keeps_both_periods(
        db: TestDatabase,
    ) -> Result<()> {
        // Issue 9 item 0, the interleaving itself: each settle takes its `now` before
        // it waits for the user's lock, so the one that waited can hold the earlier
        // time. It must add its period after the one committed first, not replace it.
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        let second = h.checkout(&sita, &plan, t0()).await?;
        let later = t0() + Duration::seconds(1);
        assert!(h.settle(&second, &paid(&second), later).await?.changed);
        assert!(h.settle(&first, &paid(&first), t0()).await?.changed);
        let sub = h.subscription(&sita).await?.context("no subscription")?;
        assert_eq!(
            (sub.start_at, sub.end_at),
            (later, later + days(60)),
            "two paid periods must add up to 60 days"
        );
        assert_eq!(h.fulfilments(&first.id).await?, 1);
        assert_eq!(h.fulfilments(&second.id).await?, 1);
        Ok(())
    }

    async fn first_purchases_settled_with_their_own_clocks_add_up(db: TestDatabase) -> Result<()> {
        // Issue 9 item 0 as it happened: forty users with no subscription each pay
        // twice, and both outcomes arrive at once. Each settle reads the clock before
        // it waits for the user's lock, as `Tijori::settle` does; whichever commits
        // second may hold the earlier time. Every user must get both periods.
        let h = Harness::open(&db).await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let mut users = Vec::new();
        let mut payments = Vec::new();
        for i in 0..40 {
            let user = h.user(&format!("user{i}")).await?;
            payments.push(h.checkout(&user, &plan, t0()).await?);
            payments.push(h.checkout(&user, &plan, t0()).await?);
            users.push(user);
        }
        let barrier = Arc::new(Barrier::new(payments.len()));
        let tasks: Vec<_> = payments
            .iter()
            .map(|p| {
                let (store, payment, barrier) = (h.store.clone(), p.clone(), barrier.clone());
                tokio::spawn(async move {
                    let now = Utc::now();
                    barrier.wait().await;
                    settle(&*store, &payment, &paid(&payment), now).await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await??.changed);
        }
        let mut short = Vec::new();
        for user in &users {
            let sub = h.subscription(user).await?.context("no subscription")?;
            if sub.end_at - sub.start_at != days(60) {
                short.push(format!("{}: {sub:?}", user.username.as_str()));
            }
        }
        assert!(
            short.is_empty(),
            "{} of {} users got less than the 60 days they paid for: {short:#?}",
            short.len(),
            users.len()
        );
        for p in &payments {
            assert_eq!(h.fulfilments(&p.id).await?, 1);
        }
        Ok(())
    }

    async fn refunding_the_older_renewal_then_the_newer_ends_it_now(
        db: TestDatabase,
    ) -> Result<()> {
        // Issue 9 item 1: Basic paid twice (days 0-30 and 30-60), both refunded on day
        // 5, the older first. Only the 5 days used remain.
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;
        let second = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&second, &paid(&second), t0()).await?;

        h.settle(&first, &lookup(&first, "Refunded", 50_000), t0() + days(5))
            .await?;
        let sub = h.subscription(&sita).await?.context("subscription")?;
        assert_eq!((sub.start_at, sub.end_at), (t0(), t0() + days(35)));
        h.settle(
            &second,
            &lookup(&second, "Refunded", 50_000),
            t0() + days(5),
        )
        .await?;
        let sub = h.subscription(&sita).await?.context("subscription")?;
        assert_eq!(
            (sub.start_at, sub.end_at),
            (t0(), t0() + days(5)),
            "nothing paid and unrefunded is left after day 5"
        );
        assert!(!sub.is_active(t0() + days(5)));
        Ok(())
    }

    async fn a_partial_refund_takes_its_share_of_the_days(db: TestDatabase) -> Result<()> {
        // Issue 9 item 1: a refund of a fifth of the price takes a fifth of the
        // period's days (as far as they are unused).
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let admin = h.user("admin").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&payment, &paid(&payment), t0()).await?;
        let refund = Refund {
            id: RefundId::generate(),
            payment_id: payment.id.clone(),
            amount: npr(10_000),
            reason: None,
            status: RefundStatus::Requested,
            detail: None,
            requested_by: admin.id.clone(),
            restock: false,
            resolved_by: None,
            resolved_at: None,
            resolution: None,
            created_at: t0() + days(1),
            updated_at: t0() + days(1),
        };
        h.store.begin_refund(&refund).await?;
        h.store
            .finish_refund(&refund.id, RefundStatus::Succeeded, None, t0() + days(1))
            .await?;
        let settled = h
            .settle(
                &payment,
                &lookup(&payment, "Partially Refunded", 50_000),
                t0() + days(1),
            )
            .await?;
        assert_eq!(settled.payment.status, PaymentStatus::PartiallyRefunded);
        let sub = h.subscription(&sita).await?.context("subscription")?;
        assert_eq!((sub.start_at, sub.end_at), (t0(), t0() + days(24)));
        assert_eq!(h.revoked_fulfilments(&payment.id).await?, 0);
        Ok(())
    }

    async fn a_different_plan_is_queued_after_the_paid_time(db: TestDatabase) -> Result<()> {
        // Issue 9 item 4: buying another plan while one runs must not throw away the
        // 20 days left of it; by default the new plan starts when they end.
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let yearly = h.plan("Yearly", 500_000, 365).await?;
        let first = h.checkout(&sita, &basic, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;

        let upgrade = h.checkout(&sita, &yearly, t0() + days(10)).await?;
        assert!(
            h.settle(&upgrade, &paid(&upgrade), t0() + days(10))
                .await?
                .changed
        );
        // The row is the whole run of paid time, named by the plan that ends it.
        let expected = Subscription {
            user_id: sita.id.clone(),
            plan_id: yearly.id.clone(),
            start_at: t0(),
            end_at: t0() + days(395),
        };
        assert_eq!(h.subscription(&sita).await?, Some(expected));
        Ok(())
    }

    async fn what_is_queued_and_a_switch_now_come_from_the_periods(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let yearly = h.plan("Yearly", 500_000, 365).await?;
        let premium = h.plan("Premium", 100_000, 30).await?;
        let first = h.checkout(&sita, &basic, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;
        let upgrade = h.checkout(&sita, &yearly, t0() + days(10)).await?;
        h.settle(&upgrade, &paid(&upgrade), t0() + days(10)).await?;

        let periods = h.store.paid_periods(&sita.id).await?;
        let now = t0() + days(10);
        let p = subscription::project(&sita.id, &periods, now);
        let current = p.current.context("current")?;
        assert_eq!(
            (current.plan_id, current.start_at, current.end_at),
            (basic.id.clone(), t0(), t0() + days(30))
        );
        assert_eq!(p.queued.len(), 1);
        assert_eq!(
            (
                p.queued[0].plan_id.clone(),
                p.queued[0].start_at,
                p.queued[0].end_at
            ),
            (yearly.id.clone(), t0() + days(30), t0() + days(395))
        );

        // Switching to Premium now on day 20: 10 Basic days and the whole year turn
        // into Premium days, pro rata by price (Basic at 500.00 per 30 days, the year
        // at 5000.00 per 365, Premium at 1000.00 per 30 days).
        let switch = h
            .checkout_with(&sita, &premium, PlanChange::SwitchNow, t0() + days(20))
            .await?;
        h.settle(&switch, &paid(&switch), t0() + days(20)).await?;
        let periods = h.store.paid_periods(&sita.id).await?;
        let p = subscription::project(&sita.id, &periods, t0() + days(20));
        let current = p.current.context("current")?;
        let credit = Duration::days(5) + Duration::days(150);
        assert_eq!(
            (current.plan_id, current.start_at, current.end_at),
            (
                premium.id.clone(),
                t0() + days(20),
                t0() + days(50) + credit
            )
        );
        assert!(p.queued.is_empty());
        // Basic's first 20 days stay Basic.
        let basic_row = periods
            .iter()
            .find(|x| x.payment_id == first.id)
            .context("basic")?;
        assert_eq!(
            (basic_row.start_at, basic_row.end_at),
            (t0(), t0() + days(20))
        );
        Ok(())
    }

    /// Purchases placed after everything are written from the kept segments alone;
    /// switches and refunds lay every period out again. Either way, what a reader is
    /// shown is what the periods add up to.
    async fn the_kept_segments_are_what_the_periods_add_up_to(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let yearly = h.plan("Yearly", 500_000, 365).await?;
        let premium = h.plan("Premium", 100_000, 30).await?;
        let at = |d: i64| t0() + days(d);
        let mut bought = Vec::new();
        for (day, plan, change) in [
            (0, &basic, PlanChange::Queue),
            (1, &basic, PlanChange::Queue),
            (2, &yearly, PlanChange::Queue),
            (3, &premium, PlanChange::SwitchNow),
            (4, &premium, PlanChange::SwitchNow),
        ] {
            let payment = h.checkout_with(&sita, plan, change, at(day)).await?;
            h.settle(&payment, &paid(&payment), at(day)).await?;
            bought.push(payment);
            for d in [day, day + 40, day + 400] {
                h.segments_agree(&sita, at(d)).await?;
            }
        }
        h.settle(&bought[2], &lookup(&bought[2], "Refunded", 500_000), at(5))
            .await?;
        for d in [5, 50, 500] {
            h.segments_agree(&sita, at(d)).await?;
        }
        // A purchase a year later, after a gap, and one placed right after it.
        for day in [800, 801] {
            let payment = h.checkout(&sita, &basic, at(day)).await?;
            h.settle(&payment, &paid(&payment), at(day)).await?;
            h.segments_agree(&sita, at(day)).await?;
        }

        // Refunded in full before any of it was used: the customer still sees the
        // plan they had, ended; the next purchase starts over from it.
        let ram = h.user("ram").await?;
        let first = h.checkout(&ram, &basic, at(0)).await?;
        h.settle(&first, &paid(&first), at(0)).await?;
        h.settle(&first, &lookup(&first, "Refunded", 50_000), at(0))
            .await?;
        h.segments_agree(&ram, at(0)).await?;
        h.segments_agree(&ram, at(10)).await?;
        let again = h.checkout(&ram, &yearly, at(10)).await?;
        h.settle(&again, &paid(&again), at(10)).await?;
        h.segments_agree(&ram, at(10)).await?;
        let current = h.store.segments(&ram.id, at(10)).await?;
        ensure!(
            current.len() == 1 && current[0].plan_id == yearly.id,
            "{current:?}"
        );
        Ok(())
    }

    /// Periods paid before segments were kept get them when the database is
    /// migrated, and purchases placed from them afterwards add up.
    async fn periods_paid_before_segments_were_kept_get_them_when_migrated(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let yearly = h.plan("Yearly", 500_000, 365).await?;
        for (day, plan) in [(0, &basic), (1, &basic), (2, &yearly)] {
            let payment = h.checkout(&sita, plan, t0() + days(day)).await?;
            h.settle(&payment, &paid(&payment), t0() + days(day))
                .await?;
        }
        h.execute("DELETE FROM subscription_segments").await?;
        ensure!(h.store.segments(&sita.id, t0()).await?.is_empty());

        h.database.migrate().await?;
        h.segments_agree(&sita, t0() + days(3)).await?;
        let renewal = h.checkout(&sita, &yearly, t0() + days(3)).await?;
        h.settle(&renewal, &paid(&renewal), t0() + days(3)).await?;
        h.segments_agree(&sita, t0() + days(3)).await?;
        let run = h.subscription(&sita).await?.context("subscription")?;
        ensure!(run.end_at == t0() + days(60 + 730), "{run:?}");
        Ok(())
    }

    async fn further_partial_refunds_take_their_share_too(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let admin = h.user("admin").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&payment, &paid(&payment), t0()).await?;
        for (n, now) in [(1, t0() + days(1)), (2, t0() + days(2))] {
            let refund = Refund {
                id: RefundId::generate(),
                payment_id: payment.id.clone(),
                amount: npr(10_000),
                reason: None,
                status: RefundStatus::Requested,
                detail: None,
                requested_by: admin.id.clone(),
                restock: false,
                resolved_by: None,
                resolved_at: None,
                resolution: None,
                created_at: now,
                updated_at: now,
            };
            h.store.begin_refund(&refund).await?;
            h.store
                .finish_refund(&refund.id, RefundStatus::Succeeded, None, now)
                .await?;
            let settled = h
                .settle(
                    &payment,
                    &lookup(&payment, "Partially Refunded", 50_000),
                    now,
                )
                .await?;
            assert_eq!(settled.changed, n == 1);
            if !settled.changed {
                h.store.take_back(&payment.id, now).await?;
            }
            // Told again: nothing more goes.
            h.store.take_back(&payment.id, now).await?;
            let sub = h.subscription(&sita).await?.context("subscription")?;
            assert_eq!(sub.end_at, t0() + days(30 - 6 * n), "after refund {n}");
        }
        // The rest refunded: the unused days go, the used ones stay.
        h.settle(
            &payment,
            &lookup(&payment, "Refunded", 50_000),
            t0() + days(3),
        )
        .await?;
        let sub = h.subscription(&sita).await?.context("subscription")?;
        assert_eq!(sub.end_at, t0() + days(3));
        Ok(())
    }

    async fn a_different_amount_needs_review(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;

        let short = lookup(&payment, "Completed", 1_000);
        let settled = h.settle(&payment, &short, t0()).await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::NeedsReview);
        let reason = settled.payment.status_reason.clone().context("no reason")?;
        assert!(reason.contains("1000"), "reason: {reason}");
        assert_eq!(h.subscription(&sita).await?, None);
        assert_eq!(h.fulfilments(&payment.id).await?, 0);

        // A later "right" answer does not fulfil it behind the operator's back.
        let settled = h.settle(&payment, &paid(&payment), t0()).await?;
        assert!(!settled.changed);
        assert_eq!(h.status(&payment).await?, PaymentStatus::NeedsReview);
        assert_eq!(h.subscription(&sita).await?, None);
        assert_eq!(h.fulfilments(&payment.id).await?, 0);
        assert_eq!(h.store.answers(&payment.id).await?.len(), 3);
        Ok(())
    }

    async fn pending_waits_and_unpaid_changes_nothing(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;

        // Khalti's "Initiated": nothing happened yet. Recorded, nothing changes.
        let unpaid = lookup(&payment, "Initiated", 50_000);
        assert!(decide(&payment, &unpaid).is_none());
        let settled = h.settle(&payment, &unpaid, t0()).await?;
        assert!(!settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Initiated);

        let pending = lookup(&payment, "Pending", 50_000);
        let settled = h.settle(&payment, &pending, t0()).await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Pending);
        assert_eq!(h.subscription(&sita).await?, None);
        let again = h.settle(&payment, &pending, t0()).await?;
        assert!(!again.changed);
        assert_eq!(h.status(&payment).await?, PaymentStatus::Pending);

        // And then it is paid.
        let settled = h.settle(&payment, &paid(&payment), t0()).await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Completed);
        assert!(h.subscription(&sita).await?.is_some());

        let bodies: Vec<String> = h
            .store
            .answers(&payment.id)
            .await?
            .into_iter()
            .map(|a| a.body)
            .collect();
        assert_eq!(
            bodies[1..],
            [
                unpaid.raw.body,
                pending.raw.body.clone(),
                pending.raw.body,
                paid(&payment).raw.body
            ]
        );
        Ok(())
    }

    async fn expired_and_canceled_are_never_fulfilled(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        for (khalti, status) in [
            ("Expired", PaymentStatus::Expired),
            ("User canceled", PaymentStatus::Canceled),
        ] {
            let payment = h.checkout(&sita, &plan, t0()).await?;
            let answer = lookup(&payment, khalti, 50_000);
            let settled = h.settle(&payment, &answer, t0()).await?;
            assert!(settled.changed, "{khalti}");
            assert_eq!(settled.payment.status, status);
            assert!(settled.payment.status_reason.is_some());
            assert_eq!(h.subscription(&sita).await?, None, "{khalti}");
            // Told twice: no change the second time.
            assert!(!h.settle(&payment, &answer, t0()).await?.changed);
            assert_eq!(h.status(&payment).await?, status);
            assert_eq!(h.fulfilments(&payment.id).await?, 0);
            let answers = h.store.answers(&payment.id).await?;
            assert_eq!(answers.len(), 3);
            assert_eq!(answers[1].http_status, 400, "Khalti's 400 is kept as is");
        }
        assert_eq!(h.subscription(&sita).await?, None);
        Ok(())
    }

    async fn money_that_arrives_late_still_counts(db: TestDatabase) -> Result<()> {
        // We saw it expire, but the gateway is the authority: if it says paid later,
        // the customer gets what they paid for (once).
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&payment, &lookup(&payment, "Expired", 50_000), t0())
            .await?;
        let settled = h.settle(&payment, &paid(&payment), t0() + days(1)).await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Completed);
        assert_eq!(h.fulfilments(&payment.id).await?, 1);
        assert_eq!(
            h.subscription(&sita).await?.map(|s| s.end_at),
            Some(t0() + days(31))
        );
        Ok(())
    }

    async fn refund_takes_back_the_granted_period(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;
        let second = h.checkout(&sita, &plan, t0() + days(1)).await?;
        h.settle(&second, &paid(&second), t0() + days(1)).await?;
        assert_eq!(
            h.subscription(&sita).await?.map(|s| s.end_at),
            Some(t0() + days(60))
        );

        let refund = lookup(&second, "Refunded", 50_000);
        let settled = h.settle(&second, &refund, t0() + days(2)).await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Refunded);
        let sub = h.subscription(&sita).await?.context("subscription gone")?;
        assert_eq!((sub.start_at, sub.end_at), (t0(), t0() + days(30)));
        assert_eq!(h.subscription(&sita).await?, Some(sub.clone()));
        assert_eq!(h.revoked_fulfilments(&second.id).await?, 1);
        assert_eq!(h.revoked_fulfilments(&first.id).await?, 0);

        // The refund reported again takes nothing more.
        let again = h.settle(&second, &refund, t0() + days(3)).await?;
        assert!(!again.changed);
        assert_eq!(h.subscription(&sita).await?, Some(sub));

        // Refunding the last paid period ends the subscription now.
        let settled = h
            .settle(&first, &lookup(&first, "Refunded", 50_000), t0() + days(5))
            .await?;
        assert!(settled.changed);
        let sub = h.subscription(&sita).await?.context("subscription row")?;
        assert_eq!(sub.end_at, t0() + days(5));
        assert!(!sub.is_active(t0() + days(5)));
        Ok(())
    }

    async fn refunding_the_plan_before_a_queued_one_keeps_the_queued_one_whole(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let yearly = h.plan("Yearly", 400_000, 365).await?;
        let first = h.checkout(&sita, &basic, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;
        let upgrade = h.checkout(&sita, &yearly, t0() + days(10)).await?;
        h.settle(&upgrade, &paid(&upgrade), t0() + days(10)).await?;
        let before = h.subscription(&sita).await?.context("subscription")?;
        // The year is queued after Basic's 30 days (issue 9 item 4).
        assert_eq!(before.end_at, t0() + days(395));

        // Refunding Basic on day 11 takes its 19 unused days, and nothing of the year
        // it never paid for: the year starts now and runs its 365 days.
        let settled = h
            .settle(&first, &lookup(&first, "Refunded", 50_000), t0() + days(11))
            .await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Refunded);
        let after = h.subscription(&sita).await?.context("subscription")?;
        assert_eq!(
            (after.plan_id.clone(), after.start_at, after.end_at),
            (yearly.id.clone(), t0(), t0() + days(376))
        );
        assert_eq!(h.revoked_fulfilments(&first.id).await?, 1);
        Ok(())
    }

    async fn refunding_a_lapsed_period_leaves_a_later_purchase_alone(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let basic = h.plan("Basic", 50_000, 30).await?;
        let old = h.checkout(&sita, &basic, t0()).await?;
        h.settle(&old, &paid(&old), t0()).await?;
        // The first period ends on day 30; on day 40 she buys Basic again.
        let new = h.checkout(&sita, &basic, t0() + days(40)).await?;
        h.settle(&new, &paid(&new), t0() + days(40)).await?;
        let before = h.subscription(&sita).await?.context("subscription")?;
        assert_eq!(
            (before.start_at, before.end_at),
            (t0() + days(40), t0() + days(70))
        );

        let settled = h
            .settle(&old, &lookup(&old, "Refunded", 50_000), t0() + days(45))
            .await?;
        assert!(settled.changed);
        assert_eq!(
            h.subscription(&sita).await?,
            Some(before),
            "the days the new payment bought stay"
        );
        Ok(())
    }

    async fn refund_of_an_unfulfilled_payment_revokes_nothing(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let bought = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&bought, &paid(&bought), t0()).await?;
        let before = h.subscription(&sita).await?;
        assert!(before.is_some());

        // A payment that never completed here is reported refunded.
        let other = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&other, &lookup(&other, "Pending", 50_000), t0())
            .await?;
        let settled = h
            .settle(&other, &lookup(&other, "Refunded", 50_000), t0() + days(1))
            .await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::Refunded);
        assert_eq!(h.subscription(&sita).await?, before);
        assert_eq!(h.fulfilments(&other.id).await?, 0);
        assert_eq!(h.revoked_fulfilments(&bought.id).await?, 0);

        // Nor does a refunded payment get fulfilled afterwards.
        let late = h.settle(&other, &paid(&other), t0() + days(2)).await?;
        assert!(!late.changed);
        assert_eq!(h.subscription(&sita).await?, before);
        Ok(())
    }

    async fn partial_refund_keeps_the_subscription(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&payment, &paid(&payment), t0()).await?;
        let before = h.subscription(&sita).await?;
        let settled = h
            .settle(
                &payment,
                &lookup(&payment, "Partially Refunded", 50_000),
                t0() + days(1),
            )
            .await?;
        assert!(settled.changed);
        assert_eq!(settled.payment.status, PaymentStatus::PartiallyRefunded);
        assert_eq!(h.subscription(&sita).await?, before);
        assert_eq!(h.revoked_fulfilments(&payment.id).await?, 0);
        Ok(())
    }

    /// On PostgreSQL a settle tells the payment-change listeners of the other
    /// processes on the database, and sends nothing when the only listener is its
    /// own process's (which announces its changes itself). SQLite has one process.
    async fn settles_are_told_to_the_other_processes(db: TestDatabase) -> Result<()> {
        if db.backend() == Backend::Sqlite {
            return Ok(());
        }
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let heard = |database: &Database| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let task = database
                .listen_for_changes(move |id| {
                    let _ = tx.send(id);
                })
                .context("PostgreSQL listens")?;
            anyhow::Ok((task, rx))
        };
        let harness = &h;
        let registered = move |n: i64| async move {
            for _ in 0..100 {
                if harness
                    .scalar("SELECT COUNT(*) FROM change_listeners WHERE $1 = $1", "")
                    .await?
                    == n
                {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            anyhow::bail!("{n} listeners never registered")
        };
        let wait = std::time::Duration::from_millis(500);

        // Alone: this process's settle sends no NOTIFY, not even to its own listener.
        let (own, mut own_heard) = heard(&h.database)?;
        registered(1).await?;
        let alone = h.checkout(&sita, &plan, t0()).await?;
        assert!(h.settle(&alone, &paid(&alone), t0()).await?.changed);
        assert!(
            tokio::time::timeout(wait, own_heard.recv()).await.is_err(),
            "a NOTIFY that no other process listens for"
        );

        // Another process listens: it hears this one's settle.
        let other = Database::connect(&h.url).await?;
        let (other_task, mut other_heard) = heard(&other)?;
        registered(2).await?;
        let told = h.checkout(&sita, &plan, t0()).await?;
        assert!(h.settle(&told, &paid(&told), t0()).await?.changed);
        let id = tokio::time::timeout(std::time::Duration::from_secs(10), other_heard.recv())
            .await
            .context("the other process was not told")?;
        assert_eq!(id, Some(told.id.clone()));
        // The NOTIFY goes to every listener, this process's own too.
        let id = tokio::time::timeout(std::time::Duration::from_secs(10), own_heard.recv())
            .await
            .context("this process's listener was not told")?;
        assert_eq!(id, Some(told.id.clone()));

        // A listener that stops says so: alone again, no NOTIFY.
        other_task.abort();
        registered(1).await?;
        let alone_again = h.checkout(&sita, &plan, t0()).await?;
        assert!(
            h.settle(&alone_again, &paid(&alone_again), t0())
                .await?
                .changed
        );
        assert!(
            tokio::time::timeout(wait, own_heard.recv()).await.is_err(),
            "a NOTIFY after the other process stopped listening"
        );

        // One that died without saying so is forgotten by the next to register.
        h.execute("INSERT INTO change_listeners (pid, since) VALUES (-1, now())")
            .await?;
        let (again, _again_heard) = heard(&other)?;
        registered(2).await?;
        again.abort();
        own.abort();
        other.close().await;
        Ok(())
    }

    test_both!(
        settles_are_told_to_the_other_processes,
        paid_completes_and_grants_once,
        concurrent_settles_fulfil_once,
        concurrent_first_purchases_add_up,
        concurrent_renewals_add_up,
        renewal_extends_an_active_subscription_from_its_end,
        a_settle_that_waited_with_an_earlier_now_keeps_both_periods,
        first_purchases_settled_with_their_own_clocks_add_up,
        refunding_the_older_renewal_then_the_newer_ends_it_now,
        a_partial_refund_takes_its_share_of_the_days,
        a_different_plan_is_queued_after_the_paid_time,
        what_is_queued_and_a_switch_now_come_from_the_periods,
        the_kept_segments_are_what_the_periods_add_up_to,
        periods_paid_before_segments_were_kept_get_them_when_migrated,
        further_partial_refunds_take_their_share_too,
        a_different_amount_needs_review,
        pending_waits_and_unpaid_changes_nothing,
        expired_and_canceled_are_never_fulfilled,
        money_that_arrives_late_still_counts,
        refund_takes_back_the_granted_period,
        refunding_the_plan_before_a_queued_one_keeps_the_queued_one_whole,
        refunding_a_lapsed_period_leaves_a_later_purchase_alone,
        refund_of_an_unfulfilled_payment_revokes_nothing,
        partial_refund_keeps_the_subscription,
    );
}

// The shop, webhooks, operator events and idempotency keys ------------------------------

mod shop {
    use super::*;
    use tijori_core::id::OrderId;
    use tijori_core::idempotency::{
        Claim, Claimant, IdempotencyKey, InstanceId, Leftover, StoredResponse,
    };
    use tijori_core::shop::{
        NewProduct, Order, OrderCaps, OrderRequest, OrderStatus, ReserveError,
    };
    use tijori_core::store::NewWebhookDelivery;

    fn etb(minor: i64) -> Money {
        Money::from_minor(minor, Currency::Etb).unwrap()
    }

    async fn product(h: &Harness, name: &str, minor: i64, stock: u32) -> Result<String> {
        Ok(h.store
            .create_product(
                NewProduct {
                    name: name.into(),
                    description: String::new(),
                    price: etb(minor),
                    stock,
                },
                t0(),
            )
            .await?
            .id
            .to_string())
    }

    async fn order(h: &Harness, user: &User, lines: &[(&str, i64)]) -> Result<Order> {
        let request = OrderRequest::parse(lines.iter().copied())?;
        h.store
            .create_order(
                &OrderId::generate(),
                &user.id,
                &request,
                &OrderCaps::UNLIMITED,
                t0() + Duration::minutes(30),
                t0(),
            )
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// `order`, held to `caps`, at `now`: the store's answer, refusal included.
    async fn capped_order(
        h: &Harness,
        user: &User,
        lines: &[(&str, i64)],
        caps: OrderCaps,
        now: DateTime<Utc>,
    ) -> Result<Result<Order, ReserveError>> {
        let request = OrderRequest::parse(lines.iter().copied())?;
        Ok(h.store
            .create_order(
                &OrderId::generate(),
                &user.id,
                &request,
                &caps,
                now + Duration::minutes(30),
                now,
            )
            .await?)
    }

    /// A Chapa payment for the order, its checkout open.
    async fn chapa_payment(h: &Harness, user: &User, order: &Order) -> Result<Payment> {
        let payment = Payment {
            id: PaymentId::generate(),
            user_id: user.id.clone(),
            gateway: GatewayKind::Chapa,
            purpose: Purpose::Order {
                order_id: order.id.clone(),
            },
            amount: order.total,
            status: PaymentStatus::Initiated,
            checkout: CheckoutKind::Hosted,
            provider_ref: None,
            provider_txn_id: None,
            payment_url: None,
            expires_at: None,
            status_reason: None,
            created_at: t0(),
            updated_at: t0(),
        };
        h.store.insert_payment(&payment).await?;
        let tx_ref = payment.id.to_string();
        Ok(h.store
            .record_checkout(
                &payment.id,
                &tx_ref,
                "https://checkout.chapa.co/checkout/payment/x",
                None,
                &RawAnswer {
                    http_status: 200,
                    body: "{}".into(),
                },
                t0(),
            )
            .await?)
    }

    fn chapa(status: GatewayStatus, minor: i64) -> GatewayAnswer {
        GatewayAnswer {
            status,
            amount_minor: minor,
            currency: Some(Currency::Etb),
            transaction_id: Some("APref".into()),
            raw: RawAnswer {
                http_status: 200,
                body: "{\"status\":\"success\"}".into(),
            },
        }
    }

    async fn stock(h: &Harness, id: &str) -> Result<u32> {
        let id = tijori_core::id::ProductId::parse(id).unwrap();
        Ok(h.store.product(&id).await?.context("product")?.stock)
    }

    async fn order_status(h: &Harness, order: &Order) -> Result<OrderStatus> {
        Ok(h.store.order(&order.id).await?.context("order")?.status)
    }

    async fn reserving_takes_all_or_nothing(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let abebe = h.user("abebe").await?;
        let coffee = product(&h, "Coffee", 85_000, 5).await?;
        let pot = product(&h, "Pot", 120_000, 1).await?;
        let o = order(&h, &abebe, &[(&coffee, 2), (&pot, 1)]).await?;
        ensure!(o.total == etb(290_000), "{:?}", o.total);
        ensure!(stock(&h, &coffee).await? == 3 && stock(&h, &pot).await? == 0);

        let request = OrderRequest::parse([(coffee.as_str(), 1), (pot.as_str(), 1)])?;
        let refused = h
            .store
            .create_order(
                &OrderId::generate(),
                &abebe.id,
                &request,
                &OrderCaps::UNLIMITED,
                t0(),
                t0(),
            )
            .await?;
        ensure!(
            matches!(refused, Err(ReserveError::OutOfStock { available: 0, .. })),
            "{refused:?}"
        );
        ensure!(stock(&h, &coffee).await? == 3, "rolled back");
        ensure!(h.store.orders_for_user(&abebe.id, 10).await?.len() == 1);
        let stored = h.store.order(&o.id).await?.context("order")?;
        ensure!(stored == o, "{stored:?} != {o:?}");
        Ok(())
    }

    /// Money that arrives after its order expired takes the stock again only if it
    /// can take all of it: a line refused part-way (its product taken off sale since)
    /// must not keep the lines taken before it while the payment is held.
    async fn money_for_an_expired_order_takes_all_its_stock_or_none(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let almaz = h.user("almaz").await?;
        let coffee = product(&h, "Coffee", 85_000, 5).await?;
        let pot = product(&h, "Pot", 120_000, 5).await?;
        let o = order(&h, &almaz, &[(&coffee, 2), (&pot, 1)]).await?;
        let payment = chapa_payment(&h, &almaz, &o).await?;
        let later = t0() + Duration::minutes(31);
        ensure!(h.store.expire_orders(later, 10).await? == vec![o.id.clone()]);
        ensure!(stock(&h, &coffee).await? == 5 && stock(&h, &pot).await? == 5);

        // Lines are taken in product-id order: the product taken last goes off sale;
        // then the customer's money arrives.
        let (first, last) = if coffee < pot {
            (&coffee, &pot)
        } else {
            (&pot, &coffee)
        };
        h.execute(&format!(
            "UPDATE products SET active = FALSE WHERE id = '{last}'"
        ))
        .await?;
        let late = h
            .settle(&payment, &chapa(GatewayStatus::Paid, 290_000), later)
            .await?;
        ensure!(
            late.payment.status == PaymentStatus::NeedsReview,
            "{:?}",
            late.payment
        );
        ensure!(order_status(&h, &o).await? == OrderStatus::Expired);
        let left = stock(&h, first).await?;
        ensure!(
            left == 5,
            "{left} of {first} left: the held payment kept some"
        );
        Ok(())
    }

    async fn an_order_is_paid_by_one_payment_only(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let almaz = h.user("almaz").await?;
        let coffee = product(&h, "Coffee", 85_000, 5).await?;
        let o = order(&h, &almaz, &[(&coffee, 1)]).await?;

        // The first checkout fails; the customer opens a second one and pays.
        let first = chapa_payment(&h, &almaz, &o).await?;
        h.settle(&first, &chapa(GatewayStatus::Failed, 0), t0())
            .await?;
        let second = chapa_payment(&h, &almaz, &o).await?;
        let settled = h
            .settle(&second, &chapa(GatewayStatus::Paid, 85_000), t0())
            .await?;
        ensure!(settled.payment.status == PaymentStatus::Completed);
        ensure!(order_status(&h, &o).await? == OrderStatus::Paid);

        // Then the first checkout is paid after all (Chapa lets a failed one be
        // retried): the money is kept and put before an operator, not lost.
        let first = h.store.payment(&first.id).await?.context("payment")?;
        let late = h
            .settle(&first, &chapa(GatewayStatus::Paid, 85_000), t0())
            .await?;
        ensure!(late.changed);
        ensure!(
            late.payment.status == PaymentStatus::NeedsReview,
            "{:?}",
            late.payment
        );
        ensure!(late
            .payment
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("refund")));
        let events = h.store.operator_events(false, 10).await?;
        ensure!(events.len() == 1, "{events:?}");
        ensure!(events[0].payment_id.as_ref() == Some(&first.id));
        ensure!(stock(&h, &coffee).await? == 4, "stock taken once");

        // A full refund of the paying payment marks the order refunded.
        let second = h.store.payment(&second.id).await?.context("payment")?;
        h.settle(&second, &chapa(GatewayStatus::Refunded, 85_000), t0())
            .await?;
        ensure!(order_status(&h, &o).await? == OrderStatus::Refunded);

        h.store
            .resolve_operator_event(events[0].id, None, t0())
            .await?;
        ensure!(h.store.operator_events(false, 10).await?.is_empty());
        ensure!(h.store.operator_events(true, 10).await?.len() == 1);
        Ok(())
    }

    async fn one_open_checkout_per_order_and_gateway(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let dawit = h.user("dawit").await?;
        let coffee = product(&h, "Coffee", 85_000, 5).await?;
        let o = order(&h, &dawit, &[(&coffee, 1)]).await?;
        let open = chapa_payment(&h, &dawit, &o).await?;
        assert_conflict(
            chapa_payment(&h, &dawit, &o)
                .await
                .map_err(|e| e.downcast::<StoreError>().unwrap()),
            "a second open checkout",
        );
        let found = h
            .store
            .open_payment_for_order(&o.id, GatewayKind::Chapa)
            .await?;
        ensure!(found.map(|p| p.id) == Some(open.id));
        ensure!(h
            .store
            .open_payment_for_order(&o.id, GatewayKind::Khalti)
            .await?
            .is_none());
        Ok(())
    }

    async fn webhook_repeats_are_recognised(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let delivery = |body: &str| NewWebhookDelivery {
            gateway: GatewayKind::Chapa,
            body_sha256: format!("{:0>64}", body.len()),
            event: Some("charge.success".into()),
            reference: Some("tx".into()),
            status: Some("success".into()),
            body: body.into(),
            received_at: t0(),
        };
        let barrier = Arc::new(Barrier::new(5));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (store, barrier, d) = (h.store.clone(), barrier.clone(), delivery("same"));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.record_webhook(&d).await
            }));
        }
        let mut firsts = 0;
        for t in tasks {
            if !t.await??.duplicate {
                firsts += 1;
            }
        }
        ensure!(firsts == 1, "{firsts} deliveries counted as first");
        let other = h.store.record_webhook(&delivery("other body")).await?;
        ensure!(!other.duplicate);
        h.store
            .finish_webhook(other.id, None, "ignored", Some("why"))
            .await?;
        let listed = h.store.webhook_deliveries(10).await?;
        ensure!(listed.len() == 6);
        ensure!(listed[0].outcome.as_deref() == Some("ignored"));
        Ok(())
    }

    /// The settle a verified webhook leads to notes the delivery's outcome in its own
    /// transaction when the payment moves, and leaves it alone when nothing moved (the
    /// handler notes it then, with what it found).
    async fn a_settle_notes_the_webhook_it_moved_on(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        let delivery = |body: &str| NewWebhookDelivery {
            gateway: GatewayKind::Khalti,
            body_sha256: format!("{:0>64}", body.len()),
            event: Some("paid".into()),
            reference: payment.provider_ref.clone(),
            status: Some("Completed".into()),
            body: body.into(),
            received_at: t0(),
        };
        let answer = paid(&payment);
        let settle_for = |delivery: i64, now: DateTime<Utc>| Settlement {
            payment: payment.id.clone(),
            transition: decide(&payment, &answer),
            provider_txn_id: answer.transaction_id.clone(),
            kind: AnswerKind::Lookup,
            raw: answer.raw.clone(),
            now,
            webhook: Some(WebhookNote {
                delivery,
                outcome: "verified",
            }),
        };
        let first = h.store.record_webhook(&delivery("first")).await?;
        let settled = h.store.settle(settle_for(first.id, t0())).await?;
        ensure!(settled.changed && settled.webhook_noted);
        let second = h.store.record_webhook(&delivery("second body")).await?;
        let again = h.store.settle(settle_for(second.id, t0())).await?;
        ensure!(!again.changed && !again.webhook_noted, "{again:?}");
        let listed = h.store.webhook_deliveries(10).await?;
        let outcomes: Vec<_> = listed
            .iter()
            .map(|d| (d.id, d.outcome.as_deref(), d.payment_id.as_deref()))
            .collect();
        ensure!(
            outcomes
                == [
                    (second.id, None, None),
                    (first.id, Some("verified"), Some(payment.id.as_str()))
                ],
            "{outcomes:?}"
        );
        Ok(())
    }

    async fn idempotency_keys_claim_replay_and_refuse(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let key = IdempotencyKey::parse("k-1")?;
        let me = InstanceId::from_trusted("me");
        let claimant = |at: DateTime<Utc>| Claimant::new(me.clone(), at);
        let claim = |print: &'static str, at: DateTime<Utc>| {
            let (store, user, key, claimant) =
                (h.store.clone(), sita.id.clone(), key.clone(), claimant(at));
            async move {
                store
                    .claim_idempotency_key(&user, &key, print, &claimant, at)
                    .await
            }
        };
        ensure!(claim("a", t0()).await? == Claim::New);
        ensure!(claim("a", t0()).await? == Claim::InProgress);
        ensure!(claim("b", t0()).await? == Claim::Mismatch);
        let answer = StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: b"{\"id\":1}".to_vec(),
        };
        h.store
            .complete_idempotency_key(&sita.id, &key, &me, &answer)
            .await?;
        ensure!(claim("a", t0()).await? == Claim::Replay(answer.clone()));
        // Released claims (a 5xx) can be taken again; completed ones cannot.
        h.store.release_idempotency_key(&sita.id, &key, &me).await?;
        ensure!(claim("a", t0()).await? == Claim::Replay(answer));
        let key2 = IdempotencyKey::parse("k-2")?;
        ensure!(
            h.store
                .claim_idempotency_key(&sita.id, &key2, "a", &claimant(t0()), t0())
                .await?
                == Claim::New
        );
        h.store
            .release_idempotency_key(&sita.id, &key2, &me)
            .await?;
        ensure!(
            h.store
                .claim_idempotency_key(&sita.id, &key2, "c", &claimant(t0()), t0())
                .await?
                == Claim::New
        );
        // A claim whose request never answered is taken over once its lease ran out
        // (with nothing left behind here); keys are forgotten after a day.
        let later = t0() + Duration::minutes(10);
        ensure!(
            h.store
                .claim_idempotency_key(&sita.id, &key2, "c", &claimant(later), later)
                .await?
                == Claim::TakenOver(Leftover::default())
        );
        ensure!(claim("z", t0() + days(2)).await? == Claim::New);
        Ok(())
    }

    /// Item 11 of issue 9: what one customer holds unpaid is capped, in orders and in
    /// units of one product; a refused order reserves nothing; expired orders hold
    /// nothing.
    async fn unpaid_orders_and_units_are_capped(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let abebe = h.user("abebe").await?;
        let coffee = product(&h, "Coffee", 85_000, 100).await?;
        let pot = product(&h, "Pot", 120_000, 100).await?;
        let cup = product(&h, "Cup", 10_000, 100).await?;
        let caps = OrderCaps {
            unpaid_orders: 3,
            unpaid_units_per_product: 5,
        };
        let first = capped_order(&h, &abebe, &[(&coffee, 3)], caps, t0()).await??;
        capped_order(&h, &abebe, &[(&coffee, 2), (&pot, 5)], caps, t0()).await??;
        let refused = capped_order(&h, &abebe, &[(&pot, 1), (&cup, 1)], caps, t0()).await?;
        ensure!(
            matches!(
                &refused,
                Err(ReserveError::TooManyUnits {
                    held: 5,
                    requested: 1,
                    most: 5,
                    ..
                })
            ),
            "{refused:?}"
        );
        ensure!(
            stock(&h, &pot).await? == 95 && stock(&h, &cup).await? == 100,
            "nothing reserved by the refused order"
        );
        // Another customer is not held by abebe's orders.
        let sita = h.user("sita").await?;
        capped_order(&h, &sita, &[(&pot, 5)], caps, t0()).await??;

        capped_order(&h, &abebe, &[(&cup, 1)], caps, t0()).await??;
        let fourth = capped_order(&h, &abebe, &[(&cup, 1)], caps, t0()).await?;
        ensure!(
            matches!(
                fourth,
                Err(ReserveError::TooManyUnpaidOrders { held: 3, most: 3 })
            ),
            "{fourth:?}"
        );
        ensure!(
            stock(&h, &cup).await? == 99,
            "nothing reserved by the refused order"
        );
        // An order no longer pending holds nothing: its place is free again (the caps
        // count from an index of pending orders, which it leaves).
        ensure!(h.store.cancel_order(&first.id, &abebe.id, t0()).await?);
        capped_order(&h, &abebe, &[(&coffee, 3)], caps, t0()).await??;
        let again = capped_order(&h, &abebe, &[(&cup, 1)], caps, t0()).await?;
        ensure!(
            matches!(
                again,
                Err(ReserveError::TooManyUnpaidOrders { held: 3, .. })
            ),
            "{again:?}"
        );
        // Once they expire (30 minutes), they hold nothing.
        let later = t0() + Duration::minutes(31);
        capped_order(&h, &abebe, &[(&coffee, 5)], caps, later).await??;
        Ok(())
    }

    /// Twenty orders of one customer at once, each for one unit, held to `caps`, at
    /// `now`: how many were made.
    async fn twenty_at_once(
        h: &Arc<Harness>,
        user: &User,
        product: &str,
        caps: OrderCaps,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let start = Arc::new(Barrier::new(20));
        let mut orders = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (h, user, product, start) =
                (h.clone(), user.clone(), product.to_owned(), start.clone());
            orders.spawn(async move {
                start.wait().await;
                capped_order(&h, &user, &[(&product, 1)], caps, now).await
            });
        }
        let mut made = 0;
        while let Some(order) = orders.join_next().await {
            if order??.is_ok() {
                made += 1;
            }
        }
        Ok(made)
    }

    /// The caps are checked in the write transaction that reserves: twenty orders of
    /// one customer at once make exactly the cap, on PostgreSQL as on SQLite.
    async fn concurrent_orders_cannot_pass_the_caps(db: TestDatabase) -> Result<()> {
        let h = Arc::new(Harness::open(&db).await?);
        let abebe = h.user("abebe").await?;
        let coffee = product(&h, "Coffee", 85_000, 1_000).await?;
        let orders_capped = OrderCaps {
            unpaid_orders: 5,
            unpaid_units_per_product: u32::MAX,
        };
        let made = twenty_at_once(&h, &abebe, &coffee, orders_capped, t0()).await?;
        ensure!(made == 5, "{made} orders made, the cap is 5 unpaid orders");
        // An hour on, those have expired: the units cap alone.
        let units_capped = OrderCaps {
            unpaid_orders: u32::MAX,
            unpaid_units_per_product: 7,
        };
        let later = t0() + Duration::hours(1);
        let made = twenty_at_once(&h, &abebe, &coffee, units_capped, later).await?;
        ensure!(made == 7, "{made} orders made, the cap is 7 unpaid units");
        ensure!(stock(&h, &coffee).await? == 1_000 - 12);
        Ok(())
    }

    /// The operator's list of orders: searched by a payment's tx_ref or the
    /// customer's e-mail, filtered by status and by the gateway of any of its
    /// payments, counted by the database.
    async fn orders_are_listed_by_payment_gateway_status_and_customer(
        db: TestDatabase,
    ) -> Result<()> {
        use tijori_core::back_office::Listing;
        let h = Harness::open(&db).await?;
        let dawit = h.user("dawit").await?;
        let abebe = h.user("abebe").await?;
        let coffee = product(&h, "Coffee", 85_000, 10).await?;
        let paid = order(&h, &dawit, &[(&coffee, 2)]).await?;
        let payment = chapa_payment(&h, &dawit, &paid).await?;
        h.settle(&payment, &chapa(GatewayStatus::Paid, 170_000), t0())
            .await?;
        let _waiting = order(&h, &abebe, &[(&coffee, 1)]).await?;
        let all = Listing {
            limit: 50,
            ..Default::default()
        };
        let listed = h.store.list_orders(&all).await?;
        ensure!(listed.total == 2 && listed.rows.len() == 2, "{listed:?}");
        let by = |f: fn(&mut Listing)| {
            let mut l = all.clone();
            f(&mut l);
            l
        };
        let found = h
            .store
            .list_orders(&Listing {
                search: payment.provider_ref.clone(),
                ..all.clone()
            })
            .await?;
        ensure!(found.total == 1 && found.rows[0].id == paid.id, "{found:?}");
        ensure!(found.rows[0].units == 2 && found.rows[0].total_minor == 170_000);
        ensure!(found.rows[0].paid_payment_id.as_ref() == Some(&payment.id));
        let found = h
            .store
            .list_orders(&by(|l| l.search = Some("ABEBE@example".into())))
            .await?;
        ensure!(
            found.total == 1 && found.rows[0].username == "abebe",
            "{found:?}"
        );
        let found = h
            .store
            .list_orders(&by(|l| l.status = Some("pending".into())))
            .await?;
        ensure!(
            found.total == 1 && found.rows[0].username == "abebe",
            "{found:?}"
        );
        let found = h
            .store
            .list_orders(&by(|l| l.gateway = Some(GatewayKind::Chapa)))
            .await?;
        ensure!(found.total == 1 && found.rows[0].id == paid.id, "{found:?}");
        let found = h
            .store
            .list_orders(&by(|l| l.gateway = Some(GatewayKind::Khalti)))
            .await?;
        ensure!(found.total == 0 && found.rows.is_empty(), "{found:?}");
        Ok(())
    }

    test_both!(
        orders_are_listed_by_payment_gateway_status_and_customer,
        unpaid_orders_and_units_are_capped,
        concurrent_orders_cannot_pass_the_caps,
        reserving_takes_all_or_nothing,
        an_order_is_paid_by_one_payment_only,
        money_for_an_expired_order_takes_all_its_stock_or_none,
        one_open_checkout_per_order_and_gateway,
        webhook_repeats_are_recognised,
        a_settle_notes_the_webhook_it_moved_on,
        idempotency_keys_claim_replay_and_refuse,
    );
}

// Background jobs ------------------------------------------------------------------------

mod jobs {
    use super::*;
    use std::collections::HashSet;
    use tijori_core::jobs::{JobKind, JobStatus, NewJob};

    fn lookup(key: &str) -> NewJob {
        NewJob {
            kind: JobKind::ReconcilePayment,
            payload: key.into(),
            unique_key: Some(key.into()),
            run_at: t0(),
        }
    }

    async fn queueing_is_idempotent_while_a_job_is_active(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        ensure!(h.store.enqueue_job(&lookup("a"), t0()).await?);
        ensure!(
            !h.store.enqueue_job(&lookup("a"), t0()).await?,
            "queued twice"
        );
        let claimed = h
            .store
            .claim_jobs("w", 10, t0() + days(1), t0(), u32::MAX)
            .await?;
        ensure!(claimed.len() == 1);
        ensure!(!h.store.enqueue_job(&lookup("a"), t0()).await?, "running");
        ensure!(h.store.complete_job(claimed[0].id, "w", None, t0()).await?);
        ensure!(
            h.store.enqueue_job(&lookup("a"), t0()).await?,
            "done: queue anew"
        );
        // Not due yet: not claimed.
        let later = NewJob {
            run_at: t0() + days(1),
            ..lookup("b")
        };
        h.store.enqueue_job(&later, t0()).await?;
        let claimed = h
            .store
            .claim_jobs("w", 10, t0() + days(1), t0(), u32::MAX)
            .await?;
        ensure!(claimed.len() == 1 && claimed[0].payload == "a");
        Ok(())
    }

    async fn concurrent_workers_never_claim_one_job_twice(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        for i in 0..200 {
            h.store
                .enqueue_job(&lookup(&format!("job{i}")), t0())
                .await?;
        }
        let barrier = Arc::new(Barrier::new(4));
        let mut workers = Vec::new();
        for w in 0..4 {
            let (store, barrier) = (h.store.clone(), barrier.clone());
            workers.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let jobs = store
                        .claim_jobs(&format!("w{w}"), 7, t0() + days(1), t0(), u32::MAX)
                        .await?;
                    if jobs.is_empty() {
                        return anyhow::Ok(mine);
                    }
                    for job in jobs {
                        ensure!(
                            store
                                .complete_job(job.id, &format!("w{w}"), None, t0())
                                .await?
                        );
                        mine.push(job.id);
                    }
                }
            }));
        }
        let mut seen = HashSet::new();
        for w in workers {
            for id in w.await?? {
                ensure!(seen.insert(id), "job {id} claimed twice");
            }
        }
        ensure!(seen.len() == 200, "{} jobs run", seen.len());
        ensure!(h.store.jobs(Some(JobStatus::Done), 500).await?.len() == 200);
        Ok(())
    }

    async fn an_expired_lease_hands_the_job_over(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        h.store.enqueue_job(&lookup("x"), t0()).await?;
        let lease = t0() + Duration::minutes(2);
        let first = h.store.claim_jobs("dies", 1, lease, t0(), u32::MAX).await?;
        ensure!(first.len() == 1);
        ensure!(h
            .store
            .claim_jobs("other", 1, lease, t0() + Duration::minutes(1), u32::MAX)
            .await?
            .is_empty());
        let later = t0() + Duration::minutes(3);
        let taken = h
            .store
            .claim_jobs("other", 1, later + Duration::minutes(2), later, u32::MAX)
            .await?;
        ensure!(taken.len() == 1 && taken[0].attempts == 2);
        ensure!(
            !h.store
                .complete_job(first[0].id, "dies", None, later)
                .await?
        );
        h.store
            .fail_job(taken[0].id, "other", "boom", None, later)
            .await?;
        let dead = h.store.jobs(Some(JobStatus::Dead), 10).await?;
        ensure!(dead.len() == 1 && dead[0].last_error.as_deref() == Some("boom"));
        h.store.retry_job(dead[0].id, later).await?;
        let again = h
            .store
            .claim_jobs("other", 1, later + days(1), later, u32::MAX)
            .await?;
        ensure!(again.len() == 1 && again[0].attempts == 1);
        Ok(())
    }

    /// The median time of `n` claims of one job (each completed at once), in µs, with
    /// at most `max_deliveries` deliveries; each claim must find a job of `kind`.
    async fn claim_micros(
        h: &Harness,
        n: usize,
        max_deliveries: u32,
        kind: JobKind,
    ) -> Result<u128> {
        let mut took = Vec::with_capacity(n);
        for _ in 0..n {
            let started = std::time::Instant::now();
            let job = h
                .store
                .claim_jobs("w", 1, t0() + days(1), t0(), max_deliveries)
                .await?;
            took.push(started.elapsed().as_micros());
            ensure!(job.len() == 1 && job[0].kind == kind, "{job:?}");
            ensure!(h.store.complete_job(job[0].id, "w", None, t0()).await?);
        }
        took.sort_unstable();
        Ok(took[n / 2])
    }

    fn delivery(key: &str) -> NewJob {
        NewJob {
            kind: JobKind::DeliverEvent,
            ..lookup(key)
        }
    }

    /// Claiming reads the first due jobs from their index, not the whole backlog: a
    /// burst of outgoing events puts tens of thousands of deliveries in the queue at
    /// once, and a claim that sorted them all (or, keeping slots for other work,
    /// skipped past them all) held the SQLite writer for milliseconds per job, slowing
    /// every payment behind it and the deliveries to a crawl. A job whose lease ran out
    /// is still claimed in its order, and the cap on deliveries holds.
    async fn a_claim_costs_about_the_same_whatever_the_backlog(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        for i in 0..80 {
            h.store
                .enqueue_job(&lookup(&format!("few{i}")), t0())
                .await?;
        }
        let few = claim_micros(&h, 40, u32::MAX, JobKind::ReconcilePayment).await?;
        let store = &h.store;
        for chunk in (0..5_000).collect::<Vec<_>>().chunks(100) {
            let queued = chunk.iter().map(|i| async move {
                store
                    .enqueue_job(&delivery(&format!("many{i}")), t0())
                    .await
            });
            for added in futures::future::join_all(queued).await {
                ensure!(added?);
            }
        }
        // Other work past 5,000 deliveries, and the deliveries themselves.
        let others = claim_micros(&h, 40, 0, JobKind::ReconcilePayment).await?;
        let deliveries = claim_micros(&h, 40, u32::MAX, JobKind::DeliverEvent).await?;
        for (what, took) in [("other work", others), ("a delivery", deliveries)] {
            ensure!(
                took < few * 4 + 500,
                "claiming {what} took {took} µs with 5,000 deliveries due, {few} µs with a few jobs"
            );
        }

        // Still in order: a lapsed lease (claimed by a worker that died) with the
        // queued ones that were due after it.
        let early = NewJob {
            run_at: t0() - Duration::minutes(10),
            ..lookup("early")
        };
        h.store.enqueue_job(&early, t0()).await?;
        let lapsed = h
            .store
            .claim_jobs("dies", 1, t0() - Duration::minutes(1), t0(), u32::MAX)
            .await?;
        ensure!(lapsed.len() == 1 && lapsed[0].payload == "early");
        let next = h
            .store
            .claim_jobs("w", 2, t0() + days(1), t0(), u32::MAX)
            .await?;
        ensure!(
            next.len() == 2
                && next.iter().any(|j| j.payload == "early")
                && next.iter().any(|j| j.payload.starts_with("many")),
            "{next:?}"
        );

        // With one delivery slot free: one delivery, the rest other work.
        for i in 0..4 {
            h.store
                .enqueue_job(&lookup(&format!("late{i}")), t0())
                .await?;
        }
        let capped = h.store.claim_jobs("w", 5, t0() + days(1), t0(), 1).await?;
        let delivered = capped
            .iter()
            .filter(|j| j.kind == JobKind::DeliverEvent)
            .count();
        ensure!(capped.len() == 5 && delivered == 1, "{capped:?}");
        Ok(())
    }

    test_both!(
        queueing_is_idempotent_while_a_job_is_active,
        concurrent_workers_never_claim_one_job_twice,
        an_expired_lease_hands_the_job_over,
        a_claim_costs_about_the_same_whatever_the_backlog,
    );
}

mod refund_outcomes {
    use super::*;
    use tijori_core::id::RefundId;
    use tijori_core::jobs::{JobKind, JobStatus};
    use tijori_core::store::{Refund, RefundResolution, RefundStatus};

    fn refund_of(payment: &Payment, by: &User, minor: i64, now: DateTime<Utc>) -> Refund {
        Refund {
            id: RefundId::generate(),
            payment_id: payment.id.clone(),
            amount: npr(minor),
            reason: Some("changed mind".into()),
            status: RefundStatus::Requested,
            detail: None,
            requested_by: by.id.clone(),
            restock: true,
            resolved_by: None,
            resolved_at: None,
            resolution: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A refund left unknown has its look-up queued with it; it keeps what the
    /// operator asked (restock); it is settled once (compare-and-set), with who,
    /// when and why when an operator does it.
    async fn an_unknown_refund_is_queued_for_a_look_up_and_settled_once(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&payment, &paid(&payment), t0()).await?;

        let refund = refund_of(&payment, &sita, 50_000, t0() + days(1));
        h.store.begin_refund(&refund).await?;
        h.store
            .finish_refund(
                &refund.id,
                RefundStatus::Unknown,
                Some("502"),
                t0() + days(1),
            )
            .await?;
        let queued = h.store.jobs(Some(JobStatus::Queued), 10).await?;
        ensure!(
            queued
                .iter()
                .any(|j| j.kind == JobKind::CheckRefund && j.payload == refund.id.as_str()),
            "{queued:?}"
        );
        // What may have been refunded is not refundable again meanwhile.
        assert_conflict(
            h.store
                .begin_refund(&refund_of(&payment, &sita, 1, t0() + days(1)))
                .await,
            "a refund beyond what may be left",
        );
        ensure!(h.store.unknown_refunds(10).await?.len() == 1);

        let by = RefundResolution {
            by: sita.id.clone(),
            reason: "seen in the dashboard".into(),
        };
        let at = t0() + days(2);
        ensure!(
            h.store
                .settle_refund(
                    &refund.id,
                    RefundStatus::Succeeded,
                    "by hand",
                    Some(&by),
                    at
                )
                .await?
        );
        ensure!(
            !h.store
                .settle_refund(&refund.id, RefundStatus::Failed, "a look-up", None, at)
                .await?,
            "settled once"
        );
        let stored = h.store.refund(&refund.id).await?.context("refund gone")?;
        ensure!(stored.status == RefundStatus::Succeeded && stored.restock);
        ensure!(stored.resolved_by.as_ref() == Some(&sita.id));
        ensure!(stored.resolved_at == Some(at));
        ensure!(stored.resolution.as_deref() == Some("seen in the dashboard"));
        ensure!(h.store.unknown_refunds(10).await?.is_empty());
        Ok(())
    }

    /// The gateway's answer to a refund decided while its call was stalled (marked
    /// unknown, then settled by a look-up or an operator) neither overturns that
    /// decision nor announces the refund again; an answer to one still unknown is the
    /// gateway's word and settles it.
    async fn a_late_answer_does_not_overturn_a_decided_refund(db: TestDatabase) -> Result<()> {
        use tijori_core::events::EventType;
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&payment, &paid(&payment), t0()).await?;
        let at = t0() + days(1);

        let decided = refund_of(&payment, &sita, 20_000, at);
        h.store.begin_refund(&decided).await?;
        ensure!(
            h.store
                .finish_refund(&decided.id, RefundStatus::Unknown, Some("stalled"), at)
                .await?
        );
        ensure!(
            h.store
                .settle_refund(&decided.id, RefundStatus::Succeeded, "a look-up", None, at)
                .await?
        );
        for late in [RefundStatus::Failed, RefundStatus::Succeeded] {
            ensure!(
                !h.store
                    .finish_refund(&decided.id, late, Some("late"), at)
                    .await?,
                "{late:?} overwrote a decided refund"
            );
        }
        let stored = h.store.refund(&decided.id).await?.context("refund gone")?;
        ensure!(
            stored.status == RefundStatus::Succeeded
                && stored.detail.as_deref() == Some("a look-up")
        );

        let answered = refund_of(&payment, &sita, 10_000, at);
        h.store.begin_refund(&answered).await?;
        ensure!(
            h.store
                .finish_refund(&answered.id, RefundStatus::Unknown, Some("stalled"), at)
                .await?
        );
        ensure!(
            h.store
                .finish_refund(&answered.id, RefundStatus::Succeeded, None, at)
                .await?
        );
        let events = h.store.events_since(t0(), 50).await?;
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        ensure!(
            kinds
                .iter()
                .filter(|k| **k == EventType::RefundSucceeded)
                .count()
                == 2
                && !kinds.contains(&EventType::RefundFailed),
            "{kinds:?}"
        );
        Ok(())
    }

    /// What a refund's outcome may do, as a property over any order of answers
    /// (`finish_refund`, the gateway's, possibly late) and decisions (`settle_refund`,
    /// a look-up's or an operator's): an answer moves a refund only while it is
    /// requested or unknown, a decision only while it is unknown; once succeeded or
    /// failed it never moves again; and the refund is announced (refund.succeeded or
    /// refund.failed, matching its status) exactly once if decided, never if not.
    async fn a_decided_refund_stays_decided_and_is_announced_once(db: TestDatabase) -> Result<()> {
        use proptest::prelude::*;
        use proptest::strategy::ValueTree as _;
        use proptest::test_runner::TestRunner;
        use tijori_core::events::EventType;

        #[derive(Clone, Copy, Debug)]
        enum Step {
            Answer(RefundStatus),
            Decide(RefundStatus),
        }
        let step = prop_oneof![
            prop_oneof![
                Just(RefundStatus::Succeeded),
                Just(RefundStatus::Failed),
                Just(RefundStatus::Unknown)
            ]
            .prop_map(Step::Answer),
            prop_oneof![Just(RefundStatus::Succeeded), Just(RefundStatus::Failed)]
                .prop_map(Step::Decide),
        ];
        let runs = proptest::collection::vec(step, 1..6);
        let mut runner = TestRunner::deterministic();

        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let at = t0() + days(1);
        for _ in 0..32 {
            let steps = runs
                .new_tree(&mut runner)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .current();
            let payment = h.checkout(&sita, &plan, t0()).await?;
            h.settle(&payment, &paid(&payment), t0()).await?;
            let refund = refund_of(&payment, &sita, 10_000, at);
            h.store.begin_refund(&refund).await?;
            let mut status = RefundStatus::Requested;
            for step in &steps {
                let (moved, expected) = match *step {
                    Step::Answer(to) => (
                        h.store
                            .finish_refund(&refund.id, to, Some("answer"), at)
                            .await?,
                        matches!(status, RefundStatus::Requested | RefundStatus::Unknown),
                    ),
                    Step::Decide(to) => (
                        h.store
                            .settle_refund(&refund.id, to, "decision", None, at)
                            .await?,
                        status == RefundStatus::Unknown,
                    ),
                };
                ensure!(moved == expected, "{steps:?}: {step:?} from {status:?}");
                if moved {
                    status = match *step {
                        Step::Answer(to) | Step::Decide(to) => to,
                    };
                }
                let stored = h.store.refund(&refund.id).await?.context("refund")?;
                ensure!(stored.status == status, "{steps:?}: {stored:?}");
            }
            let announced: Vec<EventType> = h
                .store
                .events_since(t0(), 10_000)
                .await?
                .into_iter()
                .filter(|e| e.refund.as_ref() == Some(&refund.id))
                .map(|e| e.kind)
                .collect();
            let expected = match status {
                RefundStatus::Succeeded => vec![EventType::RefundSucceeded],
                RefundStatus::Failed => vec![EventType::RefundFailed],
                RefundStatus::Requested | RefundStatus::Unknown => vec![],
            };
            ensure!(announced == expected, "{steps:?}: {announced:?}");
        }
        Ok(())
    }

    /// A refund left `requested` by a process that died becomes unknown when the
    /// next refund of the payment is asked for, with its look-up queued too.
    async fn a_stale_requested_refund_becomes_unknown_with_its_look_up(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let hari = h.user("hari").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&hari, &plan, t0()).await?;
        h.settle(&payment, &paid(&payment), t0()).await?;
        let lost = refund_of(&payment, &hari, 10_000, t0());
        h.store.begin_refund(&lost).await?;
        h.store
            .begin_refund(&refund_of(
                &payment,
                &hari,
                10_000,
                t0() + Duration::minutes(6),
            ))
            .await?;
        let stored = h.store.refund(&lost.id).await?.context("refund gone")?;
        ensure!(stored.status == RefundStatus::Unknown);
        let queued = h.store.jobs(Some(JobStatus::Queued), 10).await?;
        ensure!(queued
            .iter()
            .any(|j| j.kind == JobKind::CheckRefund && j.payload == lost.id.as_str()));
        Ok(())
    }

    /// The audit's list: paid payments within the window, not looked up lately,
    /// least recently looked up first.
    async fn the_audit_lists_recently_paid_payments_not_looked_up_lately(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let gita = h.user("gita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let old = h.checkout(&gita, &plan, t0()).await?;
        h.settle(&old, &paid(&old), t0()).await?;
        let newer = h.checkout(&gita, &plan, t0() + days(1)).await?;
        h.settle(&newer, &paid(&newer), t0() + days(1)).await?;
        let open = h.checkout(&gita, &plan, t0() + days(1)).await?;

        let ids = |ps: Vec<Payment>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();
        let now = t0() + days(2);
        // Both paid ones, the least recently looked up first; never the open one.
        let due = ids(h.store.payments_to_audit(now - days(14), now, 10).await?);
        ensure!(due == vec![old.id.clone(), newer.id.clone()], "{due:?}");
        ensure!(!due.contains(&open.id));
        // Looked up after the cut-off: left alone.
        let due = ids(h
            .store
            .payments_to_audit(now - days(14), t0() + Duration::hours(12), 10)
            .await?);
        ensure!(due == vec![old.id.clone()], "{due:?}");
        // Paid before the window: left alone.
        let due = ids(h
            .store
            .payments_to_audit(t0() + Duration::hours(12), now, 10)
            .await?);
        ensure!(due == vec![newer.id.clone()], "{due:?}");
        Ok(())
    }

    test_both!(
        an_unknown_refund_is_queued_for_a_look_up_and_settled_once,
        a_stale_requested_refund_becomes_unknown_with_its_look_up,
        a_late_answer_does_not_overturn_a_decided_refund,
        a_decided_refund_stays_decided_and_is_announced_once,
        the_audit_lists_recently_paid_payments_not_looked_up_lately,
    );
}

// Retried attempts: failed Chapa attempts still looked up, the return page's one
// lookup every few seconds, and idempotency keys whose holder died ------------------

mod attempts {
    use super::*;
    use tijori_core::id::OrderId;
    use tijori_core::idempotency::{
        Attempt, Claim, Claimant, IdempotencyKey, InstanceId, Leftover, HOLDER_GONE_AFTER_SECS,
        LEASE_SECS,
    };
    use tijori_core::payment::CHECKOUT_LIFETIME_HOURS;
    use tijori_core::shop::{NewProduct, OrderRequest};

    fn secs(n: i64) -> Duration {
        Duration::seconds(n)
    }

    /// A payment on `gateway` with its checkout open (Chapa's without an expiry of
    /// its own, Khalti's expiring in an hour), created at `at`.
    async fn opened(
        h: &Harness,
        user: &User,
        plan: &Plan,
        gateway: GatewayKind,
        at: DateTime<Utc>,
    ) -> Result<Payment> {
        let payment = Payment {
            gateway,
            ..new_payment(user, plan, at)
        };
        h.store.insert_payment(&payment).await?;
        let reference = format!("ref-{}", payment.id);
        let expires = (gateway == GatewayKind::Khalti).then(|| at + Duration::hours(1));
        Ok(h.store
            .record_checkout(
                &payment.id,
                &reference,
                &format!("https://checkout.example/{reference}"),
                expires,
                &initiate_answer(&reference),
                at,
            )
            .await?)
    }

    /// Settles `payment` on a gateway answer of `status`.
    async fn answered(
        h: &Harness,
        payment: &Payment,
        status: GatewayStatus,
        at: DateTime<Utc>,
    ) -> Result<Payment> {
        let answer = GatewayAnswer {
            status,
            amount_minor: payment.amount.minor(),
            currency: None,
            transaction_id: None,
            raw: RawAnswer {
                http_status: 200,
                body: "{}".into(),
            },
        };
        Ok(h.settle(payment, &answer, at).await?.payment)
    }

    async fn a_failed_chapa_attempt_is_looked_up_while_its_checkout_lives(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let user = h.user("hana").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let start = t0();
        let chapa_failed = opened(&h, &user, &plan, GatewayKind::Chapa, start).await?;
        let chapa_failed = answered(&h, &chapa_failed, GatewayStatus::Failed, start).await?;
        let chapa_open = opened(&h, &user, &plan, GatewayKind::Chapa, start).await?;
        let khalti_canceled = opened(&h, &user, &plan, GatewayKind::Khalti, start).await?;
        let khalti_canceled =
            answered(&h, &khalti_canceled, GatewayStatus::Canceled, start).await?;
        let khalti_failed = opened(&h, &user, &plan, GatewayKind::Khalti, start).await?;
        let khalti_failed = answered(&h, &khalti_failed, GatewayStatus::Failed, start).await?;
        ensure!(chapa_failed.status == PaymentStatus::Failed);
        ensure!(khalti_canceled.status == PaymentStatus::Canceled);
        ensure!(khalti_failed.status == PaymentStatus::Failed);
        // A failure that never reached the gateway (no checkout) has nothing to look up.
        let never_opened = new_payment(&user, &plan, start);
        let never_opened = Payment {
            gateway: GatewayKind::Chapa,
            ..never_opened
        };
        h.store.insert_payment(&never_opened).await?;
        h.store
            .fail_initiation(&never_opened.id, "refused", None, start)
            .await?;
        let all = [
            &chapa_failed,
            &chapa_open,
            &khalti_canceled,
            &khalti_failed,
            &never_opened,
        ];

        for (now, expect) in [
            (
                start + Duration::hours(1),
                vec![&chapa_failed.id, &chapa_open.id],
            ),
            (
                start + Duration::hours(CHECKOUT_LIFETIME_HOURS) - secs(1),
                vec![&chapa_failed.id, &chapa_open.id],
            ),
            // The checkout is dead: only the open one is left to close.
            (
                start + Duration::hours(CHECKOUT_LIFETIME_HOURS) + secs(1),
                vec![&chapa_open.id],
            ),
        ] {
            let stale = h.store.stale_payments(now, now, 100).await?;
            let mut ids: Vec<&PaymentId> = stale.iter().map(|p| &p.id).collect();
            let mut expect = expect;
            ids.sort();
            expect.sort();
            ensure!(ids == expect, "at {now}: {ids:?}, expected {expect:?}");
            // The store's selection is the core's rule, payment by payment.
            for p in all {
                let current = h.store.payment(&p.id).await?.context("payment")?;
                ensure!(
                    current.worth_looking_up(now) == ids.contains(&&p.id),
                    "{} {} at {now}",
                    current.gateway,
                    current.status
                );
            }
        }
        // Looked at a moment ago: left alone until it is stale again.
        let looked = start + Duration::hours(2);
        answered(&h, &chapa_failed, GatewayStatus::Failed, looked).await?;
        let stale = h.store.stale_payments(looked, looked, 100).await?;
        ensure!(stale.iter().all(|p| p.id != chapa_failed.id));
        // A later success on the same checkout still completes it.
        let paid = answered(&h, &chapa_failed, GatewayStatus::Paid, looked + secs(5)).await?;
        ensure!(paid.status == PaymentStatus::Completed);
        ensure!(h.fulfilments(&paid.id).await? == 1);
        Ok(())
    }

    async fn a_lookup_is_claimed_once_every_few_seconds(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let user = h.user("hari").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let p = h.checkout(&user, &plan, t0()).await?;
        let every = tijori_core::service::RETURN_LOOKUP_EVERY_SECS;
        let cutoff = tijori_core::service::return_lookup_cutoff;
        let at = t0() + secs(1);
        // Of many at once, one.
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let (store, id) = (h.store.clone(), p.id.clone());
                tokio::spawn(async move { store.claim_lookup(&id, at, cutoff(at)).await })
            })
            .collect();
        let mut won = 0;
        for t in tries {
            won += usize::from(t.await??);
        }
        ensure!(won == 1, "{won} claimed the lookup");
        let soon = at + secs(every - 1);
        ensure!(!h.store.claim_lookup(&p.id, soon, cutoff(soon)).await?);
        let later = at + secs(every);
        ensure!(h.store.claim_lookup(&p.id, later, cutoff(later)).await?);
        // Any lookup counts (the reconciler's, a verify's): it was just checked.
        let after = later + secs(every);
        h.store.mark_checked(&p.id, after).await?;
        ensure!(!h.store.claim_lookup(&p.id, after, cutoff(after)).await?);
        Ok(())
    }

    fn claimant(name: &str, at: DateTime<Utc>) -> Claimant {
        Claimant::new(InstanceId::from_trusted(name), at)
    }

    /// Retries arriving together for a key whose holder died: one takes it over,
    /// the others are told it is in progress (never two runs of one key at once).
    async fn concurrent_retries_take_a_dead_holders_key_over_once(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let user = h.user("abebe").await?;
        let later = t0() + secs(HOLDER_GONE_AFTER_SECS + 1);
        for round in 0..5 {
            let key = IdempotencyKey::parse(&format!("order-{round}"))?;
            ensure!(
                h.store
                    .claim_idempotency_key(&user.id, &key, "print", &claimant("dead", t0()), t0())
                    .await?
                    == Claim::New
            );
            let barrier = Arc::new(tokio::sync::Barrier::new(12));
            let retries = (0..12).map(|i| {
                let (store, user, key, barrier) = (
                    h.store.clone(),
                    user.id.clone(),
                    key.clone(),
                    barrier.clone(),
                );
                let who = format!("taker-{round}-{i}");
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .claim_idempotency_key(&user, &key, "print", &claimant(&who, later), later)
                        .await
                })
            });
            let mut taken = 0;
            for retry in retries.collect::<Vec<_>>() {
                match retry.await?? {
                    Claim::TakenOver(_) => taken += 1,
                    Claim::InProgress => {}
                    other => anyhow::bail!("unexpected {other:?}"),
                }
            }
            ensure!(taken == 1, "round {round}: taken over {taken} times");
        }
        Ok(())
    }

    async fn a_key_whose_holder_died_is_taken_over_at_once(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let user = h.user("dawit").await?;
        let key = IdempotencyKey::parse("order-1")?;
        let claim = |who: &'static str, at: DateTime<Utc>| {
            let (store, user, key) = (h.store.clone(), user.id.clone(), key.clone());
            async move {
                store
                    .claim_idempotency_key(&user, &key, "print", &claimant(who, at), at)
                    .await
            }
        };
        // The first process claims the key and dies (its last heartbeat is its claim).
        ensure!(claim("dead", t0()).await? == Claim::New);
        // Heard from a moment ago: it may still be at work.
        ensure!(claim("fresh", t0() + secs(HOLDER_GONE_AFTER_SECS)).await? == Claim::InProgress);
        // Silent for longer, with most of its lease left: taken over at once.
        let later = t0() + secs(HOLDER_GONE_AFTER_SECS + 1);
        ensure!(LEASE_SECS > HOLDER_GONE_AFTER_SECS * 2);
        ensure!(claim("fresh", later).await? == Claim::TakenOver(Leftover::default()));
        // The new holder has it now; the dead one coming back cannot answer for it.
        ensure!(claim("third", later + secs(1)).await? == Claim::InProgress);
        let answer = tijori_core::idempotency::StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
        };
        h.store
            .complete_idempotency_key(&user.id, &key, &InstanceId::from_trusted("dead"), &answer)
            .await?;
        h.store
            .release_idempotency_key(&user.id, &key, &InstanceId::from_trusted("dead"))
            .await?;
        ensure!(claim("third", later + secs(2)).await? == Claim::InProgress);
        h.store
            .complete_idempotency_key(&user.id, &key, &InstanceId::from_trusted("fresh"), &answer)
            .await?;
        ensure!(claim("third", later + secs(3)).await? == Claim::Replay(answer));

        // A process that stops cleanly frees its keys at once.
        let key2 = IdempotencyKey::parse("order-2")?;
        let at = t0() + Duration::hours(1);
        ensure!(
            h.store
                .claim_idempotency_key(&user.id, &key2, "print", &claimant("leaving", at), at)
                .await?
                == Claim::New
        );
        h.store
            .retire_instance(&InstanceId::from_trusted("leaving"))
            .await?;
        ensure!(
            h.store
                .claim_idempotency_key(&user.id, &key2, "print", &claimant("next", at), at)
                .await?
                == Claim::TakenOver(Leftover::default())
        );
        Ok(())
    }

    async fn a_live_holder_keeps_its_key_until_its_lease_ends(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let user = h.user("kebede").await?;
        let key = IdempotencyKey::parse("slow")?;
        let claim = |who: &'static str, at: DateTime<Utc>| {
            let (store, user, key) = (h.store.clone(), user.id.clone(), key.clone());
            async move {
                store
                    .claim_idempotency_key(&user, &key, "print", &claimant(who, at), at)
                    .await
            }
        };
        let busy = InstanceId::from_trusted("busy");
        ensure!(claim("busy", t0()).await? == Claim::New);
        // Its heartbeat goes on (the process lives; its request is slow).
        let mut now = t0();
        while now < t0() + secs(LEASE_SECS - 5) {
            now += secs(5);
            h.store.heartbeat(&busy, now).await?;
            ensure!(claim("other", now).await? == Claim::InProgress, "at {now}");
        }
        let lease_end = t0() + secs(LEASE_SECS);
        h.store.heartbeat(&busy, lease_end).await?;
        ensure!(claim("other", lease_end).await? == Claim::TakenOver(Leftover::default()));
        Ok(())
    }

    async fn what_a_dead_holder_made_is_handed_to_the_next(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let user = h.user("meron").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let product = h
            .store
            .create_product(
                NewProduct {
                    name: "Coffee".into(),
                    description: String::new(),
                    price: Money::from_minor(85_000, Currency::Etb)?,
                    stock: 10,
                },
                t0(),
            )
            .await?;
        let key = IdempotencyKey::parse("k")?;
        let dead = InstanceId::from_trusted("dead");
        ensure!(
            h.store
                .claim_idempotency_key(&user.id, &key, "print", &claimant("dead", t0()), t0())
                .await?
                == Claim::New
        );
        let attempt = Attempt {
            user: user.id.clone(),
            key: key.clone(),
            holder: dead.clone(),
            left: Leftover::default(),
        };
        let request = OrderRequest::parse([(product.id.as_str(), 2)])?;
        let order = h
            .store
            .create_order_for(
                &tijori_core::shop::NewOrder {
                    id: OrderId::generate(),
                    user: user.id.clone(),
                    request,
                    caps: tijori_core::shop::OrderCaps::UNLIMITED,
                    expires_at: t0() + Duration::minutes(30),
                },
                t0(),
                Some(&attempt),
            )
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let payment = new_payment(&user, &plan, t0());
        h.store.insert_payment_for(&payment, Some(&attempt)).await?;
        // Someone else's attempt (another holder) notes nothing on this key.
        let stranger = Attempt {
            holder: InstanceId::from_trusted("stranger"),
            ..attempt.clone()
        };
        h.store
            .insert_payment_for(&new_payment(&user, &plan, t0()), Some(&stranger))
            .await?;
        let later = t0() + secs(HOLDER_GONE_AFTER_SECS + 1);
        let claim = h
            .store
            .claim_idempotency_key(&user.id, &key, "print", &claimant("next", later), later)
            .await?;
        let left = Leftover {
            payment: Some(payment.id.clone()),
            order: Some(order.id.clone()),
        };
        ensure!(claim == Claim::TakenOver(left.clone()), "{claim:?}");
        // The next holder's request is refused for now (429) or fails (5xx): its key is
        // released for a retry, and what the first made stays on it, for that retry to
        // reuse (forgetting it made a second order and a second checkout).
        h.store
            .release_idempotency_key(&user.id, &key, &InstanceId::from_trusted("next"))
            .await?;
        let again = later + secs(1);
        let claim = h
            .store
            .claim_idempotency_key(&user.id, &key, "print", &claimant("third", again), again)
            .await?;
        ensure!(claim == Claim::TakenOver(left), "{claim:?}");
        Ok(())
    }

    test_both!(
        a_failed_chapa_attempt_is_looked_up_while_its_checkout_lives,
        a_lookup_is_claimed_once_every_few_seconds,
        a_key_whose_holder_died_is_taken_over_at_once,
        concurrent_retries_take_a_dead_holders_key_over_once,
        a_live_holder_keeps_its_key_until_its_lease_ends,
        what_a_dead_holder_made_is_handed_to_the_next,
    );
}

mod outgoing_events {
    use super::*;
    use tijori_core::events::{DeliveryAttempt, EventType, Wanted, WebhookEndpoint};
    use tijori_core::id::{EventId, WebhookEndpointId};
    use tijori_core::jobs::{DeliverEvent, Job, JobKind, JobStatus};
    use tijori_core::store::EndpointChange;

    /// Asha's Basic subscription, paid at `t0()`: the events most tests look at.
    async fn a_paid_subscription(h: &Harness) -> Result<(User, Plan, Payment)> {
        let user = h.user("asha").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let p = h.checkout(&user, &plan, t0()).await?;
        h.settle(&p, &paid(&p), t0()).await?;
        Ok((user, plan, p))
    }

    async fn endpoint(h: &Harness, wants: Wanted, enabled: bool) -> Result<WebhookEndpoint> {
        let e = WebhookEndpoint {
            id: WebhookEndpointId::generate(),
            url: "https://merchant.example/hooks".into(),
            wants,
            description: "warehouse".into(),
            enabled,
            disabled_reason: None,
            failing_since: None,
            created_at: t0(),
            updated_at: t0(),
        };
        h.store
            .create_webhook_endpoint(&e, "whsec_c2VjcmV0")
            .await?;
        Ok(e)
    }

    /// The deliveries queued, as (event type, endpoint).
    async fn deliveries(h: &Harness) -> Result<Vec<(EventType, WebhookEndpointId)>> {
        let jobs: Vec<Job> = h.store.jobs(Some(JobStatus::Queued), 100).await?;
        let mut out = Vec::new();
        for job in jobs.iter().filter(|j| j.kind == JobKind::DeliverEvent) {
            let d: DeliverEvent = job.payload_as()?;
            let event = h.store.event(&d.event).await?.context("event")?;
            out.push((event.kind, d.endpoint));
        }
        out.sort_by_key(|(t, e)| (t.as_str(), e.clone()));
        Ok(out)
    }

    async fn a_settlement_writes_its_events_and_their_deliveries(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let all = endpoint(&h, Wanted::All, true).await?;
        let orders_only = endpoint(&h, Wanted::Only(vec![EventType::OrderPaid]), true).await?;
        let _off = endpoint(&h, Wanted::All, false).await?;
        let user = h.user("asha").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&user, &plan, t0()).await?;
        ensure!(h.settle(&first, &paid(&first), t0()).await?.changed);
        // The same answer again changes nothing, and raises nothing.
        ensure!(!h.settle(&first, &paid(&first), t0()).await?.changed);
        let queued = deliveries(&h).await?;
        ensure!(
            queued
                == vec![
                    (EventType::PaymentCompleted, all.id.clone()),
                    (EventType::SubscriptionActivated, all.id.clone()),
                ],
            "{queued:?} (only the endpoint that wants them, enabled)"
        );
        ensure!(!queued.iter().any(|(_, e)| *e == orders_only.id));
        // A second plan while the first still runs renews.
        let second = h.checkout(&user, &plan, t0() + days(1)).await?;
        h.settle(&second, &paid(&second), t0() + days(1)).await?;
        let events = h.store.events_since(t0(), 10).await?;
        let kinds: Vec<_> = events.iter().rev().map(|e| e.kind).collect();
        ensure!(
            kinds
                == [
                    EventType::PaymentCompleted,
                    EventType::SubscriptionActivated,
                    EventType::PaymentCompleted,
                    EventType::SubscriptionRenewed,
                ],
            "{kinds:?}"
        );
        ensure!(events
            .iter()
            .all(|e| e.user.as_ref() == Some(&user.id) && e.body.is_none()));
        // A failed payment raises payment.failed.
        let third = h.checkout(&user, &plan, t0() + days(2)).await?;
        h.settle(&third, &lookup(&third, "User canceled", 0), t0() + days(2))
            .await?;
        let latest = &h.store.events_since(t0(), 1).await?[0];
        ensure!(
            latest.kind == EventType::PaymentFailed && latest.payment == Some(third.id.clone())
        );
        Ok(())
    }

    /// Two endpoints' first tries of one event, made at once, each send a body they
    /// made; the first recorded is the event's, which every later try sends.
    async fn the_first_body_kept_is_the_one_sent(db: TestDatabase) -> Result<()> {
        use tijori_core::events::FinishedDelivery;
        let h = Harness::open(&db).await?;
        endpoint(&h, Wanted::All, true).await?;
        endpoint(&h, Wanted::All, true).await?;
        a_paid_subscription(&h).await?;
        let event = h.store.events_since(t0(), 1).await?.remove(0);
        let jobs = h
            .store
            .claim_jobs("w", 10, t0() + days(1), t0(), u32::MAX)
            .await?;
        let mut tries = Vec::new();
        for job in &jobs {
            let d: DeliverEvent = job.payload_as()?;
            if d.event == event.id {
                tries.push((job.id, d.endpoint));
            }
        }
        ensure!(tries.len() == 2, "{jobs:?}");
        for ((job, endpoint), body) in tries.into_iter().zip(["first", "second"]) {
            h.store
                .finish_delivery(&FinishedDelivery {
                    attempt: attempt(&event.id, &endpoint, 1, t0(), true),
                    body: Some(body.into()),
                    job,
                    worker: "w".into(),
                    retry_at: None,
                    error: String::new(),
                })
                .await?;
        }
        ensure!(
            h.store
                .event(&event.id)
                .await?
                .context("event")?
                .body
                .as_deref()
                == Some("first")
        );
        ensure!(h.store.event(&EventId::generate()).await?.is_none());
        Ok(())
    }

    fn attempt(
        event: &EventId,
        endpoint: &WebhookEndpointId,
        n: u32,
        at: DateTime<Utc>,
        delivered: bool,
    ) -> DeliveryAttempt {
        DeliveryAttempt {
            event: event.clone(),
            endpoint: endpoint.clone(),
            attempt: n,
            attempted_at: at,
            http_status: Some(if delivered { 200 } else { 500 }),
            duration_ms: 12,
            response: "ok".into(),
            error: None,
            delivered,
        }
    }

    /// A try is recorded in one write with everything it settles: the body at the
    /// first try (never replaced), the try itself, and its job: done when delivered,
    /// queued again at its time when not, dead when it gave up.
    async fn a_finished_delivery_records_the_try_the_body_and_the_job(
        db: TestDatabase,
    ) -> Result<()> {
        use tijori_core::events::FinishedDelivery;
        let h = Harness::open(&db).await?;
        let e = endpoint(&h, Wanted::All, true).await?;
        let (user, plan, _) = a_paid_subscription(&h).await?;
        let jobs = h
            .store
            .claim_jobs("w", 10, t0() + days(1), t0(), u32::MAX)
            .await?;
        ensure!(jobs.len() == 2, "{jobs:?}");
        let (a, b) = (&jobs[0], &jobs[1]);
        let event_of =
            |job: &Job| -> Result<EventId> { Ok(job.payload_as::<DeliverEvent>()?.event) };
        let finished =
            |job: &Job, delivered: bool, body: &str, retry_at| -> Result<FinishedDelivery> {
                Ok(FinishedDelivery {
                    attempt: attempt(&event_of(job)?, &e.id, job.attempts, t0(), delivered),
                    body: Some(body.into()),
                    job: job.id,
                    worker: "w".into(),
                    retry_at,
                    error: "answered HTTP 500".into(),
                })
            };

        let (since, held) = h
            .store
            .finish_delivery(&finished(a, true, "first", None)?)
            .await?;
        ensure!(since.is_none() && held);
        let retry = t0() + Duration::seconds(5);
        let (since, held) = h
            .store
            .finish_delivery(&finished(b, false, "made once", Some(retry))?)
            .await?;
        ensure!(since == Some(t0()) && held, "{since:?}");

        let done = h.store.jobs(Some(JobStatus::Done), 10).await?;
        ensure!(done.len() == 1 && done[0].id == a.id, "{done:?}");
        let queued = h.store.jobs(Some(JobStatus::Queued), 10).await?;
        let again = queued
            .iter()
            .find(|j| j.id == b.id)
            .context("queued again")?;
        ensure!(again.run_at == retry && again.last_error.as_deref() == Some("answered HTTP 500"));
        ensure!(
            h.store
                .delivery_attempts(Some(&e.id), None, 10)
                .await?
                .len()
                == 2
        );
        let kept = h.store.event(&event_of(b)?).await?.context("event")?;
        ensure!(kept.body.as_deref() == Some("made once"));

        // The next try keeps the first body, and when it gives up the job is dead.
        let b = h
            .store
            .claim_jobs("w", 10, retry + days(1), retry, u32::MAX)
            .await?
            .pop()
            .context("claimed again")?;
        h.store
            .finish_delivery(&finished(&b, false, "made again", None)?)
            .await?;
        let kept = h.store.event(&event_of(&b)?).await?.context("event")?;
        ensure!(kept.body.as_deref() == Some("made once"));
        let dead = h.store.jobs(Some(JobStatus::Dead), 10).await?;
        ensure!(dead.len() == 1 && dead[0].id == b.id);
        // A worker that lost the job records its try, and hears so.
        let c = h.checkout(&user, &plan, t0()).await?;
        h.settle(&c, &paid(&c), t0()).await?;
        let lost = h
            .store
            .claim_jobs("w", 1, t0(), t0(), u32::MAX)
            .await?
            .pop()
            .context("job")?;
        h.store
            .claim_jobs(
                "other",
                1,
                t0() + days(1),
                t0() + Duration::seconds(1),
                u32::MAX,
            )
            .await?;
        let (_, held) = h
            .store
            .finish_delivery(&finished(&lost, true, "late", None)?)
            .await?;
        ensure!(!held, "the lease had run out");
        let (_, held) = h
            .store
            .finish_delivery(&finished(&lost, false, "late", Some(retry))?)
            .await?;
        ensure!(!held, "a failed try of a job taken over is told too");
        Ok(())
    }

    async fn failures_are_counted_from_the_first_and_undelivered_events_redelivered(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let e = endpoint(&h, Wanted::All, true).await?;
        let (user, plan, _) = a_paid_subscription(&h).await?;
        let events = h.store.events_since(t0(), 10).await?;
        let (a, b) = (&events[0].id, &events[1].id);
        let since = h
            .store
            .record_delivery_attempt(&attempt(a, &e.id, 1, t0(), false))
            .await?;
        ensure!(since == Some(t0()), "{since:?}");
        let later = t0() + Duration::hours(1);
        let since = h
            .store
            .record_delivery_attempt(&attempt(a, &e.id, 2, later, false))
            .await?;
        ensure!(
            since == Some(t0()),
            "the run of failures started at the first: {since:?}"
        );
        let since = h
            .store
            .record_delivery_attempt(&attempt(b, &e.id, 1, later, true))
            .await?;
        ensure!(since.is_none(), "a delivery ends the run");
        let tries = h.store.delivery_attempts(Some(&e.id), None, 10).await?;
        ensure!(tries.len() == 3 && tries[0].delivered && tries[0].duration_ms == 12);

        // Both deliveries are still queued (never claimed): nothing is queued twice.
        ensure!(
            h.store
                .redeliver_undelivered(t0(), Some(&e.id), 100, later)
                .await?
                == 0
        );
        let claimed = h
            .store
            .claim_jobs("w", 10, later + days(1), later, u32::MAX)
            .await?;
        ensure!(claimed.len() == 2);
        for job in &claimed {
            h.store
                .fail_job(job.id, "w", "gave up", None, later)
                .await?;
        }
        // Only the event that never arrived goes again.
        ensure!(
            h.store
                .redeliver_undelivered(t0(), Some(&e.id), 100, later)
                .await?
                == 1
        );
        let queued = deliveries(&h).await?;
        ensure!(queued.len() == 1, "{queued:?}");
        // Disabled, it gets nothing; enabled again, its run of failures starts afresh.
        let off = EndpointChange {
            enabled: Some(false),
            ..Default::default()
        };
        let changed = h
            .store
            .update_webhook_endpoint(&e.id, &off, later)
            .await?
            .context("endpoint")?;
        ensure!(!changed.enabled);
        ensure!(
            h.store
                .queue_event_delivery(&events[0], None, later)
                .await?
                == 0
        );
        ensure!(
            !h.store
                .disable_failing_endpoint(&e.id, "failing", later)
                .await?,
            "already off"
        );
        let on = EndpointChange {
            enabled: Some(true),
            ..Default::default()
        };
        h.store
            .record_delivery_attempt(&attempt(a, &e.id, 3, later, false))
            .await?;
        let again = h
            .store
            .update_webhook_endpoint(&e.id, &on, later)
            .await?
            .context("endpoint")?;
        ensure!(again.enabled && again.failing_since.is_none() && again.disabled_reason.is_none());

        // A second payment's two events: with a limit of one, what is queued already
        // does not use up the limit, so each call gets further.
        let q = h.checkout(&user, &plan, later).await?;
        h.settle(&q, &paid(&q), later).await?;
        for job in h
            .store
            .claim_jobs("w", 10, later + days(1), later, u32::MAX)
            .await?
        {
            if job.payload.starts_with(a.as_str()) {
                continue;
            }
            h.store
                .fail_job(job.id, "w", "gave up", None, later)
                .await?;
        }
        for _ in 0..2 {
            ensure!(
                h.store
                    .redeliver_undelivered(t0(), Some(&e.id), 1, later)
                    .await?
                    == 1
            );
        }
        ensure!(
            h.store
                .redeliver_undelivered(t0(), Some(&e.id), 1, later)
                .await?
                == 0
        );
        Ok(())
    }

    async fn endpoints_change_rotate_and_go(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let e = endpoint(&h, Wanted::All, true).await?;
        let change = EndpointChange {
            url: Some("https://merchant.example/v2".into()),
            wants: Some(Wanted::Only(vec![
                EventType::RefundFailed,
                EventType::OrderPaid,
            ])),
            description: Some("new".into()),
            enabled: None,
        };
        let changed = h
            .store
            .update_webhook_endpoint(&e.id, &change, t0() + days(1))
            .await?
            .context("endpoint")?;
        ensure!(changed.url == "https://merchant.example/v2" && changed.description == "new");
        ensure!(changed.wants == Wanted::Only(vec![EventType::RefundFailed, EventType::OrderPaid]));
        ensure!(changed.enabled && changed.updated_at == t0() + days(1));
        let all = EndpointChange {
            wants: Some(Wanted::All),
            ..Default::default()
        };
        let back = h
            .store
            .update_webhook_endpoint(&e.id, &all, t0())
            .await?
            .context("endpoint")?;
        ensure!(back.wants == Wanted::All && back.url == changed.url);

        let until = t0() + Duration::hours(24);
        ensure!(
            h.store
                .rotate_webhook_secret(&e.id, "whsec_bmV3", until, t0())
                .await?
        );
        let (_, secrets) = h.store.webhook_endpoint(&e.id).await?.context("endpoint")?;
        ensure!(secrets.signing(t0()) == ["whsec_bmV3", "whsec_c2VjcmV0"]);
        ensure!(secrets.signing(until) == ["whsec_bmV3"]);
        // Rotated again within the day (a retried call, a reloaded page): the secret
        // the receiver still holds keeps signing until its own day is up; the one
        // the first rotation made, never put to use, is dropped.
        let soon = t0() + Duration::hours(1);
        ensure!(
            h.store
                .rotate_webhook_secret(&e.id, "whsec_dGhpcmQ=", soon + Duration::hours(24), soon)
                .await?
        );
        let (_, secrets) = h.store.webhook_endpoint(&e.id).await?.context("endpoint")?;
        ensure!(
            secrets.signing(soon) == ["whsec_dGhpcmQ=", "whsec_c2VjcmV0"],
            "{:?}",
            secrets.signing(soon)
        );
        ensure!(secrets.signing(until) == ["whsec_dGhpcmQ="]);
        // A day later, a rotation keeps the one it replaces, as the first did.
        let next_day = until + Duration::hours(1);
        ensure!(
            h.store
                .rotate_webhook_secret(
                    &e.id,
                    "whsec_bmV3",
                    next_day + Duration::hours(24),
                    next_day
                )
                .await?
        );
        let (_, secrets) = h.store.webhook_endpoint(&e.id).await?.context("endpoint")?;
        ensure!(secrets.signing(next_day) == ["whsec_bmV3", "whsec_dGhpcmQ="]);

        ensure!(
            h.store
                .disable_failing_endpoint(&e.id, "three days", t0())
                .await?
        );
        let (off, _) = h.store.webhook_endpoint(&e.id).await?.context("endpoint")?;
        ensure!(!off.enabled && off.disabled_reason.as_deref() == Some("three days"));
        ensure!(h.store.webhook_endpoints().await?.len() == 1);
        ensure!(h.store.delete_webhook_endpoint(&e.id).await?);
        ensure!(!h.store.delete_webhook_endpoint(&e.id).await?);
        ensure!(h.store.webhook_endpoint(&e.id).await?.is_none());
        Ok(())
    }

    async fn old_events_and_finished_jobs_are_pruned(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let e = endpoint(&h, Wanted::All, true).await?;
        let user = h.user("asha").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let old = h.checkout(&user, &plan, t0()).await?;
        h.settle(&old, &paid(&old), t0()).await?;
        let old_events = h.store.events_since(t0(), 10).await?;
        h.store
            .record_delivery_attempt(&attempt(&old_events[0].id, &e.id, 1, t0(), true))
            .await?;
        let claimed = h
            .store
            .claim_jobs("w", 10, t0() + days(1), t0(), u32::MAX)
            .await?;
        ensure!(claimed.len() == 2);
        h.store.complete_job(claimed[0].id, "w", None, t0()).await?;
        h.store
            .fail_job(claimed[1].id, "w", "gave up", None, t0())
            .await?;
        let later = t0() + days(40);
        let new = h.checkout(&user, &plan, later).await?;
        h.settle(&new, &paid(&new), later).await?;
        let cutoff = later - days(30);
        ensure!(h.store.prune_events(cutoff, 1_000).await? == 2);
        ensure!(
            h.store.prune_done_jobs(cutoff, 1_000).await? == 1,
            "done, not dead"
        );
        let left = h.store.events_since(t0(), 10).await?;
        ensure!(
            left.len() == 2 && left.iter().all(|e| e.created_at == later),
            "{left:?}"
        );
        ensure!(h
            .store
            .delivery_attempts(Some(&e.id), None, 10)
            .await?
            .is_empty());
        ensure!(
            h.store.jobs(Some(JobStatus::Dead), 10).await?.len() == 1,
            "dead jobs stay"
        );
        ensure!(h.store.prune_events(cutoff, 1_000).await? == 0);
        Ok(())
    }

    test_both!(
        old_events_and_finished_jobs_are_pruned,
        a_settlement_writes_its_events_and_their_deliveries,
        the_first_body_kept_is_the_one_sent,
        failures_are_counted_from_the_first_and_undelivered_events_redelivered,
        a_finished_delivery_records_the_try_the_body_and_the_job,
        endpoints_change_rotate_and_go,
    );
}

// Backups --------------------------------------------------------------------------

/// `tijori_store::backup` (`tijori backup`): SQLite only, PostgreSQL has pg_dump.
mod backup {
    use super::*;

    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::Instant;

    use rusqlite::{Connection, OpenFlags};
    use tijori_store::BackupError;

    /// One payment of the load, and when the store answered for it.
    struct Written {
        id: PaymentId,
        /// When its insert was asked for.
        began: Instant,
        /// When its insert was answered (committed).
        inserted: Instant,
        /// When its checkout (a second transaction) was answered.
        checked_out: Instant,
    }

    fn file_of(db: &TestDatabase) -> PathBuf {
        PathBuf::from(db.url.strip_prefix("sqlite://").unwrap())
    }

    fn open_read_only(path: &Path) -> Result<Connection> {
        Ok(Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?)
    }

    fn integrity_check(c: &Connection) -> Result<Vec<String>> {
        let mut s = c.prepare("PRAGMA integrity_check")?;
        let rows = s.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn payment_ids(c: &Connection) -> Result<HashSet<String>> {
        let mut s = c.prepare("SELECT id FROM payments")?;
        let rows = s.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The files in `dir` other than `keep`: what a backup left behind.
    fn others(dir: &Path, keep: &[&str]) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name.as_str()) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The check of issue 14: a backup taken while payments are being written opens,
    /// passes `PRAGMA integrity_check`, and holds every payment answered before the
    /// backup began. A copy that is not one snapshot (the file without its WAL, or
    /// pages from before and after a commit) fails it.
    async fn a_copy_taken_under_load_holds_every_payment_answered_before_it(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Arc::new(Harness::open(&db).await?);
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        // 20 MB of ballast, so that payments go on being written while it is copied.
        h.execute(
            "CREATE TABLE ballast AS WITH RECURSIVE n(i) AS \
             (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
             SELECT i, randomblob(4000) AS b FROM n",
        )
        .await?;

        let written = Arc::new(Mutex::new(Vec::<Written>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = (0..4)
            .map(|_| {
                let (h, sita, plan) = (h.clone(), sita.clone(), plan.clone());
                let (written, stop) = (written.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let began = Instant::now();
                        let payment = new_payment(&sita, &plan, t0());
                        h.store.insert_payment(&payment).await?;
                        let inserted = Instant::now();
                        let pidx = pidx_for(&payment.id);
                        h.store
                            .record_checkout(
                                &payment.id,
                                &pidx,
                                &format!("https://test-pay.khalti.com/?pidx={pidx}"),
                                None,
                                &initiate_answer(&pidx),
                                t0(),
                            )
                            .await?;
                        written.lock().unwrap().push(Written {
                            id: payment.id,
                            began,
                            inserted,
                            checked_out: Instant::now(),
                        });
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        while written.lock().unwrap().len() < 200 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }

        let dir = tempfile::tempdir()?;
        let path = dir.path().join("copy.db");
        let started = Instant::now();
        let report = tijori_store::backup(&db.url, &path, false).await?;
        let finished = Instant::now();
        let after = written.lock().unwrap().len();
        while written.lock().unwrap().len() < after + 20 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.await??;
        }
        let written = std::mem::take(&mut *written.lock().unwrap());

        let copy = open_read_only(&path)?;
        ensure!(integrity_check(&copy)? == ["ok"], "the copy is damaged");
        ensure!(report.integrity == "ok", "{report:?}");
        let in_copy = payment_ids(&copy)?;
        ensure!(report.payments == in_copy.len() as i64, "{report:?}");
        ensure!(
            report.bytes == std::fs::metadata(&path)?.len(),
            "{report:?}"
        );
        ensure!(
            report.bytes > 20_000_000,
            "the ballast is copied: {report:?}"
        );

        let before: Vec<_> = written.iter().filter(|w| w.inserted < started).collect();
        ensure!(before.len() >= 200);
        for w in &before {
            ensure!(
                in_copy.contains(w.id.as_str()),
                "{} was answered before the backup began and is not in the copy \
                 ({} of {} such payments are)",
                w.id,
                before
                    .iter()
                    .filter(|w| in_copy.contains(w.id.as_str()))
                    .count(),
                before.len()
            );
        }
        let checked_out: HashSet<String> = {
            let mut s = copy.prepare("SELECT id FROM payments WHERE provider_ref IS NOT NULL")?;
            let rows = s.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for w in written.iter().filter(|w| w.checked_out < started) {
            ensure!(
                checked_out.contains(w.id.as_str()),
                "{}: its checkout was answered before the backup began, and the copy \
                 has the payment without it",
                w.id
            );
        }
        // One snapshot: each checkout's two writes (the payment's pidx and the answer
        // kept verbatim) are one transaction, in the copy whole or not at all.
        let torn: i64 = copy.query_row(
            "SELECT COUNT(*) FROM payments p WHERE (p.provider_ref IS NOT NULL) <> \
             EXISTS (SELECT 1 FROM gateway_answers a WHERE a.payment_id = p.id \
                     AND a.kind = 'initiate')",
            [],
            |r| r.get(0),
        )?;
        ensure!(torn == 0, "{torn} checkouts are in the copy by halves");
        for w in written.iter().filter(|w| w.began > finished) {
            ensure!(
                !in_copy.contains(w.id.as_str()),
                "{} was written after the backup returned, yet is in the copy",
                w.id
            );
        }
        // The load went on being answered while the backup ran.
        let during = written
            .iter()
            .filter(|w| w.inserted > started && w.inserted < finished)
            .count();
        ensure!(during > 0, "no payment was answered while the backup ran");
        eprintln!(
            "backup of {} bytes in {:?}: {} payments answered before it, {during} while it ran",
            report.bytes,
            finished - started,
            before.len()
        );
        ensure!(
            others(dir.path(), &["copy.db"])?.is_empty(),
            "one file, no -wal or partial copy beside it: {:?}",
            others(dir.path(), &["copy.db"])?
        );
        Ok(())
    }

    /// An existing file is replaced only when asked, and then whole; the database
    /// itself never is.
    async fn an_existing_file_is_replaced_only_when_asked(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tijori.bak");
        std::fs::write(&path, "yesterday's backup")?;

        match tijori_store::backup(&db.url, &path, false).await {
            Err(BackupError::Exists(p)) => ensure!(p == path),
            other => anyhow::bail!("expected Exists, got {other:?}"),
        }
        ensure!(std::fs::read_to_string(&path)? == "yesterday's backup");
        ensure!(others(dir.path(), &["tijori.bak"])?.is_empty());

        let nowhere = dir.path().join("no-such-directory").join("tijori.bak");
        match tijori_store::backup(&db.url, &nowhere, false).await {
            Err(BackupError::Io { path, .. }) => {
                ensure!(path == dir.path().join("no-such-directory"))
            }
            other => anyhow::bail!("expected the missing directory, got {other:?}"),
        }

        let report = tijori_store::backup(&db.url, &path, true).await?;
        ensure!(report.payments == 1, "{report:?}");
        ensure!(payment_ids(&open_read_only(&path)?)?.contains(payment.id.as_str()));
        ensure!(others(dir.path(), &["tijori.bak"])?.is_empty());

        let database = file_of(&db);
        for itself in [
            database.clone(),
            PathBuf::from(format!("{}-wal", database.display())),
        ] {
            match tijori_store::backup(&db.url, &itself, true).await {
                Err(BackupError::IsTheDatabase(_)) => {}
                other => anyhow::bail!(
                    "{}: expected IsTheDatabase, got {other:?}",
                    itself.display()
                ),
            }
        }
        ensure!(h.status(&payment).await? == PaymentStatus::Initiated);
        Ok(())
    }

    /// PostgreSQL is refused, pointing to pg_dump; a database that is not there is
    /// not created by backing it up.
    async fn postgres_and_missing_databases_are_refused(db: TestDatabase) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("copy.db");
        let refused =
            tijori_store::backup("postgres://tijori:secret@127.0.0.1:1/tijori", &path, false)
                .await
                .unwrap_err();
        ensure!(matches!(refused, BackupError::Postgres), "{refused:?}");
        ensure!(refused.to_string().contains("pg_dump"), "{refused}");
        ensure!(!refused.to_string().contains("secret"), "{refused}");

        match tijori_store::backup(&db.url, &path, false).await {
            Err(BackupError::NoDatabase(p)) => ensure!(p == file_of(&db)),
            other => anyhow::bail!("expected NoDatabase, got {other:?}"),
        }
        ensure!(!file_of(&db).exists(), "backing up created the database");
        ensure!(others(dir.path(), &[])?.is_empty());
        Ok(())
    }

    /// A database no process has open (tijori stopped) is copied as well, and left as
    /// it was.
    async fn a_closed_database_is_copied(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let sita = h.user("sita").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let payment = h.checkout(&sita, &plan, t0()).await?;
        h.database.close().await;
        drop(h);
        let database = file_of(&db);
        let dir = database.parent().unwrap().to_owned();
        let name = database.file_name().unwrap().to_string_lossy().into_owned();
        let before = others(&dir, &[])?;

        // Its -wal and -shm are gone with it closed: a backup named like them is still
        // refused (SQLite would read it as the database's journal at the next start).
        for journal in ["-wal", "-shm"] {
            let itself = PathBuf::from(format!("{}{journal}", database.display()));
            match tijori_store::backup(&db.url, &itself, false).await {
                Err(BackupError::IsTheDatabase(_)) => {}
                other => anyhow::bail!(
                    "{}: expected IsTheDatabase, got {other:?}",
                    itself.display()
                ),
            }
        }

        let copy = tempfile::tempdir()?;
        let path = copy.path().join("copy.db");
        let report = tijori_store::backup(&db.url, &path, false).await?;
        ensure!(
            report.payments == 1 && report.integrity == "ok",
            "{report:?}"
        );
        ensure!(payment_ids(&open_read_only(&path)?)?.contains(payment.id.as_str()));
        let mut after = others(&dir, &[])?;
        let mut before = before;
        before.sort();
        after.sort();
        ensure!(
            before == after,
            "{name}: files before {before:?}, after {after:?}"
        );
        Ok(())
    }

    macro_rules! sqlite_only {
        ($($name:ident),+ $(,)?) => {$(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    tijori_testkit::run(async {
                        super::$name(tijori_testkit::TestDatabase::sqlite().await).await
                    })
                    .await
                }
            }
        )+};
    }

    sqlite_only!(
        a_copy_taken_under_load_holds_every_payment_answered_before_it,
        an_existing_file_is_replaced_only_when_asked,
        postgres_and_missing_databases_are_refused,
        a_closed_database_is_copied,
    );
}

// The operator's area ---------------------------------------------------------------------

mod back_office {
    use super::*;
    use tijori_core::back_office::Listing;
    use tijori_core::store::{EventResolution, OperatorEventKind, Refund, RefundStatus};

    fn page(limit: u32) -> Listing {
        Listing {
            limit,
            ..Default::default()
        }
    }

    /// Sita paid at t0, Hari paid a day later and has a checkout open two days later.
    async fn three_payments(h: &Harness) -> Result<(User, User, Vec<Payment>)> {
        let sita = h.user("sita").await?;
        let hari = h.user("hari_k").await?;
        let plan = h.plan("Basic", 50_000, 30).await?;
        let first = h.checkout(&sita, &plan, t0()).await?;
        h.settle(&first, &paid(&first), t0()).await?;
        let second = h.checkout(&hari, &plan, t0() + days(1)).await?;
        h.settle(&second, &paid(&second), t0() + days(1)).await?;
        let open = h.checkout(&hari, &plan, t0() + days(2)).await?;
        Ok((sita, hari, vec![first, second, open]))
    }

    async fn payments_are_searched_filtered_paged_and_counted(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let (_, hari, p) = three_payments(&h).await?;
        let list = |l: Listing| {
            let store = h.store.clone();
            async move { store.list_payments(&l).await }
        };
        let all = list(page(50)).await?;
        ensure!(all.total == 3, "{}", all.total);
        let ids: Vec<_> = all.rows.iter().map(|r| r.payment.id.clone()).collect();
        ensure!(
            ids == [p[2].id.clone(), p[1].id.clone(), p[0].id.clone()],
            "newest first"
        );
        ensure!(all.rows[0].username == "hari_k" && all.rows[0].email == "hari_k@example.com");

        let search = |s: &str| Listing {
            search: Some(s.into()),
            ..page(50)
        };
        ensure!(list(search("hari")).await?.total == 2, "part of a username");
        ensure!(
            list(search("HARI_K@EXAMPLE")).await?.total == 2,
            "e-mail, any case"
        );
        ensure!(list(search("h%")).await?.total == 0, "% is no wildcard");
        ensure!(list(search("ar_")).await?.total == 0, "_ is no wildcard");
        let by_pidx = list(search(p[0].provider_ref.as_deref().unwrap())).await?;
        ensure!(by_pidx.total == 1 && by_pidx.rows[0].payment.id == p[0].id);
        let by_id = list(search(p[1].id.as_str())).await?;
        ensure!(by_id.total == 1 && by_id.rows[0].payment.id == p[1].id);
        ensure!(
            list(search(hari.id.as_str())).await?.total == 2,
            "a user's id"
        );

        let completed = list(Listing {
            status: Some("completed".into()),
            ..page(50)
        })
        .await?;
        ensure!(completed.total == 2, "{}", completed.total);
        let khalti = list(Listing {
            gateway: Some(GatewayKind::Khalti),
            ..page(50)
        })
        .await?;
        ensure!(khalti.total == 3);
        let chapa = list(Listing {
            gateway: Some(GatewayKind::Chapa),
            ..page(50)
        })
        .await?;
        ensure!(chapa.total == 0 && chapa.rows.is_empty());
        let from = list(Listing {
            from: Some(t0() + days(1)),
            ..page(50)
        })
        .await?;
        ensure!(from.total == 2);
        let until = list(Listing {
            until: Some(t0() + days(1)),
            ..page(50)
        })
        .await?;
        ensure!(until.total == 1 && until.rows[0].payment.id == p[0].id);

        // Pages: the count is the whole list's, the rows the page's.
        let first = list(page(2)).await?;
        ensure!(first.total == 3 && first.rows.len() == 2);
        let second = list(Listing {
            offset: 2,
            ..page(2)
        })
        .await?;
        ensure!(second.total == 3 && second.rows.len() == 1);
        ensure!(second.rows[0].payment.id == p[0].id);
        Ok(())
    }

    async fn customers_and_subscriptions_are_listed_with_their_counts(
        db: TestDatabase,
    ) -> Result<()> {
        let h = Harness::open(&db).await?;
        let (sita, hari, _) = three_payments(&h).await?;
        let gita = h.user("gita").await?;
        let now = t0() + days(2);
        let customers = h.store.list_customers(&page(50), now).await?;
        ensure!(customers.total == 3, "{customers:?}");
        let line = |name: &str| {
            customers
                .rows
                .iter()
                .find(|c| c.user.username.as_str() == name)
                .cloned()
                .unwrap()
        };
        ensure!(line("hari_k").payments == 2 && line("hari_k").paid == 1);
        ensure!(line("gita").payments == 0 && line("gita").subscribed_until.is_none());
        let subscribed = h
            .store
            .list_customers(
                &Listing {
                    status: Some("subscribed".into()),
                    ..page(50)
                },
                now,
            )
            .await?;
        ensure!(subscribed.total == 2, "{subscribed:?}");
        let not = h
            .store
            .list_customers(
                &Listing {
                    status: Some("not_subscribed".into()),
                    ..page(50)
                },
                now,
            )
            .await?;
        ensure!(not.total == 1 && not.rows[0].user.id == gita.id);

        // Sita's 30 days end at t0 + 30 days, Hari's a day later: at t0 + 25 days
        // both renew within the week; at t0 + 30.5 days Sita's ended.
        let subs = h.store.list_subscriptions(&page(50), now).await?;
        ensure!(
            subs.total == 2 && subs.rows[0].user_id == sita.id,
            "soonest first"
        );
        let due = |at| {
            let store = h.store.clone();
            async move {
                store
                    .list_subscriptions(
                        &Listing {
                            status: Some("renewal_due".into()),
                            ..page(50)
                        },
                        at,
                    )
                    .await
            }
        };
        ensure!(due(now).await?.total == 0);
        ensure!(due(t0() + days(25)).await?.total == 2);
        let later = t0() + days(30) + Duration::hours(12);
        let ended = h
            .store
            .list_subscriptions(
                &Listing {
                    status: Some("ended".into()),
                    ..page(50)
                },
                later,
            )
            .await?;
        ensure!(ended.total == 1 && ended.rows[0].user_id == sita.id);
        let searched = h
            .store
            .list_subscriptions(
                &Listing {
                    search: Some("HARI".into()),
                    ..page(50)
                },
                now,
            )
            .await?;
        ensure!(searched.total == 1 && searched.rows[0].user_id == hari.id);
        let counts = h
            .store
            .shop_counts(t0() + days(25), t0() + days(32))
            .await?;
        ensure!(
            counts.active_subscriptions == 2 && counts.renewals_due == 2,
            "{counts:?}"
        );
        ensure!(
            counts.payments_open == 1 && counts.payments_held == 0,
            "{counts:?}"
        );
        Ok(())
    }

    async fn revenue_is_summed_per_day_and_a_refund_reduces_net(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let (sita, _, p) = three_payments(&h).await?;
        let refund = Refund {
            id: tijori_core::id::RefundId::generate(),
            payment_id: p[1].id.clone(),
            amount: npr(20_000),
            reason: Some("partly unhappy".into()),
            status: RefundStatus::Requested,
            detail: None,
            requested_by: sita.id.clone(),
            restock: false,
            resolved_by: None,
            resolved_at: None,
            resolution: None,
            created_at: t0() + days(1),
            updated_at: t0() + days(1),
        };
        h.store.begin_refund(&refund).await?;
        h.store
            .finish_refund(&refund.id, RefundStatus::Succeeded, None, t0() + days(1))
            .await?;
        let days_ = h.store.revenue(t0() - days(1)).await?;
        ensure!(days_.len() == 2, "{days_:?}");
        let first = &days_[0];
        ensure!(first.day == t0().date_naive() && first.gateway == GatewayKind::Khalti);
        ensure!(first.currency == Currency::Npr);
        ensure!((first.collected_minor, first.refunded_minor) == (50_000, 0));
        let second = &days_[1];
        ensure!(second.day == (t0() + days(1)).date_naive());
        ensure!((second.collected_minor, second.refunded_minor) == (50_000, 20_000));
        ensure!(second.net_minor() == 30_000);
        let net: i64 = days_.iter().map(|d| d.net_minor()).sum();
        ensure!(net == 80_000, "{net}");
        // A window starting after the first day leaves it out.
        let later = h.store.revenue(t0() + days(1)).await?;
        ensure!(later.len() == 1 && later[0].collected_minor == 50_000);
        Ok(())
    }

    async fn an_event_is_resolved_once_with_who_and_why(db: TestDatabase) -> Result<()> {
        let h = Harness::open(&db).await?;
        let (sita, hari, p) = three_payments(&h).await?;
        let payment = h.store.payment(&p[0].id).await?.context("payment")?;
        h.store
            .record_operator_event(
                OperatorEventKind::NeedsReview,
                Some(&payment.id),
                "odd",
                t0(),
            )
            .await?;
        let event = h.store.operator_events(false, 10).await?.remove(0);
        let note = EventResolution {
            by: sita.id.clone(),
            note: "refunded by hand".into(),
        };
        h.store
            .resolve_operator_event(event.id, Some(&note), t0() + days(1))
            .await?;
        let again = EventResolution {
            by: hari.id.clone(),
            note: "second click".into(),
        };
        h.store
            .resolve_operator_event(event.id, Some(&again), t0() + days(2))
            .await?;
        let of = h.store.operator_events_of(&payment.id).await?;
        ensure!(of.len() == 1, "{of:?}");
        ensure!(of[0].resolved_by.as_deref() == Some("sita"), "{of:?}");
        ensure!(of[0].resolution.as_deref() == Some("refunded by hand"));
        ensure!(of[0].resolved_at == Some(t0() + days(1)));
        ensure!(h.store.operator_events(false, 10).await?.is_empty());
        assert_not_found(
            h.store
                .resolve_operator_event(9_999, Some(&note), t0())
                .await,
            "an unknown event",
        );
        // A payment's deliveries: found by its reference even before they named it.
        let delivery = h
            .store
            .record_webhook(&tijori_core::store::NewWebhookDelivery {
                gateway: GatewayKind::Khalti,
                body_sha256: "abc".into(),
                event: Some("paid".into()),
                reference: payment.provider_ref.clone(),
                status: Some("Completed".into()),
                body: "{\"pidx\":1}".into(),
                received_at: t0(),
            })
            .await?;
        let found = h.store.deliveries_of(&payment).await?;
        ensure!(found.len() == 1 && found[0].id == delivery.id && found[0].body == "{\"pidx\":1}");
        h.store
            .finish_webhook(delivery.id, Some(&payment.id), "settled", None)
            .await?;
        ensure!(
            h.store.deliveries_of(&payment).await?.len() == 1,
            "kept once"
        );
        ensure!(h.store.deliveries_of(&p[1]).await?.is_empty());
        Ok(())
    }

    test_both!(
        payments_are_searched_filtered_paged_and_counted,
        customers_and_subscriptions_are_listed_with_their_counts,
        revenue_is_summed_per_day_and_a_refund_reduces_net,
        an_event_is_resolved_once_with_who_and_why,
    );
}

// Account basics: password resets and changes, and canceling an unpaid order.
#[path = "store/account_basics.rs"]
mod account_basics;
