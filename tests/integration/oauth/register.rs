//! Discovery (RFC 8414, RFC 9728), dynamic client registration (RFC 7591,
//! with the redirect-URI rules of RFC 8252) and Client ID Metadata Documents.

use std::convert::Infallible;
use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{assert_oauth_error, Bridge, REDIRECT};
use crate::support::oauth_client::{discovery, OAuthClient, Page, TokenMode};

#[tokio::test]
async fn discovery_documents_describe_the_bridge() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let base = b.gw.public_url();
    // The gateway issues no ID tokens, so it is not an OpenID provider and
    // serves no OIDC discovery document it could not fill truthfully.
    let oidc =
        b.gw.client()
            .get(format!("{}/.well-known/openid-configuration", b.gw.url()))
            .send()
            .await
            .unwrap();
    assert_eq!(oidc.status(), 404);
    for path in ["/.well-known/oauth-authorization-server"] {
        let m = discovery(&b.gw, path).await;
        assert_eq!(m["issuer"], base.as_str());
        assert_eq!(
            m["authorization_endpoint"],
            format!("{base}/api/v1/auth/authorize")
        );
        assert_eq!(m["token_endpoint"], format!("{base}/api/v1/auth/token"));
        assert_eq!(
            m["registration_endpoint"],
            format!("{base}/api/v1/auth/register")
        );
        assert_eq!(
            m["revocation_endpoint"],
            format!("{base}/api/v1/auth/revoke")
        );
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(
            m["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["jwks_uri"], format!("{base}/.well-known/jwks.json"));
        let scopes: Vec<&str> = m["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for s in ["openid", "profile", "email"] {
            assert!(scopes.contains(&s), "{scopes:?}");
        }
        let methods = m["token_endpoint_auth_methods_supported"].to_string();
        assert!(
            methods.contains("none") && methods.contains("client_secret_basic"),
            "{methods}"
        );
    }
    let jwks = discovery(&b.gw, "/.well-known/jwks.json").await;
    let key = &jwks["keys"][0];
    assert!(key["kid"].is_string() && key["kty"].is_string(), "{jwks}");
    assert!(
        key.get("d").is_none(),
        "the private half is never published: {jwks}"
    );

    // RFC 9728 for the gateway and, path-suffixed, for the app.
    let root = discovery(&b.gw, "/.well-known/oauth-protected-resource").await;
    assert_eq!(root["authorization_servers"], json!([base]));
    let app = discovery(
        &b.gw,
        "/.well-known/oauth-protected-resource/apps/notes/mcp",
    )
    .await;
    assert_eq!(app["resource"], b.resource().as_str());
    assert_eq!(app["authorization_servers"], json!([base]));
    assert!(app["scopes_supported"].is_array());
    assert!(
        !app["scopes_supported"]
            .to_string()
            .contains("offline_access"),
        "a resource never advertises offline_access: {app}"
    );
    let unknown =
        b.gw.client()
            .get(format!(
                "{}/.well-known/oauth-protected-resource/apps/nope/mcp",
                b.gw.url()
            ))
            .send()
            .await
            .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn upstream_mode_publishes_no_jwks() {
    let b = Bridge::start(TokenMode::Upstream).await;
    let m = discovery(&b.gw, "/.well-known/oauth-authorization-server").await;
    assert!(
        m.get("jwks_uri").is_none(),
        "the gateway signs nothing in upstream mode: {m}"
    );
}

async fn register(b: &Bridge, metadata: Value) -> Page {
    OAuthClient::try_register(&b.gw, &metadata).await
}

#[tokio::test]
async fn registration_returns_metadata_and_a_secret_only_to_confidential_clients() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let public = OAuthClient::register(&b.gw, REDIRECT).await;
    let r = &public.registration;
    assert_eq!(r["redirect_uris"], json!([REDIRECT]));
    assert_eq!(r["token_endpoint_auth_method"], "none");
    assert_eq!(r["client_name"], "Test MCP Client");
    assert!(r["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(r.get("client_secret").is_none(), "{r}");

    // Native apps: private-use schemes (RFC 8252 §7.1) and https are accepted too.
    for uri in [
        "com.example.app:/oauth/callback",
        "https://app.example.com/cb",
    ] {
        let page = register(&b, OAuthClient::metadata(uri)).await;
        assert_eq!(page.status, 201, "{uri}: {}", page.body);
    }

    for method in ["client_secret_post", "client_secret_basic"] {
        let mut m = OAuthClient::metadata(REDIRECT);
        m["token_endpoint_auth_method"] = json!(method);
        let page = register(&b, m).await;
        assert_eq!(page.status, 201, "{}", page.body);
        let secret = page.json()["client_secret"]
            .as_str()
            .expect("secret returned once")
            .to_string();
        assert!(secret.len() >= 32);
        // Stored hashed: the raw secret is nowhere in the store file.
        let file = std::fs::read(b.gw.dir().join("gw.redb")).unwrap();
        assert!(
            !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is stored in clear"
        );
    }
}

#[tokio::test]
async fn bad_metadata_is_refused_naming_the_field() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let with = |key: &str, value: Value| {
        let mut m = OAuthClient::metadata(REDIRECT);
        m[key] = value;
        m
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"client_name": "x"}),
            "invalid_client_metadata",
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!([])),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!(["http://evil.example.com/cb"])),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!(["https://app.example.com/cb#frag"])),
            "invalid_redirect_uri",
            "fragment",
        ),
        (
            with("redirect_uris", json!(["/relative/cb"])),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            with("redirect_uris", json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            with("grant_types", json!(["client_credentials"])),
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            with("response_types", json!(["token"])),
            "invalid_client_metadata",
            "response_types",
        ),
        (
            with("client_name", json!("x".repeat(500))),
            "invalid_client_metadata",
            "client_name",
        ),
        (
            with("logo_uri", json!("http://img.example.com/a.png")),
            "invalid_client_metadata",
            "logo_uri",
        ),
        (
            with(
                "redirect_uris",
                json!((0..20)
                    .map(|i| format!("https://a.example.com/{i}"))
                    .collect::<Vec<_>>()),
            ),
            "invalid_redirect_uri",
            "redirect_uris",
        ),
    ];
    for (metadata, error, field) in cases {
        let page = register(&b, metadata.clone()).await;
        let description = assert_oauth_error(&page, 400, error);
        assert!(
            description.contains(field),
            "{metadata}: `{description}` should name {field}"
        );
    }
    // Not JSON, and too large.
    let url = format!("{}/api/v1/auth/register", b.gw.url());
    for body in [
        "{not json".to_string(),
        format!("{{\"client_name\":\"{}\"}}", "a".repeat(20_000)),
    ] {
        let page = crate::support::oauth_client::send(
            b.gw.client()
                .post(&url)
                .header("content-type", "application/json")
                .body(body),
            &url,
        )
        .await;
        assert_oauth_error(&page, 400, "invalid_client_metadata");
    }
    // Nothing half-registered: a valid registration still works afterwards.
    OAuthClient::register(&b.gw, REDIRECT).await;
}

