//! `TestGateway`: the real `drio-gateway` binary, started on free loopback
//! ports with a generated configuration, for black-box tests.
//!
//! ```ignore
//! let upstream = TestUpstream::start().await;
//! let gw = TestGateway::new()
//!     .app("notes", &upstream)
//!     .host("notes.mcp.example.com")
//!     .allowed_origin("https://allowed.example")
//!     .start()
//!     .await;
//! let resp = gw.client().post(gw.app_url("notes", "/mcp")).send().await?;
//! ```
//!
//! Everything the process needs (config, embedded store, log file) lives in a
//! temporary directory owned by the handle; the process is killed on drop.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod client;
mod config;

pub use client::{assert_envelope, header_str, send, Mcp, SseReader};
pub use config::{AppSpec, Layout};

use super::ports::free_port;
use super::redis::RedisServer;
use super::upstream::TestUpstream;

const BINARY: &str = env!("CARGO_BIN_EXE_drio-gateway");
/// How long a start may take before the test fails with the log tail.
const HEALTHY_WITHIN: Duration = Duration::from_secs(15);
/// Why a start is retried: Pingora logs "ADDR is in use, will try again", or
/// the gateway exits with "Address already in use".
const PORT_TAKEN: &str = "a listen port is in use";

/// Describes a gateway to start; see the module docs.
#[must_use = "call .start().await to run the gateway"]
pub struct GatewayBuilder {
    apps: Vec<AppSpec>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    extra_toml: String,
    /// Whether `listen.admin_token_env` is set (the default).
    admin_token: bool,
    /// Raw TOML lines inside the generated `[server]` table.
    server_toml: String,
    /// Environment variables for the gateway process only (never the test
    /// process's own environment, which parallel tests share).
    env: Vec<(String, String)>,
    /// `server.grace_period_seconds` (0: stop at once).
    grace_period_seconds: u64,
}

impl GatewayBuilder {
    /// Sets an environment variable for this gateway's process (and its restarts).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// Adds a public app `slug` in front of a test upstream.
    pub fn app(self, slug: &str, upstream: &TestUpstream) -> Self {
        self.app_with(AppSpec::new(slug, &upstream.url()))
    }

    /// Adds an app described in full (e.g. one pointing at a dead port).
    pub fn app_with(mut self, app: AppSpec) -> Self {
        self.apps.push(app);
        self
    }

    /// Routes requests with this `Host` to the most recently added app.
    pub fn host(self, host: &str) -> Self {
        self.last_app(|a| a.host = Some(host.into()))
    }

    /// Allows this browser origin for the most recently added app.
    pub fn allowed_origin(self, origin: &str) -> Self {
        self.last_app(|a| a.allowed_origins.push(origin.into()))
    }

    /// Requires a bearer token at the most recently added app.
    pub fn protected(self) -> Self {
        self.last_app(|a| a.public = false)
    }

    /// Adds raw TOML inside the most recently added app's table.
    pub fn app_toml(self, toml: &str) -> Self {
        self.last_app(|a| {
            a.extra_toml.push_str(toml);
            a.extra_toml.push('\n');
        })
    }

    /// Sets the upstream read timeout of the most recently added app.
    pub fn read_timeout_ms(self, ms: u64) -> Self {
        self.last_app(|a| a.read_timeout_ms = ms)
    }

    /// Keeps gateway state in this Redis instead of the embedded store.
    pub fn redis(mut self, server: &RedisServer) -> Self {
        self.redis_url = Some(server.url());
        self
    }

    /// Keeps gateway state in the Redis at `url` (e.g. behind a test relay).
    pub fn redis_url(mut self, url: &str) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Uses this Redis key prefix, so several gateways share one state.
    pub fn shared_state(mut self, prefix: &str) -> Self {
        self.redis_prefix = Some(prefix.into());
        self
    }

    /// Sets `server.grace_period_seconds` (how long a SIGTERM drains).
    pub fn grace_period_seconds(mut self, secs: u64) -> Self {
        self.grace_period_seconds = secs;
        self
    }

    /// Leaves `listen.admin_token_env` out: the admin write routes are off.
    pub fn without_admin_token(mut self) -> Self {
        self.admin_token = false;
        self
    }

    /// Adds raw TOML lines inside the generated `[server]` table.
    pub fn server_toml(mut self, lines: &str) -> Self {
        self.server_toml.push_str(lines);
        self.server_toml.push('\n');
        self
    }

    /// Appends raw TOML after everything generated (for sections added later).
    pub fn raw_toml(mut self, extra: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(extra);
        self.extra_toml.push('\n');
        self
    }

