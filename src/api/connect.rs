//! A user connecting their own upstream account (per-user OAuth, RFC 6749
//! §4.1 with PKCE S256, RFC 7636):
//! `GET /api/v1/apps/{appId}/auth/{authId}/connect` (bearer, or the
//! single-use `ticket` of the link the gateway handed out) redirects to the
//! upstream's authorization endpoint; `GET /api/v1/connections/callback`
//! checks the answer and asks the person to confirm; `POST
//! /api/v1/connections/confirm` exchanges the code and stores the user's
//! tokens encrypted.
//!
//! Login CSRF (RFC 6749 §10.12, RFC 9700 §4.7): `state` alone does not say
//! which browser started the flow, so an attacker could start it, stop at
//! the provider's consent and send the link to a victim, whose upstream
//! account would end up under the attacker's gateway identity. `/connect`
//! therefore sets a cookie holding a random binding value (only its SHA-256
//! is stored); the callback and the confirmation require it. The
//! confirmation page names the gateway account and the provider, so a
//! person who opened someone else's connect link sees whose it is.
//!
//! The code is exchanged after Confirm, not before the page: Cancel then
//! leaves no tokens anywhere (the provider never issues them), and what
//! waits for the answer (code and PKCE verifier, sealed, 5 minutes, single
//! use) is far within a code's lifetime (RFC 6749 §4.1.2: at most 10 min).

use crate::store::keys;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::apps;

mod pipes;
use super::ApiCtx;
use crate::catalog::{self, live, Connection};
use crate::credentials::oauth::{user_token_request, ProviderSettings};
use crate::credentials::per_user::{
    save_tokens, ticket_key, tokens_key, ConnectTicket, LinkProof, UserTokens,
};
use crate::store::StoreExt;
use crate::web::pages::{self, Brand};
use crate::web::{LocalRequest, LocalResponse};
pub(crate) use pipes::{confirm as pipes_confirm, done};

/// How long a started flow waits for the provider's answer (`uconnect:`).
const PENDING_TTL: Duration = Duration::from_secs(600);
/// How long the confirmation page waits for an answer (`uconfirm:`).
const CONFIRM_TTL: Duration = Duration::from_secs(300);

/// A started flow, `uconnect:{state}`, single use.
/// `pub` for the fuzz targets (fuzz/fuzz_targets/store_records.rs).
#[derive(Serialize, Deserialize)]
pub struct Pending {
    subject: String,
    /// The gateway account's e-mail when known at the start (for the page).
    #[serde(default)]
    email: Option<String>,
    app_id: String,
    auth_id: String,
    verifier: String,
    /// SHA-256 (hex) of the binding cookie's value; empty in records written
    /// before the binding existed, which therefore never match.
    #[serde(default)]
    binding: String,
}

/// The provider's answer waiting for Confirm, `uconfirm:{id}`, stored sealed.
/// `pub` for the fuzz targets (fuzz/fuzz_targets/store_records.rs).
#[derive(Serialize, Deserialize)]
pub struct Confirm {
    subject: String,
    app_id: String,
    auth_id: String,
    verifier: String,
    code: String,
    binding: String,
    csrf: String,
}

/// Why a step of the flow refuses; each is a page for the person.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(
        "This sign-in is unknown, already completed or expired. Start again from your MCP client."
    )]
    Expired,
    #[error("This sign-in was started in another browser (or its cookie is gone). Nothing was connected. Start again from your MCP client, in this browser.")]
    OtherBrowser,
    #[error(
        "This answer did not come from the page the gateway showed you. Nothing was connected."
    )]
    Forged,
    #[error("This link was issued to another gateway account. Nothing was connected. Sign in as the account whose MCP client showed the link, and ask it for a new one.")]
    OtherUser,
    #[error("This connection does not exist.")]
    NoConnection,
    #[error("{0}")]
    Unusable(String),
    #[error("The gateway cannot store the connection: it has no secrets key.")]
    NoKey,
    #[error("The gateway cannot reach its store right now.")]
    Store,
}

