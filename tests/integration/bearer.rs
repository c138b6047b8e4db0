//! Bearer validation at protected apps: every way a token can be wrong,
//! scopes and identity headers, the two-tier cache shared through Redis,
//! revocation across instances, and what happens when Redis or the identity
//! provider goes away.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::gateway::{header_str, GatewayBuilder, TestGateway};
use crate::support::idp::keys::SigningKey;
use crate::support::idp::TestIdp;
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

/// `[auth]` verifying JWTs with the IdP's JWKS.
fn jwt_auth(idp: &TestIdp) -> String {
    format!(
        "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\nleeway_seconds = 5\njwks_refetch_interval_ms = 0\n",
        iss = idp.issuer()
    )
}

/// `[auth]` validating every token by RFC 7662 introspection.
fn introspection_auth(idp: &TestIdp) -> String {
    format!(
        "[auth]\nintrospection_endpoint = \"{iss}/introspect\"\nintrospection_client_id = \"{id}\"\n\
         introspection_client_secret_env = \"TEST_INTROSPECTION_SECRET\"\n",
        iss = idp.issuer(),
        id = idp.client_id()
    )
}

fn protected_app(up: &TestUpstream) -> GatewayBuilder {
    // The secret the introspection config names; harmless for the JWT configs.
    // Passed to the gateway process only (set_var would race with parallel tests).
    TestGateway::new()
        .env("TEST_INTROSPECTION_SECRET", "gw-secret")
        .app("notes", up)
        .protected()
}