#[tokio::test]
async fn registrations_are_rate_limited_per_address() {
    let b = Bridge::start_with(TokenMode::Gateway, "registrations_per_minute = 3", |g| g).await;
    for _ in 0..3 {
        OAuthClient::register(&b.gw, REDIRECT).await;
    }
    let page = register(&b, OAuthClient::metadata(REDIRECT)).await;
    let description = assert_oauth_error(&page, 429, "temporarily_unavailable");
    assert!(
        description.contains("too many registrations"),
        "{description}"
    );
}

#[tokio::test]
async fn unused_registrations_expire_and_use_extends_them() {
    use std::time::{Duration, Instant};
    // Deadlines count from events the test saw, not from fixed sleeps, so a
    // slow machine only makes the checks later, never wrong: `idle` was
    // stored before `idle_stored`, so it is expired at idle_stored + TTL; the
    // use restarts `active`'s clock after `used`, so it lives until at least
    // used + TTL, about 2 s after the checks.
    let ttl = Duration::from_secs(4);
    let b = Bridge::start_with(TokenMode::Gateway, "registration_ttl_seconds = 4", |g| g).await;
    let idle = OAuthClient::register(&b.gw, REDIRECT).await;
    let idle_stored = Instant::now();
    let (active, _) = b.signed_in().await;
    tokio::time::sleep_until((idle_stored + ttl / 2).into()).await;
    // Using a client (a token exchange) restarts its clock.
    let used = Instant::now();
    active.tokens(&b.gw, &b.resource()).await;
    tokio::time::sleep_until((idle_stored + ttl + Duration::from_millis(100)).into()).await;
    let gone = idle.start(&b.gw, &idle.authorization(&b.resource())).await;
    assert_eq!(
        gone.status, 400,
        "an expired registration is unknown: {}",
        gone.body
    );
    assert!(gone.body.contains("unknown client_id"), "{}", gone.body);
    let asked = Instant::now();
    let still = active
        .start(&b.gw, &active.authorization(&b.resource()))
        .await;
    assert!(
        asked < used + ttl,
        "the check came too late to mean anything"
    );
    assert_eq!(
        still.status, 302,
        "a used registration lives on: {}",
        still.body
    );
}

