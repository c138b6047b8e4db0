//! Consent (MCP authorization spec, "Confused Deputy Problem"): every
//! dynamically registered client signs in through the gateway's one upstream
//! client, so before a code is issued the user sees which client is asking
//! (name, redirect host, a warning for loopback-only clients) and for which
//! scopes, and approves or denies with a POST bound to a cookie (CSRF).
//! Approvals are remembered per user and client; configured trusted clients
//! skip the page.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::authorize::{lookup, page, redirect_error, Pending};
use super::callback::issue_code;
use super::idp::{IdpTokens, User};
use super::{random, OAuthServer, PENDING_TTL};
use crate::state::State;
use crate::store::StoreExt;
use crate::web::{LocalRequest, LocalResponse};

/// `pub` for the fuzz targets (fuzz/fuzz_targets/store_records.rs).
#[derive(Serialize, Deserialize)]
pub struct Asked {
    pending: Pending,
    user: User,
    /// The IdP's tokens, sealed under `consent:{id}` (never stored in clear).
    upstream: Option<super::sessions::Sealed>,
    csrf: String,
}

const REMEMBER: Duration = Duration::from_secs(90 * 86_400);

/// One approval per user, client and resource: consenting to one app (or to
/// managing apps) says nothing about another.
fn remembered_key(state: &State, sub: &str, client_id: &str, resource: Option<&str>) -> String {
    // No resource and `public_url` are one audience: the management API.
    let audience = resource.unwrap_or(&state.config.public_url);
    format!(
        "consented:{}:{}:{}",
        super::sha256_hex(sub),
        super::sha256_hex(client_id),
        super::sha256_hex(audience)
    )
}

/// What the consent page says the client will reach: an app by name, or
/// the management API.
fn target_text(state: &State, resource: Option<&str>) -> String {
    let esc = crate::web::escape_html;
    match resource.filter(|r| *r != state.config.public_url) {
        None => "<strong>manage your apps</strong> on this gateway (create, change and delete apps and their connections)".to_string(),
        Some(r) => {
            let routes = state.routes.load();
            let name = routes
                .apps()
                .find(|a| a.resource_url(&state.config.public_url) == r)
                .map(|a| a.name.clone());
            match name {
                Some(n) => format!("use the app <strong>{}</strong> (<code>{}</code>)", esc(&n), esc(r)),
                None => format!("use <code>{}</code>", esc(r)),
            }
        }
    }
}

fn cookie_name(state: &State) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "__Host-drio-consent"
    } else {
        "drio-consent"
    }
}

/// The scopes this user already granted this client for this resource.
async fn granted(state: &State, sub: &str, client_id: &str, resource: Option<&str>) -> Vec<String> {
    state
        .store
        .get_json::<Vec<String>>(&remembered_key(state, sub, client_id, resource))
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub async fn already_given(state: &State, oauth: &OAuthServer, sub: &str, p: &Pending) -> bool {
    if oauth.cfg.trusted_clients.contains(&p.client_id) {
        return true;
    }
    let scopes = granted(state, sub, &p.client_id, p.resource.as_deref()).await;
    if scopes.is_empty() {
        return false;
    }
    p.scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|s| scopes.iter().any(|x| x == s))
}

