//! Consent (MCP authorization spec, "Confused Deputy Problem"): every
//! dynamically registered client signs in through the gateway's one upstream
//! client, so before a code is issued the user sees which client is asking
//! (name, redirect host, a warning for loopback-only clients) and for which
//! scopes, and approves or denies with a POST bound to a cookie (CSRF).
//! Approvals are remembered per user and client; configured trusted clients
//! skip the page.

use crate::store::keys;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::authorize::{lookup, page, redirect_error, Pending};
use super::callback::issue_code;
use super::idp::{IdpTokens, User};
use super::{random, OAuthCtx, OAuthServer, PENDING_TTL};
use crate::store::StoreExt;
use crate::web::pages::{self, branding::Branding, Brand};
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
fn remembered_key(cx: &OAuthCtx<'_>, sub: &str, client_id: &str, resource: Option<&str>) -> String {
    // No resource and `public_url` are one audience: the management API.
    let audience = resource.unwrap_or(&cx.config.public_url);
    keys::consented(
        &super::sha256_hex(sub),
        &super::sha256_hex(client_id),
        &super::sha256_hex(audience),
    )
}

/// Plain-language text for a scope: the operator's (`[oauth]
/// scope_descriptions`), else a default for the standard ones, else a
/// sentence naming the app permission.
fn describe(oauth: &OAuthServer, scope: &str) -> String {
    if let Some(d) = oauth.cfg.scope_descriptions.get(scope) {
        return d.trim().to_string();
    }
    match scope {
        "openid" => "Confirm who you are (your account's identifier)".into(),
        "profile" => "See your name and profile picture".into(),
        "email" => "See your e-mail address".into(),
        "offline_access" => {
            "Keep access while you are away (until you revoke it or it expires)".into()
        }
        other => format!("Use the permission \u{201c}{other}\u{201d} of the app"),
    }
}

/// The app an authorization is for (None: the management API, or a
/// resource no longer routed), with its branding: the config file's, else
/// the stored app record's.
async fn app_of(
    cx: &OAuthCtx<'_>,
    resource: Option<&str>,
) -> Option<(crate::config::AppConfig, Option<Branding>)> {
    let r = resource.filter(|r| *r != cx.config.public_url)?;
    let routes = cx.routes.load();
    let found = routes
        .apps()
        .find(|a| a.resource_url(&cx.config.public_url) == r)
        .map(|a| (**a).clone());
    drop(routes);
    let app = found?;
    let branding = match cx.config.pages.branding.get(&app.id) {
        Some(b) => Some(b.clone()),
        None => cx
            .store
            .get_json::<crate::catalog::AppRecord>(&crate::catalog::app_key(&app.id))
            .await
            .ok()
            .flatten()
            .and_then(|rec| rec.branding),
    };
    Some((app, branding))
}

/// The authorization request again, with `prompt=login`, so "Not you?"
/// restarts sign-in at the IdP instead of reusing its session.
fn restart_url(p: &Pending) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", &p.redirect_uri)
        .append_pair("scope", &p.scope)
        .append_pair("code_challenge", &p.code_challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("prompt", "login");
    if let Some(s) = &p.client_state {
        q.append_pair("state", s);
    }
    if let Some(r) = &p.resource {
        q.append_pair("resource", r);
    }
    format!("/api/v1/auth/authorize?{}", q.finish())
}

