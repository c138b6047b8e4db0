//! The management API and the data plane it drives: apps (ownership, live
//! routing), auth connections (write-only secrets, validation status),
//! every credential injection kind as the upstream receives it, tool
//! switches, client credentials and per-user OAuth against a real provider.

use serde_json::{json, Value};

use crate::support::gateway::{header_str, GatewayBuilder, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::oauth_client::Browser;
use crate::support::provider::{self, TestProvider};
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;
use crate::tenancy_connect::connect_in_browser;

const ADMIN: &str = "user_admin";

/// A gateway whose management API trusts `idp`'s tokens, with one admin.
/// Its users may reach loopback (every test upstream and provider is on
/// 127.0.0.1): the egress policy itself is tested in `egress.rs`.
pub(crate) fn gateway(idp: &TestIdp) -> GatewayBuilder {
    TestGateway::new().raw_toml(&format!(
        "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n\n[management]\nadmins = [\"{ADMIN}\"]\n\n\
         [security]\nallow_upstream_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n",
        iss = idp.issuer()
    ))
}

pub(crate) struct Api<'a> {
    pub(crate) gw: &'a TestGateway,
    pub(crate) token: String,
}

impl<'a> Api<'a> {
    pub(crate) fn as_user(gw: &'a TestGateway, idp: &TestIdp, sub: &str) -> Self {
        Api {
            gw,
            token: idp.mint_access_token(sub, &gw.public_url(), "openid profile email", 600),
        }
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .gw
            .client()
            .request(method, format!("{}{path}", self.gw.url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (client, req) = req.build_split();
        let req = req.expect("management request");
        let (method, url) = (req.method().clone(), req.url().to_string());
        let resp = client.execute(req).await.expect("management request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        crate::support::openapi::check(method.as_str(), &url, status, text.as_bytes());
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Creates an app in front of `upstream_url`; returns its id and slug.
    pub(crate) async fn create_app(&self, name: &str, config: Value) -> (String, String) {
        let (status, body) = self
            .post("/api/v1/apps", json!({ "name": name, "config": config }))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["app"]["id"].as_str().unwrap().into(),
            body["app"]["slug"].as_str().unwrap().into(),
        )
    }
}

/// An IdP, an upstream and a gateway (the common setup).
pub(crate) async fn with_upstream() -> (TestIdp, TestUpstream, TestGateway) {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = gateway(&idp).start().await;
    (idp, up, gw)
}

/// An IdP, an upstream, an upstream OAuth provider and a gateway.
pub(crate) async fn with_provider() -> (TestIdp, TestUpstream, TestProvider, TestGateway) {
    let (idp, up, p) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestProvider::start().await,
    );
    let gw = gateway(&idp).start().await;
    (idp, up, p, gw)
}

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["requestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

/// Calls an app's MCP endpoint as a client holding `token`.
pub(crate) async fn mcp(
    gw: &TestGateway,
    slug: &str,
    token: &str,
    body: Value,
) -> reqwest::Response {
    gw.client()
        .post(gw.app_url(slug, "/mcp?x=1"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

#[tokio::test]
async fn apps_belong_to_their_creator_and_route_without_a_restart() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = gateway(&idp).app("platform", &up).start().await;
    let (ada, bob, admin) = (
        Api::as_user(&gw, &idp, "user_ada"),
        Api::as_user(&gw, &idp, "user_bob"),
        Api::as_user(&gw, &idp, ADMIN),
    );

    let (id, slug) = ada
        .create_app(
            "Ada's Notes",
            json!({"upstreamUrl": up.url(), "public": true}),
        )
        .await;
    assert_eq!(slug, "ada-s-notes");
    let (s, body) = ada.get(&format!("/api/v1/apps/{id}")).await;
    assert_eq!(s, 200);
    for field in [
        "id",
        "slug",
        "name",
        "description",
        "status",
        "isEnabled",
        "templateId",
        "createdAt",
        "updatedAt",
    ] {
        assert!(body["app"].get(field).is_some(), "{field} in {body}");
    }
    assert_eq!(
        body["app"]["mcpUrl"],
        format!("{}/apps/ada-s-notes/mcp", gw.public_url())
    );

    // Live: the new app routes at once.
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));

    // Another user: 404, not 403, and not in their list. Admins see it.
    let (s, body) = bob.get(&format!("/api/v1/apps/{id}")).await;
    assert_error(s, &body, 404, "not_found");
    let (_, list) = bob.get("/api/v1/apps").await;
    let ids: Vec<&str> = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&id.as_str()) && ids.contains(&"app_platform"),
        "{list}"
    );
    let (s, _) = admin.get(&format!("/api/v1/apps/{id}")).await;
    assert_eq!(s, 200);
    let (s, body) = bob
        .patch(&format!("/api/v1/apps/{id}"), json!({"name": "mine now"}))
        .await;
    assert_error(s, &body, 404, "not_found");

    // Config-file apps are listed read-only.
    let (s, body) = admin
        .patch("/api/v1/apps/app_platform", json!({"name": "x"}))
        .await;
    assert_error(s, &body, 409, "read_only");

    // Validation names the field.
    let (s, body) = ada
        .post(
            "/api/v1/apps",
            json!({"name": "bad", "config": {"upstreamUrl": "ftp://x"}}),
        )
        .await;
    assert_error(s, &body, 422, "validation_error");
    assert_eq!(body["error"]["details"]["field"], "upstreamUrl");
    let (s, body) = ada
        .post(
            "/api/v1/apps",
            json!({"name": "Ada's Notes", "config": {"upstreamUrl": up.url()}}),
        )
        .await;
    assert_error(s, &body, 409, "conflict");

    // Pointing the app at another upstream reroutes live; deleting unroutes.
    let up2 = TestUpstream::start().await;
    let (s, body) = ada.send(reqwest::Method::PUT, &format!("/api/v1/apps/{id}/config"), Some(json!({"upstreamUrl": up2.url(), "public": true, "mcpPath": "/mcp", "requiredScopes": []}))).await;
    assert_eq!(s, 200, "{body}");
    let (old_before, new_before) = (up.count(), up2.count());
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    assert_eq!(
        up2.count(),
        new_before + 1,
        "the next request lands on the new upstream"
    );
    assert_eq!(up.count(), old_before, "and not on the old one");
    assert_eq!(up2.last_request().unwrap().json()["method"], "initialize");
    let (s, body) = ada
        .send(reqwest::Method::DELETE, &format!("/api/v1/apps/{id}"), None)
        .await;
    assert_eq!((s, &body), (200, &json!({"deleted": true})));
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // No token: the envelope, with a challenge.
    let resp = gw
        .client()
        .get(format!("{}/api/v1/apps", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(header_str(&resp, "www-authenticate").is_some_and(|c| c.contains("resource_metadata=")));
    let templates = gw
        .client()
        .get(format!("{}/api/v1/templates", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(templates.status(), 200, "templates are public");
}

#[tokio::test]
async fn a_change_at_one_instance_routes_at_another() {
    let (idp, up, redis) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        RedisServer::start(),
    );
    let a = gateway(&idp)
        .redis(&redis)
        .shared_state("mgmt:")
        .start()
        .await;
    let b = gateway(&idp)
        .redis(&redis)
        .shared_state("mgmt:")
        .start()
        .await;
    let (_, slug) = Api::as_user(&a, &idp, "user_ada")
        .create_app("shared", json!({"upstreamUrl": up.url(), "public": true}))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let s = b
            .client()
            .post(b.app_url(&slug, "/mcp"))
            .json(&initialize())
            .send()
            .await
            .unwrap()
            .status();
        if s == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never routed the app created at A"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every static injection kind, as the upstream receives it.
#[tokio::test]
async fn each_credential_kind_reaches_the_upstream_and_the_client_token_never_does() {
    let (idp, up, gw) = with_upstream().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    // An MCP client's token is for one app (RFC 8707): minted per app below.
    let client_token =
        |slug: &str| idp.mint_access_token("user_ada", &gw.app_url(slug, "/mcp"), "", 600);
    let cases = [
        (
            json!({"type": "api_key", "headerName": "X-Api-Key", "headerPrefix": "Key ", "apiKey": "k-123"}),
            "x-api-key",
            "Key k-123",
        ),
        (
            json!({"type": "bearer", "accessToken": "upstream-bearer-9"}),
            "authorization",
            "Bearer upstream-bearer-9",
        ),
        (
            json!({"type": "basic", "username": "svc", "password": "p@ss"}),
            "authorization",
            "Basic c3ZjOnBAc3M=",
        ),
    ];
    for (i, (config, header, want)) in cases.iter().enumerate() {
        let (id, slug) = ada
            .create_app(&format!("kind {i}"), json!({"upstreamUrl": up.url()}))
            .await;
        let (s, body) = ada
            .post(
                &format!("/api/v1/apps/{id}/auth"),
                json!({"name": "main", "config": config}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["auth"]["status"], "valid");
        let client_token = client_token(&slug);
        let resp = mcp(&gw, &slug, &client_token, initialize()).await;
        assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
        let seen = up.last_request().unwrap();
        assert_eq!(seen.header(header), Some(*want), "{config}");
        let all: String = seen
            .headers
            .values()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        assert!(
            !all.contains(&client_token),
            "the client's token reached the upstream"
        );
    }
    // Query API key: replaces a same-named parameter, keeps the others.
    let (id, slug) = ada
        .create_app("query", json!({"upstreamUrl": up.url()}))
        .await;
    ada.post(
        &format!("/api/v1/apps/{id}/auth"),
        json!({"config": {"type": "api_key", "queryParamName": "key", "apiKey": "q v&1"}}),
    )
    .await;
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp?key=forged&x=1"))
        .bearer_auth(client_token(&slug))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.query.as_deref(), Some("x=1&key=q+v%261"));
}

#[tokio::test]
async fn secrets_are_write_only_and_encrypted_at_rest() {
    let (idp, up, redis) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        RedisServer::start(),
    );
    let gw = gateway(&idp)
        .redis(&redis)
        .shared_state("sec:")
        .start()
        .await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("vault", json!({"upstreamUrl": up.url()}))
        .await;
    let secret = "sk_live_VERY_SECRET_42";
    let (s, created) = ada
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": {"type": "api_key", "headerName": "X-Key", "apiKey": secret}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let auth_id = created["auth"]["id"].as_str().unwrap().to_string();
    assert!(
        created["auth"]["secretRef"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{created}"
    );
    // Every read succeeds (an error body trivially holds no secret)...
    let (s, got) = ada.get(&format!("/api/v1/apps/{id}/auth/{auth_id}")).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["auth"]["id"], auth_id, "{got}");
    let (s, list) = ada.get(&format!("/api/v1/apps/{id}/auth")).await;
    assert_eq!(s, 200, "{list}");
    let (s, patched) = ada
        .patch(
            &format!("/api/v1/apps/{id}/auth/{auth_id}"),
            json!({"config": {"apiKey": "sk_live_ROTATED_43"}}),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    // ...and the rotation took effect: the upstream receives the new key.
    let token = idp.mint_access_token("user_ada", &gw.app_url(&slug, "/mcp"), "", 600);
    let resp = mcp(&gw, &slug, &token, initialize()).await;
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    let seen = up.last_request().expect("the call reached the upstream");
    assert_eq!(seen.header("x-key"), Some("sk_live_ROTATED_43"));
    for body in [&created, &got, &list, &patched] {
        let text = body.to_string();
        assert!(
            !text.contains("VERY_SECRET") && !text.contains("ROTATED"),
            "{text}"
        );
        // No secret field in a connection (the providers' schema may name them).
        assert!(!body["auth"].to_string().contains("\"apiKey\""), "{text}");
    }
    assert_eq!(
        list["providers"].as_array().map(Vec::len),
        Some(6),
        "{list}"
    );
    assert_eq!(list["providers"][0]["ownership"], "customer_managed");
    // Raw Redis contents never hold a secret in clear.
    let dump = std::process::Command::new("redis-cli").args(["-p", &redis.port().to_string(), "--raw", "eval",
        "local out = {} for _, k in ipairs(redis.call('keys', '*')) do if redis.call('type', k).ok == 'string' then table.insert(out, redis.call('get', k)) end end return out", "0"]).output().unwrap();
    let raw = String::from_utf8_lossy(&dump.stdout);
    assert!(
        raw.contains("X-Key"),
        "the dump holds the connection record: {raw}"
    );
    assert!(
        !raw.contains("VERY_SECRET") && !raw.contains("ROTATED"),
        "secret in clear in Redis"
    );
    assert!(!gw.log_tail(200).contains("ROTATED"), "secret in the log");
    // Without the key, a gateway with stored secrets refuses to start.
    let mut gw = gw;
    gw.set_env("DRIO_SECRETS_KEY", None);
    let (code, log) = gw.restart_expecting_exit().await;
    assert_ne!(code, Some(0));
    assert!(log.contains("DRIO_SECRETS_KEY"), "{log}");
}

#[tokio::test]
async fn disabled_tools_are_refused_at_the_gateway() {
    let (idp, up, gw) = with_upstream().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("tools", json!({"upstreamUrl": up.url(), "public": true}))
        .await;
    let (s, body) = ada.get(&format!("/api/v1/apps/{id}/commands")).await;
    assert_eq!(s, 200, "{body}");
    let names: Vec<&str> = body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "stream"]);
    assert!(body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["enabled"] == true));

    let (s, _) = ada
        .patch(
            &format!("/api/v1/apps/{id}/commands"),
            json!({"name": "echo", "enabled": false}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, body) = ada.get(&format!("/api/v1/apps/{id}/commands")).await;
    assert_eq!(body["commands"][0]["enabled"], false);

    let init = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    let session = header_str(&init, "mcp-session-id").unwrap();
    let before = up.count();
    let call = |name: &str| json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}}});
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .header("mcp-session-id", &session)
        .json(&call("echo"))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(
        up.count(),
        before,
        "the disabled call never reached the upstream"
    );
    // A batch hiding the call is refused too; other tools pass.
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .header("mcp-session-id", &session)
        .json(&json!([call("echo")]))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("disabled"));
    let resp = gw
        .client()
        .post(gw.app_url(&slug, "/mcp"))
        .header("mcp-session-id", &session)
        .json(&call("other"))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["method"], "tools/call", "{body}");
    assert_eq!(up.count(), before + 1);
}

