//! The egress policy from the outside (issue 12, rows 2 and 5): a signed-in
//! user cannot point an app or a connection at the gateway's own admin
//! listener, loopback, link-local metadata or the private network, and a
//! connection's error never carries what its endpoint answered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::gateway::{GatewayBuilder, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::upstream::TestUpstream;

const SECRET: &str = "SECRET-BODY-123";

/// A gateway whose management API trusts `idp`'s tokens; `allow` is the
/// `[security] allow_upstream_cidrs` list (none when empty).
fn gateway(idp: &TestIdp, allow: &[&str]) -> GatewayBuilder {
    let mut toml = format!(
        "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n",
        iss = idp.issuer()
    );
    if !allow.is_empty() {
        let list: Vec<String> = allow.iter().map(|c| format!("\"{c}\"")).collect();
        toml += &format!(
            "\n[security]\nallow_upstream_cidrs = [{}]\n",
            list.join(", ")
        );
    }
    TestGateway::new().raw_toml(&toml)
}

/// One user's calls to the management API.
struct User<'a> {
    gw: &'a TestGateway,
    token: String,
}

impl<'a> User<'a> {
    fn new(gw: &'a TestGateway, idp: &TestIdp, sub: &str) -> Self {
        let token = idp.mint_access_token(sub, &gw.public_url(), "openid", 600);
        User { gw, token }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .gw
            .client()
            .request(method, format!("{}{path}", self.gw.url()))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("management request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Value::Null).await
    }
}

/// Asserts a 422 `validation_error` on `upstreamUrl` naming `class`.
fn assert_refused(status: u16, body: &Value, class: &str, url: &str) {
    assert_eq!(status, 422, "{url}: {body}");
    assert_eq!(body["error"]["code"], "validation_error", "{url}: {body}");
    assert_eq!(
        body["error"]["details"]["field"], "upstreamUrl",
        "{url}: {body}"
    );
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("resolves to a {class} address")),
        "{url}: {msg}"
    );
}

