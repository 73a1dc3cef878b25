//! A load generator for tijori's money paths, driving real HTTP traffic at a running
//! tijori (any base URL). A tool for developers: see BENCHMARKS.md for how the
//! figures there were made.
//!
//! Scenarios:
//! - `khalti-flow`: N virtual users in a closed loop, each initiate → verify (the
//!   sandbox pays every payment when it is looked up), each user with its own account
//!   and token.
//! - `esewa-flow`: initiate → the signed form posted to the sandbox (auto-complete:
//!   it pays at once and answers the signed success redirect, not followed) → verify,
//!   each user with its own account and token.
//! - `chapa-flow`: order → initialize → a signed webhook → settled (the sandbox pays
//!   at verify).
//! - `webhooks`: signed webhooks for open payments, each delivered twice (new and
//!   duplicate), as fast as the endpoint takes them.
//! - `webhooks-out`: khalti-flow until its payments have caused a given number of
//!   outgoing events (two per flow), then waits for a [`Receiver`] to have them all:
//!   events delivered per second and the time from each event to its delivery.
//!   Any other scenario given a receiver reports the same beside its own figures.
//! - `sse`: many idle live-status subscribers (Server-Sent Events) on one payment;
//!   reports the server's memory with them open, then settles the payment and times
//!   how long each subscriber takes to hear it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

mod receiver;
pub use receiver::{Deliveries, Receiver};

/// Runs started by this process, to keep their account names apart.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The sandbox's webhook secret (tijori's built-in Chapa sandbox signs with it).
pub const SANDBOX_WEBHOOK_SECRET: &str = "tijori_sandbox_chapa_webhook_secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    KhaltiFlow,
    EsewaFlow,
    ChapaFlow,
    Webhooks,
    WebhooksOut,
    Sse,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Where tijori is, e.g. http://127.0.0.1:8000/
    pub base: reqwest::Url,
    /// Where its sandbox is: the built-in one (`<base>/sandbox/`) or a separate
    /// `tijori sandbox`.
    pub sandbox: reqwest::Url,
    pub scenario: Scenario,
    /// Virtual users (concurrent closed loops).
    pub users: usize,
    pub duration: Duration,
    /// Switch the built-in sandbox to auto-complete (and no latency) first.
    pub configure_sandbox: bool,
    /// Added latency in the sandbox's API answers, in milliseconds.
    pub sandbox_latency_ms: u64,
    /// For `chapa-flow`: the product to order (else the ETB product with most stock).
    pub product_id: Option<String>,
    pub webhook_secret: String,
    /// The server's process id, for its peak RSS and its CPU time per flow.
    pub server_pid: Option<u32>,
    /// The database server's main process (PostgreSQL's postmaster), for its and its
    /// backends' CPU time per flow.
    pub database_pid: Option<u32>,
    /// A receiver for the events the flows cause (the server has an endpoint that
    /// posts to it); required by `webhooks-out`.
    pub receiver: Option<Receiver>,
    /// For `webhooks-out`: how many events the flows cause before they stop.
    pub events: u64,
}

/// Every flow the scenarios run causes two outgoing events: `payment.completed`, and
/// `subscription.activated`/`renewed` or `order.paid`.
const EVENTS_PER_FLOW: u64 = 2;

/// Per-step latencies and outcomes.
#[derive(Default)]
struct Tally {
    steps: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    flows: u64,
}

impl Tally {
    fn record(&mut self, step: &'static str, took: Duration) {
        self.steps
            .entry(step)
            .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"))
            .saturating_record(took.as_micros().max(1) as u64);
    }

