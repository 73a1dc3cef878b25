//! Wiring: one builder for production and tests. Tests start exactly this on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use tijori_core::clock::{Clock, SystemClock};
use tijori_core::gateway::Gateways;
use tijori_core::service::{Settings, Worker};
use tijori_core::Tijori;
use tijori_gateways::{ChapaGateway, EsewaGateway, KhaltiGateway};
use tijori_sandbox::{ChapaSettings, Sandbox, SandboxConfig};
use tijori_store::Database;
use tijori_web::{AppState, WebConfig};
use tokio::net::TcpListener;
use url::Url;

use crate::config::{Config, KHALTI_TEST_BASE_URL};

/// Where Chapa posts its signed webhooks (set it in Chapa's dashboard).
pub const CHAPA_WEBHOOK_PATH: &str = "api/payments/chapa/webhook/";
/// Where Chapa calls back after a payment (sent with each checkout).
pub const CHAPA_CALLBACK_PATH: &str = "api/payments/chapa/callback/";

pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    public_url: Url,
    database: Database,
    sandbox: Option<Sandbox>,
    tijori: Tijori,
    /// Run the background worker in this process, with this many jobs at once.
    worker: Option<usize>,
    /// Forwards other processes' payment changes (PostgreSQL only).
    change_listener: Option<tokio::task::JoinHandle<()>>,
    /// The most connections served at once.
    max_connections: usize,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to listen on {}", config.listen))?;
        let address = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let public_url = config.public_url_for(address);

        let use_sandbox = config
            .sandbox_allowed(address, &public_url)
            .map_err(anyhow::Error::msg)?;
        let database = Database::connect(&config.database_url).await?;
        database.migrate().await?;

        let sandbox = use_sandbox.then(|| {
            Sandbox::with_chapa(
                SandboxConfig::new(public_url.join("sandbox/").expect("a relative path joins")),
                ChapaSettings {
                    // The built-in Chapa signs its webhooks to our endpoint, as the
                    // real one does once the merchant sets the URL in its dashboard.
                    webhook_url: Some(
                        public_url
                            .join(CHAPA_WEBHOOK_PATH)
                            .expect("a relative path joins")
                            .to_string(),
                    ),
                    ..ChapaSettings::default()
                },
            )
        });

        let sandbox_url = sandbox.as_ref().map(|s| s.public_url().clone());
        let tijori = core(config, &database, &public_url, sandbox_url.as_ref(), clock)?;
        // Changes settled by other tijori processes (PostgreSQL) reach this one's
        // live-status listeners too.
        let change_listener = database.listen_for_changes({
            let tijori = tijori.clone();
            move |payment| tijori.announce_change(&payment)
        });

        let mut router = tijori_web::router(AppState::new(
            tijori.clone(),
            WebConfig {
                refreshes_per_minute: config.refresh_limit,
                verifies_per_minute: config.verify_limit,
                checkouts_per_minute: config.checkout_limit,
                callbacks_per_minute: config.callback_limit,
                sign_ins_per_account_per_minute: config.signin_limit,
                sign_ins_per_address_per_minute: config.signin_address_limit,
                sign_ups_per_address_per_hour: config.signup_limit,
                password_resets_per_email_per_hour: config.reset_limit,
                password_resets_per_address_per_hour: config.reset_address_limit,
                live_streams_per_user: config.live_stream_limit,
                trusted_proxies: config.trusted_proxies.clone(),
                body_timeout: config.body_timeout,
                ..WebConfig::new(public_url.clone())
            },
        ));
        if let Some(sandbox) = &sandbox {
            router = router.nest("/sandbox", sandbox.router()).route(
                "/sandbox/",
                get(|| async { Redirect::permanent("/sandbox") }),
            );
        }

        tracing::info!(
            %address,
            %public_url,
            database = tijori_store::redact(&config.database_url),
            backend = database.backend(),
            sandbox = sandbox.is_some(),
            "tijori is ready"
        );
        Ok(Application {
            listener,
            router,
            address,
            public_url,
            database,
            sandbox,
            tijori,
            worker: config
                .worker
                .then_some(usize::from(config.worker_concurrency)),
            change_listener,
            max_connections: config.max_connections as usize,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    /// The built-in sandbox, when tijori runs on it.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    pub fn tijori(&self) -> &Tijori {
        &self.tijori
    }

    /// Serves `routes` beside tijori's own, from its origin: a merchant's own pages
    /// whose scripts call tijori's API with the browser's session (the session and
    /// CSRF cookies are only sent, and only readable, on tijori's origin). The paths
    /// must be new ones (axum refuses a path routed twice), and they get none of
    /// tijori's layers.
    pub fn merge(mut self, routes: Router) -> Self {
        self.router = self.router.merge(routes);
        self
    }

    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM), then finishes
    /// the requests in flight (for up to 10 s; live-status streams are then cut).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stopping, stopped) = tokio::sync::watch::channel(());
        let beating = tokio::spawn(heartbeat(self.tijori.clone()));
        let worker = self.worker.map(|concurrency| {
            let mut stopped = stopped.clone();
            let worker = Worker::new(self.tijori.clone(), concurrency);
            let worker = match crate::webhooks::delivery_runtime() {
                Ok(deliveries) => worker.with_delivery_runtime(deliveries),
                Err(e) => {
                    tracing::warn!(error = %e, "no runtime of their own for deliveries: they share the server's");
                    worker
                }
            };
            tokio::spawn(worker.run(async move {
                let _ = stopped.changed().await;
            }))
        });
        let served = serve(
            self.listener,
            self.router,
            self.max_connections,
            async move {
                stop.await;
                let _ = stopping.send(());
            },
        )
        .await
        .context("the HTTP server failed");
        // The worker finishes the jobs in hand (or stops with the server's failure,
        // which dropped the sender).
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        if let Some(change_listener) = self.change_listener {
            change_listener.abort();
        }
        // The requests in flight are done: any key this process still holds is free
        // for a retry at once.
        beating.abort();
        if let Err(e) = self.tijori.retire().await {
            tracing::warn!(error = %format!("{e:#}"), "could not retire this instance");
        }
        self.database.close().await;
        served
    }
}