fn resource(gw: &TestGateway) -> String {
    gw.app_url("notes", "/mcp")
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn call(gw: &TestGateway, token: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .client()
        .post(gw.app_url("notes", "/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request reaches the gateway")
}

async fn status(gw: &TestGateway, token: Option<&str>) -> u16 {
    call(gw, token).await.status().as_u16()
}

/// A gateway with one protected app `notes` verifying JWTs with `idp`'s JWKS.
async fn jwt_gateway(idp: &TestIdp, up: &TestUpstream) -> TestGateway {
    protected_app(up).raw_toml(&jwt_auth(idp)).start().await
}

/// Asserts a refusal: status, envelope code and the RFC 6750 `error` in the challenge.
async fn assert_refused(
    resp: reqwest::Response,
    status: u16,
    challenge_error: Option<&str>,
) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let challenge = header_str(&resp, "www-authenticate");
    let body: Value = resp.json().await.expect("JSON envelope");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match status {
        401 => {
            let c = challenge.expect("401 carries WWW-Authenticate");
            assert!(c.starts_with("Bearer resource_metadata=\""), "{c}");
            assert!(
                c.contains("/.well-known/oauth-protected-resource/apps/notes/mcp"),
                "{c}"
            );
            match challenge_error {
                Some(e) => assert!(c.contains(&format!("error=\"{e}\"")), "{c}"),
                None => assert!(!c.contains("error="), "{c}"),
            }
            assert_eq!(code, "unauthorized");
        }
        403 => {
            let c = challenge.expect("403 carries WWW-Authenticate");
            assert!(c.contains("error=\"insufficient_scope\""), "{c}");
            assert_eq!(code, "insufficient_scope");
        }
        503 => assert_eq!(code, "service_unavailable"),
        _ => {}
    }
    assert!(
        body["error"]["requestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    body
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(idp: &TestIdp, aud: &str) -> Value {
    json!({"iss": idp.issuer(), "sub": "user_ada", "aud": aud, "scope": "notes:read",
           "iat": now(), "exp": now() + 600, "jti": format!("j{}", now())})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn valid_token_reaches_the_upstream_without_the_token() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = jwt_gateway(&idp, &up).await;
    let token = idp.mint_access_token("user_ada", &resource(&gw), "notes:read", 600);
    let resp = call(&gw, Some(&token)).await;
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    let seen = up.last_request().expect("upstream got the request");
    assert_eq!(seen.header("authorization"), None, "no token passthrough");
    // A resource URL with a trailing slash names the same resource.
    let slash = idp.mint_access_token("user_ada", &format!("{}/", resource(&gw)), "", 600);
    assert_eq!(status(&gw, Some(&slash)).await, 200);
}

#[tokio::test]
async fn every_bad_token_is_refused_before_the_upstream() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let other = TestUpstream::start().await;
    let gw = protected_app(&up)
        .app("other", &other)
        .protected()
        .raw_toml(&jwt_auth(&idp))
        .start()
        .await;
    let res = resource(&gw);
    let expired = idp.mint_access_token("user_ada", &res, "", -60);
    let mut c = claims(&idp, &res);
    c["nbf"] = json!(now() + 300);
    let not_yet = idp.sign_claims(&c);
    let mut c = claims(&idp, &res);
    c["iss"] = json!("https://evil.example.com");
    let wrong_issuer = idp.sign_claims(&c);
    let wrong_audience = idp.mint_access_token("user_ada", &gw.app_url("other", "/mcp"), "", 600);
    // Same kid as the IdP's key, different key: the signature cannot verify.
    let mut forger = SigningKey::generate(idp.current_kid());
    let bad_signature = forger.sign(&claims(&idp, &res));
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(&idp, &res))
    );
    // HS256 "signed" with the public key: the classic algorithm-confusion forgery.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(idp.current_kid());
    let public = serde_json::to_vec(&idp.jwks()).unwrap();
    let hmac = jsonwebtoken::encode(
        &h,
        &claims(&idp, &res),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    forger.kid = "rogue".into();

    for (name, token) in [
        ("expired", &expired),
        ("not yet valid", &not_yet),
        ("wrong issuer", &wrong_issuer),
        ("wrong audience", &wrong_audience),
        ("bad signature", &bad_signature),
        ("alg none", &alg_none),
        ("hmac confusion", &hmac),
        ("opaque", &"not-a-jwt-at-all".to_string()),
    ] {
        let resp = call(&gw, Some(token)).await;
        eprintln!("case: {name}");
        assert_refused(resp, 401, Some("invalid_token")).await;
    }
    // Malformed credentials are `invalid_request`; no credentials carry no error code.
    let resp = gw
        .client()
        .post(gw.app_url("notes", "/mcp"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_refused(resp, 401, Some("invalid_request")).await;
    let resp = gw
        .client()
        .post(format!(
            "{}?access_token={}",
            gw.app_url("notes", "/mcp"),
            expired
        ))
        .send()
        .await
        .unwrap();
    assert_refused(resp, 401, Some("invalid_request")).await;
    assert_refused(call(&gw, None).await, 401, None).await;
    assert_eq!(up.count(), 0, "no refused request reached the upstream");
    // And the validations are counted by result.
    let m = gw
        .metrics_until(|m| m.contains("drio_token_validations_total{result=\"expired\""))
        .await;
    assert!(
        m.contains("drio_token_validations_total{result=\"invalid\",source=\"jwt\"}"),
        "{m}"
    );
}

/// The guard finds a token in its cache by hash before it checks the token's
/// grammar (RFC 6750 token68): the check must still refuse every credential
/// that is not one, even one that differs from a cached token by a byte.
#[tokio::test]
async fn a_malformed_credential_is_refused_beside_a_cached_token() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = jwt_gateway(&idp, &up).await;
    let good = idp.mint_access_token("u", &resource(&gw), "", 600);
    assert_eq!(
        status(&gw, Some(&good)).await,
        200,
        "the token is now cached"
    );
    // (Not spaces or tabs at either end: HTTP strips them from a header
    // value; inside a token they are covered by the `x` case.)
    for bad in [",", "@", "\"", "[", "`", "{", ";", "\\", "%", " ", "\t"] {
        let edges = [format!("{good}{bad}"), format!("{bad}{good}")];
        let edges = edges.into_iter().filter(|_| !bad.trim().is_empty());
        for token in edges.chain([format!("{good}{bad}x")]) {
            eprintln!("case: {bad:?}");
            assert_refused(call(&gw, Some(&token)).await, 401, Some("invalid_request")).await;
        }
    }
    assert_eq!(
        status(&gw, Some(&good)).await,
        200,
        "still served from the cache"
    );
    assert_eq!(
        up.count(),
        2,
        "only the good token's requests reached the upstream"
    );
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_then_the_rotated_key_is_accepted() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = jwt_gateway(&idp, &up).await;
    let res = resource(&gw);
    assert_eq!(
        status(&gw, Some(&idp.mint_access_token("u", &res, "", 600))).await,
        200
    );
    let fetched = idp.calls("jwks");

    let mut rogue = SigningKey::generate("never-published");
    rogue.kid = "never-published".into();
    assert_refused(
        call(&gw, Some(&rogue.sign(&claims(&idp, &res)))).await,
        401,
        Some("invalid_token"),
    )
    .await;
    assert_eq!(
        idp.calls("jwks"),
        fetched + 1,
        "an unknown kid refetches the JWKS once"
    );

    idp.rotate_key();
    let rotated = idp.mint_access_token("u", &res, "", 600);
    let resp = call(&gw, Some(&rotated)).await;
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    assert_eq!(idp.calls("jwks"), fetched + 2);
}

#[tokio::test]
async fn unknown_kids_are_refetched_at_most_once_per_interval() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let auth = jwt_auth(&idp).replace(
        "jwks_refetch_interval_ms = 0",
        "jwks_refetch_interval_ms = 60000",
    );
    let gw = protected_app(&up).raw_toml(&auth).start().await;
    let res = resource(&gw);
    assert_eq!(
        status(&gw, Some(&idp.mint_access_token("u", &res, "", 600))).await,
        200
    );
    let fetched = idp.calls("jwks");
    for i in 0..20 {
        let mut k = SigningKey::generate(format!("forged-{i}"));
        k.kid = format!("forged-{i}");
        assert_refused(
            call(&gw, Some(&k.sign(&claims(&idp, &res)))).await,
            401,
            Some("invalid_token"),
        )
        .await;
    }
    assert!(
        idp.calls("jwks") <= fetched + 1,
        "a flood of forged kids cannot hammer the IdP: {} fetches",
        idp.calls("jwks") - fetched
    );
}

#[tokio::test]
async fn missing_scopes_are_403_and_identity_reaches_the_upstream() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = protected_app(&up)
        .app_toml("required_scopes = [\"notes:read\"]\n[apps.identity_headers]\nsubject = \"X-Drio-User\"\nemail = \"X-Drio-Email\"\nscopes = \"X-Drio-Scopes\"\nclient_id = \"X-Drio-Client\"")
        .raw_toml(&jwt_auth(&idp))
        .start()
        .await;
    let res = resource(&gw);
    let weak = idp.mint_access_token("user_ada", &res, "profile", 600);
    let body = assert_refused(call(&gw, Some(&weak)).await, 403, None).await;
    assert_eq!(
        body["error"]["details"]["requiredScopes"],
        json!(["notes:read"])
    );
    let resp = call(&gw, Some(&weak)).await;
    let challenge = header_str(&resp, "www-authenticate").unwrap();
    assert!(challenge.contains("scope=\"notes:read\""), "{challenge}");

    let ada = idp.user();
    let strong = idp.mint_access_token(&ada.sub, &res, "notes:read profile", 600);
    let resp = gw
        .client()
        .post(gw.app_url("notes", "/mcp"))
        .bearer_auth(&strong)
        .header("x-drio-user", "someone-else")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.last_request().unwrap();
    assert_eq!(
        seen.header("x-drio-user"),
        Some(ada.sub.as_str()),
        "a client cannot claim an identity"
    );
    assert_eq!(seen.header("x-drio-scopes"), Some("notes:read profile"));
    assert_eq!(seen.header("x-drio-client"), Some(idp.client_id()));
    assert_eq!(seen.header("x-drio-email"), Some(ada.email.as_str()));
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn a_hundred_concurrent_requests_with_a_new_token_make_one_introspection() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = protected_app(&up)
        .raw_toml(&introspection_auth(&idp))
        .start()
        .await;
    let token = idp.mint_access_token("user_ada", &resource(&gw), "", 600);
    idp.set_delay_ms(300);
    let answers = join_all((0..100).map(|_| call(&gw, Some(&token)))).await;
    for r in answers {
        assert_eq!(r.status(), 200, "{}", gw.log_tail(10));
    }
    assert_eq!(
        idp.calls("introspect"),
        1,
        "single flight: one introspection for 100 concurrent misses"
    );

    // Invalid tokens are cached negatively: a flood costs one call.
    idp.set_delay_ms(0);
    for _ in 0..5 {
        assert_refused(
            call(&gw, Some("opaque-garbage-token")).await,
            401,
            Some("invalid_token"),
        )
        .await;
    }
    assert_eq!(idp.calls("introspect"), 2);
}

#[tokio::test]
async fn introspection_outage_is_503_not_401_and_recovers() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = protected_app(&up)
        .raw_toml(&introspection_auth(&idp))
        .start()
        .await;
    let token = idp.mint_access_token("user_ada", &resource(&gw), "", 600);
    idp.set_failing(true);
    let body = assert_refused(call(&gw, Some(&token)).await, 503, None).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("identity provider"),
        "{body}"
    );
    // Outages are not cached: the next request after recovery succeeds.
    idp.set_failing(false);
    assert_eq!(status(&gw, Some(&token)).await, 200);
    let m = gw
        .metrics_until(|m| m.contains("result=\"unavailable\""))
        .await;
    assert!(
        m.contains("drio_token_validations_total{result=\"valid\",source=\"introspection\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn keys_already_fetched_keep_serving_while_the_idp_is_down() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = jwt_gateway(&idp, &up).await;
    let res = resource(&gw);
    assert_eq!(
        status(&gw, Some(&idp.mint_access_token("a", &res, "", 600))).await,
        200
    );
    let unseen = idp.mint_access_token("b", &res, "", 600);
    drop(idp);
    assert_eq!(
        status(&gw, Some(&unseen)).await,
        200,
        "verified locally with cached keys"
    );
}

/// Two gateways on one Redis (same key prefix), accepting a shared audience.
async fn pair(
    idp: &TestIdp,
    up: &TestUpstream,
    redis: &RedisServer,
    auth: &str,
) -> (TestGateway, TestGateway) {
    let auth = format!("{auth}audiences = [\"{SHARED_AUD}\"]\n");
    let a = protected_app(up)
        .redis(redis)
        .shared_state("pair:")
        .raw_toml(&auth)
        .start()
        .await;
    let b = protected_app(up)
        .redis(redis)
        .shared_state("pair:")
        .raw_toml(&auth)
        .start()
        .await;
    let _ = idp;
    (a, b)
}

const SHARED_AUD: &str = "https://mcp.example.com";

#[tokio::test]
async fn a_token_validated_by_one_gateway_is_accepted_by_another_without_the_idp() {
    let (idp, up, redis) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        RedisServer::start(),
    );
    let (a, b) = pair(&idp, &up, &redis, &introspection_auth(&idp)).await;
    let token = idp.mint_access_token("user_ada", SHARED_AUD, "", 600);
    assert_eq!(status(&a, Some(&token)).await, 200, "{}", a.log_tail(20));
    assert_eq!(idp.calls("introspect"), 1);
    // A shares its verification in the background; B's L1 miss finds it in L2.
    let deadline = Instant::now() + Duration::from_secs(2);
    while redis_keys(&redis, "pair:tok:*").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&b, Some(&token)).await, 200);
    assert_eq!(
        idp.calls("introspect"),
        1,
        "B accepted A's verification with no second IdP call"
    );
    let m = b.metrics_until(|m| m.contains("source=\"l2\"")).await;
    assert!(
        m.contains("drio_token_validations_total{result=\"valid\",source=\"l2\"} 1"),
        "{m}"
    );
    // The shared cache holds the verification under the token's SHA-256,
    // never the token itself: neither in a key nor in a value.
    let keys = redis_keys(&redis, "pair:*");
    let entry = format!("pair:tok:{}", sha256_hex(&token));
    assert!(keys.contains(&entry), "{entry} among {keys:?}");
    let dump = redis_dump(&redis, "pair:*");
    assert!(dump.contains(&entry), "the dump scanned the entry: {dump}");
    assert!(!dump.contains(&token), "the token in Redis: {dump}");
}