impl ConnectError {
    fn page(&self) -> LocalResponse {
        let (status, title) = match self {
            Self::Expired => (400, "Link expired"),
            Self::OtherBrowser => (400, "Not connected"),
            Self::Forged => (403, "Request refused"),
            Self::OtherUser => (403, "Not your link"),
            Self::NoConnection => (404, "Not found"),
            Self::Unusable(_) => (409, "Connection not usable"),
            Self::NoKey | Self::Store => (503, "Try again"),
        };
        LocalResponse::message_page(status, title, &self.to_string())
    }
}

fn query(req: &LocalRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn link_expired() -> LocalResponse {
    page(400, "Link expired", "This connect link is unknown, used or expired. Ask your MCP client to try again for a new one.")
}

fn page(status: u16, title: &str, text: &str) -> LocalResponse {
    LocalResponse::message_page(status, title, text)
}

pub(crate) async fn start(
    cx: &ApiCtx<'_>,
    req: &LocalRequest,
    app_id: &str,
    auth_id: &str,
) -> LocalResponse {
    let ticket = query(req, "ticket");
    let bearer = req.headers.contains_key(http::header::AUTHORIZATION);
    if let (Some(t), false) = (&ticket, bearer) {
        // A browser: it proves who it is at the identity provider first
        // (`oauth::proof`), which sends it back here with a proof.
        match query(req, "proof") {
            Some(p) => match proven(cx, &p, t).await {
                Ok(()) => {}
                Err(resp) => return resp,
            },
            None if cx.oauth_enabled => {
                // A used or expired link says so at once, not after a sign-in.
                match cx.store.get(&ticket_key(t)).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return link_expired(),
                    Err(_) => return LocalResponse::store_down_page(),
                }
                return LocalResponse::redirect(&format!(
                    "{}/api/v1/auth/prove?ticket={}",
                    cx.config.public_url,
                    url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
                ));
            }
            // Without a sign-in of its own (`[auth]` only) the gateway
            // cannot ask who the browser is: the confirmation page names
            // the account instead.
            None => {}
        }
    }
    let (subject, email, org_id, session_id) = match ticket {
        Some(t) => match cx.store.take_json::<ConnectTicket>(&ticket_key(&t)).await {
            Ok(Some(tk)) if tk.app_id == app_id && tk.auth_id == auth_id => {
                // The link is bound to the user it was issued to: a person
                // signed in as someone else (a bearer of another subject)
                // is refused, and the link is spent either way.
                if bearer {
                    match super::caller(cx, req).await {
                        Ok(user) if user.subject() == tk.subject => {}
                        Ok(_) => return ConnectError::OtherUser.page(),
                        Err(resp) => return resp,
                    }
                }
                (tk.subject, tk.email, tk.org_id, tk.session_id)
            }
            Ok(_) => return link_expired(),
            Err(_) => return LocalResponse::store_down_page(),
        },
        None => match super::caller(cx, req).await {
            Ok(user) => match apps::load(cx, &user, app_id).await {
                Ok(_) => (
                    user.subject().to_string(),
                    user.principal.email.clone(),
                    user.principal.org_id.clone(),
                    None,
                ),
                Err(e) => return LocalResponse::api_error(&e, &req.request_id),
            },
            Err(resp) => return resp,
        },
    };
    let conn = match connection(cx, app_id, auth_id).await {
        Ok(c) => c,
        Err(e) => return e.page(),
    };
    if session_id.is_some() {
        // A sign-in-again link (`interaction_required`): the proof's
        // sign-in already replaced the session's IdP tokens.
        return page(
            200,
            "Signed in again",
            "Your sign-in was renewed. Return to your MCP client and try again.",
        );
    }
    if conn.config.kind == "workos_pipes" {
        return pipes::start(cx, &conn, &subject, email.as_deref(), org_id.as_deref()).await;
    }
    let settings = match provider(cx, &conn).await {
        Ok(s) => s,
        Err(e) => return e.page(),
    };
    let Some(authorize) = settings.authorization_endpoint.clone() else {
        return page(
            409,
            "Connection not usable",
            "This connection has no authorization endpoint.",
        );
    };
    let Ok(mut url) = url::Url::parse(&authorize) else {
        return page(
            409,
            "Connection not usable",
            "The authorization endpoint is not a URL.",
        );
    };
    let (Some(verifier), Some(state_token), Some(binding)) =
        (random_b64(32), random_b64(24), random_b64(32))
    else {
        return ConnectError::Store.page();
    };
    let pending = Pending {
        subject,
        email,
        app_id: app_id.into(),
        auth_id: auth_id.into(),
        verifier: verifier.clone(),
        binding: sha256_hex(&binding),
    };
    if cx
        .store
        .put_json(
            &keys::user_connect(&state_token),
            &pending,
            Some(PENDING_TTL),
        )
        .await
        .is_err()
    {
        return LocalResponse::store_down_page();
    }
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &callback_url(cx))
            .append_pair("state", &state_token);
        if settings.pkce {
            q.append_pair(
                "code_challenge",
                &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256");
        }
        if let Some(scope) = settings.scope() {
            q.append_pair("scope", &scope);
        }
        if let Some(aud) = &settings.audience {
            q.append_pair("audience", aud);
        }
        for (k, v) in &settings.authorization_params {
            q.append_pair(k, v);
        }
    }
    with_cookie(
        LocalResponse::redirect(url.as_str()),
        cx,
        &binding,
        PENDING_TTL,
    )
}

