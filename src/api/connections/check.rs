//! Checking a connection: its shape (422 naming the field), upstream dynamic
//! client registration (RFC 7591) when asked for, and its validation status
//! (`draft` → `valid` | `invalid` with `lastValidatedAt` and `lastError`).
//!
//! Every endpoint here is the user's URL: it is called through the egress
//! policy, and a failure is reported by class (`connect`, `timeout`, `tls`,
//! `forbidden address (loopback)`, `status 401`, `invalid response`), never
//! with the bytes the endpoint answered, so a connection cannot be used to
//! read an internal service (OWASP SSRF).

use serde::Deserialize;

use crate::api::ApiCtx;
use crate::catalog::{self, Connection, ConnectionConfig, ConnectionSecrets};
use crate::credentials::client_credentials::ClientCredentials;
use crate::credentials::oauth::{user_token_request, ProviderSettings, TokenCallError};
use crate::credentials::token_exchange::TokenExchange;
use crate::egress::OutboundFailure;
use crate::errors::ApiError;

fn url(field: &str, v: &Option<String>) -> Result<(), ApiError> {
    match v {
        Some(u) if !url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) => {
            Err(ApiError::validation(field, "must be an http(s) URL"))
        }
        _ => Ok(()),
    }
}

pub(crate) fn shape(c: &ConnectionConfig, s: &ConnectionSecrets) -> Result<(), ApiError> {
    let need = |ok: bool, field: &str, why: &str| {
        if ok {
            Ok(())
        } else {
            Err(ApiError::validation(field, why))
        }
    };
    match c.kind.as_str() {
        "api_key" => {
            need(
                s.api_key.as_deref().is_some_and(|k| !k.is_empty()),
                "config.apiKey",
                "is required",
            )?;
            need(
                c.header_name.is_some() != c.query_param_name.is_some(),
                "config.headerName",
                "set exactly one of headerName or queryParamName",
            )?;
            if let Some(h) = &c.header_name {
                let ok = http::HeaderName::from_bytes(h.as_bytes()).is_ok_and(|n| {
                    !matches!(
                        n.as_str(),
                        "host" | "content-length" | "transfer-encoding" | "connection"
                    )
                });
                need(
                    ok,
                    "config.headerName",
                    "must be a header name other than Host or a hop-by-hop header",
                )?;
            }
            if let (Some(p), Some(k)) = (&c.header_prefix, &s.api_key) {
                need(
                    http::HeaderValue::from_str(&format!("{p}{k}")).is_ok(),
                    "config.headerPrefix",
                    "must be printable ASCII",
                )?;
            }
            Ok(())
        }
        "bearer" => need(
            s.access_token.as_deref().is_some_and(|t| !t.is_empty()),
            "config.accessToken",
            "is required",
        ),
        "basic" => {
            need(
                c.username
                    .as_deref()
                    .is_some_and(|u| !u.is_empty() && !u.contains(':')),
                "config.username",
                "is required and cannot contain ':'",
            )?;
            need(s.password.is_some(), "config.password", "is required")
        }
        "oauth" => {
            url("config.tokenEndpoint", &c.token_endpoint)?;
            url("config.authorizationEndpoint", &c.authorization_endpoint)?;
            url("config.registrationEndpoint", &c.registration_endpoint)?;
            url("config.refreshUrl", &c.refresh_url)?;
            need(
                c.token_endpoint.is_some(),
                "config.tokenEndpoint",
                "is required",
            )?;
            need(
                c.client_id.is_some() || c.registration_endpoint.is_some(),
                "config.clientId",
                "is required (or a registrationEndpoint)",
            )?;
            if let Some(m) = &c.registration_auth_mode {
                need(
                    matches!(m.as_str(), "none" | "initial_access_token"),
                    "config.registrationAuthMode",
                    "must be none or initial_access_token",
                )?;
                need(
                    m != "initial_access_token" || s.registration_initial_access_token.is_some(),
                    "config.registrationInitialAccessToken",
                    "is required with registrationAuthMode initial_access_token",
                )?;
            }
            if let Some(m) = &c.client_auth_method {
                need(
                    matches!(m.as_str(), "client_secret_post" | "client_secret_basic"),
                    "config.clientAuthMethod",
                    "must be client_secret_post or client_secret_basic",
                )?;
            }
            if let Some(t) = &c.token_content_type {
                need(
                    matches!(
                        t.as_str(),
                        "application/x-www-form-urlencoded" | "application/json"
                    ),
                    "config.tokenContentType",
                    "must be application/x-www-form-urlencoded or application/json",
                )?;
            }
            // Client credentials need a secret; per-user flows may be PKCE-only.
            need(
                c.authorization_endpoint.is_some()
                    || s.client_secret.is_some()
                    || c.registration_endpoint.is_some(),
                "config.clientSecret",
                "is required for client credentials (no authorizationEndpoint)",
            )
        }
        "token_exchange" => token_exchange_shape(c),
        "workos_pipes" => {
            need(
                c.provider
                    .as_deref()
                    .is_some_and(crate::credentials::workos_pipes::valid_provider_slug),
                "config.provider",
                "is required: the WorkOS Pipes provider slug (letters, digits, - and _)",
            )?;
            need(
                s.api_key.as_deref().is_some_and(|k| !k.is_empty()),
                "config.apiKey",
                "is required: the WorkOS API key",
            )
        }
        other => Err(ApiError::validation(
            "config.type",
            format!("unknown type `{other}`"),
        )),
    }
}

