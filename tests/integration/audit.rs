//! Audit log of MCP calls (issue 17, item 1): one event per call and per
//! batch message with the caller's identity, arguments only by opt-in and
//! then redacted, a file sink that rotates by size, stdout lines apart from
//! the access log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::management::{gateway, Api};
use crate::support::gateway::{send, Mcp, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn audit_toml(path: &Path, extra: &str) -> String {
    format!(
        "[audit]\nfile = {{ path = {:?}, max_bytes = {} }}\n{extra}",
        path.display().to_string(),
        1024 * 1024
    )
}

/// Every event in the file (and its rotations), polled until `done` says so:
/// events are written off the request path.
async fn events_until(path: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut events = Vec::new();
        for p in rotations(path).into_iter().rev() {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            events.extend(
                text.lines().map(|l| {
                    serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"))
                }),
            );
        }
        if done(&events) {
            return events;
        }
        assert!(Instant::now() < deadline, "audit events: {events:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `path`, `path.1`, `path.2`, … that exist.
fn rotations(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    out.extend((1..10).map(|n| PathBuf::from(format!("{}.{n}", path.display()))));
    out.into_iter().filter(|p| p.exists()).collect()
}

fn calls<'a>(events: &'a [Value], method: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["jsonrpc_method"] == method)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_call_with_the_callers_identity_and_no_arguments() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let gw = gateway(&idp)
        .app("notes", &up)
        .protected()
        .raw_toml(&audit_toml(&path, "stdout = true"))
        // The client's trace id is recorded only from a trusted proxy.
        .server_toml("trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]")
        .start()
        .await;
    let aud = gw.app_url("notes", "/mcp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = idp.sign_claims(&json!({
        "iss": idp.issuer(), "sub": "user_ada", "aud": aud, "client_id": "client-a",
        "iat": now, "exp": now + 600,
    }));
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"password": "hunter2"}}});
    let resp = send(
        gw.client()
            .post(&aud)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("traceparent", TRACEPARENT)
            .json(&call),
    )
    .await;
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = resp.bytes().await.unwrap();

    let events = events_until(&path, |e| !calls(e, "tools/call").is_empty()).await;
    let e = calls(&events, "tools/call")[0];
    assert_eq!(e["type"], "audit");
    assert_eq!(e["request_id"], request_id.as_str());
    assert_eq!(e["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(e["app"], "notes");
    assert_eq!(e["user"], "user_ada");
    assert_eq!(e["client_id"], "client-a");
    assert_eq!(e["name"], "echo");
    assert_eq!(e["jsonrpc_id"], 7);
    assert_eq!(e["status_class"], "4xx", "no session: the upstream's 404");
    assert_eq!(e["jsonrpc_error"], Value::Null, "the upstream answered");
    assert!(e["upstream_ms"].as_f64().is_some(), "{e}");
    assert_eq!(e["request_bytes"], call.to_string().len() as u64);
    assert_eq!(e["response_bytes"], body.len() as u64);
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    assert!(
        e.get("arguments").is_none(),
        "arguments only by opt-in: {e}"
    );
    assert!(
        !std::fs::read_to_string(&path).unwrap().contains("hunter2"),
        "an argument reached the audit file"
    );

    // A caller without a token is audited too, without identity.
    let resp = send(gw.client().post(&aud).json(&call)).await;
    assert_eq!(resp.status(), 401);
    let events = events_until(&path, |e| e.len() >= 2).await;
    let e = events
        .iter()
        .find(|e| e["status"] == 401)
        .expect("401 event");
    assert_eq!(e["user"], Value::Null);
    assert_eq!(e["trace_id"], Value::Null);

    // Stdout: the same events as their own JSON lines, not access-log fields.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tail = gw.log_tail(200);
        let line = tail
            .lines()
            .find(|l| l.contains(r#""type":"audit""#) && l.contains("tools/call"));
        if let Some(line) = line {
            let v: Value = serde_json::from_str(line).expect("a whole JSON line");
            assert_eq!(v["user"], "user_ada");
            break;
        }
        assert!(Instant::now() < deadline, "no audit line on stdout: {tail}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_gives_one_event_per_message_and_opted_in_arguments_are_redacted() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let gw = TestGateway::new()
        .app("notes", &up)
        .app_toml(r#"audit = { include_arguments = true, redact = ["/password", "/auth/token"] }"#)
        .raw_toml(&audit_toml(&path, ""))
        .start()
        .await;
    let mcp = Mcp::connect(&gw, "notes").await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo",
            "arguments": {"q": "kept", "password": "hunter2", "auth": {"token": "s3cret"}}}},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "file:///notes/a.md"}},
        {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "summary", "arguments": {}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"}
    ]);
    let resp = send(mcp.request(http::Method::POST).json(&batch)).await;
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let events = events_until(&path, |e| {
        e.iter()
            .filter(|e| e["request_id"] == request_id.as_str())
            .count()
            >= 4
    })
    .await;
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(mine.len(), 4, "one event per batch message: {mine:#?}");
    let by = |i: usize| mine.iter().find(|e| e["batch_index"] == i).unwrap();
    assert!(mine.iter().all(|e| e["batch_size"] == 4));
    assert_eq!(by(0)["name"], "echo");
    assert_eq!(
        by(0)["arguments"],
        json!({"q": "kept", "password": "[redacted]", "auth": {"token": "[redacted]"}})
    );
    assert_eq!(by(1)["jsonrpc_method"], "resources/read");
    assert_eq!(by(1)["name"], "file:///notes/a.md");
    assert_eq!(by(2)["name"], "summary");
    assert_eq!(by(3)["jsonrpc_method"], "notifications/initialized");
    assert_eq!(by(3)["jsonrpc_id"], Value::Null);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );
    // The initialize call of Mcp::connect was audited on its own.
    assert_eq!(calls(&events, "initialize").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refusal_is_audited_with_its_json_rpc_code() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let gw = TestGateway::new()
        .app("notes", &up)
        .app_toml("limits = { tools = { echo = { requests = 1, per_seconds = 3600 } } }")
        .raw_toml(&audit_toml(&path, ""))
        .start()
        .await;
    let mcp = Mcp::connect(&gw, "notes").await;
    for id in [2, 3] {
        mcp.call(id, "tools/call", json!({"name": "echo", "arguments": {}}))
            .await;
    }
    let events = events_until(&path, |e| calls(e, "tools/call").len() >= 2).await;
    let c = calls(&events, "tools/call");
    assert_eq!(c[0]["jsonrpc_error"], Value::Null);
    assert!(c[0]["upstream_ms"].is_number());
    assert_eq!(c[1]["jsonrpc_error"], -32029, "{}", c[1]);
    assert_eq!(
        c[1]["upstream_ms"],
        Value::Null,
        "never reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_file_rotates_by_size() {
    let up = TestUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let gw = TestGateway::new()
        .app("notes", &up)
        .raw_toml(&format!(
            "[audit]\nfile = {{ path = {:?}, max_bytes = 2048, keep = 2 }}\n",
            path.display().to_string()
        ))
        .start()
        .await;
    let mcp = Mcp::connect(&gw, "notes").await;
    // ~600 bytes an event: 20 calls fill the file and both rotations.
    for id in 2..22 {
        mcp.call(id, "tools/call", json!({"name": "echo", "arguments": {}}))
            .await;
    }
    let events = events_until(&path, |e| {
        e.iter().any(|e| e["jsonrpc_id"] == 21) && rotations(&path).len() == 3
    })
    .await;
    assert!(!PathBuf::from(format!("{}.3", path.display())).exists());
    for p in rotations(&path) {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 2048, "{p:?} is {len} bytes");
    }
    // The newest events survive whole, in order.
    let ids: Vec<i64> = events
        .iter()
        .filter_map(|e| e["jsonrpc_id"].as_i64())
        .collect();
    assert_eq!(ids.last(), Some(&21), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains("drio_audit_events_dropped_total 0"),
        "{metrics}"
    );
}

