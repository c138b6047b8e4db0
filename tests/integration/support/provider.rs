//! `TestProvider`: a real HTTP OAuth 2.0 provider standing in for an app's
//! upstream API provider (the other side of the gateway's credential
//! injection). It implements client credentials, authorization code with
//! PKCE (auto-approving `/authorize`), refresh with rotation, and RFC 7591
//! registration, and counts every call so tests can prove single flight.
//!
//! Access tokens are `at-{n}` (n counts issued tokens), so a test can tell
//! exactly which token reached the upstream.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const CLIENT_ID: &str = "up-client";
pub const CLIENT_SECRET: &str = "up-secret-value";

#[derive(Default)]
struct State {
    issued: u32,
    calls: HashMap<String, usize>,
    /// code → (code_challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    refresh: HashMap<String, ()>,
    expires_in: u64,
    delay_ms: u64,
    registered: Vec<Value>,
    last_token_form: HashMap<String, String>,
}

pub struct TestProvider {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl TestProvider {
    pub async fn start() -> TestProvider {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test provider");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            expires_in: 3600,
            ..State::default()
        }));
        let shared = state.clone();
        let server = super::http_server::spawn(listener, move |r| {
            let s = shared.clone();
            async move { handle(&s, r).await }
        });
        TestProvider {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn calls(&self, endpoint: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        self.state.lock().unwrap().expires_in = secs;
    }

    pub fn set_delay_ms(&self, ms: u64) {
        self.state.lock().unwrap().delay_ms = ms;
    }

    /// Revokes every refresh token (the user withdrew the grant).
    pub fn revoke_all_grants(&self) {
        self.state.lock().unwrap().refresh.clear();
    }

    pub fn registrations(&self) -> Vec<Value> {
        self.state.lock().unwrap().registered.clone()
    }

    pub fn last_token_form(&self) -> HashMap<String, String> {
        self.state.lock().unwrap().last_token_form.clone()
    }
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(state: &Mutex<State>, req: Request<hyper::body::Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let endpoint = parts.uri.path().trim_start_matches('/').to_string();
    let delay = {
        let mut s = state.lock().unwrap();
        *s.calls.entry(endpoint.clone()).or_default() += 1;
        s.delay_ms
    };
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let mut s = state.lock().unwrap();
    match (&parts.method, endpoint.as_str()) {
        (&Method::GET, "authorize") => {
            // PKCE (RFC 7636) is mandatory here, as at real providers that
            // follow OAuth 2.1: no S256 challenge, no code.
            let challenge = query.get("code_challenge").cloned().unwrap_or_default();
            if challenge.is_empty()
                || query.get("code_challenge_method").map(String::as_str) != Some("S256")
            {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_request", "error_description": "PKCE S256 challenge required"}),
                );
            }
            let code = format!("code-{}", s.codes.len() + 1);
            let redirect = query.get("redirect_uri").cloned().unwrap_or_default();
            s.codes.insert(code.clone(), (challenge, redirect.clone()));
            let sep = if redirect.contains('?') { '&' } else { '?' };
            let state_param = query.get("state").cloned().unwrap_or_default();
            let loc = format!(
                "{redirect}{sep}code={code}&state={}",
                urlencode(&state_param)
            );
            Response::builder()
                .status(302)
                .header(header::LOCATION, loc)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        (&Method::POST, "register") => {
            let meta: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            s.registered.push(meta.clone());
            let n = s.registered.len();
            reply(
                StatusCode::CREATED,
                json!({
                    "client_id": format!("dcr-client-{n}"), "client_secret": format!("dcr-secret-{n}"),
                    "registration_access_token": format!("dcr-rat-{n}"),
                    "registration_client_uri": format!("http://{}/register/dcr-client-{n}", parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("")),
                    "redirect_uris": meta["redirect_uris"],
                }),
            )
        }
        (&Method::POST, "token") => {
            let form: HashMap<String, String> = if parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|c| c.as_bytes().starts_with(b"application/json"))
            {
                serde_json::from_slice::<HashMap<String, String>>(&body).unwrap_or_default()
            } else {
                url::form_urlencoded::parse(&body).into_owned().collect()
            };
            s.last_token_form = form.clone();
            let basic = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok());
            let (id, secret) = match basic {
                Some(b) => {
                    let (i, p) = b.split_once(':').unwrap_or((&b, ""));
                    (i.to_string(), Some(p.to_string()))
                }
                None => (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned(),
                ),
            };
            let known = (id == CLIENT_ID && secret.as_deref() == Some(CLIENT_SECRET))
                || id.starts_with("dcr-client-")
                || (id == "public-client" && secret.is_none());
            if !known {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
            }
            match form.get("grant_type").map(String::as_str) {
                Some("client_credentials") => issue(&mut s, false),
                Some("authorization_code") => {
                    let Some((challenge, _)) = form.get("code").and_then(|c| s.codes.remove(c))
                    else {
                        return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
                    };
                    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes()));
                    if challenge.is_empty() || computed != challenge {
                        return reply(
                            StatusCode::BAD_REQUEST,
                            json!({"error": "invalid_grant", "error_description": "PKCE"}),
                        );
                    }
                    issue(&mut s, true)
                }
                Some("refresh_token") => {
                    let rt = form.get("refresh_token").cloned().unwrap_or_default();
                    if s.refresh.remove(&rt).is_none() {
                        return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
                    }
                    issue(&mut s, true)
                }
                _ => reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "unsupported_grant_type"}),
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}

fn issue(s: &mut State, with_refresh: bool) -> Reply {
    s.issued += 1;
    let mut body = json!({"access_token": format!("at-{}", s.issued), "token_type": "Bearer", "expires_in": s.expires_in});
    if with_refresh {
        let rt = format!("rt-{}", s.issued);
        s.refresh.insert(rt.clone(), ());
        body["refresh_token"] = json!(rt);
    }
    reply(StatusCode::OK, body)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
