//! `/api/v1/apps` and `/api/v1/apps/{appId}[/config]`: create, read, change
//! and delete apps. Stored settings are validated by the same code as the
//! config file's `[[apps]]`, and a change reaches every instance's route
//! table before its next request.

use serde::Deserialize;

use super::{store_err, templates, view, ApiCtx, Caller};
use crate::catalog::{self, live, AppRecord, AppSettings, ToolSwitches};
use crate::config::tool_policy;
use crate::config::AppConfig;
use crate::errors::ApiError;
use crate::store::StoreExt;
use crate::web::pages::branding::Branding;
use crate::web::LocalResponse;

/// An app as the caller may see it.
pub(crate) enum AppRef {
    Config(AppConfig),
    Stored(AppRecord),
}

impl AppRef {
    pub(crate) fn id(&self) -> &str {
        match self {
            AppRef::Config(a) => &a.id,
            AppRef::Stored(r) => &r.id,
        }
    }
}

/// Loads an app the caller may see; anything else is 404 (no existence leak).
pub(crate) async fn load(cx: &ApiCtx<'_>, user: &Caller, id: &str) -> Result<AppRef, ApiError> {
    if let Some(app) = cx.config.apps.iter().find(|a| a.id == id) {
        return Ok(AppRef::Config(app.clone()));
    }
    let rec: Option<AppRecord> = cx
        .store
        .get_json(&catalog::app_key(id))
        .await
        .map_err(store_err)?;
    match rec {
        Some(r) if user.admin || r.owner == user.subject() => Ok(AppRef::Stored(r)),
        _ => Err(ApiError::not_found("App")),
    }
}

/// Like [`load`], for changes: config-file apps are read-only to everyone but admins' tool/auth changes.
pub(crate) async fn load_owned(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
) -> Result<AppRecord, ApiError> {
    match load(cx, user, id).await? {
        AppRef::Stored(r) => Ok(r),
        AppRef::Config(_) => Err(read_only()),
    }
}

fn read_only() -> ApiError {
    ApiError::new(
        409,
        "read_only",
        "This app is declared in the gateway's config file and cannot be changed here",
    )
}

pub(crate) async fn list(cx: &ApiCtx<'_>, user: &Caller) -> Result<LocalResponse, ApiError> {
    let public = &cx.config.public_url;
    let mut apps: Vec<view::AppView> = cx
        .config
        .apps
        .iter()
        .map(|a| view::configured(a, public, cx.config.pages.branding.get(&a.id)))
        .collect();
    let stored = live::dynamic_apps(&cx.catalog).await.map_err(store_err)?;
    apps.extend(
        stored
            .iter()
            .filter(|r| user.admin || r.owner == user.subject())
            .map(|r| view::stored(r, public)),
    );
    Ok(LocalResponse::json(200, &view::AppList { apps }))
}

