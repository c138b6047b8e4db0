//! OpenTelemetry traces (issue 17, item 3): a real gateway exporting OTLP/HTTP
//! to the harness's receiver ([`crate::support::otlp`]); the span tree of a
//! proxied call, the W3C `traceparent` (W3C Trace Context) the upstream
//! receives, who may set the trace id, sampling, and a dead collector.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::management::gateway;
use crate::support::gateway::{send, GatewayBuilder};
use crate::support::idp::TestIdp;
use crate::support::otlp::{has_tree, named, one, parse, OtlpReceiver};
use crate::support::upstream::TestUpstream;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_traceparent(flags: &str) -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-{flags}")
}

fn traced(idp: &TestIdp, up: &TestUpstream, endpoint: &str, extra: &str) -> GatewayBuilder {
    gateway(idp).app("notes", up).protected().raw_toml(&format!(
        "[tracing]\notlp_endpoint = \"{endpoint}\"\nbatch_delay_ms = 50\n\
         service_name = \"gw-under-test\"\n{extra}"
    ))
}

fn token(idp: &TestIdp, aud: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    idp.sign_claims(&json!({
        "iss": idp.issuer(), "sub": "user_ada", "aud": aud, "client_id": "client-a",
        "iat": now, "exp": now + 600,
    }))
}

fn init_call() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
}

/// POSTs an MCP call, optionally with client trace headers; returns the
/// status and the `traceparent` the upstream received.
async fn call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    up: &TestUpstream,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let before = up.count();
    let mut req = client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&init_call());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send(req).await;
    let status = resp.status().as_u16();
    assert_eq!(up.count(), before + 1, "the call reached the upstream");
    let seen = up.last_request().unwrap();
    let tp = seen
        .header("traceparent")
        .expect("the upstream always receives a traceparent")
        .to_owned();
    (status, tp)
}

