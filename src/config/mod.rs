//! Configuration: the TOML file in `conf/` read into raw structs ([`raw`]) and
//! checked into the validated [`Config`] the gateway runs on ([`validate`]).
//!
//! Errors are values, never panics: each names the file and the key
//! (`apps[0].upstream`) so `drio-gateway --validate` can tell an operator
//! exactly what to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) mod access;
pub(crate) mod auth;
pub(crate) mod oauth;
pub(crate) mod raw;
pub(crate) mod tool_policy;
pub(crate) mod validate;

/// A configuration problem, located by file and key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub(crate) file: String,
    pub(crate) key: String,
    pub(crate) message: String,
}

impl ConfigError {
    pub(crate) fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Externally visible base URL without a trailing slash, e.g. `https://gw.example.com`.
    pub public_url: String,
    /// `scheme://host[:port]` of `public_url`, the origin always allowed by the Origin check.
    pub(crate) public_origin: String,
    /// `host[:port]` of `public_url` (lower-case, default port omitted): the
    /// only `Host` the gateway's own routes answer (DNS-rebinding defence).
    pub(crate) public_authority: String,
    pub(crate) listen: Listen,
    pub(crate) server: ServerSettings,
    pub(crate) storage: StorageConfig,
    pub(crate) logging: Logging,
    pub(crate) auth: auth::AuthConfig,
    /// The authorization server for MCP clients, when configured.
    pub(crate) oauth: Option<oauth::OAuthConfig>,
    /// Variable holding the key that encrypts stored secrets.
    pub(crate) secrets_key_env: String,
    /// Subjects or e-mails with access to every app in the management API.
    pub(crate) admins: Vec<String>,
    /// Audiences the management API and `/api/v1/me` accept: `public_url`
    /// first, then `management.audiences`. Never an app's MCP URL.
    pub(crate) management_audiences: Vec<String>,
    /// Address ranges users' URLs may reach despite the egress policy
    /// (`[security] allow_upstream_cidrs`).
    pub(crate) allow_upstream_cidrs: Vec<ipnet::IpNet>,
    pub apps: Vec<AppConfig>,
    /// `[limits]`: defaults for every app and the store-failure policy.
    pub(crate) limits: crate::limits::config::GatewayLimits,
    /// `[audit]`: where audit events of MCP calls go.
    pub(crate) audit: crate::audit::config::AuditConfig,
    /// `[tracing]`: OTLP trace export; None: off.
    pub(crate) tracing: Option<crate::telemetry::TracingConfig>,
    /// `[pages]` and the config-file apps' branding.
    pub(crate) pages: PagesConfig,
}

#[derive(Debug, Clone)]
pub(crate) struct Listen {
    pub(crate) proxy: SocketAddr,
    pub(crate) admin: SocketAddr,
    /// Variable holding the admin listener's bearer token; None turns the
    /// admin write routes off.
    pub(crate) admin_token_env: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub(crate) threads: usize,
    /// Load balancers and proxies in front of the gateway: their
    /// `X-Forwarded-For` decides the client address of every limit.
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) grace_period_seconds: u64,
    pub(crate) graceful_shutdown_timeout_seconds: u64,
    /// Where a new process started with `--upgrade` receives the listening
    /// sockets from the running one on SIGQUIT (Pingora's graceful upgrade).
    /// None: upgrades are off (SIGQUIT stops like SIGTERM).
    pub(crate) upgrade_sock: Option<PathBuf>,
    /// Default SSE stream policy of every app (see [`StreamPolicy`]).
    pub(crate) stream: StreamPolicy,
    /// Whether the proxy listener also serves cleartext HTTP/2 to clients
    /// that start with the connection preface (prior knowledge, RFC 9113
    /// §3.3); HTTP/1.1 is served either way. Many streams then share one
    /// connection, and one descriptor, instead of one each.
    pub(crate) h2c: bool,
}

/// How a long-lived `text/event-stream` response is kept (crate::proxy::stream).
/// `None` means "no idle cut" and "no heartbeats" respectively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamPolicy {
    /// Longest upstream silence before the stream is cut.
    pub(crate) idle_timeout: Option<Duration>,
    /// Interval of `: keep-alive` comments written while the upstream is silent.
    pub(crate) heartbeat: Option<Duration>,
}

/// An app's overrides of the server's [`StreamPolicy`]: `None` inherits,
/// `Some(None)` turns the setting off for this app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamOverrides {
    pub(crate) idle_timeout: Option<Option<Duration>>,
    pub(crate) heartbeat: Option<Option<Duration>>,
}

