//! The WorkOS Pipes part of `TestWorkOs` (seed `003_*`), on the same server
//! as the SSO fake (one WorkOS API base):
//! - `POST /data-integrations/{provider}/token` (Bearer API key; JSON
//!   `{user_id, organization_id}`) answers what the test set for that user,
//!   by default `{"active": false, "error": "not_installed"}`;
//! - `POST /data-integrations/{provider}/authorize` (`{user_id,
//!   organization_id, return_to}`) answers `{"url"}`: a page of this fake;
//! - `GET /pipes/install?user=…&return_to=…` stands for WorkOS's widget: it
//!   installs the provider for the user (a token valid one hour) and
//!   redirects back to `return_to`.
#![allow(dead_code)]

use std::collections::HashMap;

use serde_json::{json, Value};

use super::fake_http::{json_reply, redirect, FakeRequest, Reply};
use super::workos::API_KEY;

#[derive(Default)]
pub struct PipesState {
    /// The token answer per WorkOS user id.
    pub answers: HashMap<String, Value>,
    /// Every call: (action, JSON body, Authorization header).
    pub calls: Vec<(String, Value, String)>,
    pub installs: u32,
    /// Each token call waits this long first (to overlap requests).
    pub delay_ms: u64,
}

/// A valid token answer expiring in `secs`.
pub fn active(token: &str, secs: i64, missing_scopes: &[&str]) -> Value {
    let at = chrono::Utc::now() + chrono::Duration::seconds(secs);
    json!({"active": true, "access_token": {"object": "access_token", "access_token": token,
        "expires_at": at.to_rfc3339(), "scopes": ["repo"], "missing_scopes": missing_scopes}})
}

pub fn handle(s: &mut PipesState, base: &str, r: &FakeRequest) -> Option<Reply> {
    if r.method == http::Method::GET && r.path == "/pipes/install" {
        let user = r.query.get("user")?.clone();
        s.installs += 1;
        let token = format!("pipes_at_{user}_{}", s.installs);
        s.answers.insert(user, active(&token, 3600, &[]));
        return Some(redirect(r.query.get("return_to")?));
    }
    let rest = r.path.strip_prefix("/data-integrations/")?;
    let (provider, action) = rest.split_once('/')?;
    if r.method != http::Method::POST {
        return None;
    }
    let auth = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    s.calls
        .push((action.to_string(), body.clone(), auth.clone()));
    if auth != format!("Bearer {API_KEY}") {
        return Some(json_reply(401, json!({"message": "Unauthorized"})));
    }
    let Some(user) = body["user_id"].as_str() else {
        return Some(json_reply(422, json!({"message": "user_id is required"})));
    };
    Some(match action {
        "token" => json_reply(
            200,
            s.answers
                .get(user)
                .cloned()
                .unwrap_or_else(|| json!({"active": false, "error": "not_installed"})),
        ),
        "authorize" => {
            let mut u = url::Url::parse(&format!("{base}/pipes/install")).unwrap();
            u.query_pairs_mut()
                .append_pair("user", user)
                .append_pair("provider", provider)
                .append_pair("return_to", body["return_to"].as_str().unwrap_or_default());
            json_reply(200, json!({"url": u.to_string()}))
        }
        _ => json_reply(404, json!({"message": "not found"})),
    })
}
