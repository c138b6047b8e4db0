//! Adversarial inputs on the data plane and the refresh path (issue 13):
//! bodies a tool policy cannot read, routing headers that disagree with
//! the body, the gateway's cookies and identity headers smuggled past its
//! filters, app documents on the gateway's origin, and old refresh tokens.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::oauth::{Bridge, REDIRECT};
use crate::support::gateway::{header_str, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::oauth_client::{OAuthClient, TokenMode, Tokens};
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

/// Test upstreams listen on loopback, which the API refuses unless allowed.
const LOOPBACK_UPSTREAMS: &str = "[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\"]\n";

/// A gateway with one API-created public app whose tool `wipe` is disabled.
async fn policed() -> (TestIdp, TestUpstream, TestGateway, String) {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .raw_toml(&format!(
            "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n\n{LOOPBACK_UPSTREAMS}",
            iss = idp.issuer()
        ))
        .start()
        .await;
    let token = idp.mint_access_token("user_ada", &gw.public_url(), "", 600);
    let resp = gw
        .client()
        .post(format!("{}/api/v1/apps", gw.url()))
        .bearer_auth(&token)
        .json(&json!({"name": "policed", "config": {"upstreamUrl": up.url(), "public": true, "disabledTools": ["wipe"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let slug = resp.json::<Value>().await.unwrap()["app"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    (idp, up, gw, slug)
}

async fn post_raw(
    gw: &TestGateway,
    slug: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = gw
        .client()
        .post(gw.app_url(slug, "/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test]
async fn a_disabled_tool_is_never_reached_through_a_body_the_gateway_cannot_read() {
    let (_idp, up, gw, slug) = policed().await;
    let call = |name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
        )
    };
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"wipe","arguments":{}{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(call("wipe").as_bytes());
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "a lone surrogate",
            call("wipe")
                .replace("\"id\":7", "\"id\":7,\"x\":\"\\ud800\"")
                .into_bytes(),
            vec![],
        ),
        (
            "1e400",
            call("wipe")
                .replace("\"id\":7", "\"id\":1e400")
                .into_bytes(),
            vec![],
        ),
        ("nesting 200 deep", deep.into_bytes(), vec![]),
        ("a byte-order mark", bom, vec![]),
        (
            "gzip",
            call("wipe").into_bytes(),
            vec![("content-encoding", "gzip")],
        ),
        ("an escaped name", call("wip\\u0065").into_bytes(), vec![]),
    ];
    for (what, body, headers) in cases {
        let before = up.count();
        let resp = post_raw(&gw, &slug, body, &headers).await;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(up.count(), before, "{what}: the upstream was reached");
        assert!(
            answer["error"]["code"].is_i64(),
            "{what}: a JSON-RPC error, got {status} {answer}"
        );
        assert!(
            status.is_client_error() || status == StatusCode::OK,
            "{what}: {status}"
        );
    }
    // An allowed tool still passes, and the refusal does not close the door on good bodies.
    let before = up.count();
    post_raw(&gw, &slug, call("echo").into_bytes(), &[]).await;
    assert_eq!(up.count(), before + 1);
}

#[tokio::test]
async fn routing_headers_must_match_the_body_the_gateway_reads() {
    let (_idp, up, gw, slug) = policed().await;
    let body =
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"wipe"}}"#.to_vec();
    let before = up.count();
    let resp = post_raw(&gw, &slug, body.clone(), &[("mcp-method", "tools/list")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], -32020);
    let echo =
        br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"}}"#.to_vec();
    let resp = post_raw(&gw, &slug, echo.clone(), &[("mcp-name", "wipe")]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(up.count(), before);
    post_raw(
        &gw,
        &slug,
        echo,
        &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
    )
    .await;
    assert_eq!(up.count(), before + 1, "matching headers pass");
}

#[tokio::test]
async fn the_gateways_cookies_and_forged_identities_never_reach_the_upstream() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .raw_toml(&format!(
            "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n",
            iss = idp.issuer()
        ))
        .app("notes", &up)
        .protected()
        .app_toml("[apps.identity_headers]\nsubject = \"X-User-Id\"\n")
        .start()
        .await;
    let token = idp.mint_access_token("user_ada", &gw.app_url("notes", "/mcp"), "", 600);
    let resp = gw
        .client()
        .post(gw.app_url("notes", "/echo"))
        .bearer_auth(&token)
        .header("cookie", "a=1; drio-consent=secret-1")
        .header("cookie", "drio-connect=secret-2; b=2")
        .header("x_user_id", "user_admin")
        .header("x-user_id", "user_admin")
        .header("x-forwarded-for", "6.6.6.6")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last_request().unwrap();
    let cookies: Vec<&str> = seen
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1; b=2"], "only the app's own cookies");
    assert!(seen.header("x_user_id").is_none() && seen.header("x-user_id").is_none());
    assert_eq!(seen.header("x-user-id"), Some("user_ada"));
    // A client's own X-Forwarded-For is replaced: no trusted proxy vouched for it.
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn an_apps_documents_run_in_an_opaque_origin() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::new().app("site", &up).start().await;
    let html = gw
        .client()
        .post(gw.app_url("site", "/echo"))
        .header("content-type", "text/html")
        .body("<script>fetch('/api/v1/auth/consent')</script>")
        .send()
        .await
        .unwrap();
    let csp = header_str(&html, "content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("sandbox") && !csp.contains("allow-same-origin"),
        "{csp}"
    );
    assert_eq!(
        header_str(&html, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let json = gw
        .client()
        .post(gw.app_url("site", "/echo"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(
        header_str(&json, "content-security-policy").is_none(),
        "JSON answers are untouched"
    );
}

#[tokio::test]
async fn any_rotated_out_refresh_token_ends_the_session() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let first = client.authorize_and_exchange(&b.gw, &b.resource()).await;
    let second = Tokens::from_page(&client.refresh(&b.gw, &first.refresh_token).await);
    let third = Tokens::from_page(&client.refresh(&b.gw, &second.refresh_token).await);
    // Two rotations old: a stolen copy being replayed.
    let replay = client.refresh(&b.gw, &first.refresh_token).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.body);
    assert_eq!(replay.json()["error"], "invalid_grant");
    // …so the whole session ends, the legitimate holder's current token too.
    let current = client.refresh(&b.gw, &third.refresh_token).await;
    assert_eq!(current.status, StatusCode::BAD_REQUEST, "{}", current.body);
    assert_eq!(b.app_status(&third.access_token).await, 401);
}

/// Keys under `prefix` in a Redis the test started.
async fn redis_keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn revocation_remembers_only_verified_tokens_of_the_authenticated_client() {
    let redis = RedisServer::start();
    let b = Bridge::start_with(TokenMode::Gateway, "", |g| {
        g.redis(&redis).shared_state("hard:")
    })
    .await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    // The attack: made-up JWTs with an `exp` in 2100, each a tombstone until then.
    let forged = |i: u32| {
        let claims = json!({"sub": "x", "exp": 4_102_444_800u64, "jti": i});
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!("{}.{}.c2ln", b64(&json!({"alg": "ES256"})), b64(&claims))
    };
    for i in 0..40 {
        assert_eq!(client.revoke(&b.gw, &forged(i)).await.status, 200);
    }
    assert!(
        redis_keys(&redis, "hard:tok:*").await.is_empty(),
        "no tombstone for a token the gateway cannot verify"
    );
    // A real token of this client is remembered as revoked.
    let tokens = client.authorize_and_exchange(&b.gw, &b.resource()).await;
    assert_eq!(client.revoke(&b.gw, &tokens.access_token).await.status, 200);
    assert_eq!(b.app_status(&tokens.access_token).await, 401);
    assert_eq!(redis_keys(&redis, "hard:tok:*").await.len(), 1);
    // Past the per-address limit the endpoint says so.
    let mut last = StatusCode::OK;
    for i in 0..30 {
        last = client.revoke(&b.gw, &forged(100 + i)).await.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_confidential_client_proves_its_secret_to_revoke() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let mut client = OAuthClient::register_confidential(&b.gw, REDIRECT).await;
    let tokens = client.authorize_and_exchange(&b.gw, &b.resource()).await;
    let secret = client.client_secret.take();
    let refused = client.revoke(&b.gw, &tokens.refresh_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_client");
    client.client_secret = Some("wrong".into());
    assert_eq!(
        client.revoke(&b.gw, &tokens.refresh_token).await.status,
        401
    );
    assert_eq!(
        b.app_status(&tokens.access_token).await,
        200,
        "nothing was revoked"
    );
    client.client_secret = secret;
    assert_eq!(
        client.revoke(&b.gw, &tokens.refresh_token).await.status,
        200
    );
    assert_eq!(
        client.refresh(&b.gw, &tokens.refresh_token).await.status,
        400
    );
}

#[tokio::test]
async fn an_id_token_for_another_party_is_refused() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    for tamper in [
        json!({"azp": "someone-else"}),
        json!({"aud": [b.idp.client_id(), "someone-else"]}),
    ] {
        b.idp.tamper_next_id_token(tamper.clone());
        let request = client.authorization(&b.resource());
        let page = client.through_idp(&b.gw, &request).await;
        assert!(
            page.body.contains("azp")
                || page.location().is_some_and(|l| l.as_str().contains("azp")),
            "{tamper}: {} {:?}",
            page.body,
            page.location()
        );
        assert!(
            !page
                .location()
                .is_some_and(|l| l.query().unwrap_or("").contains("code=")),
            "{tamper}: no code"
        );
    }
    b.idp.tamper_next_id_token(
        json!({"azp": b.idp.client_id(), "aud": [b.idp.client_id(), "other"]}),
    );
    client.tokens(&b.gw, &b.resource()).await;
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    // The same server under another name: its document names 127.0.0.1.
    let alias = format!("http://localhost:{}", idp.addr().port());
    let gw = TestGateway::new()
        .env("HARDENING_IDP_SECRET", idp.client_secret())
        .protected_app("notes", &up)
        .raw_toml(&format!(
            "[oauth]\ntoken_mode = \"gateway\"\n\n[idp]\nkind = \"oidc\"\nissuer = \"{alias}\"\nclient_id = \"{}\"\nclient_secret_env = \"HARDENING_IDP_SECRET\"\n",
            idp.client_id()
        ))
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let page = client
        .start(&gw, &client.authorization(&gw.app_url("notes", "/mcp")))
        .await;
    let text = format!("{} {:?}", page.body, page.location());
    assert!(text.contains("issuer"), "refused naming the issuer: {text}");
    assert!(
        !text.contains("/authorize?"),
        "never sent to the look-alike's authorize: {text}"
    );
}

#[tokio::test]
async fn a_401_names_every_scope_the_app_needs_and_never_offline_access() {
    let b = Bridge::start_with(
        TokenMode::Gateway,
        "scopes = [\"notes:read\", \"notes:write\"]",
        |g| g.app_toml("required_scopes = [\"notes:read\", \"notes:write\"]\n"),
    )
    .await;
    let resp =
        b.gw.client()
            .post(b.resource())
            .header("content-type", "application/json")
            .body(crate::oauth::INITIALIZE)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = header_str(&resp, "www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("scope=\"notes:read notes:write\""),
        "{challenge}"
    );
    assert!(!challenge.contains("offline_access"), "{challenge}");
    let prm: Value =
        b.gw.client()
            .get(format!(
                "{}/.well-known/oauth-protected-resource/apps/notes/mcp",
                b.gw.url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let scopes = prm["scopes_supported"].to_string();
    assert!(
        scopes.contains("notes:write") && !scopes.contains("offline_access"),
        "{prm}"
    );
}

#[tokio::test]
async fn an_unvouched_clients_errors_are_shown_never_redirected() {
    let b = Bridge::start(TokenMode::Gateway).await;
    // Anyone can register any redirect URI: the open-redirector attack sends
    // people to the gateway with a request built to fail.
    let client = OAuthClient::register(&b.gw, "https://phish.example.com/landing").await;
    let base = client.authorization(&b.resource());
    for (request, error) in [
        (
            base.clone().set("response_type", "token"),
            "unsupported_response_type",
        ),
        (base.clone().without("code_challenge"), "invalid_request"),
        (base.clone().set("scope", "openid admin"), "invalid_scope"),
        (
            base.clone()
                .set("resource", "https://elsewhere.example.com/mcp"),
            "invalid_target",
        ),
    ] {
        let page = client.start(&b.gw, &request).await;
        assert_eq!(page.status, 400, "{error}: {}", page.body);
        assert!(
            page.location().is_none(),
            "{error}: redirected to {:?}",
            page.location()
        );
        assert!(page.body.contains(error), "{error}: {}", page.body);
    }
    // At the callback too (the IdP refused): shown, not sent to the client.
    b.idp.deny_next();
    let page = client
        .through_idp(&b.gw, &client.authorization(&b.resource()))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.location().is_none() && page.body.contains("access_denied"),
        "{}",
        page.body
    );

    // Private-use schemes only in reverse domain name form (RFC 8252 §7.1).
    for uri in ["ms-msdt:/id", "myapp:/cb", "x.:/cb"] {
        let refused = OAuthClient::try_register(&b.gw, &OAuthClient::metadata(uri)).await;
        assert_eq!(refused.status, 400, "{uri}: {}", refused.body);
        assert_eq!(refused.json()["error"], "invalid_redirect_uri", "{uri}");
    }
    let ok = OAuthClient::try_register(&b.gw, &OAuthClient::metadata("com.example.app:/cb")).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

async fn register_from(b: &Bridge, forwarded_for: &str) -> u16 {
    let url = format!("{}/api/v1/auth/register", b.gw.url());
    b.gw.client()
        .post(&url)
        .header("x-forwarded-for", forwarded_for)
        .json(&OAuthClient::metadata(REDIRECT))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn registration_limits_count_per_client_behind_trusted_proxies_only() {
    // The gateway behind a load balancer on loopback: its X-Forwarded-For counts.
    let b = Bridge::start_with(
        TokenMode::Gateway,
        "registrations_per_minute = 2\nregistrations_per_hour = 3",
        |g| g.server_toml("trusted_proxies = [\"127.0.0.0/8\"]"),
    )
    .await;
    let a = "203.0.113.7";
    assert_eq!(register_from(&b, a).await, 201);
    assert_eq!(register_from(&b, a).await, 201);
    assert_eq!(register_from(&b, a).await, 429, "per address and minute");
    // One host at its limit stops nobody else: no gateway-wide cap to use up.
    for other in ["203.0.113.8", "198.51.100.1", "192.0.2.44"] {
        assert_eq!(register_from(&b, other).await, 201, "{other}");
    }
    // IPv6 counts per /64: rotating addresses inside one /64 does not help.
    assert_eq!(register_from(&b, "2001:db8::1").await, 201);
    assert_eq!(register_from(&b, "2001:db8::2").await, 201);
    assert_eq!(register_from(&b, "2001:db8::3").await, 429);
    assert_eq!(
        register_from(&b, "2001:db8:0:1::1").await,
        201,
        "another /64"
    );
    // A forged chain (client-sent left part) does not move the count off the
    // address the trusted hop saw.
    assert_eq!(register_from(&b, &format!("1.2.3.4, {a}")).await, 429);

    // Without trusted proxies a client cannot pick its bucket by header.
    let plain = Bridge::start_with(TokenMode::Gateway, "registrations_per_minute = 2", |g| g).await;
    assert_eq!(register_from(&plain, "203.0.113.1").await, 201);
    assert_eq!(register_from(&plain, "203.0.113.2").await, 201);
    assert_eq!(
        register_from(&plain, "203.0.113.3").await,
        429,
        "all from 127.0.0.1"
    );
}

#[tokio::test]
async fn stateless_2026_requests_pass_through_untouched() {
    // MCP transport 2026-07-28: no initialize, no session; the protocol
    // version in a header and protocol fields in `_meta`. A tool policy
    // applies, so the gateway reads the body — and still forwards it as is.
    let (_idp, up, gw, slug) = policed().await;
    let body = br#"{"jsonrpc":"2.0","id":"s-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"\u00e9"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}}"#;
    let before = up.count();
    post_raw(
        &gw,
        &slug,
        body.to_vec(),
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
    )
    .await;
    assert_eq!(up.count(), before + 1);
    let seen = up.last_request().unwrap();
    assert_eq!(
        seen.body.as_ref(),
        body.as_slice(),
        "the body byte for byte"
    );
    assert_eq!(seen.header("mcp-protocol-version"), Some("2026-07-28"));
    assert_eq!(seen.header("mcp-method"), Some("tools/call"));
    assert!(seen.header("mcp-session-id").is_none());
}

#[tokio::test]
async fn the_idps_key_fetches_are_counted_on_the_exported_registry() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let metrics = || async {
        b.gw.client()
            .get(format!("{}/metrics", b.gw.admin_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let ok = |text: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with("drio_jwks_refresh_total{result=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = ok(&metrics().await);
    // A sign-in verifies the IdP's ID token with the IdP's JWKS.
    b.signed_in().await;
    assert!(
        ok(&metrics().await) > before,
        "the IdP's JWKS fetch is exported"
    );
}
