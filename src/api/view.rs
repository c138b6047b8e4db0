//! How apps look on the wire (`{"app":{…}}`), for both stored apps and the
//! read-only apps of the config file, and the other bodies of the
//! management API (seed `002_*`): each a type the handler serialises, so the
//! OpenAPI document ([`crate::openapi`]) is generated from what is sent.

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::{AppRecord, AppSettings, Connection, IdentityHeaderNames};
use crate::config::AppConfig;
use crate::web::pages::branding::Branding;

/// One app as the API shows it (`AppView` in the OpenAPI document).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppView {
    id: String,
    slug: String,
    name: String,
    #[schema(required = true)]
    description: Option<String>,
    /// `active`, `paused` or `archived`.
    status: String,
    is_enabled: bool,
    #[schema(required = true)]
    template_id: Option<String>,
    /// RFC 3339; `null` for config-file apps.
    #[schema(required = true)]
    created_at: Option<String>,
    #[schema(required = true)]
    updated_at: Option<String>,
    mcp_url: String,
    /// `api` (created here) or `config` (the gateway's config file).
    source: &'static str,
    read_only: bool,
    branding: Branding,
}

/// `{"apps":[…]}`
#[derive(Serialize, ToSchema)]
pub(crate) struct AppList {
    pub(crate) apps: Vec<AppView>,
}

/// `{"app":{…}}`
#[derive(Serialize, ToSchema)]
pub(crate) struct AppBody {
    pub(crate) app: AppView,
}

/// `{"config":{…}}`
#[derive(Serialize, ToSchema)]
pub(crate) struct ConfigBody {
    pub(crate) config: AppSettings,
}

/// `{"deleted":true}`
#[derive(Serialize, ToSchema)]
pub(crate) struct Deleted {
    pub(crate) deleted: bool,
}

/// `{"templates":[…]}`
#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateList {
    pub(crate) templates: Vec<TemplateView>,
}

/// One app template.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TemplateView {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) mcp_path: &'static str,
    pub(crate) docs_url: &'static str,
}

/// `GET /api/v1/me`: `{"user":{…}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct MeBody {
    pub(crate) user: MeUser,
}

/// The signed-in user (seed `002_*`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeUser {
    pub(crate) workos_user_id: String,
    #[schema(required = true)]
    pub(crate) email: Option<String>,
    #[schema(required = true)]
    pub(crate) image: Option<String>,
    #[schema(required = true)]
    pub(crate) name: Option<String>,
    pub(crate) scopes: Vec<String>,
}

/// One upstream tool with the gateway's switches added (the upstream's
/// other tool fields, e.g. `inputSchema`, pass through unchanged).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Command {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub(crate) tool: serde_json::Map<String, serde_json::Value>,
    pub(crate) enabled: bool,
    pub(crate) required_scopes: Vec<String>,
}

/// `{"commands":[…]}`
#[derive(Serialize, ToSchema)]
pub(crate) struct CommandList {
    pub(crate) commands: Vec<Command>,
}

/// What `PATCH …/commands` leaves in force.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommandSwitches {
    pub(crate) disabled_tools: Vec<String>,
    pub(crate) required_scopes: std::collections::BTreeMap<String, Vec<String>>,
}

/// `{"auth":[…],"providers":[…]}`
#[derive(Serialize, ToSchema)]
pub(crate) struct AuthList {
    pub(crate) auth: Vec<Connection>,
    pub(crate) providers: Vec<ProviderView>,
}

/// `{"auth":{…}}`
#[derive(Serialize, ToSchema)]
pub(crate) struct AuthBody {
    pub(crate) auth: Connection,
}

/// An auth provider a connection can use (seed `002_*`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProviderView {
    pub(crate) id: &'static str,
    pub(crate) key: &'static str,
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) ownership: &'static str,
    pub(crate) provisioning_mode: &'static str,
    pub(crate) docs_url: &'static str,
    /// Which fields the kind takes, and which it requires.
    #[schema(value_type = Object)]
    pub(crate) config_schema: serde_json::Value,
}

/// A page of an app's audit events (`nextCursor` is `null` on the last).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub(crate) events: Vec<serde_json::Value>,
    #[schema(required = true)]
    pub(crate) next_cursor: Option<String>,
}

pub(crate) fn stored(rec: &AppRecord, public_url: &str) -> AppView {
    let branding = rec.branding.clone().unwrap_or_default();
    let mcp = format!(
        "{public_url}/apps/{}{}",
        rec.slug,
        rec.settings.mcp_path.as_deref().unwrap_or("/mcp")
    );
    AppView {
        id: rec.id.clone(),
        slug: rec.slug.clone(),
        name: rec.name.clone(),
        description: rec.description.clone(),
        status: rec.status.clone(),
        is_enabled: rec.is_enabled,
        template_id: rec.template_id.clone(),
        created_at: Some(rec.created_at.clone()),
        updated_at: Some(rec.updated_at.clone()),
        mcp_url: mcp,
        source: "api",
        read_only: false,
        branding,
    }
}

pub(crate) fn configured(
    app: &AppConfig,
    public_url: &str,
    branding: Option<&Branding>,
) -> AppView {
    AppView {
        id: app.id.clone(),
        slug: app.slug.clone(),
        name: app.name.clone(),
        description: app.description.clone(),
        status: "active".into(),
        is_enabled: true,
        template_id: None,
        created_at: None,
        updated_at: None,
        mcp_url: app.resource_url(public_url),
        source: "config",
        read_only: true,
        branding: branding.cloned().unwrap_or_default(),
    }
}

/// The settings of a config-file app, in the shape `GET …/config` returns.
pub(crate) fn configured_settings(app: &AppConfig, disabled_tools: Vec<String>) -> AppSettings {
    let u = &app.upstream;
    let h = &app.identity_headers;
    let name = |n: &Option<http::HeaderName>| n.as_ref().map(|n| n.as_str().to_string());
    AppSettings {
        upstream_url: format!(
            "{}://{}{}",
            if u.tls { "https" } else { "http" },
            u.authority,
            u.base_path
        ),
        mcp_path: Some(app.mcp_path.clone()),
        host: app.host.clone(),
        public: app.public,
        required_scopes: app.required_scopes.clone(),
        allowed_origins: app.allowed_origins.clone(),
        connect_timeout_ms: Some(app.connect_timeout.as_millis() as u64),
        read_timeout_ms: Some(app.read_timeout.as_millis() as u64),
        identity_headers: IdentityHeaderNames {
            subject: name(&h.subject),
            email: name(&h.email),
            name: name(&h.name),
            scopes: name(&h.scopes),
            client_id: name(&h.client_id),
            organization: name(&h.organization),
            groups: name(&h.groups),
        },
        disabled_tools,
        access: Some(app.access.to_raw().into()),
        limits: (!app.limits.is_empty()).then(|| app.limits.raw.clone()),
        tools: crate::config::tool_policy::to_policies(&app.tool_scopes),
    }
}
