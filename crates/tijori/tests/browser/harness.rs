//! The app under test and the browser that drives it: a fresh tijori on the sandbox, chromedriver and Chromium, and waiting helpers.

use anyhow::{bail, Context as _};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::ffi::OsStr;
use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use url::Url;

use crate::customer::tutorial_routes;

/// How long any one step may take: page loads, redirects, the gateway round trips.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// One Chromium at a time: the tests in this file take turns.
pub(crate) static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh app and a browser session on it, for one test.
pub(crate) struct BrowserRun {
    pub(crate) browser: Browser,
    pub(crate) base: Url,
    pub(crate) started: Instant,
    // Dropped in this order: Chromium and chromedriver, the app's files, the turn.
    pub(crate) driver: ChromeDriver,
    pub(crate) _work: TempDir,
    pub(crate) _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl BrowserRun {
    /// `None` when the browser tests are to be skipped.
    pub(crate) async fn start() -> Option<BrowserRun> {
        let (chromium, chromedriver) = browser_binaries()?;
        let turn = ONE_BROWSER_AT_A_TIME.lock().await;
        let started = Instant::now();
        let work = tempfile::tempdir().expect("a temporary directory");
        let base = start_app(work.path()).await.expect("the app starts");
        let driver = ChromeDriver::start(&chromedriver, work.path())
            .await
            .unwrap_or_else(|e| panic!("chromedriver did not start: {e:#}"));
        let client = driver
            .session(&chromium)
            .await
            .unwrap_or_else(|e| panic!("no browser session: {e:#}\n{}", driver.log_tail()));
        Some(BrowserRun {
            browser: Browser {
                client,
                artifacts: artifacts_dir(),
            },
            base,
            started,
            driver,
            _work: work,
            _turn: turn,
        })
    }

    /// Ends the browser session; on a failed `outcome`, saves the evidence and panics.
    pub(crate) async fn finish(self, outcome: anyhow::Result<()>, screenshots: &[&str]) {
        let failure = match &outcome {
            Ok(()) => None,
            Err(_) => Some(self.browser.evidence("failure", &self.driver.log).await),
        };
        // End the session so chromedriver stops Chromium; the guard kills what is left.
        let _ = self.browser.client.clone().close().await;
        if let Err(e) = outcome {
            panic!(
                "browser test failed: {e:#}\n{}",
                failure.unwrap_or_default()
            );
        }
        let shots: Vec<String> = screenshots
            .iter()
            .map(|name| self.browser.artifacts.join(name).display().to_string())
            .collect();
        eprintln!(
            "browser test passed in {:.1?}; screenshots: {}",
            self.started.elapsed(),
            shots.join(", ")
        );
    }
}

// --- The app -----------------------------------------------------------------------

/// The operator every test app has (the operator's scenarios sign in as it).
pub(crate) const OPERATOR_USERNAME: &str = "operator";
pub(crate) const OPERATOR_PASSWORD: &str = "correct horse battery";

/// Starts tijori as `tijori serve` does on the sandbox, on port 0 and a fresh SQLite
/// file in `dir`; returns its public URL.
pub(crate) async fn start_app(dir: &Path) -> anyhow::Result<Url> {
    let config = tijori::Config {
        gateway_timeout: Duration::from_secs(5),
        ..tijori::Config::embedded(&format!("sqlite://{}", dir.join("tijori.db").display()))
    };
    let app = tijori::Application::build(&config)
        .await?
        .merge(tutorial_routes());
    tijori::demo::seed(app.tijori()).await?;
    // The demo data has no operator: the operator's scenarios sign in as this one.
    app.tijori()
        .create_user(
            OPERATOR_USERNAME,
            "operator@example.com",
            OPERATOR_PASSWORD,
            true,
        )
        .await?;
    let base = app.public_url().clone();
    tokio::spawn(app.run_until_stopped());
    Ok(base)
}

// --- The browser -------------------------------------------------------------------

/// Chromium and chromedriver, or `None` when the test is to be skipped.
pub(crate) fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| which(name))
    };
    let chromium = find("TIJORI_CHROMIUM", "chromium");
    let chromedriver = find("TIJORI_CHROMEDRIVER", "chromedriver");
    if let (Some(chromium), Some(chromedriver)) = (&chromium, &chromedriver) {
        return Some((chromium.clone(), chromedriver.clone()));
    }
    let missing: Vec<&str> = [
        (chromium.is_none(), "chromium"),
        (chromedriver.is_none(), "chromedriver"),
    ]
    .into_iter()
    .filter_map(|(m, n)| m.then_some(n))
    .collect();
    if std::env::var_os("TIJORI_SKIP_BROWSER").is_some_and(|v| v == OsStr::new("1")) {
        eprintln!(
            "SKIPPED the browser test (TIJORI_SKIP_BROWSER=1; {} not found)",
            missing.join(" and ")
        );
        return None;
    }
    panic!(
        "the browser test needs {} on PATH: install Debian's packages with \
         `apt-get install -y chromium chromium-driver` (scripts/test does), point \
         TIJORI_CHROMIUM / TIJORI_CHROMEDRIVER at them, or set TIJORI_SKIP_BROWSER=1 to skip",
        missing.join(" and ")
    );
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Cargo target directory this test was built into (`target/` or
/// `$CARGO_TARGET_DIR`): the test binary is `<target>/<profile>/deps/browser-…`.
pub(crate) fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TIJORI_BROWSER_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(std::env::temp_dir)
}

