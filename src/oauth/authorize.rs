//! `GET /api/v1/auth/authorize` (RFC 6749 §4.1.1, RFC 7636, RFC 8707).
//!
//! Until the client and its redirect URI are proven, errors are shown to the
//! user (400), never redirected: redirecting would make the gateway an open
//! redirector. After that, errors go back to the client with `error`,
//! `error_description`, `state` and `iss` (RFC 9207). On success the request
//! is stored as a pending authorization (10 minutes, single use) and the
//! browser goes to the identity provider with the gateway's own callback,
//! PKCE, state and nonce.

use crate::store::keys;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::clients::{self, Client};
use super::{cimd, query, random, register, with_params, OAuthCtx, OAuthServer, PENDING_TTL};
use crate::errors::OAuthError;
use crate::store::StoreExt;
use crate::web::{LocalRequest, LocalResponse};

/// An authorization waiting for the user to sign in (`pend:{state}`).
#[derive(Serialize, Deserialize, Clone)]
pub struct Pending {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) client_state: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) scope: String,
    pub(crate) resource: Option<String>,
    pub(crate) nonce: String,
    pub(crate) idp_verifier: String,
    /// Set when this sign-in only proves who opened a connect link
    /// ([`super::proof`]): no client, no code, no consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) proof: Option<super::proof::ProofRequest>,
}

pub(crate) fn pending_key(state: &str) -> String {
    keys::pending(state)
}

/// A registered client or a client metadata document.
pub(crate) async fn lookup(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    client_id: &str,
) -> Result<Arc<Client>, OAuthError> {
    if cimd::is_cimd(client_id) {
        return cimd::resolve(
            &oauth.cimd,
            oauth.cfg.allow_private_cimd,
            client_id,
            oauth.clock.now_secs(),
        )
        .await;
    }
    let client: Option<Client> = cx
        .store
        .get_json(&register::key(client_id))
        .await
        .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))?;
    client
        .map(Arc::new)
        .ok_or_else(|| OAuthError::invalid_client("unknown client_id (register it first)"))
}

pub(crate) fn page(status: u16, title: &str, text: &str) -> LocalResponse {
    LocalResponse::message_page(status, title, text)
}

/// Whether an error about this client may be sent to its redirect URI
/// rather than shown. Anyone can register a client with any redirect URI,
/// so sending errors there would make the gateway an open redirector
/// (RFC 9700 §4.11.2). Errors at `/authorize` and at the callback come
/// before any user is known to have approved the client, so only clients
/// the operator trusts get them redirected; everyone else sees the error
/// page. (A user who denies on the consent page has seen the client, and
/// the denial goes back to it as `access_denied`.)
pub(crate) fn redirects_errors(oauth: &OAuthServer, client_id: &str) -> bool {
    oauth.cfg.trusted_clients.iter().any(|c| c == client_id)
}

/// The page shown instead of an error redirect. `description` is the
/// gateway's own text (never a provider's or client's free text); `error`
/// is the RFC 6749 code, shown for support.
pub(crate) fn error_page(error: &str, description: &str) -> LocalResponse {
    let todo = match error {
        "access_denied" => "Go back to your application and sign in again, with an account that may use it. If you think you should have access, contact the gateway's operator and quote the request id below.",
        "temporarily_unavailable" | "server_error" => "Wait a moment, then start again from your application. If it keeps happening, contact the gateway's operator and quote the request id below.",
        _ => "Your application sent a request the gateway cannot accept. Start again from the application; if it keeps happening, tell its developer this error code and the request id below.",
    };
    crate::web::pages::message::page(
        400,
        "Sign-in failed",
        &format!("{description}. (Error code: {error}.)"),
        Some(todo),
    )
}

/// An error sent back to a proven redirect URI.
pub(crate) fn redirect_error(
    cx: &OAuthCtx<'_>,
    redirect_uri: &str,
    client_state: Option<&str>,
    error: &str,
    description: &str,
) -> LocalResponse {
    let mut p = vec![("error", error), ("error_description", description)];
    if let Some(s) = client_state {
        p.push(("state", s));
    }
    p.push(("iss", &cx.config.public_url));
    LocalResponse::redirect(&with_params(redirect_uri, &p))
}