async fn audit_trace_ids(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let ids: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["trace_id"].clone())
            .collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(Instant::now() < deadline, "audit events: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_call_exports_a_span_tree_and_propagates_the_upstream_span() {
    let (idp, up, otlp) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        OtlpReceiver::start().await,
    );
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let gw = traced(
        &idp,
        &up,
        &otlp.endpoint(),
        &format!(
            "[audit]\nfile = {{ path = {:?} }}\n",
            audit.display().to_string()
        ),
    )
    .start()
    .await;
    let url = gw.app_url("notes", "/mcp");
    let token = token(&idp, &url);

    // An untrusted client's trace headers are neither adopted nor forwarded.
    let sent = client_traceparent("01");
    let (status, tp) = call(
        gw.client(),
        &url,
        &token,
        &up,
        &[("traceparent", &sent), ("tracestate", "evil=1")],
    )
    .await;
    assert_eq!(status, 200);
    let (trace, parent, flags) = parse(&tp);
    assert_ne!(trace, CLIENT_TRACE, "an untrusted peer chose the trace id");
    assert_eq!(flags, "01");
    assert_eq!(up.last_request().unwrap().header("tracestate"), None);

    let spans = otlp.spans_until(|s| has_tree(s, &trace)).await;
    let request = one(&spans, &trace, "request");
    let validation = one(&spans, &trace, "token validation");
    let upstream = one(&spans, &trace, "upstream");
    assert_eq!(request.parent, "", "a new trace: {request:#?}");
    assert_eq!(request.kind, 2, "server span");
    assert_eq!(validation.parent, request.span_id);
    assert_eq!(upstream.parent, request.span_id);
    assert_eq!(upstream.kind, 3, "client span");
    // The upstream's parent is the upstream span, exported under the same trace.
    assert_eq!(parent, upstream.span_id);
    assert_eq!(request.attr("http.request.method"), Some("POST"));
    assert_eq!(request.attr("drio.route.kind"), Some("app"));
    assert_eq!(request.attr("http.response.status_code"), Some("200"));
    assert!(request.attr("drio.app.id").is_some(), "{request:#?}");
    assert_eq!(validation.attr("layer"), Some("verify"));
    assert_eq!(validation.attr("outcome"), Some("valid"));
    assert_eq!(upstream.attr("http.response.status_code"), Some("200"));
    assert_eq!(upstream.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(request.service_name.as_deref(), Some("gw-under-test"));
    // Credential resolution is a child of the request too.
    let resolution = one(&spans, &trace, "credential resolution");
    assert_eq!(resolution.parent, request.span_id);
    assert_eq!(resolution.attr("connection.type"), Some("none"));

    // The same token again: answered from L1, a new trace.
    let (_, tp2) = call(gw.client(), &url, &token, &up, &[]).await;
    let (trace2, _, _) = parse(&tp2);
    assert_ne!(trace2, trace);
    let spans = otlp.spans_until(|s| has_tree(s, &trace2)).await;
    assert_eq!(
        one(&spans, &trace2, "token validation").attr("layer"),
        Some("l1")
    );

    // The audit events carry the generated trace ids, not the client's.
    let ids = audit_trace_ids(&audit, 2).await;
    assert_eq!(ids, vec![json!(trace), json!(trace2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_traceparent_is_adopted() {
    let (idp, up, otlp) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        OtlpReceiver::start().await,
    );
    let gw = traced(&idp, &up, &otlp.endpoint(), "")
        .server_toml("trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]")
        .start()
        .await;
    let url = gw.app_url("notes", "/mcp");
    let token = token(&idp, &url);
    let sent = client_traceparent("01");
    let (_, tp) = call(
        gw.client(),
        &url,
        &token,
        &up,
        &[("traceparent", &sent), ("tracestate", "vendor=abc")],
    )
    .await;
    let (trace, parent, _) = parse(&tp);
    assert_eq!(trace, CLIENT_TRACE, "the trusted trace id is kept");
    assert_ne!(parent, CLIENT_SPAN, "the upstream's parent is the gateway");
    assert_eq!(
        up.last_request().unwrap().header("tracestate"),
        Some("vendor=abc"),
        "a trusted tracestate travels with the trace"
    );
    let spans = otlp.spans_until(|s| has_tree(s, CLIENT_TRACE)).await;
    let request = one(&spans, CLIENT_TRACE, "request");
    assert_eq!(request.parent, CLIENT_SPAN);
    assert_eq!(one(&spans, CLIENT_TRACE, "upstream").span_id, parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_zero_exports_nothing_but_honours_a_trusted_sampled_parent() {
    let (idp, up, otlp) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        OtlpReceiver::start().await,
    );
    let gw = traced(&idp, &up, &otlp.endpoint(), "sample_ratio = 0.0")
        .server_toml("trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]")
        .start()
        .await;
    let url = gw.app_url("notes", "/mcp");
    let token = token(&idp, &url);

    // A new trace at ratio 0: not sampled, still propagated (flags 00).
    let (status, tp) = call(gw.client(), &url, &token, &up, &[]).await;
    assert_eq!(status, 200);
    let (dropped, _, flags) = parse(&tp);
    assert_eq!(flags, "00", "{tp}");

    // A trusted sampled parent is honoured (parent-based sampling); its spans
    // are exported after anything queued before them.
    let sent = client_traceparent("01");
    call(gw.client(), &url, &token, &up, &[("traceparent", &sent)]).await;
    let spans = otlp.spans_until(|s| has_tree(s, CLIENT_TRACE)).await;
    assert!(
        spans.iter().all(|s| s.trace_id != dropped),
        "an unsampled trace was exported: {spans:#?}"
    );
    assert!(spans.iter().all(|s| s.trace_id == CLIENT_TRACE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_hanging_collector_does_not_fail_or_slow_requests() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    // Hanging: the kernel completes the handshake, nobody ever answers, so
    // every export waits out its timeout while the queue (16) overflows.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_url = format!("http://{}/v1/traces", hanging.local_addr().unwrap());
    // Dead: nothing listens, every export fails at once.
    let dead_url = format!(
        "http://127.0.0.1:{}/v1/traces",
        crate::support::ports::free_port()
    );
    for endpoint in [hanging_url, dead_url] {
        let gw = traced(&idp, &up, &endpoint, "queue = 16").start().await;
        let url = gw.app_url("notes", "/mcp");
        let token = token(&idp, &url);
        let started = Instant::now();
        for _ in 0..40 {
            let (status, tp) = call(gw.client(), &url, &token, &up, &[]).await;
            assert_eq!(status, 200);
            assert_eq!(parse(&tp).2, "01");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "requests waited on the collector at {endpoint}: {:?}",
            started.elapsed()
        );
        if endpoint.contains(&format!("{}", hanging.local_addr().unwrap())) {
            continue;
        }
        // Lost spans are counted, and the outage is logged once.
        gw.metrics_until(|m| {
            m.lines().any(|l| {
                l.starts_with("drio_trace_spans_total{result=\"failed\"}") && !l.ends_with(" 0")
            })
        })
        .await;
        let log = gw.log_tail(500);
        assert_eq!(
            log.matches("trace export to the collector failed").count(),
            1,
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tracing_config_names_the_key() {
    for (toml, key) in [
        (
            "otlp_endpoint = \"ftp://c/v1/traces\"",
            "tracing.otlp_endpoint",
        ),
        (
            "otlp_endpoint = \"http://c/v1/traces\"\nsample_ratio = 2.0",
            "tracing.sample_ratio",
        ),
        ("otlp_endpoin = \"http://c/v1/traces\"", "otlp_endpoin"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(
            &path,
            format!(
                "public_url = \"http://127.0.0.1:1\"\n[listen]\nproxy = \"127.0.0.1:0\"\n\
                 admin = \"127.0.0.1:0\"\n[tracing]\n{toml}\n"
            ),
        )
        .unwrap();
        let err = drio_gateway::config::Config::load(&path).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tracing_off_only_a_trusted_traceparent_reaches_the_upstream() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let untrusted = gateway(&idp).app("notes", &up).protected().start().await;
    let trusted = gateway(&idp)
        .app("notes", &up)
        .protected()
        .server_toml("trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]")
        .start()
        .await;
    let sent = client_traceparent("01");
    for (gw, forwarded) in [(&untrusted, false), (&trusted, true)] {
        let url = gw.app_url("notes", "/mcp");
        let resp = send(
            gw.client()
                .post(&url)
                .bearer_auth(token(&idp, &url))
                .header("accept", "application/json, text/event-stream")
                .header("traceparent", &sent)
                .header("tracestate", "vendor=abc")
                .json(&init_call()),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let seen = up.last_request().unwrap();
        if forwarded {
            assert_eq!(seen.header("traceparent"), Some(sent.as_str()));
            assert_eq!(seen.header("tracestate"), Some("vendor=abc"));
        } else {
            assert_eq!(seen.header("traceparent"), None, "untrusted trace context");
            assert_eq!(seen.header("tracestate"), None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introspection_is_an_idp_span_under_token_validation() {
    let (idp, up, otlp) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        OtlpReceiver::start().await,
    );
    let gw = crate::support::gateway::TestGateway::new()
        .env("TEST_INTROSPECTION_SECRET", "gw-secret")
        .app("notes", &up)
        .protected()
        .raw_toml(&format!(
            "[auth]\nintrospection_endpoint = \"{iss}/introspect\"\nintrospection_client_id = \"{id}\"\n\
             introspection_client_secret_env = \"TEST_INTROSPECTION_SECRET\"\n\n\
             [tracing]\notlp_endpoint = \"{ep}\"\nbatch_delay_ms = 50\n",
            iss = idp.issuer(),
            id = idp.client_id(),
            ep = otlp.endpoint(),
        ))
        .start()
        .await;
    let url = gw.app_url("notes", "/mcp");
    let token = idp.mint_access_token("user_ada", &url, "", 600);
    let (status, tp) = call(gw.client(), &url, &token, &up, &[]).await;
    assert_eq!(status, 200);
    let (trace, _, _) = parse(&tp);
    let spans = otlp
        .spans_until(|s| has_tree(s, &trace) && !named(s, &trace, "idp").is_empty())
        .await;
    let validation = one(&spans, &trace, "token validation");
    let call = one(&spans, &trace, "idp");
    assert_eq!(call.parent, validation.span_id);
    assert_eq!(call.kind, 3, "client span");
    assert_eq!(call.attr("idp.operation"), Some("introspection"));
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
    assert_eq!(validation.attr("layer"), Some("verify"));
    assert_eq!(validation.attr("verifier"), Some("introspection"));
    assert_eq!(
        one(&spans, &trace, "request").service_name.as_deref(),
        Some("drio-gateway")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_resolution_says_its_connection_type_and_cache_hit() {
    use crate::management::Api;
    use crate::support::provider::{self, TestProvider};
    let (idp, up, p, otlp) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestProvider::start().await,
        OtlpReceiver::start().await,
    );
    let gw = gateway(&idp)
        .raw_toml(&format!(
            "[tracing]\notlp_endpoint = \"{}\"\nbatch_delay_ms = 50\n",
            otlp.endpoint()
        ))
        .start()
        .await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("cc", json!({"upstreamUrl": up.url(), "public": true}))
        .await;
    let (s, body) = ada
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"providerKey": "custom-oauth", "config": {
        "type": "oauth", "tokenEndpoint": p.url("/token"), "clientId": provider::CLIENT_ID,
        "clientSecret": provider::CLIENT_SECRET, "clientAuthMethod": "client_secret_basic"}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let mut traces = Vec::new();
    for _ in 0..2 {
        let resp = send(
            gw.client()
                .post(gw.app_url(&slug, "/mcp"))
                .header("accept", "application/json, text/event-stream")
                .json(&init_call()),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let tp = up
            .last_request()
            .unwrap()
            .header("traceparent")
            .unwrap()
            .to_owned();
        traces.push(parse(&tp).0);
    }
    let spans = otlp
        .spans_until(|s| {
            traces
                .iter()
                .all(|t| !named(s, t, "credential resolution").is_empty())
        })
        .await;
    let hits: Vec<Option<&str>> = traces
        .iter()
        .map(|t| {
            let r = one(&spans, t, "credential resolution");
            assert_eq!(r.attr("connection.type"), Some("client_credentials"));
            assert_eq!(r.parent, one(&spans, t, "request").span_id);
            r.attr("cache.hit")
        })
        .collect();
    // The first call fetches the app's token, the second reuses it.
    assert_eq!(hits, vec![Some("false"), Some("true")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_an_upstream_span_with_its_error() {
    let (idp, otlp) = (TestIdp::start().await, OtlpReceiver::start().await);
    // An upstream that is gone: nothing listens on its port.
    let up = TestUpstream::start().await;
    let gw = traced(&idp, &up, &otlp.endpoint(), "").start().await;
    drop(up);
    let url = gw.app_url("notes", "/mcp");
    let resp = send(
        gw.client()
            .post(&url)
            .bearer_auth(token(&idp, &url))
            .header("accept", "application/json, text/event-stream")
            .json(&init_call()),
    )
    .await;
    assert_eq!(resp.status(), 502);
    let spans = otlp
        .spans_until(|s| s.iter().any(|s| s.name == "upstream"))
        .await;
    let upstream = spans.iter().find(|s| s.name == "upstream").unwrap();
    let request = one(&spans, &upstream.trace_id, "request");
    assert_eq!(upstream.parent, request.span_id);
    assert_eq!(
        upstream.attr("error.type"),
        Some("connect"),
        "{upstream:#?}"
    );
    assert_eq!(request.attr("http.response.status_code"), Some("502"));
}
