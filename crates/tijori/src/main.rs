use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tijori::{demo, Application, Config};
use tijori_core::money::{Currency, Money};
use tijori_core::service::Worker;
use tijori_core::shop::NewProduct;
use tijori_core::subscription::NewPlan;

/// Payments, subscriptions and shop orders on the hosted checkouts of Khalti (Nepal)
/// and Chapa (Ethiopia).
///
/// With no gateway keys configured, tijori serves its own built-in sandbox gateways
/// and demo data on its default SQLite database: `tijori serve` is a complete system
/// offline. Every command but `sandbox` takes the same configuration (flags or
/// environment variables).
#[derive(Parser)]
#[command(name = "tijori", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    config: Config,

    /// What to do; `serve` when left out.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and pages (migrates the database first).
    Serve,
    /// Run the background jobs (reconciler, order expiry, notices, look-ups of
    /// refunds whose outcome is unknown, the refund audit, event deliveries to webhook
    /// endpoints) without serving HTTP.
    /// Several workers may share one PostgreSQL; set TIJORI_WORKER=false on the
    /// serving processes if only these should do the work.
    Worker,
    /// Look up, now, every payment whose outcome has not arrived for
    /// TIJORI_RECONCILE_AFTER_MINUTES, settle what changed, and report it. A change
    /// is reported only by the process that made it; with other processes (or
    /// workers) reconciling at the same time, the payments they settled first are
    /// listed as "already settled by another process".
    Reconcile {
        /// One pass, then exit (the only mode: the worker reconciles continuously).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Apply database migrations, then exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to PATH, also while tijori
    /// serves it, and print how to restore it.
    ///
    /// The copy is one snapshot of the database (SQLite's online backup API) and does
    /// not hold up tijori's writes. It is checked with PRAGMA integrity_check before it
    /// is kept, and written beside PATH then renamed into place, so PATH never holds
    /// half a copy. An existing PATH is replaced only with --force. For PostgreSQL use
    /// pg_dump instead (README, "Backups").
    Backup {
        /// The file to write, e.g. /var/backups/tijori-$(date +%F).db.
        path: PathBuf,
        /// Replace PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Run the sandbox gateways (Khalti and Chapa) alone, for apps in any language to
    /// test against.
    Sandbox {
        /// Address for the sandbox to listen on.
        #[arg(
            long = "sandbox-listen",
            env = "TIJORI_SANDBOX_LISTEN",
            default_value = "127.0.0.1:9000"
        )]
        listen: SocketAddr,
        /// Where browsers reach the sandbox (for its hosted checkout links).
        #[arg(long = "sandbox-public-url", env = "TIJORI_SANDBOX_PUBLIC_URL")]
        public_url: Option<url::Url>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage subscription plans.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Manage the shop's products.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Manage the webhook endpoints tijori sends its events to (the merchant's own
    /// systems: payment.completed, subscription.activated, order.paid, ...).
    #[command(subcommand)]
    WebhookEndpoint(WebhookEndpointCommand),
}

