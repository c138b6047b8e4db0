//! `/api/v1/apps/{appId}/auth[/{authId}]`: upstream auth connections in the
//! exact shapes of seed `002_*`. Secret fields (`clientSecret`, `apiKey`,
//! `accessToken`, `password`, registration tokens) are accepted on write,
//! stored encrypted under `secretRef`, and never returned.

use serde::Deserialize;

use super::apps::{self, AppRef};
use super::view::{AuthBody, AuthList};
use super::{store_err, ApiCtx, Caller};
use crate::catalog::{self, Connection, ConnectionConfig, ConnectionSecrets};
use crate::errors::ApiError;
use crate::store::StoreExt;
use crate::web::LocalResponse;

mod check;
pub(crate) mod providers;

/// A connection config as written by a client: public and secret fields.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IncomingConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    refresh_url: Option<String>,
    registration_endpoint: Option<String>,
    registration_auth_mode: Option<String>,
    client_id: Option<String>,
    header_name: Option<String>,
    header_prefix: Option<String>,
    query_param_name: Option<String>,
    username: Option<String>,
    scopes: Option<Vec<String>>,
    audience: Option<String>,
    resource: Option<String>,
    requested_token_type: Option<String>,
    scope_separator: Option<String>,
    client_auth_method: Option<String>,
    token_content_type: Option<String>,
    authorization_params: Option<std::collections::BTreeMap<String, String>>,
    pkce: Option<bool>,
    provider: Option<String>,
    organization_scoped: Option<bool>,
    enabled: Option<bool>,
    is_default: Option<bool>,
    #[serde(flatten)]
    secrets: IncomingSecrets,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct IncomingSecrets {
    client_secret: Option<String>,
    api_key: Option<String>,
    access_token: Option<String>,
    password: Option<String>,
    registration_initial_access_token: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WriteConnection {
    provider_key: Option<String>,
    name: Option<String>,
    key: Option<String>,
    /// Accepted for compatibility; the gateway sets status by validating.
    #[allow(dead_code)]
    status: Option<String>,
    #[serde(default)]
    config: Option<IncomingConfig>,
    grants: Option<Vec<String>>,
}

async fn app_for_change(cx: &ApiCtx<'_>, user: &Caller, app_id: &str) -> Result<String, ApiError> {
    match apps::load(cx, user, app_id).await? {
        AppRef::Stored(r) => Ok(r.id),
        // Platform apps from the config file take connections from admins only.
        AppRef::Config(a) if user.admin => Ok(a.id),
        AppRef::Config(_) => Err(ApiError::new(
            403,
            "forbidden",
            "Only gateway admins may change a config-file app",
        )),
    }
}

async fn all(cx: &ApiCtx<'_>, app_id: &str) -> Result<Vec<Connection>, ApiError> {
    let mut out: Vec<Connection> = cx
        .store
        .scan_prefix(&catalog::conn_prefix(app_id), 10_000)
        .await
        .map_err(store_err)?
        .into_iter()
        .filter_map(|(_, b)| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) async fn list(
    cx: &ApiCtx<'_>,
    user: &Caller,
    app_id: &str,
) -> Result<LocalResponse, ApiError> {
    let app = apps::load(cx, user, app_id).await?;
    let conns = all(cx, app.id()).await?;
    Ok(LocalResponse::json(
        200,
        &AuthList {
            auth: conns,
            providers: providers::list(),
        },
    ))
}

async fn load(cx: &ApiCtx<'_>, app_id: &str, auth_id: &str) -> Result<Connection, ApiError> {
    cx.store
        .get_json(&catalog::conn_key(app_id, auth_id))
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::not_found("Auth connection"))
}

pub(crate) async fn get(
    cx: &ApiCtx<'_>,
    user: &Caller,
    app_id: &str,
    auth_id: &str,
) -> Result<LocalResponse, ApiError> {
    let app = apps::load(cx, user, app_id).await?;
    let conn = load(cx, app.id(), auth_id).await?;
    Ok(LocalResponse::json(200, &AuthBody { auth: conn }))
}

pub(crate) async fn create(
    cx: &ApiCtx<'_>,
    user: &Caller,
    app_id: &str,
    body: WriteConnection,
) -> Result<LocalResponse, ApiError> {
    let app_id = app_for_change(cx, user, app_id).await?;
    let incoming = body
        .config
        .ok_or_else(|| ApiError::validation("config", "is required"))?;
    let provider = providers::resolve(body.provider_key.as_deref(), incoming.kind.as_deref())?;
    let existing = all(cx, &app_id).await?;
    let name = body.name.unwrap_or_else(|| provider.name.to_string());
    let mut conn = Connection {
        id: catalog::new_id("auth")?,
        app_id: app_id.clone(),
        provider_id: provider.id.into(),
        provider_key: provider.key.into(),
        provider_name: provider.name.into(),
        key: body.key.unwrap_or_else(|| apps::slugify(&name)),
        name,
        status: "draft".into(),
        config: ConnectionConfig {
            kind: provider.kind.into(),
            enabled: true,
            is_default: existing.is_empty(),
            ..Default::default()
        },
        secret_ref: None,
        grants: body.grants.unwrap_or_default(),
        last_validated_at: None,
        last_error: None,
    };
    let mut secrets = ConnectionSecrets::default();
    apply(&mut conn.config, &mut secrets, incoming)?;
    check::shape(&conn.config, &secrets)?;
    save(cx, &mut conn, secrets, true).await?;
    Ok(LocalResponse::json(201, &AuthBody { auth: conn }))
}

pub(crate) async fn patch(
    cx: &ApiCtx<'_>,
    user: &Caller,
    app_id: &str,
    auth_id: &str,
    body: WriteConnection,
) -> Result<LocalResponse, ApiError> {
    let app_id = app_for_change(cx, user, app_id).await?;
    let mut conn = load(cx, &app_id, auth_id).await?;
    let mut secrets = match &conn.secret_ref {
        Some(r) => catalog::secrets::get(cx.store.as_ref(), cx.vault.as_deref(), r).await?,
        None => ConnectionSecrets::default(),
    };
    if let Some(n) = body.name {
        conn.name = n;
    }
    if let Some(k) = body.key {
        conn.key = k;
    }
    if let Some(g) = body.grants {
        conn.grants = g;
    }
    if let Some(incoming) = body.config {
        if incoming
            .kind
            .as_deref()
            .is_some_and(|k| k != conn.config.kind)
        {
            return Err(ApiError::validation(
                "config.type",
                "cannot change; create a new connection",
            ));
        }
        apply(&mut conn.config, &mut secrets, incoming)?;
    }
    check::shape(&conn.config, &secrets)?;
    save(cx, &mut conn, secrets, false).await?;
    Ok(LocalResponse::json(200, &AuthBody { auth: conn }))
}

pub(crate) async fn delete(
    cx: &ApiCtx<'_>,
    user: &Caller,
    app_id: &str,
    auth_id: &str,
) -> Result<LocalResponse, ApiError> {
    let app_id = app_for_change(cx, user, app_id).await?;
    let conn = load(cx, &app_id, auth_id).await?;
    if let Some(r) = &conn.secret_ref {
        cx.store
            .delete(&catalog::secrets::key(r))
            .await
            .map_err(store_err)?;
    }
    cx.store
        .delete(&catalog::conn_key(&app_id, auth_id))
        .await
        .map_err(store_err)?;
    cx.catalog_changed().await;
    Ok(LocalResponse::json(
        200,
        &super::view::Deleted { deleted: true },
    ))
}

/// Validates, stores the secrets (encrypted) and the record, keeps one
/// default per app, and tells every instance.
async fn save(
    cx: &ApiCtx<'_>,
    conn: &mut Connection,
    mut secrets: ConnectionSecrets,
    created: bool,
) -> Result<(), ApiError> {
    check::identity_provider(cx, &conn.config)?;
    check::register_upstream(cx, conn, &mut secrets).await?;
    check::status(cx, conn, &secrets).await;
    if !secrets.is_empty() {
        if conn.secret_ref.is_none() {
            conn.secret_ref = Some(catalog::new_id("sec")?);
        }
        let reference = conn.secret_ref.clone().unwrap_or_default();
        catalog::secrets::put(cx.store.as_ref(), cx.vault.as_deref(), &reference, &secrets).await?;
    }
    if conn.config.is_default {
        for mut other in all(cx, &conn.app_id)
            .await?
            .into_iter()
            .filter(|c| c.id != conn.id && c.config.is_default)
        {
            other.config.is_default = false;
            cx.store
                .put_json(&catalog::conn_key(&other.app_id, &other.id), &other, None)
                .await
                .map_err(store_err)?;
        }
    }
    cx.store
        .put_json(&catalog::conn_key(&conn.app_id, &conn.id), conn, None)
        .await
        .map_err(store_err)?;
    let _ = created;
    cx.catalog_changed().await;
    Ok(())
}

fn apply(
    c: &mut ConnectionConfig,
    s: &mut ConnectionSecrets,
    i: IncomingConfig,
) -> Result<(), ApiError> {
    macro_rules! set {
        ($($f:ident),*) => { $( if i.$f.is_some() { c.$f = i.$f; } )* };
    }
    set!(
        authorization_endpoint,
        token_endpoint,
        refresh_url,
        registration_endpoint,
        registration_auth_mode,
        client_id,
        header_name,
        header_prefix,
        query_param_name,
        username,
        scopes,
        audience,
        resource,
        requested_token_type,
        scope_separator,
        client_auth_method,
        token_content_type,
        authorization_params,
        pkce,
        provider,
        organization_scoped
    );
    if let Some(e) = i.enabled {
        c.enabled = e;
    }
    if let Some(d) = i.is_default {
        c.is_default = d;
    }
    s.merge(ConnectionSecrets {
        client_secret: i.secrets.client_secret,
        api_key: i.secrets.api_key,
        access_token: i.secrets.access_token,
        password: i.secrets.password,
        registration_initial_access_token: i.secrets.registration_initial_access_token,
        registration_access_token: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stored_connection_never_serialises_a_secret_field() {
        let mut c = ConnectionConfig {
            kind: "oauth".into(),
            ..Default::default()
        };
        let mut s = ConnectionSecrets::default();
        let incoming: IncomingConfig = serde_json::from_value(json!({
            "type": "oauth", "tokenEndpoint": "https://idp/token", "clientId": "c",
            "clientSecret": "s3cret", "apiKey": "k3y", "accessToken": "t0k", "password": "pw"
        }))
        .unwrap();
        apply(&mut c, &mut s, incoming).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        for secret in ["s3cret", "k3y", "t0k", "pw\""] {
            assert!(!text.contains(secret), "{text}");
        }
        for field in ["clientSecret", "apiKey", "accessToken", "password"] {
            assert!(!text.contains(field), "{text}");
        }
        assert_eq!(s.client_secret.as_deref(), Some("s3cret"));
    }
}
