//! Rate limits on MCP traffic (issue 17): per user, per OAuth client, per
//! app and per tool, each a request rate with a burst, enforced with the
//! GCRA ([`gcra`]). On the Redis store every instance shares the limits
//! (one `EVAL` per request, [`redis`]); on the embedded store they live in
//! process.
//!
//! [`enforce`] answers with a [`Refusal`]; the proxy turns it into `429
//! rate_limited` in drio's envelope with `Retry-After` (RFC 9110 §10.2.3,
//! delay-seconds), or, when the request is one MCP `tools/call` the gateway
//! read, a JSON-RPC 2.0 error (code [`RATE_LIMITED`]) naming the limit. When
//! Redis fails the request is allowed or refused ([`Refusal::Unavailable`],
//! a 503) per `limits.on_store_error`, and the change of state is logged
//! once each way.
//!
//! Keys hold only configured or authenticated values (app id, token subject
//! or client address, token `client_id`, a tool name from the config),
//! never free text from a request body.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use serde_json::Value;

use crate::auth::Principal;
use crate::catalog::route::Route;
use crate::config::{Config, StorageConfig};
use crate::store::keys;

pub(crate) mod config;
pub(crate) mod gcra;
pub(crate) mod redis;

pub(crate) use config::{GatewayLimits, OnStoreError, Rate};
use gcra::{Cell, Outcome};

/// JSON-RPC error code of a rate-limited `tools/call` (implementation-defined
/// server error range, JSON-RPC 2.0 §5.1).
pub(crate) const RATE_LIMITED: i64 = -32029;

/// Limit names: the `limit` label and what refusals say.
const KINDS: [&str; 4] = ["user", "client", "app", "tool"];

enum Backend {
    Local(gcra::Local),
    Shared(redis::Shared),
}

/// Why the limiter could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LimitsError {
    #[error(transparent)]
    Shared(#[from] redis::SharedLimitError),
    #[error("cannot register rate-limit metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

pub(crate) struct Limiter {
    backend: Backend,
    defaults: GatewayLimits,
    /// `[allowed, limited]` per entry of [`KINDS`].
    decisions: Vec<[IntCounter; 2]>,
    store_errors: IntCounter,
    /// Whether the last shared check failed (logs once per change).
    failing: AtomicBool,
    /// Whose `X-Forwarded-For` names the client (`server.trusted_proxies`).
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
}

impl Limiter {
    pub(crate) fn new(config: &Config, registry: &Registry) -> Result<Self, LimitsError> {
        let defaults = config.limits.clone();
        let backend = match &config.storage {
            StorageConfig::Embedded { .. } => Backend::Local(gcra::Local::default()),
            StorageConfig::Redis {
                url,
                key_prefix,
                timeout,
            } => {
                tracing::info!(
                    on_store_error = defaults.on_store_error.as_str(),
                    "rate limits are shared through Redis; while it fails, requests are {}",
                    match defaults.on_store_error {
                        OnStoreError::Allow => "allowed (limits.on_store_error = \"allow\")",
                        OnStoreError::Deny => "refused with 503 (limits.on_store_error = \"deny\")",
                    }
                );
                Backend::Shared(redis::Shared::new(url, key_prefix, *timeout)?)
            }
        };
        let vec = IntCounterVec::new(
            Opts::new(
                "drio_rate_limit_decisions_total",
                "Rate-limit checks by limit (user, client, app, tool) and decision (allowed, limited)",
            ),
            &["limit", "decision"],
        )?;
        let store_errors = IntCounter::new(
            "drio_rate_limit_store_errors_total",
            "Rate-limit checks the shared store could not answer (then limits.on_store_error applies)",
        )?;
        registry.register(Box::new(vec.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        let decisions = KINDS
            .iter()
            .map(|k| {
                [
                    vec.with_label_values(&[k, "allowed"]),
                    vec.with_label_values(&[k, "limited"]),
                ]
            })
            .collect();
        Ok(Self {
            backend,
            defaults,
            decisions,
            store_errors,
            failing: AtomicBool::new(false),
            trusted_proxies: config.server.trusted_proxies.clone(),
        })
    }

    /// Whether any limit could apply to `route` (false: nothing to do at all).
    pub(crate) fn applies(&self, route: &Route) -> bool {
        let d = &self.defaults;
        !route.app.limits.is_empty() || d.user.is_some() || d.client.is_some() || d.app.is_some()
    }

    async fn charge(&self, cells: &[Cell]) -> Result<Outcome, ()> {
        let result = match &self.backend {
            Backend::Local(l) => return Ok(l.charge(cells)),
            Backend::Shared(s) => s.charge(cells).await,
        };
        match result {
            Ok(o) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits: Redis answers again; limits apply");
                }
                Ok(o)
            }
            Err(e) => {
                self.store_errors.inc();
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        on_store_error = self.defaults.on_store_error.as_str(),
                        "rate limits: Redis cannot be reached; requests are {} until it answers",
                        match self.defaults.on_store_error {
                            OnStoreError::Allow => "allowed without limits",
                            OnStoreError::Deny => "refused (503)",
                        }
                    );
                }
                Err(())
            }
        }
    }
}