/// Spends a link's proof (`oauth::proof`); it must be for this ticket.
async fn proven(cx: &ApiCtx<'_>, proof: &str, ticket: &str) -> Result<(), LocalResponse> {
    match cx
        .store
        .take_json::<LinkProof>(&keys::link_proof(proof))
        .await
    {
        Ok(Some(p)) if bool::from(p.ticket.as_bytes().ct_eq(ticket.as_bytes())) => Ok(()),
        Ok(_) => Err(page(
            400,
            "Link expired",
            "This sign-in is unknown, used or expired. Open the link from your MCP client again.",
        )),
        Err(_) => Err(LocalResponse::store_down_page()),
    }
}

pub(crate) async fn callback(cx: &ApiCtx<'_>, req: &LocalRequest) -> LocalResponse {
    let Some(state_token) = query(req, "state") else {
        return page(
            400,
            "Missing state",
            "This callback carries no state parameter.",
        );
    };
    // Taken before any check: whatever happens next, this flow is over.
    let pending: Pending = match cx.store.take_json(&keys::user_connect(&state_token)).await {
        Ok(Some(p)) => p,
        Ok(None) => return ConnectError::Expired.page(),
        Err(_) => return ConnectError::Store.page(),
    };
    if !same_browser(cx, req, &pending.binding) {
        return ConnectError::OtherBrowser.page();
    }
    if let Some(err) = query(req, "error") {
        // Only a standard code is named; the provider's free text is not
        // put on the page (a crafted link could carry any words).
        let code = match err.as_str() {
            "access_denied"
            | "invalid_scope"
            | "server_error"
            | "temporarily_unavailable"
            | "invalid_request"
            | "unauthorized_client"
            | "unsupported_response_type" => err.as_str(),
            _ => "access_denied",
        };
        return page(
            400,
            "Not connected",
            &format!("The provider did not connect your account (error code: {code}). Nothing was stored."),
        );
    }
    let Some(code) = query(req, "code") else {
        return page(400, "Not connected", "The provider sent no code.");
    };
    let conn = match connection(cx, &pending.app_id, &pending.auth_id).await {
        Ok(c) => c,
        Err(e) => return e.page(),
    };
    let account = match pending.email.clone() {
        Some(e) => e,
        None => profile_email(cx, &pending.subject)
            .await
            .unwrap_or_else(|| pending.subject.clone()),
    };
    let (Some(id), Some(csrf)) = (random_b64(24), random_b64(24)) else {
        return ConnectError::Store.page();
    };
    let confirm = Confirm {
        subject: pending.subject,
        app_id: pending.app_id,
        auth_id: pending.auth_id,
        verifier: pending.verifier,
        code,
        binding: pending.binding,
        csrf: csrf.clone(),
    };
    if let Err(e) = put_sealed(cx, &confirm_key(&id), &confirm).await {
        return e.page();
    }
    let brand = app_brand(cx, &confirm.app_id).await;
    pages::connect::confirm(pages::connect::View {
        brand: &brand,
        provider: &conn.provider_name,
        connection: &conn.name,
        account: &account,
        confirm_id: &id,
        csrf: &csrf,
    })
}

