//! CI's check of the load generator: each scenario runs for a moment against the real
//! app on its sandbox, without errors. (Benchmarks are not tests; see BENCHMARKS.md.)
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

use std::time::Duration;

use tijori::{Application, Config};
use tijori_bench::{run, run_sse, Options, Receiver, Scenario, SseOptions, SANDBOX_WEBHOOK_SECRET};
use tijori_testkit::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_without_errors() {
    let db = TestDatabase::sqlite().await;
    let config = Config {
        // A load test does, from one address and a few accounts, what thousands of
        // customers would: the per-user and per-address limits are raised for it.
        verify_limit: 1_000_000,
        checkout_limit: 1_000_000,
        callback_limit: 1_000_000,
        signup_limit: 1_000_000,
        signin_address_limit: 1_000_000,
        live_stream_limit: 1_000_000,
        max_unpaid_orders: 10_000,
        max_unpaid_units_per_product: 1_000_000,
        // The receiver is on loopback.
        webhook_allow_private: true,
        ..Config::embedded(&db.url)
    };
    let app = Application::build(&config).await.expect("the app builds");
    tijori::demo::seed(app.tijori()).await.unwrap();
    let product = app
        .tijori()
        .create_product(tijori_core::shop::NewProduct {
            name: "Bench".into(),
            description: String::new(),
            price: tijori_core::money::Money::parse_major("10", "ETB".parse().unwrap()).unwrap(),
            stock: 1_000_000,
        })
        .await
        .unwrap();
    let tijori = app.tijori().clone();
    let base = app.public_url().clone();
    let pid = std::process::id();
    tokio::spawn(app.run_until(std::future::pending()));
    // Each scenario for a moment, with four users.
    let briefly = |scenario| Options {
        base: base.clone(),
        sandbox: base.join("sandbox/").unwrap(),
        scenario,
        users: 4,
        duration: Duration::from_millis(1500),
        configure_sandbox: true,
        sandbox_latency_ms: 0,
        product_id: None,
        webhook_secret: SANDBOX_WEBHOOK_SECRET.into(),
        server_pid: Some(pid),
        database_pid: None,
        receiver: None,
        events: 0,
    };

    for scenario in [
        Scenario::KhaltiFlow,
        Scenario::EsewaFlow,
        Scenario::ChapaFlow,
        Scenario::Webhooks,
    ] {
        let report = run(&Options {
            product_id: Some(product.id.to_string()),
            ..briefly(scenario)
        })
        .await
        .unwrap_or_else(|e| panic!("{scenario:?}: {e:#}"));
        report.print();
        assert_eq!(report.error_count(), 0, "{scenario:?}: {:?}", report.errors);
        assert!(report.completed > 0, "{scenario:?} completed nothing");
        assert!(report.server_peak_rss_mb.is_some_and(|mb| mb > 1.0));
        // The server here is this test process (it serves in-process): it did work.
        assert!(
            report.server_cpu_us_per_flow.is_some_and(|us| us > 0.0),
            "{scenario:?}: {:?}",
            report.server_cpu_us_per_flow
        );
    }

    // The same flows with an endpoint registered: every event they cause arrives,
    // signed, once.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let (_, secret) = tijori
        .create_webhook_endpoint(tijori_core::service::NewEndpoint {
            url: format!("http://{listen}/events"),
            wants: tijori_core::events::Wanted::All,
            description: "bench".into(),
        })
        .await
        .unwrap();
    let receiver = Receiver::start(listen, &secret).await.unwrap();
    for (scenario, events) in [(Scenario::KhaltiFlow, 0), (Scenario::WebhooksOut, 40)] {
        let report = run(&Options {
            receiver: Some(receiver.clone()),
            events,
            ..briefly(scenario)
        })
        .await
        .unwrap_or_else(|e| panic!("{scenario:?}: {e:#}"));
        report.print();
        assert_eq!(report.error_count(), 0, "{scenario:?}: {:?}", report.errors);
        let deliveries = report.deliveries.unwrap();
        assert!(deliveries.expected > 0, "{scenario:?} caused no events");
        assert_eq!(
            (deliveries.delivered, deliveries.rejected),
            (deliveries.expected, 0),
            "{scenario:?}: every event arrives with a good signature"
        );
    }
    let sse = run_sse(&SseOptions {
        base: base.clone(),
        sandbox: base.join("sandbox/").unwrap(),
        subscribers: 50,
        hold: Duration::from_millis(200),
        server_pid: Some(pid),
    })
    .await
    .unwrap_or_else(|e| panic!("Sse: {e:#}"));
    sse.print();
    assert_eq!(sse.missed, 0, "every subscriber hears the change");
    assert_eq!(sse.fanout.count, 50);
}