impl StreamOverrides {
    /// The policy in force for the app, given the server's default.
    pub(crate) fn over(&self, server: StreamPolicy) -> StreamPolicy {
        StreamPolicy {
            idle_timeout: self.idle_timeout.unwrap_or(server.idle_timeout),
            heartbeat: self.heartbeat.unwrap_or(server.heartbeat),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum StorageConfig {
    Embedded {
        path: PathBuf,
        /// redb's page cache in bytes (`cache_size_mib`).
        cache_bytes: usize,
    },
    Redis {
        url: String,
        key_prefix: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub(crate) struct Logging {
    pub(crate) level: String,
    pub(crate) format: LogFormat,
}

/// What the pages people see may show and load.
#[derive(Debug, Clone, Default)]
pub(crate) struct PagesConfig {
    /// Lower-case hosts an app's https logo may come from.
    pub(crate) logo_hosts: Vec<String>,
    /// Branding of config-file apps, by app id (API apps keep theirs in the store).
    pub(crate) branding: std::collections::HashMap<String, crate::web::pages::branding::Branding>,
}

/// Where an app's requests go: parsed once so the hot path only copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The authority as the upstream expects it in `Host` (port omitted when default).
    pub(crate) authority: String,
    /// Path prefix prepended to forwarded paths, without a trailing slash ("" for none).
    pub(crate) base_path: String,
}

/// One MCP app behind the gateway.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) upstream: Upstream,
    /// Path of the MCP endpoint below the app's prefix, e.g. `/mcp`.
    pub(crate) mcp_path: String,
    /// Lower-cased host name that routes to this app, if any.
    pub(crate) host: Option<String>,
    pub(crate) public: bool,
    /// Normalised origins (`scheme://host[:port]`) allowed besides the gateway's own.
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    /// SSE stream settings that differ from `[server]`'s.
    pub(crate) stream: StreamOverrides,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) identity_headers: auth::IdentityHeaders,
    /// Who may use the app (and be issued a token for it).
    pub(crate) access: access::Access,
    /// The app's own rate limits (see [`crate::limits`]).
    pub(crate) limits: crate::limits::config::AppLimits,
    /// Scopes each tool's `tools/call` needs (step-up, see
    /// [`crate::config::tool_policy`]).
    pub(crate) tool_scopes: crate::config::tool_policy::ToolScopes,
    /// Whether the app's audit events carry arguments (see [`crate::audit`]).
    pub(crate) audit: crate::audit::config::AppAudit,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, "(file)", format!("cannot read: {e}")))?;
        Self::from_toml(path, &text)
    }

    /// Validates configuration text; `path` is used in error messages only.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .message()
                .split('`')
                .nth(1)
                .unwrap_or("(syntax)")
                .to_string();
            ConfigError::new(path, key, e.to_string().trim_end().replace('\n', " "))
        })?;
        validate::validate(path, raw)
    }
}

impl AppConfig {
    /// The app's MCP URL on the gateway (its RFC 8707 resource identifier).
    pub fn resource_url(&self, public_url: &str) -> String {
        format!("{public_url}/apps/{}{}", self.slug, self.mcp_path)
    }
}

#[cfg(test)]
mod stream_policy_tests {
    use super::*;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        let base = "public_url = \"https://gw.example.com\"\n[listen]\nproxy = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\n";
        Config::from_toml(Path::new("t.toml"), &format!("{base}{extra}"))
    }

    const APP: &str =
        "[[apps]]\nid = \"a\"\nslug = \"a\"\nupstream = \"http://x\"\npublic = true\n";

    #[test]
    fn streams_default_to_no_cut_and_no_heartbeat() {
        let c = load(APP).unwrap();
        assert_eq!(c.server.stream, StreamPolicy::default());
        assert_eq!(
            c.apps[0].stream.over(c.server.stream),
            StreamPolicy::default()
        );
    }

    #[test]
    fn apps_override_the_server_and_zero_turns_off() {
        let text = format!(
            "[server]\nstream_idle_timeout_seconds = 600\nstream_heartbeat_seconds = 15\n{APP}stream_heartbeat_seconds = 0\n"
        );
        let c = load(&text).unwrap();
        let p = c.apps[0].stream.over(c.server.stream);
        assert_eq!(p.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(p.heartbeat, None);
    }

    #[test]
    fn out_of_range_stream_settings_are_named() {
        let e = load("[server]\nstream_heartbeat_seconds = 100000\n").unwrap_err();
        assert_eq!(e.key, "server.stream_heartbeat_seconds", "{e}");
        let e = load(&format!("{APP}stream_idle_timeout_seconds = 100000\n")).unwrap_err();
        assert_eq!(e.key, "apps[0].stream_idle_timeout_seconds", "{e}");
    }
}