/// Row 2: a public app in front of the gateway's own admin listener (and
/// every other internal address) is refused on create, by address or name,
/// through the template path and through a full config.
#[tokio::test]
async fn an_app_cannot_point_at_internal_addresses() {
    let idp = TestIdp::start().await;
    let gw = gateway(&idp, &[]).start().await;
    let eve = User::new(&gw, &idp, "user_eve");
    let port = gw.admin_url().rsplit(':').next().unwrap().to_string();
    let cases = [
        (format!("http://127.0.0.1:{port}"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}"), "loopback"),
        (format!("http://[::1]:{port}"), "loopback"),
        (format!("http://0.0.0.0:{port}"), "unspecified"),
        (format!("http://localhost:{port}"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data".into(),
            "link-local",
        ),
        ("http://10.0.0.1:8080".into(), "private"),
        ("http://[64:ff9b::7f00:1]:80".into(), "loopback"),
    ];
    for (i, (url, class)) in cases.iter().enumerate() {
        // The template path: `upstreamUrl` beside a name.
        let (s, body) = eve
            .post(
                "/api/v1/apps",
                json!({"name": format!("t{i}"), "upstreamUrl": url}),
            )
            .await;
        assert_refused(s, &body, class, url);
        // A full config, public.
        let (s, body) = eve
            .post(
                "/api/v1/apps",
                json!({"name": format!("c{i}"), "config": {"upstreamUrl": url, "public": true}}),
            )
            .await;
        assert_refused(s, &body, class, url);
    }
    // Nothing was created: the admin listener is not reachable through an app.
    let (s, body) = eve.get("/api/v1/apps").await;
    assert_eq!(s, 200);
    assert_eq!(body["apps"].as_array().unwrap().len(), 0, "{body}");
    let resp = gw
        .client()
        .post(gw.app_url("t0", "/oauth/keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// The operator's allowance reopens exactly its ranges: a loopback
/// upstream is accepted and proxies; PUT config to anything outside it is
/// refused, and the refused target is never contacted.
#[tokio::test]
async fn the_allowance_admits_its_ranges_only_and_put_config_is_checked() {
    let (idp, up, target) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestUpstream::start().await,
    );
    let gw = gateway(&idp, &["127.0.0.1/32"]).start().await;
    let ada = User::new(&gw, &idp, "user_ada");
    let (s, body) = ada
        .post(
            "/api/v1/apps",
            json!({"name": "notes", "config": {"upstreamUrl": up.url(), "public": true}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = body["app"]["id"].as_str().unwrap().to_string();
    let resp = gw
        .client()
        .post(gw.app_url("notes", "/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    let target_port = target.authority().rsplit(':').next().unwrap().to_string();
    for (url, class) in [
        (format!("http://127.0.0.2:{target_port}"), "loopback"),
        (format!("http://[::1]:{target_port}"), "loopback"),
        ("http://169.254.169.254".into(), "link-local"),
        ("http://192.168.1.1".into(), "private"),
    ] {
        let (s, body) = ada
            .put(
                &format!("/api/v1/apps/{id}/config"),
                json!({"upstreamUrl": url, "public": true}),
            )
            .await;
        assert_refused(s, &body, class, &url);
    }
    // The stored config is unchanged and the app still proxies.
    let (_, body) = ada.get(&format!("/api/v1/apps/{id}/config")).await;
    assert_eq!(body["config"]["upstreamUrl"], up.url());
    assert_eq!(target.count(), 0);
}

/// A stored app whose upstream became forbidden (created while allowed,
/// then the gateway restarted without the allowance) gets 502 and the
/// upstream never sees a request — neither through the data plane nor
/// through the commands API. Config-file apps stay trusted.
#[tokio::test]
async fn a_stored_forbidden_upstream_gets_502_and_is_never_reached() {
    let (idp, up, ops) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestUpstream::start().await,
    );
    let mut gw = gateway(&idp, &["127.0.0.0/8"])
        .app("ops", &ops)
        .start()
        .await;
    let ada = User::new(&gw, &idp, "user_ada");
    let (s, body) = ada
        .post(
            "/api/v1/apps",
            json!({"name": "mine", "config": {"upstreamUrl": up.url(), "public": true}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let id = body["app"]["id"].as_str().unwrap().to_string();

    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let without = config.replace("[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\"]\n", "");
    assert_ne!(config, without, "the allowance was in the config");
    std::fs::write(gw.config_path(), without).unwrap();
    gw.restart().await;

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let resp = gw
        .client()
        .post(gw.app_url("mine", "/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_gateway", "{body}");
    let ada = User::new(&gw, &idp, "user_ada");
    let (s, body) = ada.get(&format!("/api/v1/apps/{id}/commands")).await;
    assert_eq!(s, 502, "{body}");
    assert_eq!(up.count(), 0, "the forbidden upstream was reached");
    assert!(
        gw.log_tail(200).contains("refused by the egress policy"),
        "{}",
        gw.log_tail(20)
    );
    // The operator's own loopback app is not subject to the policy.
    let resp = gw
        .client()
        .post(gw.app_url("ops", "/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// An HTTP server that answers every request with one status and body,
/// and counts the requests it got.
struct SecretServer {
    addr: SocketAddr,
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

impl SecretServer {
    async fn start(ip: &str) -> SecretServer {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new((200, SECRET.to_string())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, h) = (a.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = a.lock().unwrap().clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        SecretServer { addr, answer, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_string());
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Creates an app in front of `up` and returns its id.
async fn app(user: &User<'_>, up: &TestUpstream) -> String {
    let (s, body) = user
        .post(
            "/api/v1/apps",
            json!({"name": "crm", "config": {"upstreamUrl": up.url()}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    body["app"]["id"].as_str().unwrap().to_string()
}

/// A client-credentials connection's `lastError` for `token_endpoint`.
async fn last_error(user: &User<'_>, app_id: &str, token_endpoint: &str) -> String {
    let (s, body) = user
        .post(
            &format!("/api/v1/apps/{app_id}/auth"),
            json!({"config": {"type": "oauth", "tokenEndpoint": token_endpoint,
                "clientId": "c1", "clientSecret": "s1"}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert!(!body.to_string().contains("SECRET"), "{body}");
    assert_eq!(body["auth"]["status"], "invalid", "{body}");
    body["auth"]["lastError"].as_str().unwrap().to_string()
}

/// The 422 message of a registration at `endpoint`.
async fn registration_error(user: &User<'_>, app_id: &str, endpoint: &str) -> String {
    let (s, body) = user
        .post(
            &format!("/api/v1/apps/{app_id}/auth"),
            json!({"config": {"type": "oauth", "tokenEndpoint": endpoint,
                "registrationEndpoint": endpoint}}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["code"], "registration_failed", "{body}");
    assert!(!body.to_string().contains("SECRET"), "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// Row 5: token and registration endpoints on internal addresses are
/// refused by class and never contacted; with the allowance, what they
/// answer is reduced to its class (`status 401`, `invalid response`, an
/// RFC 6749 §5.2 code) and no byte of the body comes back.
#[tokio::test]
async fn connection_errors_name_the_class_and_never_the_remote_body() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    // Only the upstream's own address is allowed; the secret server listens
    // on another loopback address.
    let secret = SecretServer::start("127.0.0.2").await;
    let gw = gateway(&idp, &["127.0.0.1/32"]).start().await;
    let ada = User::new(&gw, &idp, "user_ada");
    let id = app(&ada, &up).await;
    let e = last_error(&ada, &id, &secret.url("/token")).await;
    assert!(e.contains("forbidden address (loopback)"), "{e}");
    let e = registration_error(&ada, &id, &secret.url("/register")).await;
    assert!(e.contains("forbidden address (loopback)"), "{e}");
    assert_eq!(secret.hits(), 0, "a forbidden endpoint was contacted");
    drop(gw);

    let gw = gateway(&idp, &["127.0.0.0/8"]).start().await;
    let ada = User::new(&gw, &idp, "user_ada");
    let id = app(&ada, &up).await;
    secret.answer(401, SECRET);
    let e = last_error(&ada, &id, &secret.url("/token")).await;
    assert!(e.contains("status 401"), "{e}");
    let e = registration_error(&ada, &id, &secret.url("/register")).await;
    assert!(e.contains("status 401"), "{e}");

    secret.answer(200, SECRET);
    let e = last_error(&ada, &id, &secret.url("/token")).await;
    assert!(e.contains("invalid response"), "{e}");
    let e = registration_error(&ada, &id, &secret.url("/register")).await;
    assert!(e.contains("invalid response"), "{e}");

    // A standard OAuth error code is kept; its description is not.
    secret.answer(
        400,
        &json!({"error": "invalid_client", "error_description": SECRET}).to_string(),
    );
    let e = last_error(&ada, &id, &secret.url("/token")).await;
    assert!(e.contains("status 400 (invalid_client)"), "{e}");
    // A made-up code is remote text too.
    secret.answer(400, &json!({ "error": SECRET }).to_string());
    let e = last_error(&ada, &id, &secret.url("/token")).await;
    assert_eq!(e, "the token endpoint refused: status 400");
    assert!(secret.hits() >= 6);
}