#[tokio::test]
async fn client_credentials_are_fetched_once_for_concurrent_requests() {
    let (idp, up, p, gw) = with_provider().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("cc", json!({"upstreamUrl": up.url(), "public": true}))
        .await;
    let (s, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"providerKey": "custom-oauth", "config": {
        "type": "oauth", "tokenEndpoint": p.url("/token"), "clientId": provider::CLIENT_ID, "clientSecret": provider::CLIENT_SECRET,
        "scopes": ["a", "b"], "scopeSeparator": ",", "clientAuthMethod": "client_secret_basic", "tokenContentType": "application/json"}})).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["auth"]["status"], "valid", "{body}");
    assert!(body["auth"]["lastValidatedAt"].is_string());
    assert_eq!(
        p.last_token_form().get("scope").map(String::as_str),
        Some("a,b"),
        "scope separator and JSON body"
    );
    // The embedded store's file holds the connection, never its secret in clear.
    let file = std::fs::read(gw.dir().join("gw.redb")).unwrap();
    let has = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"client_secret_basic") && !has(provider::CLIENT_SECRET.as_bytes()),
        "secret in clear on disk"
    );
    let validated = p.calls("token");
    p.set_delay_ms(200);
    let reqs = (0..20).map(|_| {
        gw.client()
            .post(gw.app_url(&slug, "/mcp"))
            .json(&initialize())
            .send()
    });
    for r in futures::future::join_all(reqs).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(
        p.calls("token"),
        validated + 1,
        "one token fetch for 20 concurrent requests"
    );
    let token = up
        .last_request()
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(token.starts_with("Bearer at-"), "{token}");

    // A wrong secret makes the connection invalid with a useful error.
    let (_, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"config": {
        "type": "oauth", "tokenEndpoint": p.url("/token"), "clientId": provider::CLIENT_ID, "clientSecret": "wrong"}})).await;
    assert_eq!(body["auth"]["status"], "invalid", "{body}");
    assert!(
        body["auth"]["lastError"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{body}"
    );
    // Bad shapes are 422 naming the field.
    let (s, body) = ada
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": {"type": "api_key", "apiKey": "k"}}),
        )
        .await;
    assert_error(s, &body, 422, "validation_error");
    assert_eq!(body["error"]["details"]["field"], "config.headerName");
}