/// The app's name and branding for the confirmation page: the config
/// file's, else the stored record's.
async fn app_brand(cx: &ApiCtx<'_>, app_id: &str) -> Brand {
    let hosts = &cx.config.pages.logo_hosts;
    if let Some(app) = cx.config.apps.iter().find(|a| a.id == app_id) {
        return Brand::of(&app.name, cx.config.pages.branding.get(app_id), hosts);
    }
    match cx
        .store
        .get_json::<catalog::AppRecord>(&catalog::app_key(app_id))
        .await
    {
        Ok(Some(rec)) => Brand::of(&rec.name, rec.branding.as_ref(), hosts),
        _ => Brand::default(),
    }
}

/// The answer to the confirmation page (a form POST, CSRF token plus the
/// binding cookie); only Confirm exchanges the code and stores tokens.
pub(crate) async fn confirm(cx: &ApiCtx<'_>, req: &LocalRequest) -> LocalResponse {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let Some(id) = form.get("confirm_id") else {
        return page(400, "Invalid request", "confirm_id is required.");
    };
    // Taken first: a refused answer also ends the flow (single use).
    let c: Confirm = match take_sealed(cx, &confirm_key(id)).await {
        Ok(c) => c,
        Err(e) => return e.page(),
    };
    let token = form.get("csrf_token").map(String::as_str).unwrap_or("");
    let token_ok = bool::from(token.as_bytes().ct_eq(c.csrf.as_bytes()));
    if !(token_ok && same_browser(cx, req, &c.binding)) {
        return ConnectError::Forged.page();
    }
    if form.get("decision").map(String::as_str) != Some("confirm") {
        return clear_cookie(
            page(
                200,
                "Not connected",
                "Nothing was connected or stored. You can close this window.",
            ),
            cx,
        );
    }
    let conn = match connection(cx, &c.app_id, &c.auth_id).await {
        Ok(c) => c,
        Err(e) => return e.page(),
    };
    let settings = match provider(cx, &conn).await {
        Ok(s) => s,
        Err(e) => return e.page(),
    };
    let mut params = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", c.code),
        ("redirect_uri", callback_url(cx)),
    ];
    if settings.pkce {
        params.push(("code_verifier", c.verifier));
    }
    let tokens =
        match user_token_request(cx.egress, &settings, &settings.token_endpoint, params).await {
            Ok(t) => UserTokens::from_response(t, None, cx.clock.now_secs()),
            Err(e) => {
                return page(
                    502,
                    "Not connected",
                    &format!("The token exchange failed: {e}"),
                )
            }
        };
    let ctx = live::oauth_context(&cx.catalog);
    let resp = match save_tokens(&ctx, &tokens_key(&c.auth_id, &c.subject), &tokens).await {
        Ok(()) => page(200, "Connected", &format!("Your {} account is connected. You can close this window and retry in your MCP client.", conn.provider_name)),
        Err(e) => {
            tracing::warn!(error = %e, "per-user tokens could not be stored");
            page(503, "Not connected", "The tokens could not be stored.")
        }
    };
    clear_cookie(resp, cx)
}

