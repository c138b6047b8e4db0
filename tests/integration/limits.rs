//! Rate limits (issue 17, item 2): per user, client, app and tool, shared
//! across instances on Redis, refused with 429 + `Retry-After` + drio's
//! envelope or, for a `tools/call`, a JSON-RPC error naming the limit; a
//! Redis outage fails open or closed as configured; limits set through the
//! app config API are validated and enforced.

use serde_json::{json, Value};

use crate::management::{gateway, Api};
use crate::support::gateway::{assert_envelope, header_str, send, Mcp, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

async fn post(gw: &TestGateway, slug: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .client()
        .post(gw.app_url(slug, "/mcp"))
        .header("accept", "application/json, text/event-stream");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req.json(&initialize())).await
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    header_str(resp, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_hit_on_one_instance_is_seen_by_the_other() {
    let (redis, up) = (RedisServer::start(), TestUpstream::start().await);
    let start = || {
        TestGateway::new()
            .redis(&redis)
            .shared_state("limits-shared:")
            .app("notes", &up)
            .app_toml("limits = { app = { requests = 3, per_seconds = 3600 } }")
            .start()
    };
    let (a, b) = (start().await, start().await);
    for gw in [&a, &b, &a] {
        assert_eq!(post(gw, "notes", None).await.status(), 200);
    }
    let before = up.count();
    // The app's burst of three is spent, two on A, one on B; the next one
    // is due a third of an hour later (3 per 3600 s: one every 1200 s).
    for gw in [&b, &a] {
        let resp = post(gw, "notes", None).await;
        let wait = retry_after(&resp);
        assert!((1100..=1200).contains(&wait), "Retry-After {wait}");
        assert_envelope(resp, 429, "rate_limited").await;
    }
    assert_eq!(
        up.count(),
        before,
        "refused requests never reach the upstream"
    );
    let text = b
        .metrics_until(|m| {
            m.contains(r#"drio_rate_limit_decisions_total{decision="limited",limit="app"} 1"#)
        })
        .await;
    assert!(
        text.contains(r#"drio_rate_limit_decisions_total{decision="allowed",limit="app"} 1"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_and_each_client_has_its_own_budget() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = gateway(&idp)
        .app("notes", &up)
        .protected()
        .raw_toml("[limits]\nuser = { requests = 1, per_seconds = 60 }\nclient = { requests = 2, per_seconds = 60 }\n")
        .start()
        .await;
    let aud = gw.app_url("notes", "/mcp");
    let token = |sub: &str, client: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        idp.sign_claims(&json!({
            "iss": idp.issuer(), "sub": sub, "aud": aud, "client_id": client,
            "iat": now, "exp": now + 600,
        }))
    };
    let ada = token("user_ada", "client-a");
    assert_eq!(post(&gw, "notes", Some(&ada)).await.status(), 200);
    let resp = post(&gw, "notes", Some(&ada)).await;
    let body: Value = {
        assert!((1..=60).contains(&retry_after(&resp)));
        assert_eq!(resp.status(), 429);
        resp.json().await.unwrap()
    };
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["details"]["limit"], "user", "{body}");
    // Another user of the same client still gets through; a third user of
    // that client hits the client's limit (2 per minute), a user of
    // another client does not.
    assert_eq!(
        post(&gw, "notes", Some(&token("user_bob", "client-a")))
            .await
            .status(),
        200
    );
    let resp = post(&gw, "notes", Some(&token("user_cy", "client-a"))).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["details"]["limit"], "client", "{body}");
    assert_eq!(
        post(&gw, "notes", Some(&token("user_cy", "client-b")))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_tool_call_gets_a_json_rpc_error_naming_the_limit() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::new()
        .app("notes", &up)
        .app_toml("limits = { tools = { echo = { requests = 3, per_seconds = 3600 } } }")
        .start()
        .await;
    let mcp = Mcp::connect(&gw, "notes").await;
    let echo = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {}}});
    assert_eq!(
        mcp.call(2, "tools/call", echo(2)["params"].clone())
            .await
            .status(),
        200
    );
    // A batch of two calls costs two: the budget of three is spent.
    let batch = json!([echo(3), echo(4)]);
    let resp = send(mcp.request(http::Method::POST).json(&batch)).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let before = up.count();

    let resp = mcp.call(5, "tools/call", echo(5)["params"].clone()).await;
    assert_eq!(
        resp.status(),
        200,
        "a JSON-RPC answer, as for a disabled tool"
    );
    let wait = retry_after(&resp);
    assert!((1100..=1200).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 5, "{body}");
    assert_eq!(body["error"]["code"], -32029, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("tool echo"), "{message}");
    assert_eq!(body["error"]["data"]["limit"], "tool");
    assert_eq!(body["error"]["data"]["tool"], "echo");
    assert_eq!(body["error"]["data"]["retryAfterSeconds"], wait);
    // A batch with the limited tool is refused whole (429 envelope).
    let resp = send(mcp.request(http::Method::POST).json(&json!([echo(6)]))).await;
    assert_envelope(resp, 429, "rate_limited").await;
    assert_eq!(up.count(), before, "the upstream saw none of them");
    // Other methods and tools are not limited.
    let list = mcp.call(7, "tools/list", json!({})).await;
    assert_eq!(list.status(), 200);
    let other = json!({"name": "stream", "arguments": {"count": 1, "delay_ms": 1}});
    assert_eq!(mcp.call(8, "tools/call", other).await.status(), 200);
    // The tool limit cannot be dodged with a body the gateway cannot read.
    let gz = mcp
        .request(http::Method::POST)
        .header("content-encoding", "gzip")
        .body("\u{1f}\u{8b}");
    assert_eq!(send(gz).await.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_open_by_default_and_closed_when_configured() {
    let (mut redis, up) = (RedisServer::start(), TestUpstream::start().await);
    let start = |deny: bool| {
        let gw = TestGateway::new()
            .redis(&redis)
            .shared_state("limits-outage:")
            .app("notes", &up)
            .app_toml("limits = { app = { requests = 1000, per_seconds = 60 } }");
        let gw = if deny {
            gw.raw_toml("[limits]\non_store_error = \"deny\"\n")
        } else {
            gw
        };
        gw.start()
    };
    let (open, closed) = (start(false).await, start(true).await);
    assert!(open
        .log_tail(200)
        .contains("while it fails, requests are allowed"));
    assert!(closed.log_tail(200).contains("refused with 503"));
    assert_eq!(post(&open, "notes", None).await.status(), 200);
    assert_eq!(post(&closed, "notes", None).await.status(), 200);

    redis.stop();
    let before = up.count();
    assert_eq!(post(&open, "notes", None).await.status(), 200, "fail open");
    assert_eq!(up.count(), before + 1);
    let resp = post(&closed, "notes", None).await;
    assert_eq!(retry_after(&resp), 1);
    assert_envelope(resp, 503, "rate_limit_unavailable").await;
    assert_eq!(up.count(), before + 1, "fail closed: nothing forwarded");
    assert!(
        open.log_tail(50)
            .contains("Redis cannot be reached; requests are allowed"),
        "{}",
        open.log_tail(50)
    );
    open.metrics_until(|m| m.contains("drio_rate_limit_store_errors_total 1"))
        .await;

    redis.start_again();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while post(&closed, "notes", None).await.status() != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "limits recover with Redis"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_set_through_the_app_config_api_are_validated_and_enforced() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = gateway(&idp).start().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("Limited", json!({"upstreamUrl": up.url()}))
        .await;
    let path = format!("/api/v1/apps/{id}/config");
    let (_, got) = ada.get(&path).await;
    let mut config = got["config"].clone();
    assert!(
        config.get("limits").is_none(),
        "no limits by default: {config}"
    );

    config["limits"] = json!({"user": {"requests": 0, "perSeconds": 60}});
    let (status, body) = ada.put(&path, config.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_error");
    let field = body["error"]["details"]["field"].as_str().unwrap();
    assert!(field.starts_with("config.limits"), "{field}");
    config["limits"] = json!({"user": {"requests": 1, "perSeconds": 60, "nonsense": 1}});
    let (status, body) = ada.put(&path, config.clone()).await;
    assert!(status == 400 || status == 422, "{status} {body}");

    config["limits"] = json!({"user": {"requests": 1, "perSeconds": 60, "burst": 1}});
    let (status, body) = ada.put(&path, config.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = ada.get(&path).await;
    assert_eq!(got["config"]["limits"], config["limits"]);

    let token = idp.mint_access_token("user_ada", &gw.app_url(&slug, "/mcp"), "", 600);
    assert_eq!(post(&gw, &slug, Some(&token)).await.status(), 200);
    assert_envelope(post(&gw, &slug, Some(&token)).await, 429, "rate_limited").await;
}