    fn error(&mut self, what: String) {
        *self.errors.entry(what).or_default() += 1;
    }
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub users: usize,
    pub seconds: f64,
    pub completed: u64,
    pub per_second: f64,
    pub steps: BTreeMap<&'static str, StepReport>,
    pub errors: BTreeMap<String, u64>,
    /// The server's peak resident memory (VmHWM), when its pid was given.
    pub server_peak_rss_mb: Option<f64>,
    /// The server's CPU time (user + system) over the run, per completed flow, in
    /// microseconds: a cost that moves far less with the machine's speed than
    /// flows/s does.
    pub server_cpu_us_per_flow: Option<f64>,
    /// The same for the database server and its backends (PostgreSQL).
    pub database_cpu_us_per_flow: Option<f64>,
    /// What the receiver saw, when there was one.
    pub deliveries: Option<Deliveries>,
}

impl Report {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn print(&self) {
        println!(
            "{:?}: {} users, {:.1} s: {} completed, {:.0}/s, {} errors",
            self.scenario,
            self.users,
            self.seconds,
            self.completed,
            self.per_second,
            self.error_count()
        );
        for (step, s) in &self.steps {
            println!(
                "  {step:<12} n={:<8} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
        for (what, n) in &self.errors {
            println!("  error {what}: {n}");
        }
        if let Some(rss) = self.server_peak_rss_mb {
            println!("  server peak RSS: {rss:.1} MB");
        }
        if let Some(cpu) = self.server_cpu_us_per_flow {
            println!("  server CPU per flow: {cpu:.0} µs");
        }
        if let Some(cpu) = self.database_cpu_us_per_flow {
            println!("  database CPU per flow: {cpu:.0} µs");
        }
        if let Some(deliveries) = &self.deliveries {
            deliveries.print();
        }
    }
}

impl StepReport {
    fn of(h: &Histogram<u64>) -> StepReport {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        StepReport {
            count: h.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// Runs a scenario and reports.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let client = Client::builder()
        .pool_max_idle_per_host(options.users.max(1) * 2)
        // esewa-flow times the form's own answer (a 302 to tijori's return page);
        // no other step answers with a redirect.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    if options.configure_sandbox {
        configure_sandbox(&client, options).await?;
    }
    let outgoing = options.scenario == Scenario::WebhooksOut;
    if outgoing && options.receiver.is_none() {
        bail!("webhooks-out needs a receiver (and an endpoint on the server posting to it)");
    }
    let setup = Setup::prepare(&client, options).await?;
    if let Some(receiver) = &options.receiver {
        receiver.reset();
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // webhooks-out runs a number of flows, not a time.
    let flows_left = Arc::new(AtomicU64::new(if outgoing {
        options.events.div_ceil(EVENTS_PER_FLOW)
    } else {
        u64::MAX
    }));
    let started = Instant::now();
    let cpu_at_start = Cpu::read(options);
    let mut tasks = Vec::new();
    for user in 0..options.users {
        let (client, options, setup, tally, stop, flows_left) = (
            client.clone(),
            options.clone(),
            setup.clone(),
            tally.clone(),
            stop.clone(),
            flows_left.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let token = &setup.tokens[user % setup.tokens.len()];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed)
                && flows_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
            {
                let outcome = match options.scenario {
                    Scenario::KhaltiFlow | Scenario::WebhooksOut => {
                        khalti_flow(&client, &options, &setup, token).await
                    }
                    Scenario::EsewaFlow => esewa_flow(&client, &options, &setup, token).await,
                    Scenario::ChapaFlow => chapa_flow(&client, &options, &setup, token).await,
                    Scenario::Webhooks => webhooks(&client, &options, &setup, token, user, n).await,
                    Scenario::Sse => Err("sse is not a flow: see run_sse".to_string()),
                };
                n += 1;
                let mut t = tally.lock().expect("tally lock");
                match outcome {
                    Ok(steps) => {
                        t.flows += 1;
                        for (step, took) in steps {
                            t.record(step, took);
                        }
                    }
                    Err(e) => t.error(e),
                }
            }
        }));
    }
    if !outgoing {
        tokio::time::sleep(options.duration).await;
        stop.store(true, Ordering::Relaxed);
    }
    for t in tasks {
        t.await.context("a virtual user panicked")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = Cpu::read(options);
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("tally still shared"))?
        .into_inner()
        .expect("tally lock");
    let deliveries = match &options.receiver {
        Some(receiver) => {
            let expected = tally.flows * EVENTS_PER_FLOW;
            // Deliveries trail the flows; a retry waits 5 s, so 30 s without news is
            // a lost or stuck event, which the report shows.
            receiver.wait_for(expected, Duration::from_secs(30)).await;
            Some(receiver.report(expected))
        }
        None => None,
    };
    Ok(Report {
        scenario: options.scenario,
        users: options.users,
        seconds,
        completed: tally.flows,
        per_second: tally.flows as f64 / seconds,
        steps: tally
            .steps
            .iter()
            .map(|(k, h)| (*k, StepReport::of(h)))
            .collect(),
        errors: tally.errors,
        server_peak_rss_mb: options.server_pid.and_then(peak_rss_mb),
        server_cpu_us_per_flow: Cpu::per_flow(cpu_at_start.server, cpu.server, tally.flows),
        database_cpu_us_per_flow: Cpu::per_flow(cpu_at_start.database, cpu.database, tally.flows),
        deliveries,
    })
}

/// CPU time used so far by the server and the database, in seconds.
struct Cpu {
    server: Option<f64>,
    database: Option<f64>,
}

impl Cpu {
    fn read(options: &Options) -> Cpu {
        Cpu {
            server: options.server_pid.and_then(cpu_seconds),
            database: options.database_pid.and_then(cpu_seconds_with_children),
        }
    }