/// The store sink and its API: the owner pages through the app's events,
/// newest first; another user gets 404 as on every app route; a cursor or
/// limit that is not one this endpoint hands out is refused.
async fn pages_through_the_stored_events(gw: TestGateway, idp: &TestIdp, up: &TestUpstream) {
    let ada = Api::as_user(&gw, idp, "user_ada");
    let (id, slug) = ada
        .create_app("Audited", json!({"upstreamUrl": up.url()}))
        .await;
    let token = idp.mint_access_token("user_ada", &gw.app_url(&slug, "/mcp"), "", 600);
    for n in 1..=5 {
        let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": format!("tool{n}"), "arguments": {}}});
        send(
            gw.client()
                .post(gw.app_url(&slug, "/mcp"))
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .json(&call),
        )
        .await;
    }
    let path = format!("/api/v1/apps/{id}/audit");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ada.get(&format!("{path}?limit=200")).await;
        assert_eq!(status, 200, "{body}");
        if body["events"].as_array().unwrap().len() == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "stored events: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, first) = ada.get(&format!("{path}?limit=2")).await;
    let names = |b: &Value| {
        b["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["tool5", "tool4"], "{first}");
    assert!(first["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["user"] == "user_ada" && e["app_id"] == id.as_str()));
    let cursor = first["nextCursor"].as_str().expect("nextCursor").to_owned();
    let (_, second) = ada.get(&format!("{path}?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&second), ["tool3", "tool2"]);
    let cursor = second["nextCursor"].as_str().unwrap().to_owned();
    let (_, last) = ada.get(&format!("{path}?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&last), ["tool1"]);
    assert_eq!(last["nextCursor"], Value::Null);

    for bad in [
        "?cursor=%2B",
        "?cursor=(0-0",
        "?limit=0",
        "?limit=100000",
        "?limit=x",
    ] {
        let (status, body) = ada.get(&format!("{path}{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "validation_error");
    }

    let bob = Api::as_user(&gw, idp, "user_bob");
    let (status, body) = bob.get(&path).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = bob.get(&format!("{path}?cursor={cursor}")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_pages_through_stored_events_on_the_embedded_store() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = gateway(&idp)
        .raw_toml("[audit]\nstore = { max_entries = 100 }\n")
        .start()
        .await;
    pages_through_the_stored_events(gw, &idp, &up).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_pages_through_stored_events_on_redis() {
    let (idp, up, redis) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        RedisServer::start(),
    );
    let gw = gateway(&idp)
        .redis(&redis)
        .raw_toml("[audit]\nstore = { max_entries = 100 }\n")
        .start()
        .await;
    pages_through_the_stored_events(gw, &idp, &up).await;
}