/// Notes every few seconds that this process is alive, so the idempotency keys it
/// holds stay its own; when it dies they are taken over within seconds (see
/// `tijori_core::idempotency`). A missed beat (the database busy or away) is logged
/// and the next one tried.
async fn heartbeat(tijori: Tijori) {
    let every = std::time::Duration::from_secs(
        u64::try_from(tijori_core::idempotency::HEARTBEAT_EVERY_SECS).unwrap_or(5),
    );
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = tijori.heartbeat().await {
            tracing::warn!(error = %format!("{e:#}"), "could not note this instance's heartbeat");
        }
    }
}

/// The core wired to the configured database and gateways: a gateway without a key
/// goes to the sandbox at `sandbox_url` (the built-in one, or a serving tijori's,
/// for a separate worker), or is left out when there is none.
pub fn core(
    config: &Config,
    database: &Database,
    public_url: &Url,
    sandbox_url: Option<&Url>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Tijori> {
    let mut gateways = Gateways::new();
    let khalti = match (&config.khalti_secret_key, sandbox_url) {
        (Some(key), _) => Some(khalti::Config::new(
            config
                .khalti_base_url
                .clone()
                .unwrap_or_else(|| Url::parse(KHALTI_TEST_BASE_URL).expect("constant URL")),
            key.clone(),
        )),
        (None, Some(sandbox)) => Some(khalti::Config::new(
            // An explicit base URL (a standalone `tijori sandbox`) wins over the
            // built-in one; the key is the sandbox's either way.
            config.khalti_base_url.clone().unwrap_or_else(|| {
                sandbox
                    .join("khalti/api/v2/")
                    .expect("a relative path joins")
            }),
            SecretString::from(tijori_sandbox::DEFAULT_KHALTI_SECRET_KEY),
        )),
        (None, None) => None,
    };
    let khalti_base = khalti.as_ref().map(|k| k.base_url.to_string());
    if let Some(khalti) = khalti {
        let client = khalti::Client::new(khalti::Config {
            timeout: config.gateway_timeout,
            ..khalti
        })
        .context("invalid Khalti configuration")?;
        gateways = gateways.with(Arc::new(KhaltiGateway::new(client)));
    }

    let chapa = match (&config.chapa_secret_key, sandbox_url) {
        (Some(key), _) => Some((
            chapa::Config::new(
                config
                    .chapa_base_url
                    .clone()
                    .unwrap_or_else(chapa::default_base_url),
                key.clone(),
            ),
            config.chapa_webhook_secret.clone(),
        )),
        (None, Some(sandbox)) => Some((
            chapa::Config::new(
                config
                    .chapa_base_url
                    .clone()
                    .unwrap_or_else(|| sandbox.join("chapa/v1/").expect("a relative path joins")),
                SecretString::from(tijori_sandbox::DEFAULT_CHAPA_SECRET_KEY),
            ),
            Some(SecretString::from(
                tijori_sandbox::DEFAULT_CHAPA_WEBHOOK_SECRET,
            )),
        )),
        (None, None) => None,
    };
    let chapa_base = chapa.as_ref().map(|(c, _)| c.base_url.to_string());
    if let Some((chapa, webhook_secret)) = chapa {
        let client = chapa::Client::new(chapa::Config {
            timeout: config.gateway_timeout,
            ..chapa
        })
        .context("invalid Chapa configuration")?;
        let callback = public_url
            .join(CHAPA_CALLBACK_PATH)
            .expect("a relative path joins");
        let mut gateway = ChapaGateway::new(client, callback);
        match webhook_secret {
            Some(secret) => gateway = gateway.with_webhook_secret(secret),
            None => tracing::warn!(
                "CHAPA_WEBHOOK_SECRET is not set: every Chapa webhook will be refused; \
                 payments are still settled by the callback, the return page and refresh"
            ),
        }
        gateways = gateways.with(Arc::new(gateway));
    }
    let esewa = match (&config.esewa_secret_key, sandbox_url) {
        (Some(key), _) => Some(esewa::Config::new(
            config
                .esewa_base_url
                .clone()
                .unwrap_or_else(|| Url::parse(esewa::Config::UAT_BASE_URL).expect("constant URL")),
            config.esewa_status_url.clone().unwrap_or_else(|| {
                Url::parse(esewa::Config::UAT_STATUS_URL).expect("constant URL")
            }),
            config
                .esewa_product_code
                .clone()
                .unwrap_or_else(|| esewa::Config::UAT_PRODUCT_CODE.to_owned()),
            key.clone(),
        )),
        // The sandbox serves eSewa's form and its status API on one host.
        (None, Some(sandbox)) => {
            let host = sandbox.join("esewa/").expect("a relative path joins");
            Some(esewa::Config::new(
                config
                    .esewa_base_url
                    .clone()
                    .unwrap_or_else(|| host.clone()),
                config.esewa_status_url.clone().unwrap_or(host),
                tijori_sandbox::DEFAULT_ESEWA_PRODUCT_CODE,
                SecretString::from(tijori_sandbox::DEFAULT_ESEWA_SECRET_KEY),
            ))
        }
        (None, None) => None,
    };
    let esewa_base = esewa.as_ref().map(|e| e.base_url.to_string());
    if let Some(esewa) = esewa {
        let client = esewa::Client::new(esewa::Config {
            timeout: config.gateway_timeout,
            ..esewa
        })
        .context("invalid eSewa configuration")?;
        gateways = gateways.with(Arc::new(EsewaGateway::new(client)));
    }
    if khalti_base.is_none() {
        tracing::warn!("Khalti is not configured (no KHALTI_SECRET_KEY, no sandbox)");
    }
    if esewa_base.is_none() {
        tracing::warn!("eSewa is not configured (no ESEWA_SECRET_KEY, no sandbox)");
    }
    if chapa_base.is_none() {
        tracing::warn!("Chapa is not configured (no CHAPA_SECRET_KEY, no sandbox)");
    }

    tracing::info!(
        khalti = khalti_base.as_deref().unwrap_or("off"),
        chapa = chapa_base.as_deref().unwrap_or("off"),
        esewa = esewa_base.as_deref().unwrap_or("off"),
        "gateways"
    );
    let mailer: Option<Arc<dyn tijori_core::mail::Mailer>> = match &config.smtp_url {
        Some(url) => Some(Arc::new(crate::mail::SmtpMailer::new(
            url.expose_secret(),
            &config.mail_from,
        )?)),
        None => {
            tracing::info!("no TIJORI_SMTP_URL: customer mail is kept in the outbox (/admin/)");
            None
        }
    };
    let tijori = Tijori::new(
        database.store(),
        gateways,
        clock,
        Settings {
            order_ttl: chrono::Duration::minutes(i64::from(config.order_ttl_minutes)),
            hashes_waiting: config.hash_queue.map(|n| n as usize),
            order_caps: tijori_core::shop::OrderCaps {
                unpaid_orders: config.max_unpaid_orders,
                unpaid_units_per_product: config.max_unpaid_units_per_product,
            },
            merchant: tijori_core::receipt::Merchant {
                name: config.merchant_name.clone(),
                address: config.merchant_address.replace("\\n", "\n"),
            },
            ..Settings::new(public_url.as_str().trim_end_matches('/'))
        },
    )
    .with_background(config.background())
    .with_event_delivery(
        Arc::new(tijori_web::events::EventBodies),
        Arc::new(crate::webhooks::WebhookSender::new(
            config.webhook_allow_private,
        )?),
    );
    Ok(match mailer {
        Some(mailer) => tijori.with_mailer(mailer),
        None => tijori,
    })
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("stopping: finishing requests in flight");
}

/// How long requests in flight get to finish once tijori is asked to stop. Live-status
/// streams never finish by themselves: they are cut when it is up.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves HTTP/1.1 until `stop`, then lets the requests in flight finish (for up to
/// [`SHUTDOWN_GRACE`]).
///
/// hyper directly rather than `axum::serve`, to choose its settings: 10,000 open
/// live-status pages took 206 MB with axum's defaults and take 146 MB so (HTTP/1 only,
/// whose read buffer stays at its 8 KB minimum: a request's head must fit in it, which
/// any browser's does). A slow client gets 30 s to send its request's head (and the
/// router gives its body a limit of its own).
///
/// At most `max_connections` are served at once (a WebSocket counts until it closes):
/// one more is answered 503 and closed
/// at once (cheaper than a queue, and the client learns why), and the log says so,
/// once per minute while it lasts.
async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(8 * 1024)
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30));
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    // A place per open connection (and per WebSocket, which outlives its connection).
    let places = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut refused = Refused::default();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "failed to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Forget connections that ended.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = &mut stop => break,
        };
        // Answers are small and wanted at once.
        let _ = stream.set_nodelay(true);
        let Ok(place) = places.clone().try_acquire_owned() else {
            refused.note(max_connections);
            connections.spawn(refuse(stream));
            continue;
        };
        refused.ended();
        let slot = tijori_web::ConnectionSlot(Arc::new(place));
        // The handlers see the client's address (rate limits per address) and the
        // connection's place (which a WebSocket keeps).
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                let extensions = request.extensions_mut();
                extensions.insert(axum::extract::ConnectInfo(peer));
                extensions.insert(slot.clone());
                request
            },
        );
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopped.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::info!(
            open = connections.len(),
            "stopping: cutting the connections still open (live-status pages)"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Keeps the log to one line a minute while connections are refused.
#[derive(Default)]
struct Refused {
    since_logged: u64,
    logged_at: Option<std::time::Instant>,
}

impl Refused {
    fn note(&mut self, max_connections: usize) {
        self.since_logged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60));
        if due {
            tracing::warn!(
                max_connections,
                refused = self.since_logged,
                "connection limit reached (TIJORI_MAX_CONNECTIONS): refusing new connections \
                 with 503 until some close"
            );
            self.since_logged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
    }

    /// A connection was served again: the next refusal is news.
    fn ended(&mut self) {
        if self.logged_at.is_some() {
            tracing::info!(
                refused = self.since_logged,
                "connections below the limit again"
            );
            *self = Refused::default();
        }
    }
}

/// Answers a connection over the limit with a 503 and closes it, without reading its
/// request (a client that sent one gets the answer; a silent one is closed after 1 s).
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
        Content-Type: application/json\r\nConnection: close\r\nContent-Length: 108\r\n\r\n\
        {\"error\":{\"status_code\":503,\"code\":\"too_many_connections\",\"detail\":\"the server is at its connection limit\"}}";
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = stream.write_all(ANSWER).await;
        let _ = stream.shutdown().await;
        // Closing with the request unread would reset the connection, and the client
        // might never see the answer: read what it sent until it closes too.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