pub async fn show(
    state: &State,
    oauth: &OAuthServer,
    pending: Pending,
    user: User,
    upstream: Option<IdpTokens>,
) -> LocalResponse {
    let client = match lookup(state, oauth, &pending.client_id).await {
        Ok(c) => c,
        Err(e) => return page(400, "Unknown application", &e.description),
    };
    let (Ok(id), Ok(csrf)) = (random(24), random(24)) else {
        return page(
            500,
            "Try again",
            "The gateway cannot generate random values right now.",
        );
    };
    let redirect = url::Url::parse(&pending.redirect_uri).ok();
    let host = redirect
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| pending.redirect_uri.clone());
    let loopback = redirect.as_ref().is_some_and(super::clients::is_loopback);
    let name = client
        .client_name
        .clone()
        .unwrap_or_else(|| "An unnamed application".into());
    // Incremental consent (MCP authorization 2025-11-25, step-up): the page
    // asks only for what this user has not yet granted this client for this
    // resource, and lists the rest as already granted.
    let before = granted(
        state,
        &user.sub,
        &pending.client_id,
        pending.resource.as_deref(),
    )
    .await;
    let (already, scopes): (Vec<String>, Vec<String>) = pending
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .partition(|s| before.contains(s));
    let target = target_text(state, pending.resource.as_deref());
    let email = user.email.clone().unwrap_or_else(|| user.sub.clone());
    let upstream = match upstream
        .as_ref()
        .map(|u| super::sessions::seal(state, &format!("consent:{id}"), u))
        .transpose()
    {
        Ok(sealed) => sealed,
        Err(_) => return LocalResponse::store_down_page(),
    };
    let asked = Asked {
        pending,
        user,
        upstream,
        csrf: csrf.clone(),
    };
    if state
        .store
        .put_json(&format!("consent:{id}"), &asked, Some(PENDING_TTL))
        .await
        .is_err()
    {
        return LocalResponse::store_down_page();
    }
    let esc = crate::web::escape_html;
    let warning = if loopback {
        "<p style=\"color:#a00\"><strong>This application runs on your own computer</strong> (its address is local). Approve only if you started it yourself just now.</p>"
    } else {
        ""
    };
    let items: String = scopes
        .iter()
        .map(|s| format!("<li>{}</li>", esc(s)))
        .collect();
    let granted_items = if already.is_empty() {
        String::new()
    } else {
        let li: String = already
            .iter()
            .map(|s| format!("<li>{}</li>", esc(s)))
            .collect();
        format!("<p>Already granted:</p><ul id=\"granted-scopes\">{li}</ul>")
    };
    let asked_heading = if already.is_empty() {
        "Scopes:"
    } else {
        "New scopes requested:"
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Allow access?</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\">\
         <h1>Allow {name} to access your MCP tools?</h1>\
         <p>Signed in as <strong>{email}</strong>. <strong>{name}</strong> will receive tokens at <strong>{host}</strong> to {target}.</p>{warning}\
         <p>{asked_heading}</p><ul id=\"requested-scopes\">{items}</ul>{granted_items}\
         <form id=\"consent\" method=\"post\" action=\"/api/v1/auth/consent\">\
         <input type=\"hidden\" name=\"consent_id\" value=\"{id}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button name=\"decision\" value=\"approve\" type=\"submit\">Allow</button> \
         <button name=\"decision\" value=\"deny\" type=\"submit\">Deny</button></form></body></html>",
        name = esc(&name),
        email = esc(&email),
        host = esc(&host),
    );
    let secure = if cookie_name(state).starts_with("__Host-") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={csrf}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
        cookie_name(state)
    );
    let mut resp = LocalResponse::html(200, html);
    if let Some(target) = redirect.as_ref().map(csp_source) {
        resp = resp.allow_form_target(&target);
    }
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp = resp.with_header(http::header::SET_COOKIE, v);
    }
    resp
}

pub async fn decide(state: &State, oauth: &OAuthServer, req: &LocalRequest) -> LocalResponse {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let (Some(id), Some(token), Some(decision)) = (
        form.get("consent_id"),
        form.get("csrf_token"),
        form.get("decision"),
    ) else {
        return page(
            400,
            "Invalid request",
            "consent_id, csrf_token and decision are required.",
        );
    };
    let cookie = req.cookie(cookie_name(state)).unwrap_or_default();
    let asked: Asked = match state.store.take_json(&format!("consent:{id}")).await {
        Ok(Some(a)) => a,
        Ok(None) => return page(400, "Request expired", "This approval is unknown, already answered or expired. Start again from your application."),
        Err(_) => return LocalResponse::store_down_page(),
    };
    let matches = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
    if !(matches(token, &asked.csrf) && matches(cookie, &asked.csrf)) {
        return page(
            403,
            "Request refused",
            "This approval did not come from the page the gateway showed you.",
        );
    }
    let p = asked.pending;
    match decision.as_str() {
        // The policy may have changed while the page was open.
        "approve" if !super::callback::may_use(state, &p, &asked.user) => page(
            403,
            "No access to this app",
            "Your account is not allowed to use this app.",
        ),
        "approve" => {
            // What was granted before stays granted (incremental consent).
            let mut scopes =
                granted(state, &asked.user.sub, &p.client_id, p.resource.as_deref()).await;
            for s in p.scope.split(' ').filter(|s| !s.is_empty()) {
                if !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_string());
                }
            }
            let _ = state
                .store
                .put_json(
                    &remembered_key(state, &asked.user.sub, &p.client_id, p.resource.as_deref()),
                    &scopes,
                    Some(REMEMBER),
                )
                .await;
            let _ = oauth;
            let upstream = match &asked.upstream {
                Some(sealed) => match super::sessions::open::<IdpTokens>(state, &format!("consent:{id}"), sealed) {
                    Some(tokens) => Some(tokens),
                    None => return page(400, "Request expired", "This approval can no longer be completed. Start again from your application."),
                },
                None => None,
            };
            issue_code(state, p, asked.user, upstream).await
        }
        _ => redirect_error(
            state,
            &p.redirect_uri,
            p.client_state.as_deref(),
            "access_denied",
            "the user denied access",
        ),
    }
}

/// The CSP source expression for a redirect URI: its origin for http(s), its
/// scheme for a native app's private-use scheme (RFC 8252 §7.1).
fn csp_source(u: &url::Url) -> String {
    match u.scheme() {
        "http" | "https" => u.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    }
}
