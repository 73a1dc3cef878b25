//! The reconciler at scale: 100,000 payments whose outcome never arrived, looked up at
//! a gateway that takes 20 ms an answer, 64 at a time. The ideal is
//! 100,000 × 20 ms / 64 ≈ 31 s; the target is within 1.25 × of it.
//!
//! `cargo bench -p tijori-bench --bench reconcile_sweep`
//!
//! Settings (environment): BENCH_PAYMENTS (100000), BENCH_LATENCY_MS (20),
//! BENCH_CONCURRENCY (64), TIJORI_BENCH_DATABASE_URL (an empty database; default a
//! fresh SQLite file). The app runs in this process on its built-in sandbox, with a
//! clock moved forward by hand so the payments are old enough without waiting.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tijori::{Application, Config};
use tijori_core::account::{Email, PasswordHashString, Username};
use tijori_core::clock::{Clock, ManualClock, SystemClock};
use tijori_core::gateway::GatewayKind;
use tijori_core::store::NewUser;
use tijori_sandbox::KhaltiSettings;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this is not a criterion benchmark.
    let payments = setting("BENCH_PAYMENTS", 100_000) as usize;
    let latency_ms = setting("BENCH_LATENCY_MS", 20);
    let concurrency = setting("BENCH_CONCURRENCY", 64) as usize;
    let dir = tempfile::tempdir()?;
    let database_url = std::env::var("TIJORI_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("sweep.db").display()));

    tokio::runtime::Runtime::new()?.block_on(async move {
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let config = Config {
            worker: false,
            ..Config::embedded(&database_url)
        };
        let app = Application::build_with_clock(&config, clock.clone()).await?;
        tijori::demo::seed(app.tijori()).await?;
        let tijori = app.tijori().clone();
        let sandbox = app.sandbox().expect("the built-in sandbox").khalti();
        tokio::spawn(app.run_until(std::future::pending()));

        // A thousand customers (straight into the store: hashing a thousand passwords
        // is not what is measured), each with their share of the payments.
        let mut users = Vec::new();
        for i in 0..1_000 {
            users.push(
                tijori
                    .store()
                    .create_user(
                        NewUser {
                            username: Username::parse(&format!("sweeper{i}"))?,
                            email: Email::parse(&format!("sweeper{i}@example.com"))?,
                            password_hash: PasswordHashString("not a hash".into()),
                            is_admin: false,
                        },
                        clock.now(),
                    )
                    .await?,
            );
        }
        let plan = tijori
            .plans()
            .await?
            .into_iter()
            .find(|p| p.price.currency().code() == "NPR")
            .expect("an NPR plan");

        let started = Instant::now();
        let opened = stream::iter(0..payments)
            .map(|i| {
                tijori.initiate_subscription(
                    &users[i % users.len()],
                    plan.id.as_str(),
                    GatewayKind::Khalti,
                    tijori_core::subscription::PlanChange::Queue,
                    None,
                )
            })
            .buffer_unordered(64)
            .filter(|r| std::future::ready(r.is_ok()))
            .count()
            .await;
        anyhow::ensure!(opened == payments, "only {opened} of {payments} checkouts opened");
        let seeding = started.elapsed();
        println!(
            "seeded {payments} open checkouts in {:.1} s ({:.0}/s)",
            seeding.as_secs_f64(),
            payments as f64 / seeding.as_secs_f64()
        );

        // Every customer paid and closed the tab; the gateway is slow.
        sandbox.set_settings(KhaltiSettings {
            auto_complete: true,
            latency_ms,
            ..sandbox.settings()
        });
        clock.advance(chrono::Duration::minutes(16));

        let started = Instant::now();
        let report = tijori.reconcile_once(concurrency).await?;
        let took = started.elapsed();
        let ideal = Duration::from_millis(latency_ms) * payments as u32 / concurrency as u32;
        println!(
            "reconciled {} payments ({} changed, {} failed) in {:.1} s; ideal {:.1} s; {:.2}× ideal",
            report.checked,
            report.changed.len(),
            report.failed.len(),
            took.as_secs_f64(),
            ideal.as_secs_f64(),
            took.as_secs_f64() / ideal.as_secs_f64()
        );
        println!(
            "{}",
            serde_json::json!({
                "benchmark": "reconcile_sweep",
                "database": database_url.split(':').next(),
                "payments": payments,
                "latency_ms": latency_ms,
                "concurrency": concurrency,
                "checked": report.checked,
                "changed": report.changed.len(),
                "failed": report.failed.len(),
                "seconds": took.as_secs_f64(),
                "ideal_seconds": ideal.as_secs_f64(),
                "ratio": took.as_secs_f64() / ideal.as_secs_f64(),
            })
        );
        anyhow::ensure!(
            report.checked == payments && report.changed.len() == payments,
            "not every payment was settled: {:?}",
            &report.failed[..report.failed.len().min(5)]
        );
        Ok(())
    })
}