fn cookie_name(cx: &OAuthCtx<'_>) -> &'static str {
    if cx.config.public_url.starts_with("https://") {
        "__Host-drio-consent"
    } else {
        "drio-consent"
    }
}

/// The scopes this user already granted this client for this resource.
async fn granted(
    cx: &OAuthCtx<'_>,
    sub: &str,
    client_id: &str,
    resource: Option<&str>,
) -> Vec<String> {
    cx.store
        .get_json::<Vec<String>>(&remembered_key(cx, sub, client_id, resource))
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// What this user already granted this client for this resource, and
/// whether it covers the request (a trusted client needs no consent).
pub(crate) struct Prior {
    pub(crate) given: bool,
    granted: Vec<String>,
}

pub(crate) async fn prior(cx: &OAuthCtx<'_>, oauth: &OAuthServer, sub: &str, p: &Pending) -> Prior {
    if oauth.cfg.trusted_clients.contains(&p.client_id) {
        return Prior {
            given: true,
            granted: Vec::new(),
        };
    }
    let granted = granted(cx, sub, &p.client_id, p.resource.as_deref()).await;
    let given = !granted.is_empty()
        && p.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .all(|s| granted.iter().any(|x| x == s));
    Prior { given, granted }
}

pub(crate) async fn show(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    pending: Pending,
    user: User,
    upstream: Option<IdpTokens>,
    prior: Prior,
) -> LocalResponse {
    // Independent reads, so one store round trip's wait instead of two.
    let (client, app) = tokio::join!(
        lookup(cx, oauth, &pending.client_id),
        app_of(cx, pending.resource.as_deref())
    );
    let client = match client {
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
    let host_kind = if redirect.as_ref().is_some_and(|u| u.host_str().is_some()) {
        "its redirect address"
    } else {
        "an app on this device"
    };
    let metadata_host = super::cimd::is_cimd(&pending.client_id)
        .then(|| url::Url::parse(&pending.client_id).ok())
        .flatten()
        .and_then(|u| u.host_str().map(str::to_owned));
    let loopback = redirect.as_ref().is_some_and(super::clients::is_loopback);
    let granted = prior.granted;
    let scopes: Vec<pages::consent::Scope> = pending
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| pages::consent::Scope {
            id: s.to_string(),
            description: describe(oauth, s),
            granted: granted.iter().any(|g| g == s),
        })
        .collect();
    let target = match (&app, pending.resource.as_deref()) {
        (Some(_), Some(r)) => pages::consent::Target::App { url: r.to_string() },
        (None, Some(r)) if r != cx.config.public_url => {
            pages::consent::Target::Other { url: r.to_string() }
        }
        _ => pages::consent::Target::Management,
    };
    let brand = match &app {
        Some((a, b)) => Brand::of(&a.name, b.as_ref(), &cx.config.pages.logo_hosts),
        None => Brand::default(),
    };
    let account = user.email.clone().unwrap_or_else(|| user.sub.clone());
    let restart = restart_url(&pending);
    let upstream = match upstream
        .as_ref()
        .map(|u| super::sessions::seal(cx, &keys::consent(&id), u))
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
    if cx
        .store
        .put_json(&keys::consent(&id), &asked, Some(PENDING_TTL))
        .await
        .is_err()
    {
        return LocalResponse::store_down_page();
    }
    let company = app
        .as_ref()
        .and_then(|(_, b)| b.as_ref())
        .and_then(|b| b.company_url.clone());
    let view = pages::consent::View {
        brand: &brand,
        app_description: app.as_ref().and_then(|(a, _)| a.description.as_deref()),
        company_url: company.as_deref(),
        target,
        client_name: client
            .client_name
            .as_deref()
            .filter(|n| !n.trim().is_empty()),
        client_host: &host,
        host_kind,
        metadata_host: metadata_host.as_deref(),
        loopback,
        scopes,
        account: &account,
        restart: &restart,
        consent_id: &id,
        csrf: &csrf,
    };
    let secure = if cookie_name(cx).starts_with("__Host-") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={csrf}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{secure}",
        cookie_name(cx)
    );
    let mut resp = pages::consent::page(view);
    if let Some(target) = redirect.as_ref().map(csp_source) {
        resp = resp.allow_form_target(&target);
    }
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp = resp.with_header(http::header::SET_COOKIE, v);
    }
    resp
}

pub(crate) async fn decide(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
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
    let cookie = req.cookie(cookie_name(cx)).unwrap_or_default();
    let asked: Asked = match cx.store.take_json(&keys::consent(id)).await {
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
        "approve" if !super::callback::may_use(cx, &p, &asked.user) => page(
            403,
            "No access to this app",
            "Your account is not allowed to use this app.",
        ),
        "approve" => {
            let _ = oauth;
            let upstream = match &asked.upstream {
                Some(sealed) => match super::sessions::open::<IdpTokens>(cx, &keys::consent(id), sealed) {
                    Some(tokens) => Some(tokens),
                    None => return page(400, "Request expired", "This approval can no longer be completed. Start again from your application."),
                },
                None => None,
            };
            // What was granted before stays granted (incremental consent).
            // Remembering it and storing the code are independent writes:
            // one round trip's wait instead of two.
            let sub = asked.user.sub.clone();
            let remember = async {
                let key = remembered_key(cx, &sub, &p.client_id, p.resource.as_deref());
                let mut scopes = granted(cx, &sub, &p.client_id, p.resource.as_deref()).await;
                for s in p.scope.split(' ').filter(|s| !s.is_empty()) {
                    if !scopes.iter().any(|x| x == s) {
                        scopes.push(s.to_string());
                    }
                }
                let _ = cx.store.put_json(&key, &scopes, Some(REMEMBER)).await;
            };
            let ((), resp) =
                tokio::join!(remember, issue_code(cx, p.clone(), asked.user, upstream));
            resp
        }
        _ => redirect_error(
            cx,
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