/// WorkOS Pipes knows users by their WorkOS id: only a gateway signing
/// users in with WorkOS SSO (`idp.kind = "workos_sso"`) has it as subject.
pub(crate) fn identity_provider(cx: &ApiCtx<'_>, c: &ConnectionConfig) -> Result<(), ApiError> {
    if c.kind == "workos_pipes" && crate::credentials::workos_pipes::api_base(cx.config).is_none() {
        return Err(ApiError::validation(
            "config.type",
            "workos_pipes needs the gateway to sign users in with WorkOS (idp.kind = \"workos_sso\")",
        ));
    }
    Ok(())
}

/// RFC 8693 §2.1: a token endpoint, a target (`audience` and/or an
/// absolute `resource` URI without fragment) and client authentication as
/// for the other OAuth types.
fn token_exchange_shape(c: &ConnectionConfig) -> Result<(), ApiError> {
    let need = |ok: bool, field: &str, why: &str| {
        ok.then_some(())
            .ok_or_else(|| ApiError::validation(field, why))
    };
    url("config.tokenEndpoint", &c.token_endpoint)?;
    need(
        c.token_endpoint.is_some(),
        "config.tokenEndpoint",
        "is required",
    )?;
    need(
        c.client_id.as_deref().is_some_and(|i| !i.is_empty()),
        "config.clientId",
        "is required",
    )?;
    need(
        c.audience.as_deref().is_some_and(|a| !a.is_empty()) || c.resource.is_some(),
        "config.audience",
        "set audience or resource (or both)",
    )?;
    if let Some(r) = &c.resource {
        need(
            url::Url::parse(r).is_ok_and(|u| u.fragment().is_none()),
            "config.resource",
            "must be an absolute URI without a fragment",
        )?;
    }
    if let Some(t) = &c.requested_token_type {
        need(
            t.starts_with("urn:") && t.len() < 200,
            "config.requestedTokenType",
            "must be a token type URI (urn:ietf:params:oauth:token-type:…)",
        )?;
    }
    for (field, set) in [
        (
            "config.authorizationEndpoint",
            c.authorization_endpoint.is_some(),
        ),
        (
            "config.registrationEndpoint",
            c.registration_endpoint.is_some(),
        ),
        ("config.refreshUrl", c.refresh_url.is_some()),
    ] {
        need(!set, field, "is not used by token_exchange")?;
    }
    if let Some(m) = &c.client_auth_method {
        need(
            matches!(m.as_str(), "client_secret_post" | "client_secret_basic"),
            "config.clientAuthMethod",
            "must be client_secret_post or client_secret_basic",
        )?;
    }
    if let Some(t) = &c.token_content_type {
        need(
            matches!(
                t.as_str(),
                "application/x-www-form-urlencoded" | "application/json"
            ),
            "config.tokenContentType",
            "must be application/x-www-form-urlencoded or application/json",
        )?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    registration_access_token: Option<String>,
    #[serde(default)]
    registration_client_uri: Option<String>,
}

/// Registers the gateway at the upstream (RFC 7591) when the connection
/// names a registration endpoint and has no client yet.
pub(crate) async fn register_upstream(
    cx: &ApiCtx<'_>,
    conn: &mut Connection,
    s: &mut ConnectionSecrets,
) -> Result<(), ApiError> {
    let c = &mut conn.config;
    let (Some(endpoint), None) = (c.registration_endpoint.clone(), c.client_id.as_ref()) else {
        return Ok(());
    };
    let redirect = format!("{}/api/v1/connections/callback", cx.config.public_url);
    let grant_types = if c.authorization_endpoint.is_some() {
        vec!["authorization_code", "refresh_token"]
    } else {
        vec!["client_credentials"]
    };
    let fail = |why: OutboundFailure| {
        ApiError::new(
            422,
            "registration_failed",
            format!("dynamic registration at the upstream failed: {why}"),
        )
        .with_details(serde_json::json!({ "field": "config.registrationEndpoint" }))
    };
    let mut req = cx
        .egress
        .post(&endpoint)
        .map_err(|e| fail(e.into()))?
        .json(&serde_json::json!({
            "client_name": format!("drio-gateway ({})", conn.app_id),
            "redirect_uris": [redirect],
            "grant_types": grant_types,
            "response_types": if c.authorization_endpoint.is_some() { vec!["code"] } else { vec![] },
            "token_endpoint_auth_method": "client_secret_post",
            "scope": c.scopes.as_ref().map(|v| v.join(" ")),
        }));
    if c.registration_auth_mode.as_deref() == Some("initial_access_token") {
        if let Some(t) = &s.registration_initial_access_token {
            req = req.bearer_auth(t);
        }
    }
    let resp = req.send().await.map_err(|e| fail((&e).into()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fail(OutboundFailure::Status(status.as_u16())));
    }
    let r: Registered = resp
        .json()
        .await
        .map_err(|_| fail(OutboundFailure::InvalidResponse))?;
    c.client_id = Some(r.client_id);
    c.registration_client_uri = r.registration_client_uri;
    c.last_registered_at = Some(catalog::now_rfc3339());
    s.client_secret = r.client_secret.or(s.client_secret.take());
    s.registration_access_token = r.registration_access_token;
    Ok(())
}

/// Why a connection failed its check; the text is its `lastError`.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("{0}")]
    Settings(#[from] crate::credentials::ConnectionError),
    #[error("{0}")]
    Token(#[from] TokenCallError),
    #[error("WorkOS refused the API key")]
    WorkosKey,
    #[error("{0}")]
    Workos(crate::credentials::workos_pipes::PipesError),
}

/// Sets `status`, `lastValidatedAt` and `lastError`. OAuth connections are
/// checked against the token endpoint; static credentials by their shape.
pub(crate) async fn status(cx: &ApiCtx<'_>, conn: &mut Connection, s: &ConnectionSecrets) {
    let result: Result<(), CheckError> = match conn.config.kind.as_str() {
        "token_exchange" => exchange_reachable(cx, conn, s).await,
        "workos_pipes" => pipes_reachable(cx, conn, s).await,
        "oauth" => match ProviderSettings::from_connection(conn, s) {
            Err(e) => Err(e.into()),
            Ok(settings) if conn.config.authorization_endpoint.is_none() => {
                ClientCredentials::new(settings, cx.egress.clone())
                    .try_fetch()
                    .await
                    .map(|_| ())
                    .map_err(CheckError::from)
            }
            Ok(settings) => reachable(cx, &settings).await.map_err(CheckError::from),
        },
        _ => Ok(()),
    };
    conn.last_validated_at = Some(catalog::now_rfc3339());
    match result {
        Ok(()) => {
            conn.status = "valid".into();
            conn.last_error = None;
        }
        Err(e) => {
            conn.status = "invalid".into();
            conn.last_error = Some(e.to_string());
        }
    }
}

fn check_context(
    cx: &ApiCtx<'_>,
    workos_api: Option<String>,
) -> crate::credentials::oauth::OAuthContext {
    crate::credentials::oauth::OAuthContext {
        egress: cx.egress.clone(),
        store: cx.store.clone(),
        vault: cx.vault.clone(),
        public_url: cx.config.public_url.clone(),
        sessions: None,
        clock: cx.clock.clone(),
        workos_api,
    }
}

/// A token exchange has no user yet: a made-up subject token tells whether
/// the STS answers and accepts the client (any other refusal is expected).
async fn exchange_reachable(
    cx: &ApiCtx<'_>,
    conn: &Connection,
    s: &ConnectionSecrets,
) -> Result<(), CheckError> {
    let te = TokenExchange::new(conn, s, check_context(cx, None))?;
    match te.request("drio-connection-check".into()).await {
        Ok(_) => Ok(()),
        Err(e) if e.rejects_client() => Err(e.into()),
        Err(TokenCallError::Refused { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// WorkOS Pipes: whether WorkOS answers and accepts the API key.
async fn pipes_reachable(
    cx: &ApiCtx<'_>,
    conn: &Connection,
    s: &ConnectionSecrets,
) -> Result<(), CheckError> {
    use crate::credentials::workos_pipes::{api_base, PipesError, WorkosPipes};
    let pipes = WorkosPipes::new(conn, s, check_context(cx, api_base(cx.config)))?;
    pipes.check().await.map_err(|e| match e {
        PipesError::Status(401 | 403) => CheckError::WorkosKey,
        other => CheckError::Workos(other),
    })
}

/// For per-user OAuth there is no code to exchange yet: a deliberately
/// invalid code tells whether the endpoint answers and accepts the client.
async fn reachable(cx: &ApiCtx<'_>, settings: &ProviderSettings) -> Result<(), TokenCallError> {
    let params = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", "drio-connection-check".to_string()),
        (
            "redirect_uri",
            format!("{}/api/v1/connections/callback", cx.config.public_url),
        ),
    ];
    match user_token_request(cx.egress, settings, &settings.token_endpoint, params).await {
        Ok(_) => Ok(()),
        Err(e) if e.rejects_client() => Err(e),
        // Any other refusal (invalid_grant for our made-up code) means the
        // endpoint answered and accepted the client.
        Err(TokenCallError::Refused { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