    fn per_flow(before: Option<f64>, after: Option<f64>, flows: u64) -> Option<f64> {
        let used = after? - before?;
        (flows > 0).then(|| used * 1e6 / flows as f64)
    }
}

/// `/proc`'s clock ticks per second (USER_HZ): 100 on every Linux tijori runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A process's user + system CPU time so far, in seconds (Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_fields(&stat)?.own)
}

/// What a `/proc/<pid>/stat` line says of a process's CPU time, in seconds.
struct Stat {
    ppid: u32,
    /// Its own user + system time.
    own: f64,
    /// Its children's that have exited and been waited for (cutime + cstime).
    reaped_children: f64,
}

/// Reads a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses: the fields are read after its last `)`.
fn stat_fields(stat: &str) -> Option<Stat> {
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17),
    // so index = field - 3.
    let tick = |i: usize| -> Option<f64> { fields.get(i)?.parse::<f64>().ok() };
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        own: (tick(11)? + tick(12)?) / TICKS_PER_SECOND,
        reaped_children: (tick(13)? + tick(14)?) / TICKS_PER_SECOND,
    })
}

/// A process's CPU time and its children's (PostgreSQL's postmaster and its
/// backends), in seconds: the live ones' own, and what the ones that exited used.
pub fn cpu_seconds_with_children(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let main = stat_fields(&stat)?;
    let mut total = main.own + main.reaped_children;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if let Some(child) = stat_fields(&stat).filter(|s| s.ppid == pid) {
            total += child.own;
        }
    }
    Some(total)
}

/// VmHWM of a process, in MB (Linux).
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn configure_sandbox(client: &Client, options: &Options) -> anyhow::Result<()> {
    let body = json!({"auto_complete": true, "latency_ms": options.sandbox_latency_ms});
    // eSewa's switch only for its own scenario, so the other scenarios still run
    // against a build from before eSewa (BENCH_BIN's interleaved runs).
    let esewa = (options.scenario == Scenario::EsewaFlow).then_some("esewa/_sandbox/settings");
    for path in ["khalti/_sandbox/settings", "chapa/_sandbox/settings"]
        .into_iter()
        .chain(esewa)
    {
        let res = client
            .put(options.sandbox.join(path)?)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("failed to reach {path}"))?;
        if !res.status().is_success() {
            bail!(
                "{path} answered {}: is {} a tijori sandbox?",
                res.status(),
                options.sandbox
            );
        }
    }
    Ok(())
}

/// What the virtual users share: accounts, the plan, the product.
#[derive(Clone)]
struct Setup {
    tokens: Arc<Vec<String>>,
    plan_id: String,
    product_id: Option<String>,
}

