//! `TestSts`: a fake RFC 8693 security token service. It accepts only
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with
//! `subject_token_type=urn:ietf:params:oauth:token-type:access_token`, the
//! configured `audience` and client, and a subject token it can read (a
//! JWT: its `sub` is the user; an opaque token stands for itself, as
//! `opaque:{token}`). Issued tokens are `xt-{sub}-{n}`, so a test
//! sees whose exchange reached the upstream; every form is recorded.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use super::fake_http::{json_reply, FakeRequest, FakeServer, Reply};

pub const CLIENT_ID: &str = "sts-client";
pub const CLIENT_SECRET: &str = "sts-secret-value";
pub const AUDIENCE: &str = "https://api.example.com";
/// Text an STS error body carries that must never reach a client.
pub const LEAKY_DETAIL: &str = "internal-sts-detail-7f3a";

#[derive(Default)]
struct State {
    issued: u32,
    forms: Vec<HashMap<String, String>>,
    /// Refuse every exchange with this error code.
    refuse: Option<String>,
    delay_ms: u64,
    expires_in: u64,
}

pub struct TestSts {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

impl TestSts {
    pub async fn start() -> TestSts {
        Self::start_on("127.0.0.1").await
    }

    pub async fn start_on(ip: &str) -> TestSts {
        let state = Arc::new(Mutex::new(State {
            expires_in: 3600,
            ..State::default()
        }));
        let shared = state.clone();
        let server = FakeServer::start_on(ip, move |r| {
            let s = shared.clone();
            async move { handle(&s, r).await }
        })
        .await;
        TestSts { server, state }
    }

    pub fn token_url(&self) -> String {
        self.server.url("/token")
    }

    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().forms.len()
    }

    pub fn forms(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().forms.clone()
    }

    pub fn refuse_with(&self, error: Option<&str>) {
        self.state.lock().unwrap().refuse = error.map(str::to_string);
    }

    pub fn set_delay_ms(&self, ms: u64) {
        self.state.lock().unwrap().delay_ms = ms;
    }
}

/// The unverified `sub` of a JWT (the fake trusts the gateway to have sent
/// the user's real token; the test checks which one arrived).
pub fn jwt_sub(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["sub"].as_str().map(str::to_string)
}

async fn handle(state: &Mutex<State>, r: FakeRequest) -> Reply {
    if r.method != http::Method::POST || r.path != "/token" {
        return json_reply(404, json!({"error": "not_found"}));
    }
    let form = r.form();
    let (delay, refuse) = {
        let mut s = state.lock().unwrap();
        s.forms.push(form.clone());
        (s.delay_ms, s.refuse.clone())
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("client_id") != Some(CLIENT_ID) || get("client_secret") != Some(CLIENT_SECRET) {
        return json_reply(401, json!({"error": "invalid_client"}));
    }
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:token-exchange") {
        return json_reply(400, json!({"error": "unsupported_grant_type"}));
    }
    if get("subject_token_type") != Some("urn:ietf:params:oauth:token-type:access_token") {
        return json_reply(400, json!({"error": "invalid_request"}));
    }
    if get("audience") != Some(AUDIENCE) {
        return json_reply(400, json!({"error": "invalid_target"}));
    }
    if let Some(code) = refuse {
        return json_reply(
            400,
            json!({"error": code, "error_description": format!("user is blocked: {LEAKY_DETAIL}")}),
        );
    }
    // A JWT stands for its `sub`; an opaque token (WorkOS SSO's) for itself.
    let subject = get("subject_token").filter(|t| !t.is_empty());
    let Some(sub) = subject
        .and_then(|t| jwt_sub(t).or_else(|| (!t.contains('.')).then(|| format!("opaque:{t}"))))
    else {
        return json_reply(
            400,
            json!({"error": "invalid_grant", "error_description": LEAKY_DETAIL}),
        );
    };
    let mut s = state.lock().unwrap();
    s.issued += 1;
    json_reply(
        200,
        json!({
            "access_token": format!("xt-{sub}-{}", s.issued),
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": s.expires_in,
        }),
    )
}
