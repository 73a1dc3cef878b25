//! `tijori-bench`: drive load at a running tijori and report throughput and latency.

use std::time::Duration;

use clap::Parser;
use tijori_bench::{run, run_sse, Options, Receiver, Scenario, SseOptions, SANDBOX_WEBHOOK_SECRET};

/// A load generator for tijori's money paths (a developer's tool). Start tijori on its
/// built-in sandbox (release build, with the per-user and per-address limits raised:
/// TIJORI_VERIFY_LIMIT, TIJORI_CHECKOUT_LIMIT, TIJORI_CALLBACK_LIMIT,
/// TIJORI_SIGNUP_LIMIT=1000000 and TIJORI_MAX_UNPAID_ORDERS=10000,
/// TIJORI_MAX_UNPAID_UNITS_PER_PRODUCT=1000000 and, for sse, TIJORI_LIVE_STREAM_LIMIT=1000000,
/// as scripts/bench does: a load test does
/// from one address what thousands of customers would), then point this at it. See BENCHMARKS.md
/// and scripts/bench.
#[derive(Parser)]
#[command(name = "tijori-bench", version)]
struct Args {
    /// What to drive.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Where tijori is.
    #[arg(long, default_value = "http://127.0.0.1:8000/")]
    base_url: reqwest::Url,
    /// Where its sandbox is (default: the built-in one, <base-url>sandbox/). For a
    /// separate `tijori sandbox`: http://127.0.0.1:9000/
    #[arg(long)]
    sandbox_url: Option<reqwest::Url>,
    /// For `sse`: how many subscribers to hold open.
    #[arg(long, default_value = "10000")]
    subscribers: usize,
    /// Virtual users (concurrent closed loops), each with its own account.
    #[arg(long, default_value = "32")]
    users: usize,
    /// Seconds to run (for `sse`: to hold the subscribers idle).
    #[arg(long, default_value = "20")]
    seconds: u64,
    /// Leave the sandbox's settings alone (by default: auto-complete on).
    #[arg(long)]
    no_configure_sandbox: bool,
    /// Milliseconds of latency the sandbox adds to each gateway API answer.
    #[arg(long, default_value = "0")]
    sandbox_latency_ms: u64,
    /// The product `chapa-flow` orders (default: the ETB product with most stock;
    /// make one with `tijori product create --name Bench --price 10 --currency ETB
    /// --stock 1000000`).
    #[arg(long)]
    product_id: Option<String>,
    /// The Chapa webhook secret the server checks.
    #[arg(long, default_value = SANDBOX_WEBHOOK_SECRET)]
    webhook_secret: String,
    /// The server's pid, to report its peak RSS and CPU time per flow.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The database server's main pid (PostgreSQL's postmaster), to report its and its
    /// backends' CPU time per flow.
    #[arg(long)]
    database_pid: Option<u32>,
    /// Receive the server's outgoing events here and report them (required by
    /// `webhooks-out`). Register the endpoint first: `tijori webhook-endpoint create
    /// http://ADDR/` with TIJORI_WEBHOOK_ALLOW_PRIVATE=true.
    #[arg(long, requires = "receiver_secret")]
    receiver_listen: Option<std::net::SocketAddr>,
    /// The endpoint's signing secret (whsec_...), to check each delivery's signature.
    #[arg(long)]
    receiver_secret: Option<String>,
    /// For `webhooks-out`: the events to cause (two per flow) and wait for.
    #[arg(long, default_value = "10000")]
    events: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sandbox = match args.sandbox_url {
        Some(url) => url,
        None => args.base_url.join("sandbox/")?,
    };
    if args.scenario == Scenario::Sse {
        let report = run_sse(&SseOptions {
            base: args.base_url,
            sandbox,
            subscribers: args.subscribers.max(1),
            hold: Duration::from_secs(args.seconds.max(1)),
            server_pid: args.server_pid,
        })
        .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            report.print();
        }
        return Ok(());
    }
    let receiver = match (args.receiver_listen, &args.receiver_secret) {
        (Some(listen), Some(secret)) => Some(Receiver::start(listen, secret).await?),
        _ => None,
    };
    let report = run(&Options {
        base: args.base_url,
        sandbox,
        scenario: args.scenario,
        users: args.users.max(1),
        duration: Duration::from_secs(args.seconds.max(1)),
        configure_sandbox: !args.no_configure_sandbox,
        sandbox_latency_ms: args.sandbox_latency_ms,
        product_id: args.product_id,
        webhook_secret: args.webhook_secret,
        server_pid: args.server_pid,
        database_pid: args.database_pid,
        receiver,
        events: args.events,
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    Ok(())
}