impl Setup {
    async fn prepare(client: &Client, options: &Options) -> anyhow::Result<Setup> {
        let plans: Vec<Value> = client
            .get(options.base.join("api/subscriptions/plans/")?)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let plan_id = plans
            .iter()
            .find(|p| p["currency"] == "NPR")
            .context("no NPR plan to subscribe to")?["id"]
            .as_str()
            .context("plan id")?
            .to_owned();
        let product_id = match (&options.product_id, options.scenario) {
            (Some(id), _) => Some(id.clone()),
            (None, Scenario::KhaltiFlow | Scenario::EsewaFlow | Scenario::WebhooksOut) => None,
            (None, _) => {
                let products: Vec<Value> = client
                    .get(options.base.join("api/products/")?)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                Some(
                    products
                        .iter()
                        .filter(|p| p["currency"] == "ETB")
                        .max_by_key(|p| p["stock"].as_u64().unwrap_or(0))
                        .context("no ETB product to order")?["id"]
                        .as_str()
                        .context("product id")?
                        .to_owned(),
                )
            }
        };
        // Many distinct users, as in production: one account and token per user. Names
        // must differ between runs against one server (and runs in one process), so
        // they carry the wall clock and a per-process counter.
        let run = format!(
            "{:x}{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let mut tokens = Vec::with_capacity(options.users);
        for i in 0..options.users.max(1) {
            let name = format!("bench{run}x{i}");
            let res = client
                .post(options.base.join("api/auth/register")?)
                .json(
                    &json!({"username": name, "email": format!("{name}@example.com"),
                    "password": "bench-password-1"}),
                )
                .send()
                .await?;
            if res.status() != StatusCode::CREATED {
                bail!("register {name}: {}", res.status());
            }
            let body: Value = res.json().await?;
            tokens.push(body["token"].as_str().context("token")?.to_owned());
        }
        Ok(Setup {
            tokens: Arc::new(tokens),
            plan_id,
            product_id,
        })
    }
}

type Steps = Vec<(&'static str, Duration)>;

/// POSTs JSON with the user's token; the answer's JSON if the status is `want`.
async fn post(
    client: &Client,
    url: reqwest::Url,
    token: &str,
    body: &Value,
    want: StatusCode,
    step: &str,
) -> Result<(Value, Duration), String> {
    let started = Instant::now();
    let res = client
        .post(url)
        .header("Authorization", format!("Token {token}"))
        .json(body)
        .send()
        .await
        .map_err(|e| {
            format!(
                "{step}: {}",
                if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                }
            )
        })?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let took = started.elapsed();
    if status != want {
        return Err(format!("{step}: HTTP {}", status.as_u16()));
    }
    Ok((body, took))
}

async fn khalti_flow(
    client: &Client,
    options: &Options,
    setup: &Setup,
    token: &str,
) -> Result<Steps, String> {
    let url = |p: &str| options.base.join(p).expect("a relative path joins");
    let (started, t1) = post(
        client,
        url("api/subscriptions/initiate/"),
        token,
        &json!({"plan_id": setup.plan_id}),
        StatusCode::OK,
        "initiate",
    )
    .await?;
    let pidx = started["pidx"].as_str().ok_or("initiate: no pidx")?;
    let (verified, t2) = post(
        client,
        url("api/subscriptions/verify/"),
        token,
        &json!({"pidx": pidx}),
        StatusCode::OK,
        "verify",
    )
    .await?;
    if verified["status"] != "success" {
        return Err("verify: not success".into());
    }
    Ok(vec![("initiate", t1), ("verify", t2)])
}

/// initiate → the signed form, posted as the customer's browser would (the sandbox in
/// auto-complete pays at once and answers the signed success redirect to tijori's
/// return page, not followed: it is only a signal) → verify (tijori checks eSewa's
/// status API and settles).
async fn esewa_flow(
    client: &Client,
    options: &Options,
    setup: &Setup,
    token: &str,
) -> Result<Steps, String> {
    let url = |p: &str| options.base.join(p).expect("a relative path joins");
    let (started, t1) = post(
        client,
        url("api/subscriptions/initiate/"),
        token,
        &json!({"plan_id": setup.plan_id, "gateway": "esewa"}),
        StatusCode::OK,
        "initiate",
    )
    .await?;
    let uuid = started["transaction_uuid"]
        .as_str()
        .ok_or("initiate: no transaction_uuid")?;
    let action = started["form"]["action"]
        .as_str()
        .ok_or("initiate: no form")?;
    let fields: Vec<(&str, &str)> = started["form"]["fields"]
        .as_object()
        .ok_or("initiate: no form fields")?
        .iter()
        .map(|(k, v)| {
            Ok((
                k.as_str(),
                v.as_str().ok_or("initiate: a form field not text")?,
            ))
        })
        .collect::<Result<_, &str>>()?;

    let posting = Instant::now();
    let res = client
        .post(action)
        .form(&fields)
        .send()
        .await
        .map_err(|e| {
            format!(
                "form: {}",
                if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                }
            )
        })?;
    let status = res.status();
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    drop(res.bytes().await);
    let t2 = posting.elapsed();
    if status != StatusCode::FOUND {
        return Err(format!("form: HTTP {}", status.as_u16()));
    }
    // The signed success redirect, not the hosted page (auto-complete off?) or the
    // failure redirect.
    if !location.contains("data=") {
        return Err("form: not the success redirect".into());
    }