/// A chromedriver of our own on a free port, with a fresh Chromium profile. Dropping
/// it kills chromedriver and every process it started (its own process group), on
/// success and on panic alike.
pub(crate) struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
    profile: TempDir,
}

impl ChromeDriver {
    pub(crate) async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let log = dir.join("chromedriver.log");
        let mut profile = tempfile::Builder::new()
            .prefix("chromium-profile-")
            .tempdir()
            .context("failed to create a Chromium profile directory")?;
        // The port is free when we look; another process may take it before
        // chromedriver binds it, so try again a few times.
        let mut last_error = None;
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("failed to find a free port")?
                .port();
            let child = Command::new(bin)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(dir.join("chromedriver.stderr"))?)
                .process_group(0)
                .spawn()
                .with_context(|| format!("failed to run {}", bin.display()))?;
            let mut driver = ChromeDriver {
                child,
                port,
                log: log.clone(),
                profile,
            };
            match driver.wait_until_ready().await {
                Ok(()) => return Ok(driver),
                Err(Ready::Never(e)) => bail!("{e}\n{}", driver.log_tail()),
                Err(Ready::Exited(e)) => {
                    last_error = Some(anyhow::anyhow!("{e}\n{}", driver.log_tail()));
                    profile = tempfile::Builder::new()
                        .prefix("chromium-profile-")
                        .tempdir()?;
                    drop(driver);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    pub(crate) async fn wait_until_ready(&mut self) -> Result<(), Ready> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = format!("http://127.0.0.1:{}/status", self.port);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Ready::Never(format!("no HTTP client: {e}")))?;
        loop {
            match self.child.try_wait() {
                Ok(Some(exit)) => {
                    return Err(Ready::Exited(format!(
                        "chromedriver exited at start ({exit})"
                    )))
                }
                Ok(None) => {}
                Err(e) => return Err(Ready::Never(format!("chromedriver is lost: {e}"))),
            }
            if let Ok(answer) = http.get(&status).send().await {
                if answer.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Ready::Never(format!(
                    "chromedriver did not answer {status} within 20 s"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn session(&self, chromium: &Path) -> anyhow::Result<Client> {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("pageLoadStrategy".into(), json!("normal"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--window-size=1366,900",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("chromedriver refused a new session")?;
        Ok(client)
    }

    /// The end of chromedriver's log, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        let stderr = self
            .log
            .parent()
            .map(|d| std::fs::read_to_string(d.join("chromedriver.stderr")).unwrap_or_default())
            .unwrap_or_default();
        format!(
            "--- chromedriver log (last lines) ---\n{tail}\n--- chromedriver stderr ---\n{stderr}"
        )
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // chromedriver leads its own process group (process_group(0)), and Chromium
        // and its helpers inherit it: kill the whole group, then reap chromedriver.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why chromedriver is not ready: `Exited` (perhaps its port was taken: try
/// another) or `Never` (no point in trying again).
pub(crate) enum Ready {
    Exited(String),
    Never(String),
}

/// The WebDriver session, with waiting helpers: every step waits (up to
/// [`STEP_TIMEOUT`]) for what it needs rather than sleeping.
pub(crate) struct Browser {
    pub(crate) client: Client,
    pub(crate) artifacts: PathBuf,
}

impl Browser {
    pub(crate) async fn goto(&self, url: &Url) -> anyhow::Result<()> {
        self.client
            .goto(url.as_str())
            .await
            .with_context(|| format!("failed to open {url}"))
    }

    pub(crate) async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        let found = self
            .client
            .wait()
            .at_most(STEP_TIMEOUT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => Ok(element),
            Err(e) => {
                Err(anyhow::Error::new(e)
                    .context(format!("no element {css} on {}", self.url().await)))
            }
        }
    }

    pub(crate) async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let field = self.find(css).await?;
        field.clear().await?;
        field
            .send_keys(value)
            .await
            .with_context(|| format!("failed to type into {css}"))
    }

    pub(crate) async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .select_by_value(value)
            .await
            .with_context(|| format!("failed to choose {value} in {css}"))
    }

    pub(crate) async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("failed to click {css}"))
    }

    pub(crate) async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// Waits until `css` exists and its text contains `needle` (ignoring case);
    /// returns the text.
    pub(crate) async fn wait_for_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut last = None;
        loop {
            // The element may belong to a page that is being replaced: look it up
            // afresh each time and treat errors as "not yet".
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if text.to_lowercase().contains(&needle.to_lowercase()) {
                        return Ok(text);
                    }
                    last = Some(text);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{css} on {} should contain {needle:?} but {}",
                    self.url().await,
                    match last {
                        Some(t) => format!("says {t:?}"),
                        None => "is not on the page".to_owned(),
                    }
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn wait_for_url(
        &self,
        what: &str,
        ok: impl Fn(&Url) -> bool,
    ) -> anyhow::Result<Url> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Ok(url) = self.client.current_url().await {
                if ok(&url) {
                    return Ok(url);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the browser should be on {what} but is on {}",
                    self.url().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn url(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("<unknown page: {e}>"),
        }
    }

    pub(crate) async fn save_screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        std::fs::create_dir_all(&self.artifacts)?;
        let path = self.artifacts.join(name);
        std::fs::write(&path, png)
            .with_context(|| format!("failed to write {}", path.display()))?;
        Ok(path)
    }

    /// The page as a laptop (1366×900) and a phone (390×844) show it: fails if it is
    /// wider than the phone's viewport (a table or a long id pushing it sideways), and
    /// keeps a screenshot of each under `<target dir>/screenshots/NAME-WxH.png` for a
    /// reviewer. Leaves the window at the laptop's size.
    pub(crate) async fn at_both_sizes(&self, name: &str) -> anyhow::Result<()> {
        let dir = self.artifacts.join("screenshots");
        std::fs::create_dir_all(&dir)?;
        for (width, height) in [(390, 844), (1366, 900)] {
            self.client.set_window_size(width, height).await?;
            let png = self.client.screenshot().await?;
            let path = dir.join(format!("{name}-{width}x{height}.png"));
            std::fs::write(&path, png)
                .with_context(|| format!("failed to write {}", path.display()))?;
            let (inner, scroll) = self.widths().await?;
            if width < 1000 && scroll > inner {
                bail!(
                    "{name} at {width}×{height}: the page is {scroll} px wide in a {inner} px viewport ({}; see {})",
                    self.url().await,
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// The viewport's width and the document's (wider when something overflows).
    async fn widths(&self) -> anyhow::Result<(u64, u64)> {
        let v = self
            .client
            .execute(
                "return [window.innerWidth, document.documentElement.scrollWidth];",
                vec![],
            )
            .await?;
        let pair = v.as_array().context("two widths")?;
        let n = |i: usize| pair.get(i).and_then(|x| x.as_u64()).context("a width");
        Ok((n(0)?, n(1)?))
    }

    /// Saves what the browser shows (screenshot and page source) and chromedriver's
    /// log for a failure message; says where, or why it could not.
    pub(crate) async fn evidence(&self, what: &str, driver_log: &Path) -> String {
        let dir = self.artifacts.join("browser-artifacts");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut lines = vec![format!("page: {}", self.url().await)];
        if let Err(e) = std::fs::create_dir_all(&dir) {
            lines.push(format!("could not create {}: {e}", dir.display()));
            return lines.join("\n");
        }
        let png = dir.join(format!("{what}-{stamp}.png"));
        match self.client.screenshot().await {
            Ok(bytes) => match std::fs::write(&png, bytes) {
                Ok(()) => lines.push(format!("screenshot: {}", png.display())),
                Err(e) => lines.push(format!("could not write {}: {e}", png.display())),
            },
            Err(e) => lines.push(format!("no screenshot: {e}")),
        }
        let html = dir.join(format!("{what}-{stamp}.html"));
        match self.client.source().await {
            Ok(source) => match std::fs::write(&html, source) {
                Ok(()) => lines.push(format!("page source: {}", html.display())),
                Err(e) => lines.push(format!("could not write {}: {e}", html.display())),
            },
            Err(e) => lines.push(format!("no page source: {e}")),
        }
        let log = dir.join(format!("{what}-{stamp}-chromedriver.log"));
        match std::fs::copy(driver_log, &log) {
            Ok(_) => lines.push(format!("chromedriver log: {}", log.display())),
            Err(e) => lines.push(format!("no chromedriver log: {e}")),
        }
        lines.join("\n")
    }
}

/// A username for a new customer: the database is fresh, and the suffix keeps
/// names apart should it ever be shared.
pub(crate) fn fresh_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{:05}", (nanos ^ std::process::id()) % 100_000)
}