#[tokio::test]
async fn per_user_oauth_connect_use_refresh_and_reauthorize() {
    let (idp, up, p, gw) = with_provider().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("per-user", json!({"upstreamUrl": up.url()}))
        .await;
    let (s, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"config": {
        "type": "oauth", "authorizationEndpoint": p.url("/authorize"), "tokenEndpoint": p.url("/token"),
        "clientId": provider::CLIENT_ID, "clientSecret": provider::CLIENT_SECRET, "scopes": ["contacts:read"]}})).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["auth"]["status"], "valid", "{body}");
    let token = idp.mint_access_token("user_ada", &gw.app_url(&slug, "/mcp"), "", 600);

    // Tokens expire at once from now on, so every use refreshes.
    p.set_expires_in(1);
    // Not connected: a JSON-RPC error with a connect link.
    let connect_url = not_connected(&gw, &slug, &token).await;
    // The user follows it in a browser (no bearer there): gateway → provider
    // → gateway callback → confirmation page → Confirm.
    let browser = Browser::new();
    let page = connect_in_browser(&browser, &gw, &connect_url, "confirm").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("connected"), "{}", page.body);
    assert_eq!(
        browser.get(&connect_url).await.status,
        400,
        "connect links are single use"
    );

    // Use: the first token is already stale, so this request refreshes it.
    let resp = mcp(&gw, &slug, &token, initialize()).await;
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    let seen = up
        .last_request()
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_string();
    assert_eq!(seen, "Bearer at-2", "the refreshed token, not the client's");
    assert_eq!(
        p.calls("token"),
        3,
        "validation, code exchange, one refresh"
    );

    // The user revokes the grant upstream: asked to connect again.
    p.revoke_all_grants();
    let again = not_connected(&gw, &slug, &token).await;
    assert_ne!(again, connect_url);
    let page = connect_in_browser(&browser, &gw, &again, "confirm").await;
    assert_eq!(page.status, 200, "{}", page.body);
    p.set_expires_in(3600);
    // The reconnected token (at-3 expired at once; its refresh gives a fresh one).
    let resp = mcp(&gw, &slug, &token, initialize()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last_request().unwrap().header("authorization"),
        Some("Bearer at-4"),
        "the refresh of the reconnected token, not a stale one"
    );
    assert_eq!(
        p.calls("token"),
        6,
        "3 before, the refused refresh of at-2, the new code exchange, one refresh"
    );
}

