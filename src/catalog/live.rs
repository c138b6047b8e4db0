//! The live route table: config-file apps plus the apps, connections and
//! tool switches in the store, rebuilt off the hot path by the one reloader
//! task (at start, after a catalog write here, when another instance
//! broadcasts a change, and every 30 s for upstream DNS; see
//! [`super::reloader`]) and swapped in atomically.
//!
//! Credential objects survive a rebuild when their connection did not
//! change, so a client-credentials token is not refetched on every reload.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::{AppRecord, Connection, ToolSwitches};
use crate::catalog::route::{RouteSpec, RouteTable};
use crate::config::raw::RawApp;
use crate::config::Config;
use crate::config::{auth::RawIdentityHeaders, validate, AppConfig};
use crate::credentials::token_exchange::SubjectTokens;
use crate::credentials::{oauth::OAuthContext, Injection};
use crate::egress::EgressClient;
use crate::store::vault::Vault;
use crate::store::Store;
use crate::store::{StoreError, StoreExt};

/// Injections by connection id, with the connection they were built from.
#[derive(Default)]
pub(crate) struct InjectionCache(Mutex<HashMap<String, (String, Arc<Injection>)>>);

/// The handles the catalog reads and builds with, lent by whoever owns them
/// (the process state): the catalog never reaches back up for them.
pub(crate) struct CatalogCtx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) store: &'a Arc<dyn Store>,
    pub(crate) egress: &'a EgressClient,
    pub(crate) dns: &'a super::route::UpstreamDns,
    pub(crate) vault: &'a Option<Arc<Vault>>,
    pub(crate) clock: &'a crate::util::clock::Clock,
    pub(crate) injections: &'a InjectionCache,
    /// Gateway token mode: the sessions' IdP tokens (token exchange).
    pub(crate) sessions: &'a Option<Arc<dyn SubjectTokens>>,
}

/// Upper bound on catalog records read per rebuild.
const MAX_RECORDS: usize = 100_000;

pub(crate) async fn build(state: &CatalogCtx<'_>) -> Result<RouteTable, StoreError> {
    let records = dynamic_apps(state).await?;
    let mut conns: HashMap<String, Vec<Connection>> = HashMap::new();
    for (_, bytes) in state
        .store
        .scan_prefix(crate::store::keys::CONNECTIONS, MAX_RECORDS)
        .await?
    {
        if let Ok(c) = serde_json::from_slice::<Connection>(&bytes) {
            conns.entry(c.app_id.clone()).or_default().push(c);
        }
    }
    let mut specs = Vec::new();
    for app in &state.config.apps {
        let switches: ToolSwitches = state
            .store
            .get_json(&super::tools_key(&app.id))
            .await?
            .unwrap_or_default();
        let app_id = app.id.clone();
        let mut app = app.clone();
        if !switches.tool_scopes.is_empty() {
            app.tool_scopes =
                crate::config::tool_policy::merged(&app.tool_scopes, &switches.tool_scopes);
        }
        specs.push(
            spec(
                state,
                Arc::new(app),
                conns.get(&app_id),
                switches.disabled_tools,
                true,
            )
            .await,
        );
    }
    for rec in records.into_iter().filter(|r| r.is_enabled) {
        match to_app_config(&rec) {
            Ok(app) => {
                let disabled = rec.settings.disabled_tools.clone();
                specs.push(spec(state, Arc::new(app), conns.get(&rec.id), disabled, false).await);
            }
            Err((field, msg)) => {
                tracing::warn!(app = %rec.id, %field, %msg, "skipping an invalid stored app")
            }
        }
    }
    Ok(RouteTable::build(
        &state.config.public_url,
        &state.config.auth.audiences,
        state.egress.policy(),
        state.dns,
        specs,
    )
    .await)
}

