//! Offline simulators of payment gateways, for development and tests.
//!
//! [`Sandbox`] serves an [`axum::Router`] that behaves like Khalti's sandbox (the
//! ePayment API, the hosted checkout page and the browser redirect back to the
//! merchant, and the legacy widget API's initiate / confirm / verify / status), Chapa's
//! test mode (initialize / verify / refund, the hosted checkout, the callback and the
//! signed webhooks) and eSewa's ePay v2 UAT (the signed form, the hosted login/pay
//! page, the signed success redirect and the failure redirect, the status check),
//! plus a few sandbox-only test controls (fault injection, latency, "answer Pending
//! first", webhook misbehaviour, forcing a payment's outcome). Everything lives in
//! memory.
//!
//! The behaviour follows the public contracts in `khalti.md`, `chapa.md` and
//! `esewa.md` (the team's research notes on the gateways' APIs). Where a contract
//! leaves a question open, the code says which answer it picked, citing the section
//! (for example "khalti.md §12 q1", "chapa.md §14 q4", "esewa.md §11 q4").
//!
//! Layout: one module per gateway (`khalti`, `chapa`, `esewa`), each owning its routes
//! under its own prefix (`/khalti/…`), its state and its templates
//! (`templates/khalti/…`). The index page (`GET /`) and the template environment are
//! shared.
//!
//! ```no_run
//! # async fn demo() {
//! use tijori_sandbox::{KhaltiSettings, Sandbox, SandboxConfig};
//! let sandbox = Sandbox::new(SandboxConfig {
//!     public_url: "http://127.0.0.1:9000/".parse().unwrap(),
//!     khalti: KhaltiSettings::default(),
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await.unwrap();
//! axum::serve(listener, sandbox.router()).await.unwrap();
//! # }
//! ```

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use url::Url;

pub mod chapa;
pub mod esewa;
mod ids;
mod index;
pub mod khalti;
mod templates;
mod time;

pub use chapa::{
    ChapaControl, ChapaSettings, DEFAULT_CHAPA_SECRET_KEY, DEFAULT_CHAPA_WEBHOOK_SECRET,
};
pub use esewa::{
    EsewaControl, EsewaFault, EsewaOutcome, EsewaSettings, DEFAULT_ESEWA_PRODUCT_CODE,
    DEFAULT_ESEWA_SECRET_KEY, TEST_ESEWA_IDS, TEST_ESEWA_PASSWORD, TEST_ESEWA_TOKEN,
};
pub use khalti::{
    Fault, KhaltiControl, KhaltiSettings, DEFAULT_KHALTI_PUBLIC_KEY, DEFAULT_KHALTI_SECRET_KEY,
};

/// How to build a [`Sandbox`].
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Externally reachable URL of the sandbox root, e.g.
    /// `http://127.0.0.1:8000/sandbox/` (when the app nests the router there) or
    /// `http://127.0.0.1:9000/` (standalone). Used to build `payment_url` and the links
    /// on the pages. A missing trailing `/` is added.
    pub public_url: Url,
    /// Initial Khalti settings (they can be changed later through
    /// [`KhaltiControl::set_settings`] or `PUT /khalti/_sandbox/settings`).
    pub khalti: KhaltiSettings,
}

impl SandboxConfig {
    /// A configuration with default Khalti settings.
    pub fn new(public_url: Url) -> Self {
        SandboxConfig {
            public_url,
            khalti: KhaltiSettings::default(),
        }
    }
}

/// The simulator. Cheap to clone: all clones share the same in-memory state.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    public_url: Url,
    khalti: KhaltiControl,
    chapa: ChapaControl,
    esewa: EsewaControl,
    templates: minijinja::Environment<'static>,
}

impl Sandbox {
    /// Creates a sandbox with empty state and default Chapa settings.
    pub fn new(config: SandboxConfig) -> Sandbox {
        Sandbox::with_chapa(config, ChapaSettings::default())
    }

    /// Creates a sandbox with empty state and the given initial Chapa settings (they
    /// can be changed later through [`ChapaControl::set_settings`] or
    /// `PUT /chapa/_sandbox/settings`). [`SandboxConfig`] has no Chapa field so that
    /// struct-literal callers keep compiling.
    pub fn with_chapa(config: SandboxConfig, chapa: ChapaSettings) -> Sandbox {
        let mut public_url = config.public_url;
        if !public_url.path().ends_with('/') {
            let path = format!("{}/", public_url.path());
            public_url.set_path(&path);
        }
        let khalti = KhaltiControl::new(public_url.clone(), config.khalti);
        let chapa = ChapaControl::new(public_url.clone(), chapa);
        let esewa = EsewaControl::new(public_url.clone(), EsewaSettings::default());
        Sandbox {
            inner: Arc::new(Inner {
                public_url,
                khalti,
                chapa,
                esewa,
                templates: templates::environment(),
            }),
        }
    }

    /// Sets the eSewa simulator's initial settings (they can be changed later through
    /// [`EsewaControl::set_settings`] or `PUT /esewa/_sandbox/settings`). A builder
    /// step rather than a [`SandboxConfig`] field, so that struct-literal callers keep
    /// compiling.
    pub fn with_esewa(self, settings: EsewaSettings) -> Sandbox {
        self.inner.esewa.set_settings(settings);
        self
    }

    /// The routes, relative to the sandbox root (no `/sandbox` prefix): the caller
    /// nests or serves it.
    ///
    /// Note for nesting: with `Router::new().nest("/sandbox", sandbox.router())`, axum
    /// 0.8 serves the index at `/sandbox` but answers `/sandbox/` with the outer
    /// router's fallback; add a route or redirect for `/sandbox/` if you want it.
    ///
    /// - `GET /`: index page (configuration hints, recent payments).
    /// - `/khalti/…`: the Khalti simulator, see [`khalti`].
    /// - `/chapa/…`: the Chapa simulator, see [`chapa`].
    /// - `/esewa/…`: the eSewa simulator, see [`esewa`]: a client's form host and
    ///   status host are both `{public_url}esewa/`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(index::index))
            .nest("/khalti", khalti::routes())
            .nest("/chapa", chapa::routes())
            .nest("/esewa", esewa::routes())
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// Programmatic control of the Khalti simulator (for tests).
    pub fn khalti(&self) -> KhaltiControl {
        self.inner.khalti.clone()
    }

    /// Programmatic control of the Chapa simulator (for tests).
    pub fn chapa(&self) -> ChapaControl {
        self.inner.chapa.clone()
    }

    /// Programmatic control of the eSewa simulator (for tests).
    pub fn esewa(&self) -> EsewaControl {
        self.inner.esewa.clone()
    }

    /// The externally reachable URL of the sandbox root (always ends with `/`).
    pub fn public_url(&self) -> &Url {
        &self.inner.public_url
    }

    pub(crate) fn render(&self, status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
        let rendered = self
            .inner
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx));
        match rendered {
            Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
            Err(err) => {
                tracing::error!(template = name, error = %err, "sandbox template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("sandbox template {name} failed: {err:#}"),
                )
                    .into_response()
            }
        }
    }

    /// Path part of the public URL (e.g. `/sandbox/`), for host-independent links.
    pub(crate) fn base_path(&self) -> &str {
        self.inner.public_url.path()
    }

    /// Link to the index page. Nested with `Router::nest("/sandbox", …)`, axum 0.8
    /// routes `/sandbox` to our `/` but not `/sandbox/`, so link without the slash.
    pub(crate) fn home_path(&self) -> &str {
        match self.base_path().trim_end_matches('/') {
            "" => "/",
            path => path,
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}
