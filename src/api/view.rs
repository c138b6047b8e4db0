//! How apps look on the wire (`{"app":{…}}`), for both stored apps and the
//! read-only apps of the config file.

use serde_json::{json, Value};

use crate::catalog::{AppRecord, AppSettings, IdentityHeaderNames};
use crate::config::AppConfig;
use crate::web::pages::branding::Branding;

pub fn stored(rec: &AppRecord, public_url: &str) -> Value {
    let branding = rec.branding.clone().unwrap_or_default();
    let mcp = format!(
        "{public_url}/apps/{}{}",
        rec.slug,
        rec.settings.mcp_path.as_deref().unwrap_or("/mcp")
    );
    json!({
        "id": rec.id, "slug": rec.slug, "name": rec.name, "description": rec.description,
        "status": rec.status, "isEnabled": rec.is_enabled, "templateId": rec.template_id,
        "createdAt": rec.created_at, "updatedAt": rec.updated_at,
        "mcpUrl": mcp, "source": "api", "readOnly": false, "branding": branding,
    })
}

pub fn configured(app: &AppConfig, public_url: &str, branding: Option<&Branding>) -> Value {
    let branding = branding.cloned().unwrap_or_default();
    json!({
        "id": app.id, "slug": app.slug, "name": app.name, "description": app.description,
        "status": "active", "isEnabled": true, "templateId": null,
        "createdAt": null, "updatedAt": null,
        "mcpUrl": app.resource_url(public_url), "source": "config", "readOnly": true,
        "branding": branding,
    })
}

/// The settings of a config-file app, in the shape `GET …/config` returns.
pub fn configured_settings(app: &AppConfig, disabled_tools: Vec<String>) -> AppSettings {
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