pub(crate) async fn not_connected(gw: &TestGateway, slug: &str, token: &str) -> String {
    let resp = mcp(gw, slug, token, initialize()).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 1, "{body}");
    assert_eq!(body["error"]["code"], -32001, "{body}");
    let url = body["error"]["data"]["connectUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.contains("/connect?ticket="), "{url}");
    url
}

#[tokio::test]
async fn upstream_dynamic_registration_keeps_the_registered_client() {
    let (idp, up, p, gw) = with_provider().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, _) = ada
        .create_app("dcr", json!({"upstreamUrl": up.url()}))
        .await;
    let (s, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"config": {
        "type": "oauth", "authorizationEndpoint": p.url("/authorize"), "tokenEndpoint": p.url("/token"),
        "registrationEndpoint": p.url("/register"), "registrationAuthMode": "initial_access_token",
        "registrationInitialAccessToken": "iat-1"}})).await;
    assert_eq!(s, 201, "{body}");
    let c = &body["auth"]["config"];
    assert_eq!(c["clientId"], "dcr-client-1", "{body}");
    assert!(c["registrationClientUri"]
        .as_str()
        .unwrap()
        .ends_with("/register/dcr-client-1"));
    assert!(c["lastRegisteredAt"].is_string());
    assert!(
        !body.to_string().contains("dcr-rat-1") && !body.to_string().contains("dcr-secret-1"),
        "{body}"
    );
    let reg = &p.registrations()[0];
    assert_eq!(
        reg["redirect_uris"][0],
        format!("{}/api/v1/connections/callback", gw.public_url())
    );
    assert_eq!(body["auth"]["status"], "valid", "{body}");
}
