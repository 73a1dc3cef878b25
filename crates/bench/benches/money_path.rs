//! Micro-benchmarks of the hot pieces of the money path: the webhook signature check,
//! reading a gateway's answer, deciding a settlement, and settling in SQLite (one
//! alone, which waits for its own fsync, and 64 at once, which share one).
//!
//! `cargo bench -p tijori-bench --bench money_path`
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::sync::Arc;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use tijori_core::account::{Email, PasswordHashString, User, Username};
use tijori_core::gateway::{GatewayAnswer, GatewayKind, GatewayStatus, RawAnswer};
use tijori_core::id::{PaymentId, PlanId};
use tijori_core::money::{Currency, Money};
use tijori_core::payment::{decide, Payment, PaymentStatus, Purpose};
use tijori_core::store::{AnswerKind, NewUser, Settled, Settlement, Store};
use tijori_core::subscription::{NewPlan, Plan};

const SECRET: &str = "tijori_sandbox_chapa_webhook_secret";

fn webhook_body() -> Vec<u8> {
    br#"{"event":"charge.success","type":"API","status":"success","tx_ref":"pay_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b","reference":"APfake123","amount":"850.00","charge":"29.75","currency":"ETB","mode":"test","email":"abebe@example.com","first_name":"Abebe","created_at":"2026-11-21T10:00:00.000000Z","updated_at":"2026-11-21T10:00:01.000000Z"}"#.to_vec()
}

fn signed_headers(body: &[u8]) -> HeaderMap {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-chapa-signature",
        HeaderValue::from_str(&hex::encode(mac.finalize().into_bytes())).unwrap(),
    );
    headers
}

fn signature(c: &mut Criterion) {
    let body = webhook_body();
    let headers = signed_headers(&body);
    c.bench_function("chapa webhook: signature check", |b| {
        b.iter(|| chapa::verify_webhook_signature(SECRET.as_bytes(), &body, &headers).unwrap())
    });
    c.bench_function("chapa webhook: signature check then parse", |b| {
        b.iter(|| chapa::parse_webhook(SECRET.as_bytes(), &body, &headers).unwrap())
    });
}

const CHAPA_VERIFY: &str = r#"{"message":"Payment details","status":"success","data":{"first_name":"Bilen","last_name":"Gizachew","email":"abebech_bekele@gmail.com","currency":"ETB","amount":100,"charge":3.5,"mode":"test","method":"test","type":"API","status":"success","reference":"6jnheVKQEmy","tx_ref":"chewatatest-6669","customization":{"title":"Payment for my favourite merchant","description":"I love online payments","logo":null},"meta":null,"created_at":"2023-02-02T07:05:23.000000Z","updated_at":"2023-02-02T07:05:23.000000Z"}}"#;

fn answers(c: &mut Criterion) {
    let khalti = r#"{"pidx":"HT6o6PEZRWFJ5ygavzHWd5","total_amount":50000,"status":"Completed","transaction_id":"GFq9PFS7b2iYvL8Lir9oXe","fee":0,"refunded":false}"#;
    c.bench_function("khalti lookup answer: read", |b| {
        b.iter(|| {
            khalti::Lookup::from_answer(
                khalti::RawAnswer {
                    http_status: 200,
                    body: khalti.to_owned(),
                },
                "HT6o6PEZRWFJ5ygavzHWd5",
            )
            .unwrap()
        })
    });
    c.bench_function("chapa verify answer: read", |b| {
        b.iter(|| {
            chapa::Verification::from_answer(
                chapa::RawAnswer {
                    http_status: 200,
                    body: CHAPA_VERIFY.to_owned(),
                },
                "chewatatest-6669",
            )
            .unwrap()
        })
    });
    let now = Utc::now();
    let payment = Payment {
        id: PaymentId::generate(),
        user_id: tijori_core::id::UserId::generate(),
        gateway: GatewayKind::Khalti,
        purpose: Purpose::Subscription {
            plan_id: PlanId::generate(),
            change: tijori_core::subscription::PlanChange::Queue,
        },
        amount: Money::from_minor(50_000, Currency::Npr).unwrap(),
        status: PaymentStatus::Initiated,
        checkout: tijori_core::payment::CheckoutKind::Hosted,
        provider_ref: Some("HT6o6PEZRWFJ5ygavzHWd5".into()),
        provider_txn_id: None,
        payment_url: None,
        expires_at: None,
        status_reason: None,
        created_at: now,
        updated_at: now,
    };
    let answer = GatewayAnswer {
        status: GatewayStatus::Paid,
        amount_minor: 50_000,
        currency: None,
        transaction_id: Some("GFq9PFS7b2iYvL8Lir9oXe".into()),
        raw: RawAnswer {
            http_status: 200,
            body: khalti.into(),
        },
    };
    c.bench_function("settle: decide", |b| b.iter(|| decide(&payment, &answer)));
}

