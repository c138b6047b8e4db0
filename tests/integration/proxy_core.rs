//! The data plane end to end: the real gateway binary in front of a fake MCP
//! upstream. Streaming, sessions, routing, forwarding headers, request ids,
//! error envelopes, Origin checks and metrics, each observed from both sides
//! (what the client got, what the upstream received).

use std::time::{Duration, Instant};

use reqwest::{header, Method, StatusCode};
use serde_json::json;

use crate::support::gateway::{
    assert_envelope, header_str, send, AppSpec, Mcp, SseReader, TestGateway,
};
use crate::support::ports::free_port;
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

/// Upstream plus a gateway with one public app `notes` in front of it.
async fn notes() -> (TestUpstream, TestGateway) {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new().app("notes", &upstream).start().await;
    (upstream, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_arrive_one_by_one_not_buffered() {
    let (_upstream, gw) = notes().await;
    let mcp = Mcp::connect(&gw, "notes").await;
    let args = json!({"name": "stream", "arguments": {"count": 3, "delay_ms": 500}});
    let resp = mcp.call(2, "tools/call", args).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = header_str(&resp, "content-type").unwrap_or_default();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct}");

    let mut events = SseReader::new(resp);
    let mut arrivals = Vec::new();
    while let Some(event) = events.next().await {
        arrivals.push(event);
    }
    // Three progress notifications, then the result: four events 500 ms apart.
    assert_eq!(arrivals.len(), 4, "events: {arrivals:?}");
    assert_eq!(arrivals[0].0["method"], "notifications/progress");
    assert_eq!(arrivals[3].0["id"], 2, "last event is the result");
    // Every event on its own: holding back any one of them until the next
    // (or the end) makes some gap near zero, whatever the total spread.
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_millis(200)),
        "gaps between consecutive events {gaps:?}: some were held back (upstream sends one every 500 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_session_id_passes_both_ways() {
    let (upstream, gw) = notes().await;
    let mcp = Mcp::connect(&gw, "notes").await;
    assert!(
        upstream.has_session(mcp.session()),
        "client got the upstream's id"
    );

    let resp = mcp.call(2, "tools/list", json!({})).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "upstream accepted the session"
    );
    let seen = upstream
        .last_request()
        .expect("tools/list reached upstream");
    assert_eq!(seen.header("mcp-session-id"), Some(mcp.session()));
    assert_eq!(seen.json()["method"], "tools/list");

    let resp = send(mcp.request(Method::DELETE)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = upstream.last_request().expect("DELETE reached upstream");
    assert_eq!(seen.method, Method::DELETE);
    assert_eq!(seen.header("mcp-session-id"), Some(mcp.session()));
    assert!(!upstream.has_session(mcp.session()), "upstream forgot it");

    // The upstream's own status comes back: the deleted session is unknown now.
    let resp = send(mcp.request(Method::DELETE)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lived_get_stream_passes_events_while_open() {
    let (upstream, gw) = notes().await;
    let mcp = Mcp::connect(&gw, "notes").await;
    let resp = send(mcp.request(Method::GET)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut events = SseReader::new(resp);
    for seq in 1..=2 {
        let (event, _) = events.next().await.expect("the stream stays open");
        assert_eq!(event["params"]["data"]["seq"], seq, "{event}");
    }
    drop(events);

    // The gateway still serves after the client walked away mid-stream.
    let before = upstream.count();
    let resp = send(gw.client().post(gw.app_url("notes", "/echo")).body("hi")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(upstream.count(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_routing_strips_the_app_prefix_and_keeps_body_and_query() {
    let (upstream, gw) = notes().await;
    Mcp::connect(&gw, "notes").await;
    let seen = upstream
        .last_request()
        .expect("initialize reached upstream");
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/mcp"));

    let echo = gw.client().post(gw.app_url("notes", "/echo?x=1&y=two"));
    let echo = echo.header(header::CONTENT_TYPE, "application/x-test");
    let resp = send(echo.body("hello, upstream")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = header_str(&resp, "content-type");
    assert_eq!(ct.as_deref(), Some("application/x-test"));
    assert_eq!(resp.text().await.unwrap(), "hello, upstream");
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.path, "/echo");
    assert_eq!(seen.query.as_deref(), Some("x=1&y=two"));
    assert_eq!(&seen.body[..], b"hello, upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_endpoint_lands_under_the_upstream_base_path_query_and_all() {
    // The MCP endpoint's upstream target is prepared once per route; any
    // query, and every other path, is still built per request.
    let upstream = TestUpstream::start().await;
    let mut app = AppSpec::new("based", &format!("{}/base", upstream.url()));
    app.mcp_path = "/rpc".into();
    let gw = TestGateway::new().app_with(app).start().await;
    for (path, want) in [
        ("/rpc", ("/base/rpc", None)),
        ("/rpc?session=1&x", ("/base/rpc", Some("session=1&x"))),
        ("/rpc/more", ("/base/rpc/more", None)),
        ("/mcp", ("/base/mcp", None)),
        ("/rpc", ("/base/rpc", None)),
    ] {
        send(gw.client().post(gw.app_url("based", path)).body("{}")).await;
        let seen = upstream.last_request().expect("reached the upstream");
        assert_eq!((seen.path.as_str(), seen.query.as_deref()), want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_round_trip_intact() {
    let (upstream, gw) = notes().await;
    // 2 MB of non-repeating bytes, so a dropped or reordered chunk shows.
    let body: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let echo = gw.client().post(gw.app_url("notes", "/echo"));
    let resp = send(echo.body(body.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let back = resp.bytes().await.expect("echo body");
    assert!(
        back[..] == body[..],
        "echoed {} of {} bytes",
        back.len(),
        body.len()
    );
    assert_eq!(upstream.last_request().unwrap().body.len(), body.len());

    let n = 5 * 1024 * 1024;
    let big = gw
        .client()
        .get(gw.app_url("notes", &format!("/big?bytes={n}")));
    let big = send(big).await.bytes().await.expect("big body");
    assert_eq!(big.len(), n);
    assert!(big.starts_with(br#"{"data":""#) && big.ends_with(br#""}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_forwards_the_path_as_is() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .app("notes", &upstream)
        .host("notes.mcp.example.com");
    let gw = gw.start().await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let to_mcp = || {
        gw.client()
            .post(format!("{}/mcp", gw.url()))
            .json(&initialize)
    };

    // reqwest keeps an explicit Host header instead of deriving one from the URL.
    let resp = send(to_mcp().header(header::HOST, "notes.mcp.example.com")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        header_str(&resp, "mcp-session-id").is_some(),
        "upstream answered"
    );
    let seen = upstream.last_request().expect("reached upstream");
    assert_eq!(seen.path, "/mcp");
    assert_eq!(seen.header("host"), Some(upstream.authority().as_str()));

    // Without that Host, the same path is not an app.
    assert_envelope(send(to_mcp()).await, 404, "not_found").await;
    assert_eq!(upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sees_its_own_host_and_forwarding_headers() {
    let (upstream, gw) = notes().await;
    let resp = send(gw.client().post(gw.app_url("notes", "/echo")).body("x")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.header("host"), Some(upstream.authority().as_str()));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let id = seen
        .header("x-request-id")
        .expect("upstream got X-Request-Id");
    let returned = header_str(&resp, "x-request-id");
    assert_eq!(returned.as_deref(), Some(id), "same id both ways");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_kept_when_sane_and_generated_otherwise() {
    let (upstream, gw) = notes().await;
    let echo = || gw.client().post(gw.app_url("notes", "/echo")).body("x");
    let resp = send(echo().header("x-request-id", "abc-123")).await;
    assert_eq!(
        header_str(&resp, "x-request-id").as_deref(),
        Some("abc-123")
    );
    let seen = upstream.last_request().unwrap();
    assert_eq!(seen.header("x-request-id"), Some("abc-123"));

    for sent in [None, Some("has spaces; and more")] {
        let req = match sent {
            Some(v) => echo().header("x-request-id", v),
            None => echo(),
        };
        let id = header_str(&send(req).await, "x-request-id").expect("an id");
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "generated {id:?} for {sent:?}"
        );
        let seen = upstream.last_request().unwrap();
        assert_eq!(seen.header("x-request-id"), Some(id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_is_a_404_envelope() {
    let (upstream, gw) = notes().await;
    let resp = send(gw.client().post(gw.app_url("nope", "/mcp")).body("{}")).await;
    assert_envelope(resp, 404, "not_found").await;
    assert_eq!(upstream.count(), 0, "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_a_502_envelope() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = TestGateway::new().app_with(AppSpec::new("down", &dead));
    let gw = gw.start().await;
    let resp = send(gw.client().post(gw.app_url("down", "/mcp")).body("{}")).await;
    assert_envelope(resp, 502, "bad_gateway").await;
    let series = r#"drio_upstream_errors_total{app="down",kind="connect"}"#;
    gw.metrics_until(|m| counter(m, series) >= 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_a_504_envelope_after_the_read_timeout() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(500);
    let gw = gw.start().await;
    let started = Instant::now();
    let resp = send(gw.client().get(gw.app_url("notes", "/slow?ms=3000"))).await;
    let took = started.elapsed();
    assert_envelope(resp, 504, "gateway_timeout").await;
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}; timeout 500 ms"
    );
    assert_eq!(upstream.last_request().unwrap().path, "/slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_origin_is_refused_before_the_upstream() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new().app("notes", &upstream);
    let gw = gw.allowed_origin("https://allowed.example").start().await;
    let post_from = |origin: &str| {
        let req = gw.client().post(gw.app_url("notes", "/echo"));
        send(req.header(header::ORIGIN, origin).body("x"))
    };

    let resp = post_from("https://evil.example").await;
    assert_envelope(resp, 403, "forbidden_origin").await;
    assert_eq!(
        upstream.count(),
        0,
        "a refused request never reaches upstream"
    );

    for origin in ["https://allowed.example".to_string(), gw.public_url()] {
        let resp = post_from(&origin).await;
        assert_eq!(resp.status(), StatusCode::OK, "Origin {origin}");
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_by_app_and_status_class_without_request_data() {
    const SECRET: &str = "tok_SECRET_9f8e7d";
    let (_upstream, gw) = notes().await;
    Mcp::connect(&gw, "notes").await;
    Mcp::connect(&gw, "notes").await;
    let req = gw.client().get(gw.app_url("notes", "/private-path-zz?q=1"));
    let req = req.bearer_auth(SECRET).header("x-api-key", SECRET);
    let resp = send(req).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "upstream 404 passes");

    let ok = r#"drio_requests_total{app="notes",method="POST",status_class="2xx"}"#;
    let missing = r#"drio_requests_total{app="notes",method="GET",status_class="4xx"}"#;
    let text = gw
        .metrics_until(|m| counter(m, ok) >= 2.0 && counter(m, missing) >= 1.0)
        .await;
    assert!(text.contains(r#"drio_request_duration_seconds_bucket{app="notes""#));
    assert!(text.contains("drio_build_info"), "{text}");
    for leak in [SECRET, "private-path-zz", "/apps/notes"] {
        assert!(!text.contains(leak), "metrics contain {leak:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reports_health_and_readiness_across_a_restart() {
    let (upstream, mut gw) = notes().await;
    for path in ["/healthz", "/readyz"] {
        let resp = send(gw.client().get(format!("{}{path}", gw.admin_url()))).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    let (url, admin) = (gw.url(), gw.admin_url());
    gw.restart().await;
    assert_eq!((gw.url(), gw.admin_url()), (url, admin), "same ports");
    let resp = send(gw.client().post(gw.app_url("notes", "/echo")).body("x")).await;
    assert_eq!(resp.status(), StatusCode::OK, "serving after restart");
    assert_eq!(upstream.count(), 1);
    // Ready again on the reopened store (polled: readiness may trail health).
    readyz_becomes(&gw, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_redis_store() {
    let mut redis = RedisServer::start();
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new().app("notes", &upstream).redis(&redis);
    let gw = gw.start().await;
    readyz_becomes(&gw, StatusCode::OK).await;
    redis.stop();
    readyz_becomes(&gw, StatusCode::SERVICE_UNAVAILABLE).await;
    redis.start_again();
    readyz_becomes(&gw, StatusCode::OK).await;
}

/// Polls the admin `/readyz` until it answers `status` (5 s at most).
async fn readyz_becomes(gw: &TestGateway, status: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = send(gw.client().get(format!("{}/readyz", gw.admin_url()))).await;
        if got.status() == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stuck at {}",
            got.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the sample whose name and labels are exactly `series` (0 if absent).
fn counter(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find_map(|rest| rest.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}