    fn last_app(mut self, change: impl FnOnce(&mut AppSpec)) -> Self {
        let app = self
            .apps
            .last_mut()
            .expect("add an app before configuring it");
        change(app);
        self
    }

    /// Writes the config, starts the binary and waits until both listeners answer.
    ///
    /// A free port can be taken by someone else before the gateway binds it;
    /// when that happens it is started again on fresh ports.
    pub async fn start(self) -> TestGateway {
        let mut gw = self.handle();
        for attempt in 1.. {
            gw.spawn_configured(&self, free_port(), free_port());
            match gw.wait_healthy().await {
                Ok(()) => break,
                Err(why) if attempt < 3 && why == PORT_TAKEN => {
                    eprintln!("drio-gateway lost a port race; retrying on other ports");
                }
                Err(why) => gw.failed(&why),
            }
        }
        gw
    }

    /// Writes the config and starts the binary on these ports without waiting
    /// for it: for tests of start-up itself, which then watch it with
    /// [`TestGateway::poll_until`]. Tests of anything else use [`Self::start`].
    pub fn spawn_on(self, proxy_port: u16, admin_port: u16) -> TestGateway {
        let mut gw = self.handle();
        gw.spawn_configured(&self, proxy_port, admin_port);
        gw
    }

    /// The handle of a gateway not started yet, with its own directory.
    fn handle(&self) -> TestGateway {
        let dir = tempfile::tempdir().expect("gateway tempdir");
        let mut gw = TestGateway {
            log_path: dir.path().join("gateway.log"),
            config_path: dir.path().join("gateway.toml"),
            dir,
            proxy_port: 0,
            admin_port: 0,
            child: None,
            spawned_at_log_len: 0,
            client: client(),
            env: vec![
                ("DRIO_SECRETS_KEY".into(), Some(TEST_SECRETS_KEY.into())),
                (ADMIN_TOKEN_ENV.into(), Some(TEST_ADMIN_TOKEN.into())),
            ],
        };
        for (name, value) in &self.env {
            gw.set_env(name, Some(value));
        }
        gw
    }
}

/// An HTTP client for tests: no proxies from the environment, no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build reqwest client")
}

/// A running gateway process.
pub struct TestGateway {
    dir: TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    proxy_port: u16,
    admin_port: u16,
    child: Option<Child>,
    /// Where this run's output starts in the (appended) log file.
    spawned_at_log_len: u64,
    client: reqwest::Client,
    /// Environment of the gateway process (None removes a variable).
    env: Vec<(String, Option<String>)>,
}

/// The key the harness gives every gateway for secrets at rest (32 bytes, base64).
pub const TEST_SECRETS_KEY: &str = "ZHJpby10ZXN0LXNlY3JldHMta2V5LTMyLWJ5dGVzISE=";

/// The variable `listen.admin_token_env` names in every test gateway.
pub const ADMIN_TOKEN_ENV: &str = "DRIO_ADMIN_TOKEN";
/// The admin listener's bearer token in every test gateway.
pub const TEST_ADMIN_TOKEN: &str = "drio-test-admin-token-0123456789";

impl TestGateway {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> GatewayBuilder {
        GatewayBuilder {
            apps: Vec::new(),
            redis_url: None,
            redis_prefix: None,
            extra_toml: String::new(),
            admin_token: true,
            server_toml: String::new(),
            env: Vec::new(),
            grace_period_seconds: 0,
        }
    }

    /// Proxy listener base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }

    /// `{url}/apps/{slug}{path}`: an app's URL on the gateway.
    pub fn app_url(&self, slug: &str, path: &str) -> String {
        format!("{}/apps/{slug}{path}", self.url())
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// A POST to an admin write route (`/oauth/keys/rotate`,
    /// `/tokens/revoke`) carrying the admin token.
    pub fn admin_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.admin_url()))
            .bearer_auth(TEST_ADMIN_TOKEN)
    }

    /// The configured `public_url` (the gateway's own origin).
    pub fn public_url(&self) -> String {
        self.url()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding config, store and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The last `n` lines the process wrote to stdout and stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The Prometheus text served on the admin listener.
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.admin_url()))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.expect("metrics body")
    }

    /// Polls `/metrics` until `ready` holds (metrics are recorded after the
    /// response is sent, so they may lag the client by a moment). Returns the
    /// text that satisfied it; panics with the last text after 5 s.
    pub async fn metrics_until(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics_text().await;
            if ready(&text) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("metrics never reached the expected state:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal (`TERM`, `QUIT`, `INT`) to the running process.
    pub fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("gateway running");
        signal_pid(child.id(), sig);
    }

    /// Waits up to `within` for the process to exit by itself; its status.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Pingora's graceful upgrade: starts a second process with `--upgrade`
    /// on the same config, waits until it listens on `server.upgrade_sock`,
    /// sends the running one SIGQUIT and waits until the new one serves.
    /// Returns the old process, which finishes its in-flight requests and exits.
    pub async fn upgrade(&mut self) -> Child {
        let old = self.child.take().expect("gateway running");
        let sock = self.dir.path().join("upgrade.sock");
        let _ = std::fs::remove_file(&sock);
        self.spawn_with(&["--upgrade"]);
        let deadline = Instant::now() + HEALTHY_WITHIN;
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "the upgrading gateway never listened on {}:\n{}",
                sock.display(),
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        signal_pid(old.id(), "QUIT");
        if let Err(why) = self.wait_healthy().await {
            self.failed(&why);
        }
        old
    }

    /// Kills the process and waits for it to exit. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again with the same config, ports and data directory.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(why) = self.wait_healthy().await {
            self.failed(&why);
        }
    }

    /// Restarts a gateway that is expected to refuse to start: returns its
    /// exit code and log once it exits (fails the test if it keeps running).
    pub async fn restart_expecting_exit(&mut self) -> (Option<i32>, String) {
        self.stop();
        self.spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().expect("wait for gateway") {
                self.child = None;
                return (status.code(), self.log_tail(20));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway started although it should refuse:\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Writes `builder`'s config for these ports and starts the binary.
    fn spawn_configured(&mut self, builder: &GatewayBuilder, proxy_port: u16, admin_port: u16) {
        (self.proxy_port, self.admin_port) = (proxy_port, admin_port);
        let config = builder.render(&Layout {
            proxy_port,
            admin_port,
            dir: self.dir.path(),
        });
        std::fs::write(&self.config_path, config).expect("write gateway config");
        self.spawn();
    }

    /// Polls `probe` every 50 ms until it yields; fails the test with the log
    /// tail if the process exits first or 10 s pass.
    pub async fn poll_until<F, Fut>(&mut self, what: &str, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if probe().await.is_some() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                self.failed(&format!("exited ({status}) before: {what}"));
            }
            if Instant::now() > deadline {
                self.failed(&format!("timed out waiting: {what}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    fn spawn_with(&mut self, extra_args: &[&str]) {
        self.spawned_at_log_len = std::fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open gateway log");
        let mut cmd = Command::new(BINARY);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let child = cmd
            .arg("--config")
            .arg(&self.config_path)
            .args(extra_args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BINARY}: {e}"));
        self.child = Some(child);
    }

    /// Sets (or with None removes) an environment variable for the next (re)start.
    pub fn set_env(&mut self, name: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.map(Into::into)));
    }

    /// Fails the test with the reason, config path and log tail.
    fn failed(&self, why: &str) -> ! {
        panic!(
            "drio-gateway failed to start ({why}); config {}:\n{}",
            self.config_path.display(),
            self.log_tail(40)
        );
    }

    /// Polls until both listeners answer: the admin `/healthz` with 200, the
    /// proxy with anything carrying `X-Request-Id` (which every gateway
    /// response has), since Pingora serves one listener while it is still
    /// retrying to bind the other. `Err` if the process exits or reports a
    /// port in use; panics with the log tail if it never gets ready.
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                // A port handed out free was taken by another process (tests
                // of other checkouts run on the same machine) before the bind:
                // the gateway fails fast naming it; retry on fresh ports.
                if self.log_since_spawn().contains("Address already in use") {
                    return Err(PORT_TAKEN.into());
                }
                return Err(format!("exited: {status}"));
            }
            if self.answers().await {
                return Ok(());
            }
            if self.log_since_spawn().contains(" is in use") {
                self.stop();
                return Err(PORT_TAKEN.into());
            }
            if Instant::now() > deadline {
                self.failed(&format!("not ready within {HEALTHY_WITHIN:?}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn answers(&self) -> bool {
        let probe = |url: String| self.client.get(url).timeout(Duration::from_secs(1)).send();
        let admin = probe(format!("{}/healthz", self.admin_url())).await;
        if !admin.is_ok_and(|r| r.status() == 200) {
            return false;
        }
        let proxy = probe(format!("{}/healthz", self.url())).await;
        proxy.is_ok_and(|r| r.headers().contains_key("x-request-id"))
    }

    fn log_since_spawn(&self) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let start = (self.spawned_at_log_len as usize).min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }
}

/// `kill -SIG PID` (the test crate has no signal bindings; `kill` is POSIX).
fn signal_pid(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop();
    }
}
