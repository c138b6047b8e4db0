//! The configuration file as written: serde structs that mirror the TOML and
//! reject unknown keys, so a typo is an error instead of a silently ignored
//! setting. Nothing here is trusted; [`super::validate`] turns it into
//! [`super::Config`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub public_url: String,
    pub listen: RawListen,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub auth: super::auth::RawAuth,
    pub oauth: Option<super::oauth::RawOAuth>,
    pub idp: Option<super::oauth::RawIdp>,
    #[serde(default)]
    pub secrets: RawSecrets,
    #[serde(default)]
    pub management: RawManagement,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub pages: RawPages,
    #[serde(default)]
    pub apps: Vec<RawApp>,
    /// Rate-limit defaults and the store-failure policy (`[limits]`).
    #[serde(default)]
    pub limits: crate::limits::config::RawGatewayLimits,
    /// The audit log of MCP calls (`[audit]`).
    #[serde(default)]
    pub audit: crate::audit::config::RawAudit,
    /// OpenTelemetry traces over OTLP/HTTP (`[tracing]`).
    #[serde(default)]
    pub tracing: crate::telemetry::config::RawTracing,
}

/// `[pages]`: what the pages people see may load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPages {
    /// Hosts an app's `branding.logo_url` may name (https only).
    #[serde(default)]
    pub logo_hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub proxy: String,
    pub admin: String,
    /// Environment variable holding the bearer token of the admin listener's
    /// write routes (`/oauth/keys/rotate`, `/tokens/revoke`).
    pub admin_token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub threads: Option<usize>,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client address.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// Unix socket through which a `--upgrade` process takes the listeners over.
    pub upgrade_sock: Option<String>,
    /// Longest upstream silence on an SSE stream (0 = none, the default).
    pub stream_idle_timeout_seconds: Option<u64>,
    /// SSE comment heartbeat interval during upstream silence (0 = off, the default).
    pub stream_heartbeat_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub backend: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout_ms: Option<u64>,
    /// Embedded store: redb's page cache in MiB (default 32).
    pub cache_size_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub id: String,
    pub slug: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub upstream: String,
    pub mcp_path: Option<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    /// Overrides `server.stream_idle_timeout_seconds` for this app.
    pub stream_idle_timeout_seconds: Option<u64>,
    /// Overrides `server.stream_heartbeat_seconds` for this app.
    pub stream_heartbeat_seconds: Option<u64>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    pub identity_headers: Option<super::auth::RawIdentityHeaders>,
    pub access: Option<super::access::RawAccess>,
    /// Rate limits of this app (`limits = { user = {…}, tools = {…} }`).
    #[serde(default)]
    pub limits: Option<crate::limits::config::RawLimits>,
    /// Whether audit events carry arguments (`audit = { include_arguments = true }`).
    #[serde(default)]
    pub audit: Option<crate::audit::config::RawAppAudit>,
    /// How the app looks on consent and connect pages.
    pub branding: Option<crate::web::pages::branding::Branding>,
    /// Per-tool policy (`[[apps.tools]]`): scopes a `tools/call` needs.
    #[serde(default)]
    pub tools: Vec<crate::config::tool_policy::ToolPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// Environment variable holding the base64 AES-256 key for secrets at rest.
    pub key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManagement {
    /// Subjects (or verified e-mails) that see and manage every app.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Token audiences the management API accepts besides `public_url`
    /// (upstream token mode: what the IdP puts in `aud` for the API).
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    /// CIDRs the gateway may reach for users despite the egress policy
    /// (e.g. `127.0.0.0/8` for a local upstream).
    #[serde(default)]
    pub allow_upstream_cidrs: Vec<String>,
}
