//! The configuration file as written: serde structs that mirror the TOML and
//! reject unknown keys, so a typo is an error instead of a silently ignored
//! setting. Nothing here is trusted; [`super::validate`] turns it into
//! [`super::Config`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) public_url: String,
    pub(crate) listen: RawListen,
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) storage: RawStorage,
    #[serde(default)]
    pub(crate) logging: RawLogging,
    #[serde(default)]
    pub(crate) auth: super::auth::RawAuth,
    pub(crate) oauth: Option<super::oauth::RawOAuth>,
    pub(crate) idp: Option<super::oauth::RawIdp>,
    #[serde(default)]
    pub(crate) secrets: RawSecrets,
    #[serde(default)]
    pub(crate) management: RawManagement,
    #[serde(default)]
    pub(crate) security: RawSecurity,
    #[serde(default)]
    pub(crate) pages: RawPages,
    #[serde(default)]
    pub(crate) apps: Vec<RawApp>,
    /// Rate-limit defaults and the store-failure policy (`[limits]`).
    #[serde(default)]
    pub(crate) limits: crate::limits::config::RawGatewayLimits,
    /// The audit log of MCP calls (`[audit]`).
    #[serde(default)]
    pub(crate) audit: crate::audit::config::RawAudit,
    /// OpenTelemetry traces over OTLP/HTTP (`[tracing]`).
    #[serde(default)]
    pub(crate) tracing: crate::telemetry::config::RawTracing,
}

/// `[pages]`: what the pages people see may load.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPages {
    /// Hosts an app's `branding.logo_url` may name (https only).
    #[serde(default)]
    pub(crate) logo_hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub(crate) proxy: String,
    pub(crate) admin: String,
    /// Environment variable holding the bearer token of the admin listener's
    /// write routes (`/oauth/keys/rotate`, `/tokens/revoke`).
    pub(crate) admin_token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) threads: Option<usize>,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the client address.
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) grace_period_seconds: Option<u64>,
    pub(crate) graceful_shutdown_timeout_seconds: Option<u64>,
    /// Unix socket through which a `--upgrade` process takes the listeners over.
    pub(crate) upgrade_sock: Option<String>,
    /// Longest upstream silence on an SSE stream (0 = none, the default).
    pub(crate) stream_idle_timeout_seconds: Option<u64>,
    /// SSE comment heartbeat interval during upstream silence (0 = off, the default).
    pub(crate) stream_heartbeat_seconds: Option<u64>,
    /// Serve HTTP/2 with prior knowledge on the proxy listener (off by default).
    pub(crate) h2c: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub(crate) backend: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) url_env: Option<String>,
    pub(crate) key_prefix: Option<String>,
    pub(crate) timeout_ms: Option<u64>,
    /// Embedded store: redb's page cache in MiB (default 32).
    pub(crate) cache_size_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    pub(crate) level: Option<String>,
    pub(crate) format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) upstream: String,
    pub(crate) mcp_path: Option<String>,
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) public: bool,
    #[serde(default)]
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) connect_timeout_ms: Option<u64>,
    pub(crate) read_timeout_ms: Option<u64>,
    /// Overrides `server.stream_idle_timeout_seconds` for this app.
    pub(crate) stream_idle_timeout_seconds: Option<u64>,
    /// Overrides `server.stream_heartbeat_seconds` for this app.
    pub(crate) stream_heartbeat_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) required_scopes: Vec<String>,
    pub(crate) identity_headers: Option<super::auth::RawIdentityHeaders>,
    pub(crate) access: Option<super::access::RawAccess>,
    /// Rate limits of this app (`limits = { user = {…}, tools = {…} }`).
    #[serde(default)]
    pub(crate) limits: Option<crate::limits::config::RawLimits>,
    /// Whether audit events carry arguments (`audit = { include_arguments = true }`).
    #[serde(default)]
    pub(crate) audit: Option<crate::audit::config::RawAppAudit>,
    /// How the app looks on consent and connect pages.
    pub(crate) branding: Option<crate::web::pages::branding::Branding>,
    /// Per-tool policy (`[[apps.tools]]`): scopes a `tools/call` needs.
    #[serde(default)]
    pub(crate) tools: Vec<crate::config::tool_policy::ToolPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecrets {
    /// Environment variable holding the base64 AES-256 key for secrets at rest.
    pub(crate) key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManagement {
    /// Subjects (or verified e-mails) that see and manage every app.
    #[serde(default)]
    pub(crate) admins: Vec<String>,
    /// Token audiences the management API accepts besides `public_url`
    /// (upstream token mode: what the IdP puts in `aud` for the API).
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    /// CIDRs the gateway may reach for users despite the egress policy
    /// (e.g. `127.0.0.0/8` for a local upstream).
    #[serde(default)]
    pub(crate) allow_upstream_cidrs: Vec<String>,
}