#[tokio::test]
async fn revocation_at_one_gateway_stops_the_token_at_another_within_a_second() {
    let (idp, up, redis) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        RedisServer::start(),
    );
    let (a, b) = pair(&idp, &up, &redis, &jwt_auth(&idp)).await;
    let token = idp.mint_access_token("user_ada", SHARED_AUD, "", 600);
    assert_eq!(status(&a, Some(&token)).await, 200);
    assert_eq!(
        status(&b, Some(&token)).await,
        200,
        "B has the token in its L1"
    );
    let revoked = a
        .admin_post("/tokens/revoke")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let at = Instant::now();
    loop {
        let status = status(&b, Some(&token)).await;
        if status == 401 {
            break;
        }
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "B still accepts the token {:?} after revocation",
            at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation reached B after {:?}", at.elapsed());
    assert_refused(call(&a, Some(&token)).await, 401, Some("invalid_token")).await;
    // A third instance starting later learns it from the tombstone in L2.
    let c = protected_app(&up)
        .redis(&redis)
        .shared_state("pair:")
        .raw_toml(&format!(
            "{}audiences = [\"{SHARED_AUD}\"]\n",
            jwt_auth(&idp)
        ))
        .start()
        .await;
    assert_refused(call(&c, Some(&token)).await, 401, Some("invalid_token")).await;
}