/// Serves one JSON document at every path, on a loopback port, for CIMD tests.
struct DocServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DocServer {
    async fn start(doc: impl Fn(&str) -> Value + Send + Sync + 'static) -> DocServer {
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let doc = std::sync::Arc::new(doc);
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let doc = doc.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = doc(&format!("http://{addr}{}", req.uri().path())).to_string();
                        async move {
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
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
        DocServer { addr, task, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for DocServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An MCP client identified by a metadata document URL instead of a registration.
fn cimd_client(client_id: &str) -> OAuthClient {
    OAuthClient {
        client_id: client_id.into(),
        client_secret: None,
        redirect_uri: REDIRECT.into(),
        registration: Value::Null,
        browser: crate::support::oauth_client::Browser::new(),
    }
}

#[tokio::test]
async fn client_metadata_documents_sign_in_without_registration() {
    let docs = DocServer::start(
        |url| json!({"client_id": url, "client_name": "Doc Client", "redirect_uris": [REDIRECT]}),
    )
    .await;
    let b = Bridge::start_with(TokenMode::Gateway, "allow_private_cimd = true", |g| g).await;
    let client = cimd_client(&docs.url("/client.json"));
    let request = client.authorization(&b.resource());
    let consent = client.sign_in(&b.gw, &request).await;
    assert!(
        consent.page.body.contains("Doc Client"),
        "the consent page names the document's client: {}",
        consent.page.body
    );
    let back = client.approve(&consent).await;
    let code = back.get("code").expect("code");
    let tokens = crate::support::oauth_client::Tokens::from_page(
        &client
            .exchange_code(&b.gw, code, &request.pkce.verifier)
            .await,
    );
    assert_eq!(b.app_status(&tokens.access_token).await, 200);
}

#[tokio::test]
async fn client_metadata_documents_are_checked() {
    // A document whose client_id is not its own URL.
    let liar = DocServer::start(
        |_| json!({"client_id": "https://other.example.com/c.json", "redirect_uris": [REDIRECT]}),
    )
    .await;
    let b = Bridge::start_with(TokenMode::Gateway, "allow_private_cimd = true", |g| g).await;
    let client = cimd_client(&liar.url("/client.json"));
    let page = client
        .start(&b.gw, &client.authorization(&b.resource()))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("does not equal its URL"),
        "{}",
        page.body
    );
    // A failed document is remembered for a minute: asking again fetches nothing.
    let fetched = liar.hits();
    let again = client
        .start(&b.gw, &client.authorization(&b.resource()))
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(
        liar.hits(),
        fetched,
        "a known-bad document is not fetched again"
    );

    // Without allow_private_cimd: plain http and loopback addresses are refused before any fetch.
    let honest =
        DocServer::start(|url| json!({"client_id": url, "redirect_uris": [REDIRECT]})).await;
    let strict = Bridge::start(TokenMode::Gateway).await;
    for (id, why) in [
        (honest.url("/client.json"), "must be an https URL"),
        (
            honest.url("/client.json").replace("http://", "https://"),
            "private or loopback",
        ),
        // The IPv4-mapped and NAT64 spellings of loopback (issue 13 row 2).
        (
            honest
                .url("/client.json")
                .replace("http://127.0.0.1", "https://[::ffff:127.0.0.1]"),
            "private or loopback",
        ),
        (
            honest
                .url("/client.json")
                .replace("http://127.0.0.1", "https://[64:ff9b::7f00:1]"),
            "private or loopback",
        ),
    ] {
        let client = cimd_client(&id);
        let page = client
            .start(&strict.gw, &client.authorization(&strict.resource()))
            .await;
        assert_eq!(page.status, 400, "{id}: {}", page.body);
        assert!(page.body.contains(why), "{id}: {}", page.body);
    }
    assert_eq!(
        honest.hits(),
        0,
        "nothing was fetched from a refused address"
    );
}
