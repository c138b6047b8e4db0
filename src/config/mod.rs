//! Configuration: the TOML file in `conf/` read into raw structs ([`raw`]) and
//! checked into the validated [`Config`] the gateway runs on ([`validate`]).
//!
//! Errors are values, never panics: each names the file and the key
//! (`apps[0].upstream`) so `drio-gateway --validate` can tell an operator
//! exactly what to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod access;
pub mod auth;
pub mod oauth;
pub mod raw;
pub mod validate;

pub use validate::{normalize_origin, parse_upstream};

/// A configuration problem, located by file and key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, message: impl Into<String>) -> Self {
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
    pub source: PathBuf,
    /// Externally visible base URL without a trailing slash, e.g. `https://gw.example.com`.
    pub public_url: String,
    /// `scheme://host[:port]` of `public_url`, the origin always allowed by the Origin check.
    pub public_origin: String,
    /// `host[:port]` of `public_url` (lower-case, default port omitted): the
    /// only `Host` the gateway's own routes answer (DNS-rebinding defence).
    pub public_authority: String,
    pub listen: Listen,
    pub server: ServerSettings,
    pub storage: StorageConfig,
    pub logging: Logging,
    pub auth: auth::AuthConfig,
    /// The authorization server for MCP clients, when configured.
    pub oauth: Option<oauth::OAuthConfig>,
    /// Variable holding the key that encrypts stored secrets.
    pub secrets_key_env: String,
    /// Subjects or e-mails with access to every app in the management API.
    pub admins: Vec<String>,
    /// Audiences the management API and `/api/v1/me` accept: `public_url`
    /// first, then `management.audiences`. Never an app's MCP URL.
    pub management_audiences: Vec<String>,
    /// Address ranges users' URLs may reach despite the egress policy
    /// (`[security] allow_upstream_cidrs`).
    pub allow_upstream_cidrs: Vec<ipnet::IpNet>,
    pub apps: Vec<AppConfig>,
    /// `[limits]`: defaults for every app and the store-failure policy.
    pub limits: crate::limits::config::GatewayLimits,
    /// `[audit]`: where audit events of MCP calls go.
    pub audit: crate::audit::config::AuditConfig,
    /// `[pages]` and the config-file apps' branding.
    pub pages: PagesConfig,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// Variable holding the admin listener's bearer token; None turns the
    /// admin write routes off.
    pub admin_token_env: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    /// Load balancers and proxies in front of the gateway: their
    /// `X-Forwarded-For` decides the client address of every limit.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub grace_period_seconds: u64,
    pub graceful_shutdown_timeout_seconds: u64,
    /// Where a new process started with `--upgrade` receives the listening
    /// sockets from the running one on SIGQUIT (Pingora's graceful upgrade).
    /// None: upgrades are off (SIGQUIT stops like SIGTERM).
    pub upgrade_sock: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum StorageConfig {
    Embedded {
        path: PathBuf,
    },
    Redis {
        url: String,
        key_prefix: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Logging {
    pub level: String,
    pub format: LogFormat,
}

/// What the pages people see may show and load.
#[derive(Debug, Clone, Default)]
pub struct PagesConfig {
    /// Lower-case hosts an app's https logo may come from.
    pub logo_hosts: Vec<String>,
    /// Branding of config-file apps, by app id (API apps keep theirs in the store).
    pub branding: std::collections::HashMap<String, crate::web::pages::branding::Branding>,
}

/// Where an app's requests go: parsed once so the hot path only copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The authority as the upstream expects it in `Host` (port omitted when default).
    pub authority: String,
    /// Path prefix prepended to forwarded paths, without a trailing slash ("" for none).
    pub base_path: String,
}

/// One MCP app behind the gateway.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub upstream: Upstream,
    /// Path of the MCP endpoint below the app's prefix, e.g. `/mcp`.
    pub mcp_path: String,
    /// Lower-cased host name that routes to this app, if any.
    pub host: Option<String>,
    pub public: bool,
    /// Normalised origins (`scheme://host[:port]`) allowed besides the gateway's own.
    pub allowed_origins: Vec<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub required_scopes: Vec<String>,
    pub identity_headers: auth::IdentityHeaders,
    /// Who may use the app (and be issued a token for it).
    pub access: access::Access,
    /// The app's own rate limits (see [`crate::limits`]).
    pub limits: crate::limits::config::AppLimits,
    /// Whether the app's audit events carry arguments (see [`crate::audit`]).
    pub audit: crate::audit::config::AppAudit,
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
