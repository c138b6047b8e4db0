//! Discovery documents: authorization server metadata (RFC 8414), protected
//! resource metadata
//! (RFC 9728) for the gateway and, at the path-suffixed form, for every app
//! (`/.well-known/oauth-protected-resource/apps/{slug}/mcp`), and the JWKS of
//! gateway-issued tokens.
//!
//! `/.well-known/openid-configuration` is not served: the gateway issues no
//! ID tokens, so it cannot carry what OpenID Connect Discovery 1.0 §3
//! requires (`subject_types_supported`, `id_token_signing_alg_values_supported`)
//! truthfully; MCP clients find RFC 8414 first (MCP authorization 2025-11-25).

use serde::Serialize;

use super::{OAuthCtx, OAuthServer};
use crate::config::oauth::TokenMode;
use crate::web::{LocalRequest, LocalResponse};

pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
const PRM: &str = "/.well-known/oauth-protected-resource";

pub(crate) async fn dispatch(cx: &OAuthCtx<'_>, req: &LocalRequest) -> Option<LocalResponse> {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return None;
    }
    let path = req.path.as_str();
    let resp = match path {
        "/.well-known/oauth-authorization-server" => as_metadata(cx)?,
        JWKS_PATH => jwks(cx).await?,
        p if p == PRM || p.starts_with("/.well-known/oauth-protected-resource/") => {
            resource_metadata(cx, req, &p[PRM.len()..])?
        }
        _ => return None,
    };
    // Discovery documents are public (CORS is added by the proxy) and
    // cacheable for a short while.
    Some(resp.with_header(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    ))
}

/// Authorization server metadata (RFC 8414 §2).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuthorizationServerMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    registration_endpoint: String,
    revocation_endpoint: String,
    scopes_supported: Vec<String>,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    grant_types_supported: [&'static str; 2],
    code_challenge_methods_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    /// OAuth Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document).
    client_id_metadata_document_supported: bool,
    /// RFC 9207.
    authorization_response_iss_parameter_supported: bool,
    service_documentation: &'static str,
    /// Only when the gateway signs its own tokens (`token_mode = "gateway"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
}

/// Protected resource metadata (RFC 9728 §2).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProtectedResourceMetadata {
    resource: String,
    resource_name: String,
    authorization_servers: [String; 1],
    scopes_supported: Vec<String>,
    bearer_methods_supported: [&'static str; 1],
}

const CLIENT_AUTH: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];

fn as_metadata(cx: &OAuthCtx<'_>) -> Option<LocalResponse> {
    let oauth = cx.oauth.as_ref()?;
    let base = &cx.config.public_url;
    let doc = AuthorizationServerMetadata {
        issuer: base.clone(),
        authorization_endpoint: format!("{base}/api/v1/auth/authorize"),
        token_endpoint: format!("{base}/api/v1/auth/token"),
        registration_endpoint: format!("{base}/api/v1/auth/register"),
        revocation_endpoint: format!("{base}/api/v1/auth/revoke"),
        scopes_supported: as_scopes(cx, oauth),
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        grant_types_supported: ["authorization_code", "refresh_token"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: CLIENT_AUTH,
        revocation_endpoint_auth_methods_supported: CLIENT_AUTH,
        client_id_metadata_document_supported: true,
        authorization_response_iss_parameter_supported: true,
        service_documentation:
            "https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization",
        jwks_uri: (oauth.cfg.token_mode == TokenMode::Gateway)
            .then(|| format!("{base}{JWKS_PATH}")),
    };
    Some(LocalResponse::json(200, &doc))
}

async fn jwks(cx: &OAuthCtx<'_>) -> Option<LocalResponse> {
    let keys = cx.oauth.as_ref()?.keys.as_ref()?;
    Some(match keys.public_jwks().await {
        Ok(set) => LocalResponse::json(200, &set),
        Err(e) => LocalResponse::oauth_error(&crate::errors::OAuthError::temporarily_unavailable(
            e.to_string(),
        )),
    })
}

/// The server's scopes plus the config-file apps' required and per-tool
/// scopes (the operator's, public anyway through each app's RFC 9728
/// document; API-created apps' scopes stay in their own documents).
fn as_scopes(cx: &OAuthCtx<'_>, oauth: &OAuthServer) -> Vec<String> {
    let mut s = oauth.scopes_supported();
    for app in &cx.config.apps {
        let tools = crate::config::tool_policy::all_scopes(&app.tool_scopes);
        for x in app.required_scopes.iter().chain(&tools) {
            if !s.contains(x) {
                s.push(x.clone());
            }
        }
    }
    s
}

/// The scopes a client asks for first at an app whose 401 challenge would
/// otherwise name none: the server's basic scopes (its RFC 9728 list minus
/// `offline_access` and the per-tool scopes, which are stepped up to).
pub(crate) fn base_scopes(oauth: Option<&OAuthServer>) -> Vec<String> {
    oauth
        .map(|o| o.scopes_supported())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s != "offline_access")
        .collect()
}

fn resource_metadata(cx: &OAuthCtx<'_>, req: &LocalRequest, suffix: &str) -> Option<LocalResponse> {
    let base = &cx.config.public_url;
    let routes = cx.routes.load();
    let host_route = req.header("host").and_then(|h| routes.by_host(h)).cloned();
    let (resource, name, scopes) = if suffix.is_empty() {
        match &host_route {
            Some(r) => (r.resource.clone(), r.app.name.clone(), app_scopes(&r.app)),
            None => (base.clone(), "drio gateway".to_string(), vec![]),
        }
    } else if let Some(r) = host_route.filter(|r| suffix == r.app.mcp_path) {
        let scheme = base.split("://").next().unwrap_or("https");
        (
            format!(
                "{scheme}://{}{}",
                r.app.host.as_deref().unwrap_or_default(),
                r.app.mcp_path
            ),
            r.app.name.clone(),
            app_scopes(&r.app),
        )
    } else {
        let sel = routes.by_path(suffix)?;
        (
            sel.route.resource.clone(),
            sel.route.app.name.clone(),
            app_scopes(&sel.route.app),
        )
    };
    let authorization_server = match (&cx.oauth, &cx.config.auth.issuer) {
        (Some(_), _) => base.clone(),
        (None, Some(iss)) => iss.clone(),
        (None, None) => base.clone(),
    };
    // `offline_access` is the authorization server's business, not the
    // resource's: clients that ask for every advertised scope must not be
    // led to request it here (MCP authorization 2025-11-25, scope selection).
    let mut scopes_supported = base_scopes(cx.oauth);
    for s in scopes {
        if !scopes_supported.contains(&s) {
            scopes_supported.push(s);
        }
    }
    Some(LocalResponse::json(
        200,
        &ProtectedResourceMetadata {
            resource,
            resource_name: name,
            authorization_servers: [authorization_server],
            scopes_supported,
            bearer_methods_supported: ["header"],
        },
    ))
}

/// An app's own scopes: required ones, then every per-tool scope (RFC 9728
/// `scopes_supported`: what may be requested for this resource).
fn app_scopes(app: &crate::config::AppConfig) -> Vec<String> {
    let mut s = app.required_scopes.clone();
    for x in crate::config::tool_policy::all_scopes(&app.tool_scopes) {
        if !s.contains(&x) {
            s.push(x);
        }
    }
    s
}