pub(crate) async fn dynamic_apps(state: &CatalogCtx<'_>) -> Result<Vec<AppRecord>, StoreError> {
    let mut out: Vec<AppRecord> = state
        .store
        .scan_prefix(crate::store::keys::APPS, MAX_RECORDS)
        .await?
        .into_iter()
        .filter_map(|(_, b)| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

async fn spec(
    state: &CatalogCtx<'_>,
    app: Arc<AppConfig>,
    conns: Option<&Vec<Connection>>,
    disabled: Vec<String>,
    trusted: bool,
) -> RouteSpec {
    let injection = match conns.and_then(|c| default_connection(c)) {
        Some(conn) => injection(state, conn).await,
        None => Arc::new(Injection::None),
    };
    RouteSpec {
        app,
        injection,
        disabled_tools: Arc::new(disabled.into_iter().collect::<HashSet<_>>()),
        trusted,
    }
}

/// The connection requests use: the enabled default, else the first enabled.
pub fn default_connection(conns: &[Connection]) -> Option<&Connection> {
    conns
        .iter()
        .filter(|c| c.config.enabled)
        .min_by_key(|c| (!c.config.is_default, c.id.clone()))
}

async fn injection(state: &CatalogCtx<'_>, conn: &Connection) -> Arc<Injection> {
    let fingerprint = serde_json::to_string(conn).unwrap_or_default();
    if let Some((fp, inj)) = state
        .injections
        .0
        .lock()
        .ok()
        .and_then(|m| m.get(&conn.id).cloned())
    {
        if fp == fingerprint {
            return inj;
        }
    }
    let secrets = match &conn.secret_ref {
        Some(r) => {
            match super::secrets::get(state.store.as_ref(), state.vault.as_deref(), r).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(connection = %conn.id, error = %e, "connection secrets unavailable");
                    return Arc::new(Injection::None);
                }
            }
        }
        None => Default::default(),
    };
    let built = match Injection::build(conn, &secrets, &oauth_context(state)) {
        Ok(i) => Arc::new(i),
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "connection cannot be used");
            Arc::new(Injection::None)
        }
    };
    if let Ok(mut m) = state.injections.0.lock() {
        m.insert(conn.id.clone(), (fingerprint, built.clone()));
    }
    built
}

pub(crate) fn oauth_context(state: &CatalogCtx<'_>) -> OAuthContext {
    OAuthContext {
        egress: state.egress.clone(),
        store: state.store.clone(),
        vault: state.vault.clone(),
        public_url: state.config.public_url.clone(),
        sessions: state.sessions.clone(),
        clock: state.clock.clone(),
        workos_api: crate::credentials::workos_pipes::api_base(state.config),
    }
}

/// Validates stored settings exactly as the config file's `[[apps]]` are.
pub fn to_app_config(rec: &AppRecord) -> Result<AppConfig, validate::FieldError> {
    let s = &rec.settings;
    let h = &s.identity_headers;
    validate::app(
        RawApp {
            id: rec.id.clone(),
            slug: rec.slug.clone(),
            name: Some(rec.name.clone()),
            description: rec.description.clone(),
            upstream: s.upstream_url.clone(),
            mcp_path: s.mcp_path.clone(),
            host: s.host.clone(),
            public: s.public,
            allowed_origins: s.allowed_origins.clone(),
            connect_timeout_ms: s.connect_timeout_ms,
            read_timeout_ms: s.read_timeout_ms,
            // Stored apps follow `[server]`'s stream settings.
            stream_idle_timeout_seconds: None,
            stream_heartbeat_seconds: None,
            required_scopes: s.required_scopes.clone(),
            identity_headers: Some(RawIdentityHeaders {
                subject: h.subject.clone(),
                email: h.email.clone(),
                name: h.name.clone(),
                scopes: h.scopes.clone(),
                client_id: h.client_id.clone(),
                organization: h.organization.clone(),
                groups: h.groups.clone(),
            }),
            access: s.access.clone().map(Into::into),
            limits: s.limits.clone(),
            // API-created apps never record arguments (config-file opt-in only).
            audit: None,
            // Branding is checked apart (api::apps), with the logo hosts.
            branding: None,
            tools: s.tools.clone(),
        },
        Some(&rec.owner),
    )
}
