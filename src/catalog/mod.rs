//! The app catalog: apps and their upstream auth connections as the
//! management API stores them, and the live route table built from them
//! together with the apps of the config file.
//!
//! Records are JSON in the store (`app:{id}`, `conn:{appId}:{authId}`,
//! `tools:{appId}`, `secret:{ref}`); secrets live only in `secret:` records,
//! encrypted (see [`crate::store::vault::Vault`]). Every change is broadcast
//! on [`CHANGES_CHANNEL`] so each instance rebuilds its routes before the next
//! request, with no restart.

use serde::{Deserialize, Serialize};

pub mod live;
pub(crate) mod reloader;
pub mod route;
pub(crate) mod secrets;

pub(crate) const CHANGES_CHANNEL: &str = "drio:catalog-changes";

/// An app created through the management API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRecord {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) status: String,
    pub(crate) is_enabled: bool,
    pub(crate) template_id: Option<String>,
    /// The subject of the user who created it.
    pub(crate) owner: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) settings: AppSettings,
    /// How the app looks on consent and connect pages (validated by
    /// `api::apps` against `[pages] logo_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) branding: Option<crate::web::pages::branding::Branding>,
}

/// What `GET/PUT /api/v1/apps/{id}/config` reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AppSettings {
    pub(crate) upstream_url: String,
    #[serde(default)]
    pub(crate) mcp_path: Option<String>,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) public: bool,
    #[serde(default)]
    pub(crate) required_scopes: Vec<String>,
    #[serde(default)]
    pub(crate) allowed_origins: Vec<String>,
    #[serde(default)]
    pub(crate) connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(crate) read_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(crate) identity_headers: IdentityHeaderNames,
    /// Tools refused at the gateway (`tools/call` never reaches the upstream).
    #[serde(default)]
    pub(crate) disabled_tools: Vec<String>,
    /// Who may use the app; absent means its owner only.
    #[serde(default)]
    pub(crate) access: Option<AccessSettings>,
    /// Rate limits (the README's Rate limits section); absent: the gateway's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) limits: Option<crate::limits::config::RawLimits>,
    /// Per-tool policy: the scopes each tool's `tools/call` needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<crate::config::tool_policy::ToolPolicy>,
}

/// An app's access policy in the API's terms (see [`crate::config::access`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(description = "An app's access policy: who may use it.")]
pub(crate) struct AccessSettings {
    /// `owner`, `anyone` or `list`.
    pub(crate) mode: String,
    #[serde(default)]
    pub(crate) users: Vec<String>,
    #[serde(default)]
    pub(crate) email_domains: Vec<String>,
    #[serde(default)]
    pub(crate) organizations: Vec<String>,
    /// Group names from the identity provider (WorkOS SSO).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
}

impl From<AccessSettings> for crate::config::access::RawAccess {
    fn from(a: AccessSettings) -> Self {
        Self {
            mode: a.mode,
            users: a.users,
            email_domains: a.email_domains,
            organizations: a.organizations,
            groups: a.groups,
        }
    }
}

impl From<crate::config::access::RawAccess> for AccessSettings {
    fn from(a: crate::config::access::RawAccess) -> Self {
        Self {
            mode: a.mode,
            users: a.users,
            email_domains: a.email_domains,
            organizations: a.organizations,
            groups: a.groups,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IdentityHeaderNames {
    pub(crate) subject: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) scopes: Option<String>,
    pub(crate) client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) groups: Option<String>,
}

/// Tool switches of a config-file app (its settings are read-only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolSwitches {
    pub(crate) disabled_tools: Vec<String>,
    /// Scopes added to the TOML tool policy through the commands API.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) tool_scopes: crate::config::tool_policy::ToolScopes,
}

/// An upstream auth connection, as stored (no secret values: see `secretRef`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub(crate) id: String,
    pub(crate) app_id: String,
    pub(crate) provider_id: String,
    pub(crate) provider_key: String,
    pub(crate) provider_name: String,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) config: ConnectionConfig,
    #[schema(required = true)]
    pub(crate) secret_ref: Option<String>,
    pub(crate) grants: Vec<String>,
    #[schema(required = true)]
    pub(crate) last_validated_at: Option<String>,
    #[schema(required = true)]
    pub(crate) last_error: Option<String>,
}

/// The non-secret part of a connection's config (seed `002_*` names).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionConfig {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registration_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registration_auth_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registration_client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_registered_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) query_param_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audience: Option<String>,
    /// RFC 8693 §2.1 `resource` (token exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<String>,
    /// RFC 8693 §2.1 `requested_token_type` (token exchange; default
    /// `urn:ietf:params:oauth:token-type:access_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) requested_token_type: Option<String>,
    /// Seed `003_*` provider options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope_separator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_auth_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authorization_params: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pkce: Option<bool>,
    /// WorkOS Pipes: the provider slug (seed `003_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
    /// WorkOS Pipes: send the user's organization with their user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) organization_scoped: Option<bool>,
    pub(crate) enabled: bool,
    pub(crate) is_default: bool,
}

/// The secret fields of a connection: accepted on write, stored encrypted,
/// never returned.
#[derive(Default, Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSecrets {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registration_initial_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) registration_access_token: Option<String>,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionSecrets(***)")
    }
}

impl ConnectionSecrets {
    pub(crate) fn is_empty(&self) -> bool {
        self.client_secret.is_none()
            && self.api_key.is_none()
            && self.access_token.is_none()
            && self.password.is_none()
            && self.registration_initial_access_token.is_none()
            && self.registration_access_token.is_none()
    }

    /// Fields set in `other` replace ours (a PATCH that sends a new secret).
    pub(crate) fn merge(&mut self, other: ConnectionSecrets) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            client_secret,
            api_key,
            access_token,
            password,
            registration_initial_access_token,
            registration_access_token
        );
    }
}

pub(crate) fn app_key(id: &str) -> String {
    crate::store::keys::app(id)
}

pub(crate) fn conn_prefix(app_id: &str) -> String {
    crate::store::keys::app_connections(app_id)
}

pub(crate) fn conn_key(app_id: &str, auth_id: &str) -> String {
    crate::store::keys::connection(app_id, auth_id)
}

pub(crate) fn tools_key(app_id: &str) -> String {
    crate::store::keys::tools(app_id)
}

/// RFC 3339 UTC timestamp with milliseconds, as the seeds show.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A random identifier with a type prefix (`app_…`, `auth_…`), 128 bits.
pub(crate) fn new_id(prefix: &str) -> Result<String, crate::util::random::RandomError> {
    crate::util::random::id(prefix)
}