#[derive(Subcommand)]
enum WebhookEndpointCommand {
    /// Register an endpoint; prints its signing secret (shown only now).
    Create {
        /// Where events are POSTed (http or https; a loopback or private address
        /// only with TIJORI_WEBHOOK_ALLOW_PRIVATE=true).
        url: String,
        /// The event types it receives, comma-separated (e.g.
        /// payment.completed,order.paid); every type when left out.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// What it is, for the operator ("warehouse", "CRM").
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the endpoints: id, enabled or disabled, URL, event types, and why tijori
    /// disabled it (or else its description).
    List,
    /// Stop sending events to an endpoint. Enable it again on /admin/webhooks/ or
    /// through the API (PATCH /api/admin/webhook-endpoints/{id} with
    /// {"enabled": true}), then send it what it missed (the page's "Redeliver", or
    /// POST /api/admin/webhook-endpoints/{id}/redeliver).
    Disable {
        /// The endpoint's id (we_...).
        id: String,
    },
    /// Give an endpoint a new secret; prints it. For 24 hours deliveries carry a
    /// signature with the old secret too.
    RotateSecret {
        /// The endpoint's id (we_...).
        id: String,
    },
}

#[derive(Subcommand)]
enum ProductCommand {
    /// Create a product.
    Create {
        /// Shown to customers, e.g. "Yirgacheffe coffee, 1 kg".
        #[arg(long)]
        name: String,
        /// Price in major units, e.g. 850 or 849.50.
        #[arg(long)]
        price: String,
        /// ETB or USD (Chapa), NPR (Khalti).
        #[arg(long)]
        currency: Currency,
        /// Units on the shelf.
        #[arg(long)]
        stock: u32,
        /// A line about the product.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the products for sale, with their stock.
    List,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Create {
        /// 3-32 letters, digits, '.', '_' or '-'.
        username: String,
        #[arg(long)]
        email: String,
        /// At least 8 characters.
        #[arg(long)]
        password: String,
        /// Make the user an administrator (sees every payment).
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Create a plan.
    Create {
        /// Shown to customers, e.g. "Basic".
        #[arg(long)]
        name: String,
        /// Price in major units, e.g. 500 or 499.99.
        #[arg(long)]
        price: String,
        /// NPR (Khalti), ETB or USD.
        #[arg(long, default_value = "NPR")]
        currency: Currency,
        /// How many days one payment buys.
        #[arg(long)]
        days: u32,
        /// A line about the plan, shown under its name.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the plans on offer.
    List,
}

fn main() {
    // Before the runtime starts its threads (and glibc gives them arenas).
    return_big_blocks_to_the_os();
    let cli = Cli::parse();
    tijori::logging::init(cli.config.log_format);
    let outcome = tokio::runtime::Runtime::new()
        .context("failed to start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    tijori::logging::shutdown();
    if let Err(e) = outcome {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Password hashing (argon2id) takes 19 MiB at a time. glibc raises its mmap threshold
/// each time such a block is freed, so later ones come from the arena of whichever
/// thread hashed, and stay resident there: a burst of sign-ups left ~20 MB per thread
/// for good (250 MB seen under load). A fixed threshold keeps big blocks mapped on
/// their own, returned to the OS when freed.
fn return_big_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning (under its own lock); it is
    // called before the runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&config).await?;
            if config.demo() {
                demo::seed(app.tijori())
                    .await
                    .context("failed to seed demo data")?;
                // To standard error: standard output carries the log (one JSON
                // object per line with TIJORI_LOG_FORMAT=json), for a shipper to read.
                eprintln!(
                    "\n  tijori is running at {url}\n  Demo sign-in: {user} / {password}\n  Sandbox gateways: {url}sandbox/\n",
                    url = app.public_url(),
                    user = demo::DEMO_USERNAME,
                    password = demo::DEMO_PASSWORD,
                );
            }
            app.run_until_stopped().await
        }
        Command::Worker => {
            let (db, tijori) = background(&config).await?;
            if let Some(listen) = config.worker_listen {
                serve_operations(&config, listen, tijori.clone()).await?;
            }
            let worker = Worker::new(tijori, usize::from(config.worker_concurrency))
                .with_delivery_runtime(tijori::webhooks::delivery_runtime()?);
            eprintln!("worker {} running; Ctrl-C to stop", worker.id());
            worker.run(tijori::app::shutdown_signal()).await;
            db.close().await;
            Ok(())
        }
        Command::Reconcile { once: _ } => {
            let (db, tijori) = background(&config).await?;
            let report = tijori
                .reconcile_once(usize::from(config.worker_concurrency))
                .await?;
            for (id, from, to) in &report.changed {
                println!("{id}\t{from} -> {to}");
            }
            for (id, now) in &report.already_settled {
                println!("{id}\talready settled ({now}) by another process");
            }
            for (id, error) in &report.failed {
                println!("{id}\tnot checked: {error}");
            }
            println!(
                "checked {}, changed {}, already settled elsewhere {}, could not check {}",
                report.checked,
                report.changed.len(),
                report.already_settled.len(),
                report.failed.len()
            );
            db.close().await;
            Ok(())
        }
        Command::Migrate => {
            let db = tijori_store::Database::connect(&config.database_url).await?;
            db.migrate().await?;
            db.close().await;
            println!(
                "migrations applied to {}",
                tijori_store::redact(&config.database_url)
            );
            Ok(())
        }
        Command::Backup { path, force } => backup(&config.database_url, &path, force).await,
        Command::Sandbox { listen, public_url } => run_sandbox(listen, public_url).await,
        Command::User(UserCommand::Create {
            username,
            email,
            password,
            admin,
        }) => {
            let tijori = offline(&config).await?;
            let user = tijori
                .create_user(&username, &email, &password, admin)
                .await?;
            println!(
                "created user {} ({}){}",
                user.username.as_str(),
                user.id,
                if admin { ", admin" } else { "" }
            );
            Ok(())
        }
        Command::Plan(PlanCommand::Create {
            name,
            price,
            currency,
            days,
            description,
        }) => {
            let tijori = offline(&config).await?;
            let price = Money::parse_major(&price, currency).context("invalid --price")?;
            let plan = tijori
                .create_plan(NewPlan {
                    name,
                    description,
                    price,
                    duration_days: days,
                })
                .await?;
            println!(
                "created plan {} ({}): {} for {} days",
                plan.name, plan.id, plan.price, plan.duration_days
            );
            Ok(())
        }
        Command::Product(ProductCommand::Create {
            name,
            price,
            currency,
            stock,
            description,
        }) => {
            let tijori = offline(&config).await?;
            let price = Money::parse_major(&price, currency).context("invalid --price")?;
            let product = tijori
                .create_product(NewProduct {
                    name,
                    description,
                    price,
                    stock,
                })
                .await?;
            println!(
                "created product {} ({}): {}, {} in stock",
                product.name, product.id, product.price, product.stock
            );
            Ok(())
        }
        Command::Product(ProductCommand::List) => {
            let tijori = offline(&config).await?;
            for p in tijori.products().await? {
                println!("{}\t{}\t{}\t{} in stock", p.id, p.name, p.price, p.stock);
            }
            Ok(())
        }
        Command::WebhookEndpoint(command) => webhook_endpoint(&config, command).await,
        Command::Plan(PlanCommand::List) => {
            let tijori = offline(&config).await?;
            for p in tijori.plans().await? {
                println!(
                    "{}\t{}\t{}\t{} days",
                    p.id, p.name, p.price, p.duration_days
                );
            }
            Ok(())
        }
    }
}

/// The core with its gateways, for work done away from `serve`. A gateway without a
/// key is the sandbox of the serving tijori at TIJORI_PUBLIC_URL (a sandbox's
/// payments live in that process), unless TIJORI_SANDBOX=false.
async fn background(
    config: &Config,
) -> anyhow::Result<(tijori_store::Database, tijori_core::Tijori)> {
    let db = tijori_store::Database::connect(&config.database_url).await?;
    db.migrate().await?;
    let public_url = config.public_url_for(config.listen);
    let sandbox_url = (config.uses_sandbox() && config.sandbox != Some(false))
        .then(|| public_url.join("sandbox/").expect("a relative path joins"));
    let tijori = tijori::app::core(
        config,
        &db,
        &public_url,
        sandbox_url.as_ref(),
        std::sync::Arc::new(tijori_core::clock::SystemClock),
    )?;
    Ok((db, tijori))
}

/// A worker's /metrics, /livez and /readyz on `listen`, served until the process ends.
async fn serve_operations(
    config: &Config,
    listen: SocketAddr,
    tijori: tijori_core::Tijori,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen} (TIJORI_WORKER_LISTEN)"))?;
    let public_url = config.public_url_for(config.listen);
    let router = tijori_web::operations_router(tijori_web::AppState::new(
        tijori,
        tijori_web::WebConfig::new(public_url),
    ));
    eprintln!("worker: /metrics, /livez and /readyz on http://{listen}/");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the worker's operations endpoint failed");
        }
    });
    Ok(())
}