async fn connection(
    cx: &ApiCtx<'_>,
    app_id: &str,
    auth_id: &str,
) -> Result<Connection, ConnectError> {
    match cx.store.get_json(&catalog::conn_key(app_id, auth_id)).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(ConnectError::NoConnection),
        Err(_) => Err(ConnectError::Store),
    }
}

async fn provider(cx: &ApiCtx<'_>, conn: &Connection) -> Result<ProviderSettings, ConnectError> {
    let unusable = |e: &dyn std::fmt::Display| ConnectError::Unusable(e.to_string());
    let secrets = match &conn.secret_ref {
        Some(r) => catalog::secrets::get(cx.store.as_ref(), cx.vault.as_deref(), r)
            .await
            .map_err(|e| unusable(&e))?,
        None => Default::default(),
    };
    ProviderSettings::from_connection(conn, &secrets).map_err(|e| unusable(&e))
}

/// The e-mail of the stored profile (`user:{sub}`, written at sign-in).
async fn profile_email(cx: &ApiCtx<'_>, subject: &str) -> Option<String> {
    let profile: serde_json::Value = cx.store.get_json(&keys::user(subject)).await.ok()??;
    profile["email"].as_str().map(str::to_owned)
}

fn confirm_key(id: &str) -> String {
    keys::user_confirm(id)
}

async fn put_sealed(cx: &ApiCtx<'_>, key: &str, c: &Confirm) -> Result<(), ConnectError> {
    let vault = cx.vault.as_ref().ok_or(ConnectError::NoKey)?;
    let plain = serde_json::to_vec(c).map_err(|_| ConnectError::Store)?;
    let sealed = vault.seal(key, &plain).map_err(|_| ConnectError::NoKey)?;
    cx.store
        .put(key, &sealed, Some(CONFIRM_TTL))
        .await
        .map_err(|_| ConnectError::Store)
}

async fn take_sealed(cx: &ApiCtx<'_>, key: &str) -> Result<Confirm, ConnectError> {
    let sealed = match cx.store.take(key).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(ConnectError::Expired),
        Err(_) => return Err(ConnectError::Store),
    };
    let vault = cx.vault.as_ref().ok_or(ConnectError::NoKey)?;
    let plain = vault
        .open(key, &sealed)
        .map_err(|_| ConnectError::Expired)?;
    serde_json::from_slice(&plain).map_err(|_| ConnectError::Expired)
}

fn cookie_name(cx: &ApiCtx<'_>) -> &'static str {
    if cx.config.public_url.starts_with("https://") {
        "__Host-drio-connect"
    } else {
        "drio-connect"
    }
}

/// True when the request carries the binding cookie whose SHA-256 is
/// `expected` (compared in constant time).
fn same_browser(cx: &ApiCtx<'_>, req: &LocalRequest, expected: &str) -> bool {
    let name = cookie_name(cx);
    let value = req.cookie(name);
    match value {
        Some(v) if !v.is_empty() && !expected.is_empty() => {
            bool::from(sha256_hex(v).as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    }
}

fn with_cookie(resp: LocalResponse, cx: &ApiCtx<'_>, value: &str, ttl: Duration) -> LocalResponse {
    let secure = if cookie_name(cx).starts_with("__Host-") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_name(cx),
        ttl.as_secs()
    );
    match HeaderValue::from_str(&cookie) {
        Ok(v) => resp.with_header(http::header::SET_COOKIE, v),
        Err(_) => resp,
    }
}

fn clear_cookie(resp: LocalResponse, cx: &ApiCtx<'_>) -> LocalResponse {
    with_cookie(resp, cx, "", Duration::ZERO)
}

fn callback_url(cx: &ApiCtx<'_>) -> String {
    format!("{}/api/v1/connections/callback", cx.config.public_url)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `n` random bytes, base64url; None if the system RNG fails (never a
/// predictable value in its place).
fn random_b64(n: usize) -> Option<String> {
    crate::util::random::token(n).ok()
}