/// One limit a request is checked against.
struct Check<'a> {
    kind: usize,
    rate: Rate,
    tool: Option<&'a str>,
}

/// Tool names and how often each is called in a JSON-RPC message or batch.
fn tool_calls(body: &Value) -> Vec<(&str, u64)> {
    let messages: Vec<&Value> = match body {
        Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    };
    let mut out: Vec<(&str, u64)> = Vec::new();
    for m in messages {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            continue;
        }
        let Some(name) = m.pointer("/params/name").and_then(Value::as_str) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => out.push((name, 1)),
        }
    }
    out
}

/// Why a request is refused; the proxy writes it (drio's envelope, or a
/// JSON-RPC error for one `tools/call`). The texts name only configured
/// values: the limit, a configured tool name, its rate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal<'a> {
    /// The store could not be asked and `on_store_error = "deny"`.
    #[error("Rate limits cannot be checked right now; try again shortly")]
    Unavailable,
    #[error("Rate limit exceeded ({}: {rate}); retry in {retry_secs} s", limit_name(limit, *tool))]
    Limited {
        /// One of the limit names: `user`, `client`, `app`, `tool`.
        limit: &'static str,
        /// The configured tool name, for a per-tool limit.
        tool: Option<&'a str>,
        rate: Rate,
        /// Whole seconds until the request would be allowed (at least 1).
        retry_secs: u64,
    },
}

/// "tool echo" for a per-tool limit, else the limit's name.
fn limit_name(limit: &str, tool: Option<&str>) -> String {
    match tool {
        Some(tool) => format!("tool {tool}"),
        None => limit.to_string(),
    }
}

impl Refusal<'_> {
    /// `Retry-After`, in seconds.
    pub(crate) fn retry_after(&self) -> u64 {
        match self {
            Refusal::Unavailable => 1,
            Refusal::Limited { retry_secs, .. } => *retry_secs,
        }
    }
}

/// Checks a request to `route` against every limit that applies; returns
/// why it is refused, or `None` to go on. `caller` is the user key when
/// there is no token (the client address bucket). `body` is the parsed
/// JSON-RPC body when the gateway read it.
pub(crate) async fn enforce<'r>(
    limiter: &Limiter,
    route: &'r Route,
    principal: Option<&Principal>,
    caller: impl FnOnce() -> String,
    body: Option<&Value>,
) -> Option<Refusal<'r>> {
    let (app, d) = (&route.app, &limiter.defaults);
    let mut checks: Vec<Check> = Vec::with_capacity(4);
    let mut cells: Vec<Cell> = Vec::with_capacity(4);
    let mut push = |kind: usize, rate: Rate, key: String, cost: u64| {
        cells.push(Cell {
            key,
            interval_us: rate.interval_us(),
            burst: rate.burst,
            cost,
        });
        checks.push(Check {
            kind,
            rate,
            tool: None,
        });
    };
    if let Some(rate) = app.limits.user.or(d.user) {
        let who = match principal {
            Some(p) => format!("sub:{}", p.subject),
            None => format!("addr:{}", caller()),
        };
        push(0, rate, keys::limit_user(&app.id, &who), 1);
    }
    if let Some((rate, client)) = app
        .limits
        .client
        .or(d.client)
        .zip(principal.and_then(|p| p.client_id.as_deref()))
    {
        push(1, rate, keys::limit_client(&app.id, client), 1);
    }
    if let Some(rate) = app.limits.app.or(d.app) {
        push(2, rate, keys::limit_app(&app.id), 1);
    }
    let calls = match body {
        Some(b) if !app.limits.tools.is_empty() => tool_calls(b),
        _ => Vec::new(),
    };
    let mut tool_names: Vec<&str> = Vec::new();
    for (name, count) in calls {
        if let Some((configured, rate)) = app.limits.tools.get_key_value(name) {
            push(3, *rate, keys::limit_tool(&app.id, configured), count);
            tool_names.push(configured.as_str());
        }
    }
    if cells.is_empty() {
        return None;
    }
    let mut named = tool_names.into_iter();
    for c in checks.iter_mut().filter(|c| c.kind == 3) {
        c.tool = named.next();
    }
    let outcome = match limiter.charge(&cells).await {
        Ok(o) => o,
        Err(()) if limiter.defaults.on_store_error == OnStoreError::Allow => return None,
        Err(()) => return Some(Refusal::Unavailable),
    };
    match outcome {
        Outcome::Allowed => {
            for c in &checks {
                limiter.decisions[c.kind][0].inc();
            }
            None
        }
        Outcome::Limited { index, wait_us } => {
            let c = &checks[index];
            limiter.decisions[c.kind][1].inc();
            Some(Refusal::Limited {
                limit: KINDS[c.kind],
                tool: c.tool,
                rate: c.rate,
                retry_secs: wait_us.div_ceil(1_000_000).max(1),
            })
        }
    }
}