pub(crate) async fn authorize(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    let q = query(req);
    let Some(client_id) = q.get("client_id").filter(|c| !c.is_empty()) else {
        return page(400, "Invalid request", "client_id is required.");
    };
    let client = match lookup(cx, oauth, client_id).await {
        Ok(c) => c,
        // Shown to the user, so 400 (not invalid_client's 401) unless the store is down.
        Err(e) => {
            return page(
                if e.status == 503 { 503 } else { 400 },
                "Unknown application",
                &e.description,
            )
        }
    };
    let requested = match (q.get("redirect_uri"), client.redirect_uris.as_slice()) {
        (Some(r), _) => r.clone(),
        (None, [only]) => only.clone(),
        (None, _) => {
            return page(
                400,
                "Invalid request",
                "redirect_uri is required: this client registered several.",
            )
        }
    };
    if clients::match_redirect(&client, &requested).is_none() {
        return page(
            400,
            "Invalid redirect",
            "redirect_uri does not match any URI registered for this client.",
        );
    }
    // From here the redirect URI is proven; errors go back to it only for a
    // client the operator trusts (no user is known yet).
    let client_state = q.get("state").cloned();
    let trusted = redirects_errors(oauth, &client.client_id);
    let fail = |error: &str, description: &str| {
        if !trusted {
            return error_page(error, description);
        }
        redirect_error(cx, &requested, client_state.as_deref(), error, description)
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = q
        .get("code_challenge")
        .filter(|c| (43..=128).contains(&c.len()))
    else {
        return fail(
            "invalid_request",
            "code_challenge is required (PKCE, RFC 7636)",
        );
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return fail(
            "invalid_request",
            "code_challenge_method must be S256; plain is not accepted",
        );
    }
    let resource = match q.get("resource") {
        Some(r) => match canonical_resource(cx, r) {
            Some(c) => Some(c),
            None => {
                return fail(
                    "invalid_target",
                    "resource is not an MCP server behind this gateway",
                )
            }
        },
        None => None,
    };
    let supported = scopes_for(cx, oauth, resource.as_deref());
    let scope = q
        .get("scope")
        .cloned()
        .or_else(|| client.scope.clone())
        .unwrap_or_else(|| "openid profile email".into());
    if let Some(bad) = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .find(|s| !supported.iter().any(|x| x == s))
    {
        return fail("invalid_scope", &format!("scope `{bad}` is not supported"));
    }
    let (idp_state, nonce, idp_verifier) = match (random(24), random(16), random(32)) {
        (Ok(s), Ok(n), Ok(v)) => (s, n, v),
        _ => return fail("server_error", "the gateway cannot generate random values"),
    };
    let pending = Pending {
        client_id: client.client_id.clone(),
        redirect_uri: requested.clone(),
        client_state: client_state.clone(),
        code_challenge: challenge.clone(),
        scope,
        resource,
        nonce,
        idp_verifier,
        proof: None,
    };
    if cx
        .store
        .put_json(&pending_key(&idp_state), &pending, Some(PENDING_TTL))
        .await
        .is_err()
    {
        return fail(
            "temporarily_unavailable",
            "the gateway cannot store the authorization right now",
        );
    }
    // "Not you?" on the consent page asks the IdP for a fresh sign-in
    // (OIDC Core §3.1.2.1 `prompt=login`) rather than its current session.
    let fresh_login = q
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|v| v == "login"));
    let prompt = fresh_login.then_some("login");
    match idp_url(cx, oauth, &idp_state, &pending, prompt).await {
        Ok(url) => LocalResponse::redirect(&url),
        Err(why) => fail("temporarily_unavailable", &why.to_string()),
    }
}

/// Scopes an authorization request for `resource` may ask for: the
/// server's own plus the app's required and per-tool scopes, so a client
/// can step up to a tool's scope (MCP authorization 2025-11-25, "Scope
/// Challenge Handling"). Another app's tool scopes are not accepted.
fn scopes_for(cx: &OAuthCtx<'_>, oauth: &OAuthServer, resource: Option<&str>) -> Vec<String> {
    let mut s = oauth.scopes_supported();
    if let Some(route) = resource.and_then(|r| cx.routes.load().by_resource(r).cloned()) {
        let extra = route.app.required_scopes.iter().cloned().chain(
            crate::config::tool_policy::all_scopes(&route.app.tool_scopes),
        );
        for x in extra {
            if !s.contains(&x) {
                s.push(x);
            }
        }
    }
    s
}

pub(super) async fn idp_url(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    idp_state: &str,
    p: &Pending,
    prompt: Option<&str>,
) -> Result<String, super::idp::IdpError> {
    let callback = format!("{}/api/v1/auth/callback", cx.config.public_url);
    if oauth.idp.is_workos_sso() {
        return Ok(super::workos_sso::start(cx, oauth, idp_state));
    }
    if oauth.idp.is_dev() {
        return Ok(format!(
            "{}/api/v1/auth/dev/login?state={idp_state}",
            cx.config.public_url
        ));
    }
    let e = oauth.idp.endpoints().await?;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(p.idp_verifier.as_bytes()));
    let scopes = oauth.idp.cfg.scopes.join(" ");
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", oauth.idp.cfg.client_id.as_str()),
        ("redirect_uri", callback.as_str()),
        ("scope", scopes.as_str()),
        ("state", idp_state),
        ("nonce", p.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(prompt) = prompt {
        params.push(("prompt", prompt));
    }
    // Upstream token mode: the IdP's token is the client's, so it must be for the resource.
    if oauth.cfg.token_mode == crate::config::oauth::TokenMode::Upstream {
        if let Some(r) = &p.resource {
            params.push(("resource", r.as_str()));
        }
    }
    Ok(with_params(&e.authorization_endpoint, &params))
}

/// The gateway resource a requested `resource` names, compared as
/// canonical URIs (RFC 8707 §2; scheme and host case-insensitive, no
/// trailing slash), or None.
pub(crate) fn canonical_resource(cx: &OAuthCtx<'_>, requested: &str) -> Option<String> {
    let canon = |s: &str| -> Option<String> {
        let u = url::Url::parse(s).ok()?;
        if u.fragment().is_some() {
            return None;
        }
        Some(u.as_str().trim_end_matches('/').to_string())
    };
    let want = canon(requested)?;
    let routes = cx.routes.load();
    let base = canon(&cx.config.public_url)?;
    if want == base {
        return Some(cx.config.public_url.clone());
    }
    let extra = &cx.config.auth.audiences;
    let found = routes
        .apps()
        .filter_map(|a| routes.by_slug(&a.slug))
        .flat_map(|r| {
            r.audiences
                .iter()
                .filter(|aud| **aud != cx.config.public_url && !extra.contains(aud))
                .filter_map(move |aud| canon(aud).map(|c| (c, r.resource.clone())))
        })
        .find(|(c, _)| *c == want)
        .map(|(_, resource)| resource);
    found
}