/// `tijori backup PATH`: the copy, what it holds, and how to put it back.
async fn backup(database_url: &str, path: &Path, force: bool) -> anyhow::Result<()> {
    let report = tijori_store::backup(database_url, path, force)
        .await
        .map_err(|e| match e {
            tijori_store::BackupError::Exists(p) => {
                anyhow::anyhow!("{} already exists; pass --force to replace it", p.display())
            }
            e => anyhow::Error::new(e),
        })?;
    let (db, copy) = (shell_word(&report.source), shell_word(&report.path));
    println!(
        "backed up {db} to {copy}\n  integrity_check: {integrity}\n  size: {bytes} bytes\n  \
         payments: {payments}\n\n\
         To restore it: stop tijori (every process using {db}), then\n  \
         rm -f {wal} {shm}\n  \
         cp {copy} {db}\n\
         and start tijori. Remove the -wal and -shm files first: they belong to the \
         database being replaced, and SQLite would apply them to the copy.",
        wal = shell_word(&tijori_store::with_suffix(&report.source, "-wal")),
        shm = shell_word(&tijori_store::with_suffix(&report.source, "-shm")),
        integrity = report.integrity,
        bytes = report.bytes,
        payments = report.payments,
    );
    Ok(())
}

/// `path` with `suffix` after its file name.
/// A path as one word of a shell command, quoted if it needs to be.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `tijori webhook-endpoint ...`.
async fn webhook_endpoint(config: &Config, command: WebhookEndpointCommand) -> anyhow::Result<()> {
    use tijori_core::events::Wanted;
    use tijori_core::id::WebhookEndpointId;
    let tijori = offline(config).await?.with_event_delivery(
        std::sync::Arc::new(tijori_web::events::EventBodies),
        std::sync::Arc::new(tijori::webhooks::WebhookSender::new(
            config.webhook_allow_private,
        )?),
    );
    let id = |raw: &str| {
        WebhookEndpointId::parse(raw)
            .with_context(|| format!("{raw:?} is not an endpoint id (we_...)"))
    };
    match command {
        WebhookEndpointCommand::Create {
            url,
            events,
            description,
        } => {
            let wants =
                Wanted::parse(Some(&events)).map_err(|e| anyhow::anyhow!("--events: {e}"))?;
            let (endpoint, secret) = tijori
                .create_webhook_endpoint(tijori_core::service::NewEndpoint {
                    url,
                    wants,
                    description,
                })
                .await?;
            println!(
                "created webhook endpoint {} for {} ({})\nsigning secret (shown only now): {secret}",
                endpoint.id,
                endpoint.url,
                endpoint.wants.names().join(", ")
            );
        }
        WebhookEndpointCommand::List => {
            for e in tijori.webhook_endpoints().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    e.id,
                    if e.enabled { "enabled" } else { "disabled" },
                    e.url,
                    e.wants.names().join(","),
                    e.disabled_reason.as_deref().unwrap_or(&e.description)
                );
            }
        }
        WebhookEndpointCommand::Disable { id: raw } => {
            let change = tijori_core::store::EndpointChange {
                enabled: Some(false),
                ..Default::default()
            };
            let endpoint = tijori.update_webhook_endpoint(&id(&raw)?, change).await?;
            println!(
                "disabled webhook endpoint {} ({})",
                endpoint.id, endpoint.url
            );
        }
        WebhookEndpointCommand::RotateSecret { id: raw } => {
            let secret = tijori.rotate_webhook_secret(&id(&raw)?).await?;
            println!(
                "new signing secret for {raw} (shown only now): {secret}\nthe old one signs too for 24 hours"
            );
        }
    }
    Ok(())
}

