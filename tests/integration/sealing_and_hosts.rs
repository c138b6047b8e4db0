//! DNS rebinding and secrets at rest (issue 12, rows 8 and 10).
//!
//! - The gateway's own routes answer only requests addressed to
//!   `public_url`'s authority: a page on `evil.example` whose name resolves
//!   to the gateway (DNS rebinding, MCP spec "Security Best Practices") gets
//!   421 Misdirected Request (RFC 9110 §15.5.20).
//! - With `[oauth]`, the gateway does not start without a secrets key, and
//!   nothing it stores holds an IdP token or a private key in clear.

use crate::oauth::Bridge;
use crate::support::gateway::{assert_envelope, TestGateway};
use crate::support::oauth_client::TokenMode;
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

const DEV_OAUTH: &str = "[oauth]\ntoken_mode = \"gateway\"\n\n[idp]\nkind = \"dev\"\n";
const APP_HOST: &str = "notes.mcp.example.com";

async fn dev_gateway(upstream: &TestUpstream) -> TestGateway {
    TestGateway::new()
        .protected_app_for_dev("notes", upstream)
        .host(APP_HOST)
        .raw_toml(DEV_OAUTH)
        .start()
        .await
}

async fn send(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    host: &str,
) -> reqwest::Response {
    let mut req = gw
        .client()
        .request(method.clone(), format!("{}{path}", gw.url()))
        .header("host", host);
    if method == reqwest::Method::POST {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body("state=x&email=mallory%40evil.example");
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn a_rebound_host_gets_421_on_the_gateways_own_routes() {
    let upstream = TestUpstream::start().await;
    let gw = dev_gateway(&upstream).await;
    let ours = gw.url().trim_start_matches("http://").to_string();
    let routes = [
        (reqwest::Method::GET, "/api/v1/auth/dev/login?state=x"),
        (reqwest::Method::POST, "/api/v1/auth/dev/login"),
        (reqwest::Method::GET, "/api/v1/apps"),
        (
            reqwest::Method::GET,
            "/.well-known/oauth-authorization-server",
        ),
        (reqwest::Method::GET, "/healthz"),
    ];
    for (method, path) in &routes {
        for host in [
            "evil.example",
            "evil.example:80",
            &format!("evil.example:{}", gw.url().rsplit(':').next().unwrap()),
        ] {
            let resp = send(&gw, method.clone(), path, host).await;
            assert_envelope(resp, 421, "misdirected_request").await;
        }
        // The gateway's own name (any case) is served as before.
        let resp = send(&gw, method.clone(), path, &ours.to_uppercase()).await;
        assert_ne!(resp.status(), 421, "{method} {path} with Host {ours}");
    }
    let asm = send(
        &gw,
        reqwest::Method::GET,
        "/.well-known/oauth-authorization-server",
        &ours,
    )
    .await;
    assert_eq!(asm.status(), 200);

    // An app's own host serves discovery (clients look for the protected
    // resource metadata there), and nothing else of the gateway's.
    let prm = send(
        &gw,
        reqwest::Method::GET,
        "/.well-known/oauth-protected-resource",
        APP_HOST,
    )
    .await;
    assert_eq!(prm.status(), 200);
    for (method, path) in &routes[..3] {
        let resp = send(&gw, method.clone(), path, APP_HOST).await;
        assert_eq!(resp.status(), 421, "{method} {path} with Host {APP_HOST}");
    }
}

#[tokio::test]
async fn oauth_refuses_to_start_without_a_secrets_key() {
    let upstream = TestUpstream::start().await;
    let mut gw = dev_gateway(&upstream).await;
    gw.set_env("DRIO_SECRETS_KEY", None);
    let (code, log) = gw.restart_expecting_exit().await;
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("DRIO_SECRETS_KEY"),
        "names the variable: {log}"
    );
    assert!(
        log.contains("head -c 32 /dev/urandom | base64"),
        "says how to make one: {log}"
    );
}

/// Markers of a secret in clear: the IdP's refresh tokens, a private key
/// (PEM, or a JWK's private part), a key record or session value not sealed.
fn plaintext_markers(refresh_tokens: &[String]) -> Vec<String> {
    let mut m: Vec<String> = refresh_tokens.to_vec();
    m.extend(
        [
            "PRIVATE KEY",
            "\"d\":",
            "\"sealed\":false",
            "\"t\":\"Plain\"",
        ]
        .map(String::from),
    );
    m
}

/// A gateway-mode bridge on `redis` under its own key prefix, and a store
/// client reading what that gateway wrote.
async fn on_redis(
    redis: &RedisServer,
    tag: &str,
) -> (Bridge, std::sync::Arc<dyn drio_gateway::store::Store>) {
    let prefix = format!("t:{tag}:{}:", std::process::id());
    let b = Bridge::start_with(TokenMode::Gateway, "", |g| {
        g.redis(redis).shared_state(&prefix)
    })
    .await;
    let store = drio_gateway::store::open::open_redis(
        &redis.url(),
        &prefix,
        std::time::Duration::from_secs(2),
    )
    .await
    .expect("connect to the gateway's Redis");
    (b, store)
}

#[tokio::test]
async fn after_a_sign_in_redis_holds_no_idp_token_or_private_key_in_clear() {
    let redis = RedisServer::start();
    let (b, store) = on_redis(&redis, "sealed").await;
    let (_, tokens) = b.signed_in().await;
    assert_eq!(b.app_status(&tokens.access_token).await, 200);
    let refresh = b.idp.live_refresh_tokens();
    assert!(!refresh.is_empty(), "the IdP issued a refresh token");

    let all = store.scan_prefix("", 10_000).await.expect("scan");
    assert!(
        all.iter().any(|(k, _)| k.starts_with("sess:")),
        "a session was stored: {:?}",
        all.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for (key, value) in &all {
        let text = String::from_utf8_lossy(value);
        for marker in plaintext_markers(&refresh) {
            assert!(!text.contains(&marker), "{key} holds `{marker}` in clear");
        }
    }
}

#[tokio::test]
async fn after_a_sign_in_the_embedded_store_file_holds_no_private_key_in_clear() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let (_, tokens) = b.signed_in().await;
    assert_eq!(b.app_status(&tokens.access_token).await, 200);
    let refresh = b.idp.live_refresh_tokens();
    let file = std::fs::read(b.gw.dir().join("gw.redb")).expect("read the store file");
    let text = String::from_utf8_lossy(&file);
    for marker in plaintext_markers(&refresh) {
        assert!(
            !text.contains(&marker),
            "the store file holds `{marker}` in clear"
        );
    }
}

/// While the consent page is open, and while a code waits to be redeemed,
/// the IdP's tokens sit in the store: sealed there too.
#[tokio::test]
async fn pending_consents_and_codes_hold_no_idp_token_in_clear() {
    use crate::oauth::REDIRECT;
    use crate::support::oauth_client::OAuthClient;
    let redis = RedisServer::start();
    let (b, store) = on_redis(&redis, "pending").await;
    let scan = |what: &'static str| {
        let store = store.clone();
        let refresh = b.idp.live_refresh_tokens();
        async move {
            assert!(!refresh.is_empty(), "the IdP issued a refresh token");
            let all = store.scan_prefix("", 10_000).await.expect("scan");
            assert!(
                all.iter().any(|(k, _)| k.starts_with(what)),
                "a {what} record is stored"
            );
            for (key, value) in &all {
                let text = String::from_utf8_lossy(value);
                for marker in plaintext_markers(&refresh) {
                    assert!(!text.contains(&marker), "{key} holds `{marker}` in clear");
                }
            }
        }
    };
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let request = client.authorization(&b.resource());
    let consent = client.sign_in(&b.gw, &request).await;
    scan("consent:").await;
    let back = client.approve(&consent).await;
    assert!(back.contains_key("code"));
    scan("code:").await;
}