/// A fresh SQLite store (synchronous = FULL, as tijori runs it) with `customers` users
/// and a plan, kept open for the whole benchmark.
fn sqlite_store(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    customers: usize,
) -> (Arc<dyn Store>, Vec<User>, Plan) {
    let dir = tempfile_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/bench.db", dir.display());
    runtime.block_on(async {
        let db = tijori_store::Database::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let store: Arc<dyn Store> = db.store();
        let mut users = Vec::new();
        for i in 0..customers {
            let user = NewUser {
                username: Username::parse(&format!("bench{i}")).unwrap(),
                email: Email::parse(&format!("bench{i}@example.com")).unwrap(),
                password_hash: PasswordHashString("x".into()),
                is_admin: false,
            };
            users.push(store.create_user(user, Utc::now()).await.unwrap());
        }
        let plan = NewPlan {
            name: "Basic".into(),
            description: String::new(),
            price: Money::from_minor(50_000, Currency::Npr).unwrap(),
            duration_days: 30,
        };
        let plan = store.create_plan(plan, Utc::now()).await.unwrap();
        std::mem::forget(db); // the store stays open for the benchmark's life
        (store, users, plan)
    })
}

/// An open checkout for `plan`, stored.
async fn open_payment(store: &dyn Store, user: &User, plan: &Plan) -> Payment {
    let now = Utc::now();
    let payment = Payment {
        id: PaymentId::generate(),
        user_id: user.id.clone(),
        gateway: GatewayKind::Khalti,
        purpose: Purpose::Subscription {
            plan_id: plan.id.clone(),
            change: tijori_core::subscription::PlanChange::Queue,
        },
        amount: plan.price,
        status: PaymentStatus::Initiated,
        checkout: tijori_core::payment::CheckoutKind::Hosted,
        provider_ref: Some(PaymentId::generate().to_string()),
        provider_txn_id: None,
        payment_url: None,
        expires_at: None,
        status_reason: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_payment(&payment).await.unwrap();
    payment
}

/// Settles `payment` on a Khalti "Completed": the answer recorded, the status moved,
/// the subscription granted, in one transaction.
async fn settle_paid(store: &dyn Store, payment: &Payment) -> Settled {
    let answer = paid_answer();
    let transition = decide(payment, &answer);
    store
        .settle(Settlement {
            payment: payment.id.clone(),
            transition,
            provider_txn_id: Some("txn".into()),
            kind: AnswerKind::Lookup,
            raw: answer.raw,
            now: Utc::now(),
            webhook: None,
        })
        .await
        .unwrap()
}

/// One settle alone: it waits for its own commit, so for an fsync.
fn settle_sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (store, users, plan) = sqlite_store(&runtime, "alone", 1);
    c.bench_function("settle: a paid payment on SQLite", |b| {
        b.iter_batched(
            || runtime.block_on(open_payment(&*store, &users[0], &plan)),
            |payment| runtime.block_on(settle_paid(&*store, &payment)),
            BatchSize::SmallInput,
        )
    });
}

/// 64 settles at once, as under load: the SQLite writer commits them together, so the
/// cost per settle is far below one fsync.
fn settle_sqlite_together(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (store, users, plan) = sqlite_store(&runtime, "together", 64);
    let mut group = c.benchmark_group("settle: 64 paid payments at once on SQLite");
    group.throughput(criterion::Throughput::Elements(64));
    group.bench_function("all 64", |b| {
        b.iter_batched(
            || {
                runtime.block_on(futures::future::join_all(
                    users.iter().map(|u| open_payment(&*store, u, &plan)),
                ))
            },
            |payments| {
                runtime.block_on(futures::future::join_all(
                    payments.iter().map(|p| settle_paid(&*store, p)),
                ))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn paid_answer() -> GatewayAnswer {
    GatewayAnswer {
        status: GatewayStatus::Paid,
        amount_minor: 50_000,
        currency: None,
        transaction_id: Some("txn".into()),
        raw: RawAnswer {
            http_status: 200,
            body: "{}".into(),
        },
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tijori-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

criterion_group!(
    money_path,
    signature,
    answers,
    settle_sqlite,
    settle_sqlite_together
);
criterion_main!(money_path);