/// The core on the configured database, with no gateways: for admin commands.
async fn offline(config: &Config) -> anyhow::Result<tijori_core::Tijori> {
    let db = tijori_store::Database::connect(&config.database_url).await?;
    db.migrate().await?;
    Ok(tijori_core::Tijori::new(
        db.store(),
        tijori_core::gateway::Gateways::new(),
        std::sync::Arc::new(tijori_core::clock::SystemClock),
        tijori_core::service::Settings::new(""),
    ))
}

async fn run_sandbox(listen: SocketAddr, public_url: Option<url::Url>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let public_url = match public_url {
        Some(u) => u,
        None => url::Url::parse(&format!("http://{bound}/"))?,
    };
    let sandbox =
        tijori_sandbox::Sandbox::new(tijori_sandbox::SandboxConfig::new(public_url.clone()));
    println!(
        "\n  tijori sandbox at {public_url}\n  Khalti API base: {public_url}khalti/api/v2/   secret key: {khalti}\n  Chapa API base:  {public_url}chapa/v1/   secret key: {chapa}   webhook secret: {webhook}\n  eSewa form and status host: {public_url}esewa/   product code: {esewa_code}   secret key: {esewa}\n",
        esewa_code = tijori_sandbox::DEFAULT_ESEWA_PRODUCT_CODE,
        esewa = tijori_sandbox::DEFAULT_ESEWA_SECRET_KEY,
        khalti = tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY,
        chapa = tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY,
        webhook = tijori_sandbox::DEFAULT_CHAPA_WEBHOOK_SECRET,
    );
    axum::serve(listener, sandbox.router().into_make_service())
        .await
        .context("the sandbox server failed")
}