    let (verified, t3) = post(
        client,
        url("api/subscriptions/verify/"),
        token,
        &json!({"transaction_uuid": uuid}),
        StatusCode::OK,
        "verify",
    )
    .await?;
    if verified["status"] != "success" {
        return Err("verify: not success".into());
    }
    Ok(vec![("initiate", t1), ("form", t2), ("verify", t3)])
}

/// A Chapa webhook body for `tx_ref`, signed as Chapa signs (x-chapa-signature is the
/// HMAC of the raw body).
fn signed_webhook(secret: &str, tx_ref: &str) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "event": "charge.success", "type": "API", "status": "success", "tx_ref": tx_ref,
        "reference": format!("AP{tx_ref}"), "amount": "10.00", "currency": "ETB", "mode": "test"
    }))
    .expect("JSON serializes");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(&body);
    (body, hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(
    client: &Client,
    options: &Options,
    tx_ref: &str,
) -> Result<(Value, Duration), String> {
    let (body, signature) = signed_webhook(&options.webhook_secret, tx_ref);
    let started = Instant::now();
    let res = client
        .post(
            options
                .base
                .join("api/payments/chapa/webhook/")
                .expect("joins"),
        )
        .header("content-type", "application/json")
        .header("x-chapa-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|_| "webhook: connection".to_string())?;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        return Err(format!("webhook: HTTP {}", status.as_u16()));
    }
    Ok((answer, started.elapsed()))
}

/// Opens a Chapa checkout for a new one-item order; returns its tx_ref.
async fn open_order(
    client: &Client,
    options: &Options,
    setup: &Setup,
    token: &str,
    steps: &mut Steps,
) -> Result<String, String> {
    let url = |p: &str| options.base.join(p).expect("a relative path joins");
    let product = setup.product_id.as_deref().ok_or("no product")?;
    let (order, t1) = post(
        client,
        url("api/orders/"),
        token,
        &json!({"items": [{"product_id": product, "quantity": 1}]}),
        StatusCode::CREATED,
        "order",
    )
    .await?;
    let (checkout, t2) = post(
        client,
        url("api/payments/initialize/"),
        token,
        &json!({"order_id": order["id"], "gateway": "chapa"}),
        StatusCode::CREATED,
        "initialize",
    )
    .await?;
    steps.push(("order", t1));
    steps.push(("initialize", t2));
    Ok(checkout["tx_ref"]
        .as_str()
        .ok_or("initialize: no tx_ref")?
        .to_owned())
}

async fn chapa_flow(
    client: &Client,
    options: &Options,
    setup: &Setup,
    token: &str,
) -> Result<Steps, String> {
    let mut steps = Vec::new();
    let tx_ref = open_order(client, options, setup, token, &mut steps).await?;
    let (answer, t3) = deliver(client, options, &tx_ref).await?;
    if answer["outcome"] != "verified" {
        return Err(format!("webhook: {}", answer["outcome"]));
    }
    steps.push(("webhook", t3));
    Ok(steps)
}

/// One new delivery and one duplicate for a fresh checkout (opened outside the timed
/// part would be fairer; it is timed separately as `order`/`initialize`).
async fn webhooks(
    client: &Client,
    options: &Options,
    setup: &Setup,
    token: &str,
    _user: usize,
    _n: u64,
) -> Result<Steps, String> {
    let mut steps = Vec::new();
    let tx_ref = open_order(client, options, setup, token, &mut steps).await?;
    let (first, second) = tokio::join!(
        deliver(client, options, &tx_ref),
        deliver(client, options, &tx_ref)
    );
    let (_, t1) = first?;
    let (_, t2) = second?;
    steps.push(("webhook", t1));
    steps.push(("webhook", t2));
    Ok(steps)
}

// --- Idle live-status subscribers ---------------------------------------------------

#[derive(Clone, Debug)]
pub struct SseOptions {
    pub base: reqwest::Url,
    pub sandbox: reqwest::Url,
    pub subscribers: usize,
    /// How long the subscribers stay idle before the payment settles.
    pub hold: Duration,
    pub server_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct SseReport {
    pub subscribers: usize,
    /// How long opening them all took (each sees the payment's status first).
    pub connect_seconds: f64,
    /// The server's resident memory with them all open and idle.
    pub server_rss_mb: Option<f64>,
    pub server_peak_rss_mb: Option<f64>,
    /// From the settling request to each subscriber hearing the change.
    pub fanout: StepReport,
    /// Subscribers that did not hear the change within 30 s.
    pub missed: usize,
}

impl SseReport {
    pub fn print(&self) {
        println!(
            "Sse: {} idle subscribers opened in {:.1} s; server RSS {} (peak {})",
            self.subscribers,
            self.connect_seconds,
            mb(self.server_rss_mb),
            mb(self.server_peak_rss_mb)
        );
        let f = &self.fanout;
        println!(
            "  settled → heard  n={:<6} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms; missed {}",
            f.count, f.p50_ms, f.p90_ms, f.p99_ms, f.max_ms, self.missed
        );
    }
}

fn mb(v: Option<f64>) -> String {
    v.map_or("unknown".into(), |v| format!("{v:.1} MB"))
}

/// VmRSS of a process, in MB (Linux).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub async fn run_sse(options: &SseOptions) -> anyhow::Result<SseReport> {
    let client = Client::builder().pool_max_idle_per_host(0).build()?;
    // The payment must stay open until we settle it.
    for path in ["khalti/_sandbox/settings"] {
        client
            .put(options.sandbox.join(path)?)
            .json(&json!({"auto_complete": false, "latency_ms": 0}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("is {} a tijori sandbox?", options.sandbox))?;
    }
    let flow = Options {
        base: options.base.clone(),
        sandbox: options.sandbox.clone(),
        scenario: Scenario::Sse,
        users: 1,
        duration: Duration::ZERO,
        configure_sandbox: false,
        sandbox_latency_ms: 0,
        product_id: None,
        webhook_secret: String::new(),
        server_pid: None,
        database_pid: None,
        receiver: None,
        events: 0,
    };
    let setup = Setup::prepare(&client, &flow).await?;
    let token = setup.tokens[0].clone();
    let (started, _) = post(
        &client,
        options.base.join("api/subscriptions/initiate/")?,
        &token,
        &json!({"plan_id": setup.plan_id}),
        StatusCode::OK,
        "initiate",
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let payment = started["payment_id"]
        .as_str()
        .context("payment_id")?
        .to_owned();
    let pidx = started["pidx"].as_str().context("pidx")?.to_owned();
    let events = options
        .base
        .join(&format!("api/payments/{payment}/events"))?;

    // Open them, a few hundred at a time; each holds its connection and waits.
    let opening = Arc::new(tokio::sync::Semaphore::new(256));
    let (opened_tx, mut opened) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let connect_started = Instant::now();
    for _ in 0..options.subscribers {
        let (client, events, token) = (client.clone(), events.clone(), token.clone());
        let (opening, opened_tx, heard_tx) = (opening.clone(), opened_tx.clone(), heard_tx.clone());
        tokio::spawn(async move {
            let mut permit = Some(opening.acquire_owned().await.expect("never closed"));
            let res = client
                .get(events)
                .header("Authorization", format!("Token {token}"))
                .send()
                .await;
            let mut res = match res {
                Ok(r) if r.status() == StatusCode::OK => r,
                Ok(r) => return drop(opened_tx.send(Err(format!("HTTP {}", r.status().as_u16())))),
                Err(_) => return drop(opened_tx.send(Err("connection".into()))),
            };
            let mut first = true;
            // Held open (idle) until the change comes.
            let mut seen = String::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if first && seen.contains("event: status") {
                    first = false;
                    drop(opened_tx.send(Ok(())));
                    // Open: the next one may connect.
                    permit.take();
                }
                if seen.contains("\"completed\"") {
                    let _ = heard_tx.send(Instant::now());
                    break;
                }
                // Keep only the tail: an event is short.
                if seen.len() > 4096 {
                    seen.drain(..seen.len() - 1024);
                }
            }
        });
    }
    drop((opened_tx, heard_tx));
    let mut failures = BTreeMap::<String, u64>::new();
    let mut ready = 0;
    while ready + failures.values().sum::<u64>() < options.subscribers as u64 {
        match tokio::time::timeout(Duration::from_secs(60), opened.recv()).await {
            Ok(Some(Ok(()))) => ready += 1,
            Ok(Some(Err(why))) => *failures.entry(why).or_default() += 1,
            Ok(None) | Err(_) => break,
        }
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    if ready < options.subscribers as u64 {
        bail!(
            "only {ready} of {} subscribers opened: {failures:?}",
            options.subscribers
        );
    }
    tokio::time::sleep(options.hold).await;
    let server_rss_mb = options.server_pid.and_then(rss_mb);

    // The customer pays; the verify settles it; every subscriber should hear.
    client
        .post(
            options
                .sandbox
                .join(&format!("khalti/_sandbox/payments/{pidx}/complete"))?,
        )
        .send()
        .await?
        .error_for_status()?;
    let settling = Instant::now();
    post(
        &client,
        options.base.join("api/subscriptions/verify/")?,
        &token,
        &json!({"pidx": pidx}),
        StatusCode::OK,
        "verify",
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let mut fanout = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let deadline = settling + Duration::from_secs(30);
    while fanout.len() < options.subscribers as u64 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, heard.recv()).await {
            Ok(Some(at)) => {
                fanout.saturating_record(at.duration_since(settling).as_micros().max(1) as u64)
            }
            Ok(None) | Err(_) => break,
        }
    }
    Ok(SseReport {
        subscribers: options.subscribers,
        connect_seconds,
        server_rss_mb,
        server_peak_rss_mb: options.server_pid.and_then(peak_rss_mb),
        fanout: StepReport::of(&fanout),
        missed: options.subscribers - fanout.len() as usize,
    })
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_name_whatever_it_holds() {
        // A name with a space and a parenthesis, as a process may give itself.
        let line = "4242 (postgres: a) b) S 4200 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 30 20 20 0 1 0 100 1000 10";
        let stat = stat_fields(line).expect("parsed");
        assert_eq!(stat.ppid, 4200);
        assert!((stat.own - 3.0).abs() < 1e-9, "{}", stat.own);
        assert!(
            (stat.reaped_children - 0.5).abs() < 1e-9,
            "{}",
            stat.reaped_children
        );
    }
}