pub(crate) async fn get(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
) -> Result<LocalResponse, ApiError> {
    let public = &cx.config.public_url;
    let app = match load(cx, user, id).await? {
        AppRef::Config(a) => view::configured(&a, public, cx.config.pages.branding.get(&a.id)),
        AppRef::Stored(r) => view::stored(&r, public),
    };
    Ok(LocalResponse::json(200, &view::AppBody { app }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateApp {
    name: String,
    slug: Option<String>,
    description: Option<String>,
    template_id: Option<String>,
    upstream_url: Option<String>,
    config: Option<AppSettings>,
    is_enabled: Option<bool>,
    branding: Option<Branding>,
}

pub(crate) async fn create(
    cx: &ApiCtx<'_>,
    user: &Caller,
    body: CreateApp,
) -> Result<LocalResponse, ApiError> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::validation("name", "must be 1-200 characters"));
    }
    let slug = body.slug.unwrap_or_else(|| slugify(&name));
    let settings = match (body.config, body.upstream_url, &body.template_id) {
        (Some(c), None, _) => c,
        (None, Some(url), Some(t)) => templates::find(t)
            .ok_or_else(|| ApiError::validation("templateId", format!("unknown template `{t}`")))?
            .settings(url),
        (None, Some(url), None) => templates::TEMPLATES[0].settings(url),
        (Some(_), Some(_), _) => {
            return Err(ApiError::validation(
                "upstreamUrl",
                "give upstreamUrl or config, not both",
            ))
        }
        (None, None, _) => {
            return Err(ApiError::validation(
                "upstreamUrl",
                "is required (or a full config)",
            ))
        }
    };
    let now = catalog::now_rfc3339();
    let mut rec = AppRecord {
        id: catalog::new_id("app")?,
        slug,
        name,
        description: body.description,
        status: "active".into(),
        is_enabled: body.is_enabled.unwrap_or(true),
        template_id: body.template_id,
        owner: user.subject().to_string(),
        created_at: now.clone(),
        updated_at: now,
        settings,
        branding: checked_branding(cx, body.branding)?,
    };
    validate(&rec)?;
    check_upstream(cx, &rec).await?;
    if cx.config.apps.iter().any(|a| a.slug == rec.slug) {
        return Err(ApiError::new(
            409,
            "conflict",
            format!("slug `{}` is taken", rec.slug),
        ));
    }
    admit(cx, user, &mut rec, None).await?;
    // The slug reservation makes two concurrent creations of one slug safe.
    let reserved = cx
        .store
        .put_if_absent(&slug_key(&rec.slug), rec.id.as_bytes(), None)
        .await
        .map_err(store_err)?;
    if !reserved {
        release_host(cx, &rec).await;
        return Err(ApiError::new(
            409,
            "conflict",
            format!("slug `{}` is taken", rec.slug),
        ));
    }
    write(cx, &rec, 201).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PatchApp {
    name: Option<String>,
    description: Option<String>,
    is_enabled: Option<bool>,
    template_id: Option<String>,
    status: Option<String>,
    /// Replaces the whole branding; `{}` removes it.
    branding: Option<Branding>,
}

pub(crate) async fn patch(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
    body: PatchApp,
) -> Result<LocalResponse, ApiError> {
    let mut rec = load_owned(cx, user, id).await?;
    if let Some(n) = body.name {
        if n.trim().is_empty() || n.len() > 200 {
            return Err(ApiError::validation("name", "must be 1-200 characters"));
        }
        rec.name = n.trim().to_string();
    }
    if let Some(d) = body.description {
        rec.description = Some(d);
    }
    if let Some(b) = body.branding {
        rec.branding = checked_branding(cx, Some(b))?;
    }
    if let Some(e) = body.is_enabled {
        rec.is_enabled = e;
    }
    if let Some(t) = body.template_id {
        rec.template_id = Some(t);
    }
    if let Some(s) = body.status {
        if !matches!(s.as_str(), "active" | "paused" | "archived") {
            return Err(ApiError::validation(
                "status",
                "must be active, paused or archived",
            ));
        }
        rec.status = s;
    }
    save(cx, rec).await
}

pub(crate) async fn delete(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
) -> Result<LocalResponse, ApiError> {
    let rec = load_owned(cx, user, id).await?;
    for (key, bytes) in cx
        .store
        .scan_prefix(&catalog::conn_prefix(id), 10_000)
        .await
        .map_err(store_err)?
    {
        if let Ok(c) = serde_json::from_slice::<catalog::Connection>(&bytes) {
            if let Some(r) = c.secret_ref {
                cx.store
                    .delete(&catalog::secrets::key(&r))
                    .await
                    .map_err(store_err)?;
            }
        }
        cx.store.delete(&key).await.map_err(store_err)?;
    }
    cx.store
        .delete(&catalog::app_key(id))
        .await
        .map_err(store_err)?;
    cx.store
        .delete(&slug_key(&rec.slug))
        .await
        .map_err(store_err)?;
    release_host(cx, &rec).await;
    cx.catalog_changed().await;
    Ok(LocalResponse::json(200, &view::Deleted { deleted: true }))
}

pub(crate) async fn get_config(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
) -> Result<LocalResponse, ApiError> {
    let settings = match load(cx, user, id).await? {
        AppRef::Stored(r) => {
            let mut settings = r.settings.clone();
            if let Ok(app) = live::to_app_config(&r) {
                settings.access = Some(app.access.to_raw().into());
            }
            settings
        }
        AppRef::Config(a) => {
            let switches = tool_switches(cx, &a.id).await?;
            let mut settings = view::configured_settings(&a, switches.disabled_tools);
            // The policy in force: the TOML's plus what the commands API added.
            settings.tools = tool_policy::to_policies(&tool_policy::merged(
                &a.tool_scopes,
                &switches.tool_scopes,
            ));
            settings
        }
    };
    Ok(LocalResponse::json(
        200,
        &view::ConfigBody { config: settings },
    ))
}

pub(crate) async fn put_config(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
    settings: AppSettings,
) -> Result<LocalResponse, ApiError> {
    let mut rec = load_owned(cx, user, id).await?;
    let before = rec.settings.host.clone();
    rec.settings = settings;
    admit(cx, user, &mut rec, before.as_deref()).await?;
    check_upstream(cx, &rec).await?;
    let settings = rec.settings.clone();
    save(cx, rec).await?;
    Ok(LocalResponse::json(
        200,
        &view::ConfigBody { config: settings },
    ))
}

pub(crate) async fn save(cx: &ApiCtx<'_>, mut rec: AppRecord) -> Result<LocalResponse, ApiError> {
    rec.updated_at = catalog::now_rfc3339();
    write(cx, &rec, 200).await
}

async fn write(cx: &ApiCtx<'_>, rec: &AppRecord, status: u16) -> Result<LocalResponse, ApiError> {
    cx.store
        .put_json(&catalog::app_key(&rec.id), rec, None)
        .await
        .map_err(store_err)?;
    cx.catalog_changed().await;
    Ok(LocalResponse::json(
        status,
        &view::AppBody {
            app: view::stored(rec, &cx.config.public_url),
        },
    ))
}

/// Tool switches of a config-file app.
pub(crate) async fn tool_switches(cx: &ApiCtx<'_>, id: &str) -> Result<ToolSwitches, ApiError> {
    Ok(cx
        .store
        .get_json(&catalog::tools_key(id))
        .await
        .map_err(store_err)?
        .unwrap_or_default())
}

/// Checks an app record before it is stored: its settings validate, its
/// access policy is written out in full (so `GET …/config` shows what
/// applies), and its `host` is one the caller may claim. `before` is the
/// host the stored record had.
async fn admit(
    cx: &ApiCtx<'_>,
    user: &Caller,
    rec: &mut AppRecord,
    before: Option<&str>,
) -> Result<(), ApiError> {
    let app = validate(rec)?;
    rec.settings.access = Some(app.access.to_raw().into());
    rec.settings.host = app.host.clone();
    let Some(host) = app.host.as_deref() else {
        if let Some(old) = before {
            release(cx, old, &rec.id).await;
        }
        return Ok(());
    };
    if before == Some(host) {
        return Ok(());
    }
    // Host routing takes a whole name's traffic: an operator's decision.
    if !user.admin {
        return Err(ApiError::new(
            403,
            "forbidden",
            "Only gateway admins may route an app by host",
        )
        .with_details(serde_json::json!({ "field": "config.host" })));
    }
    let taken = || {
        ApiError::new(409, "conflict", format!("host `{host}` is already in use"))
            .with_details(serde_json::json!({ "field": "config.host" }))
    };
    if crate::config::validate::is_public_host(&cx.config.public_url, host)
        || cx
            .config
            .apps
            .iter()
            .any(|a| a.host.as_deref() == Some(host))
    {
        return Err(taken());
    }
    // The reservation makes two concurrent claims of one host safe.
    let claimed = cx
        .store
        .put_if_absent(&host_key(host), rec.id.as_bytes(), None)
        .await
        .map_err(store_err)?;
    if !claimed {
        let holder = cx.store.get(&host_key(host)).await.map_err(store_err)?;
        if holder.as_deref() != Some(rec.id.as_bytes()) {
            return Err(taken());
        }
    }
    if let Some(old) = before {
        release(cx, old, &rec.id).await;
    }
    Ok(())
}

/// Frees a host reservation if `app_id` holds it.
async fn release(cx: &ApiCtx<'_>, host: &str, app_id: &str) {
    let key = host_key(host);
    if let Ok(Some(holder)) = cx.store.get(&key).await {
        if holder == app_id.as_bytes() {
            let _ = cx.store.delete(&key).await;
        }
    }
}

async fn release_host(cx: &ApiCtx<'_>, rec: &AppRecord) {
    if let Some(h) = &rec.settings.host {
        release(cx, h, &rec.id).await;
    }
}

fn host_key(host: &str) -> String {
    crate::store::keys::host(host)
}

/// Branding as stored: validated against `[pages] logo_hosts` (422 naming
/// the field), trimmed, and None when nothing is set.
fn checked_branding(cx: &ApiCtx<'_>, b: Option<Branding>) -> Result<Option<Branding>, ApiError> {
    let Some(mut b) = b else { return Ok(None) };
    b.validate(&cx.config.pages.logo_hosts)
        .map_err(|e| ApiError::validation(e.field(), e.to_string()))?;
    b.display_name = b.display_name.map(|n| n.trim().to_string());
    b.accent_color = b.accent_color.map(|c| c.to_ascii_lowercase());
    Ok((b != Branding::default()).then_some(b))
}

/// Validation errors are 422 naming the field in the API's own (camelCase) terms.
fn validate(rec: &AppRecord) -> Result<AppConfig, ApiError> {
    live::to_app_config(rec).map_err(|(field, msg)| {
        let field = match field.as_str() {
            "upstream" => "upstreamUrl".to_string(),
            "slug" | "id" | "name" => field,
            other => format!("config.{}", camel(other)),
        };
        ApiError::validation(&field, msg)
    })
}

/// A user's upstream must pass the egress policy, judged on every address
/// its host resolves to now (the route table re-checks at each rebuild).
async fn check_upstream(cx: &ApiCtx<'_>, rec: &AppRecord) -> Result<(), ApiError> {
    let policy = cx.egress.policy();
    policy
        .check_url(&rec.settings.upstream_url)
        .await
        .map_err(|e| ApiError::validation("upstreamUrl", e.to_string()))
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut up = false;
    for c in snake.chars() {
        match c {
            '_' => up = true,
            c if up => {
                out.extend(c.to_uppercase());
                up = false;
            }
            c => out.push(c),
        }
    }
    out
}

fn slug_key(slug: &str) -> String {
    crate::store::keys::slug(slug)
}

pub(crate) fn slugify(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let s = if s.is_empty() { "app" } else { s };
    s.chars().take(64).collect()
}