#[tokio::test]
async fn redis_down_keeps_cached_and_locally_verifiable_tokens_working() {
    let (idp, up, mut redis) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        RedisServer::start(),
    );
    let gw = protected_app(&up)
        .redis(&redis)
        .raw_toml(&jwt_auth(&idp))
        .start()
        .await;
    let res = resource(&gw);
    let cached = idp.mint_access_token("a", &res, "", 600);
    assert_eq!(status(&gw, Some(&cached)).await, 200);

    redis.stop();
    let fresh = idp.mint_access_token("b", &res, "", 600);
    for token in [&cached, &fresh, &cached, &fresh] {
        let started = Instant::now();
        let resp = call(&gw, Some(token)).await;
        assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never blocks on a dead Redis"
        );
    }
    let m = gw
        .metrics_until(|m| {
            m.contains("drio_token_l2_errors_total 1") || m.contains("drio_token_l2_errors_total 2")
        })
        .await;
    assert!(m.contains("source=\"jwt\""), "{m}");

    // Redis is back: the gateway reconnects by itself and revocation works again.
    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw
            .admin_post("/tokens/revoke")
            .json(&json!({"token": cached}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store did not recover: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(call(&gw, Some(&cached)).await, 401, Some("invalid_token")).await;
    assert_eq!(status(&gw, Some(&fresh)).await, 200);
    // The tombstone: the revoked token's own entry says so (a cached valid
    // record of another token would not do).
    let keys = redis_keys(&redis, &format!("*tok:{}", sha256_hex(&cached)));
    assert_eq!(keys.len(), 1, "one entry for the revoked token: {keys:?}");
    let record: Value =
        serde_json::from_str(&redis_get(&redis, &keys[0])).expect("the entry is a JSON record");
    assert_eq!(record["s"], "revoked", "{record}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        record["until"].as_u64().is_some_and(|until| until > now),
        "revoked until a future time: {record}"
    );
}

fn redis_keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    redis_cli(redis, &["keys", pattern])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The string value at `key` (fails the test if there is none).
fn redis_get(redis: &RedisServer, key: &str) -> String {
    let value = redis_cli(redis, &["get", key]);
    let value = value.trim_end_matches('\n');
    assert!(!value.is_empty(), "no value at {key}");
    value.to_owned()
}

/// Every key matching `pattern` followed by its value(s), whatever the type.
fn redis_dump(redis: &RedisServer, pattern: &str) -> String {
    const SCRIPT: &str = "local out = {} \
        for _, k in ipairs(redis.call('keys', ARGV[1])) do \
          local t = redis.call('type', k).ok \
          local vals = {} \
          if t == 'string' then vals = {redis.call('get', k)} \
          elseif t == 'hash' then vals = redis.call('hgetall', k) \
          elseif t == 'list' then vals = redis.call('lrange', k, 0, -1) \
          elseif t == 'set' then vals = redis.call('smembers', k) \
          elseif t == 'zset' then vals = redis.call('zrange', k, 0, -1) \
          else vals = {'unscanned type ' .. t} end \
          table.insert(out, k) \
          for _, v in ipairs(vals) do table.insert(out, v) end \
        end return out";
    redis_cli(redis, &["eval", SCRIPT, "0", pattern])
}

/// Runs `redis-cli` against `redis`; fails the test on a non-zero exit or
/// an error reply.
fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "--raw"])
        .args(args)
        .output()
        .expect("run redis-cli");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.starts_with("ERR") && !stdout.starts_with("WRONGTYPE"),
        "redis-cli {args:?}: {}, {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
