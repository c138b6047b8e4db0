//! The connect link of a WorkOS Pipes connection (seed `003_*`).
//!
//! After `super::start` has checked the link's ticket and user, the person
//! is asked to confirm on a page naming the gateway account and the
//! provider: WorkOS's page installs the provider for the gateway account the
//! link was issued to, so someone who was sent another person's link
//! (login CSRF, RFC 9700 §4.7) would otherwise connect their own provider
//! account to that person. Confirm (CSRF token + the binding cookie set with
//! the page, as in `super`) asks
//! `POST {api}/data-integrations/{provider}/authorize` for this user's
//! WorkOS page and sends the person there; WorkOS brings them back to
//! [`done`]. Cancel, or anything else, asks WorkOS nothing.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{clear_cookie, page, random_b64, same_browser, sha256_hex, with_cookie, ConnectError};
use crate::api::ApiCtx;
use crate::catalog::{self, live, Connection};
use crate::credentials::workos_pipes::WorkosPipes;
use crate::store::StoreExt;
use crate::web::{escape_html, LocalRequest, LocalResponse};

/// How long the confirmation page waits for an answer (`upipes:{id}`).
const CONFIRM_TTL: Duration = Duration::from_secs(300);

/// A confirmation page waiting for its answer, single use.
#[derive(Serialize, Deserialize)]
struct PendingPipe {
    subject: String,
    org_id: Option<String>,
    app_id: String,
    auth_id: String,
    csrf: String,
    /// SHA-256 (hex) of the binding cookie's value.
    binding: String,
}

fn pending_key(id: &str) -> String {
    format!("upipes:{id}")
}

/// The confirmation page for the user a checked link was issued to.
pub(super) async fn start(
    cx: &ApiCtx<'_>,
    conn: &Connection,
    subject: &str,
    email: Option<&str>,
    org_id: Option<&str>,
) -> LocalResponse {
    let (Some(id), Some(csrf), Some(binding)) = (random_b64(24), random_b64(24), random_b64(32))
    else {
        return ConnectError::Store.page();
    };
    let pending = PendingPipe {
        subject: subject.into(),
        org_id: org_id.map(str::to_string),
        app_id: conn.app_id.clone(),
        auth_id: conn.id.clone(),
        csrf: csrf.clone(),
        binding: sha256_hex(&binding),
    };
    if cx
        .store
        .put_json(&pending_key(&id), &pending, Some(CONFIRM_TTL))
        .await
        .is_err()
    {
        return ConnectError::Store.page();
    }
    let provider = conn.config.provider.as_deref().unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Connect your {provider} account?</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\">\
         <h1>Connect your {provider} account?</h1>\
         <p>WorkOS will ask you to connect a {provider} account for the gateway account <strong>{account}</strong> \
         (connection <strong>{name}</strong>): requests that account makes through its MCP clients will act as you at {provider}.</p>\
         <p>If this is not your gateway account, or you did not start this just now, choose <strong>Cancel</strong>.</p>\
         <form id=\"connect\" method=\"post\" action=\"/api/v1/connections/pipes\">\
         <input type=\"hidden\" name=\"confirm_id\" value=\"{id}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button name=\"decision\" value=\"confirm\" type=\"submit\">Confirm</button> \
         <button name=\"decision\" value=\"cancel\" type=\"submit\">Cancel</button></form></body></html>",
        provider = escape_html(provider),
        account = escape_html(email.unwrap_or(subject)),
        name = escape_html(&conn.name),
        id = escape_html(&id),
        csrf = escape_html(&csrf),
    );
    with_cookie(LocalResponse::html(200, html), cx, &binding, CONFIRM_TTL)
}

/// The answer to the confirmation page: only Confirm, from the browser that
/// got the page, asks WorkOS for the user's page.
pub(crate) async fn confirm(cx: &ApiCtx<'_>, req: &LocalRequest) -> LocalResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let Some(id) = form.get("confirm_id") else {
        return page(400, "Invalid request", "confirm_id is required.");
    };
    // Taken first: a refused answer also ends the flow (single use).
    let p: PendingPipe = match cx.store.take_json(&pending_key(id)).await {
        Ok(Some(p)) => p,
        Ok(None) => return ConnectError::Expired.page(),
        Err(_) => return ConnectError::Store.page(),
    };
    let token = form.get("csrf_token").map(String::as_str).unwrap_or("");
    let token_ok = bool::from(token.as_bytes().ct_eq(p.csrf.as_bytes()));
    if !(token_ok && same_browser(cx, req, &p.binding)) {
        return ConnectError::Forged.page();
    }
    if form.get("decision").map(String::as_str) != Some("confirm") {
        return clear_cookie(
            page(
                200,
                "Not connected",
                "Nothing was connected. You can close this window.",
            ),
            cx,
        );
    }
    let conn: Connection = match cx
        .store
        .get_json(&catalog::conn_key(&p.app_id, &p.auth_id))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return ConnectError::NoConnection.page(),
        Err(_) => return ConnectError::Store.page(),
    };
    let secrets = match &conn.secret_ref {
        Some(r) => match catalog::secrets::get(cx.store.as_ref(), cx.vault.as_deref(), r).await {
            Ok(s) => s,
            Err(_) => return ConnectError::Store.page(),
        },
        None => Default::default(),
    };
    let pipes = match WorkosPipes::new(&conn, &secrets, live::oauth_context(&cx.catalog)) {
        Ok(w) => w,
        Err(why) => return ConnectError::Unusable(why.to_string()).page(),
    };
    let return_to = format!("{}/api/v1/connections/done", cx.config.public_url);
    let resp = match pipes
        .authorize_url(&p.subject, p.org_id.as_deref(), &return_to)
        .await
    {
        Ok(url) => LocalResponse::redirect(&url),
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "WorkOS Pipes authorize failed");
            page(
                502,
                "Not connected",
                "WorkOS could not start connecting this account. Try again from your MCP client.",
            )
        }
    };
    clear_cookie(resp, cx)
}

/// Where WorkOS Pipes sends the person back once the account is connected.
pub(crate) fn done() -> LocalResponse {
    page(
        200,
        "Connected",
        "You can close this window and retry in your MCP client.",
    )
}
