//! Long-lived SSE streams through the gateway (issue 15): an upstream that
//! stays silent longer than `read_timeout_ms` on a `GET` stream does not get
//! the stream cut, heartbeats fill the silence when configured and never land
//! inside an event, and the optional stream idle timeout still applies.

use std::time::{Duration, Instant};

use reqwest::{header, Response, StatusCode};

use crate::support::gateway::{send, SseReader, TestGateway};
use crate::support::upstream::TestUpstream;

const HEARTBEAT: &str = ": keep-alive\n\n";

/// Opens `GET /apps/notes{path}` as an event stream.
async fn open(gw: &TestGateway, path: &str) -> Response {
    let req = gw
        .client()
        .get(gw.app_url("notes", path))
        .header(header::ACCEPT, "text/event-stream");
    send(req).await
}

/// Reads the body until `done` holds for the text so far, the body ends or
/// fails, or `within` passes. Returns the text and whether the body ended.
async fn read_until(
    resp: &mut Response,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> (String, bool) {
    let deadline = Instant::now() + within;
    let mut text = String::new();
    while !done(&text) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, resp.chunk()).await {
            Err(_) => return (text, false),
            Ok(Ok(Some(chunk))) => text.push_str(std::str::from_utf8(&chunk).expect("UTF-8")),
            Ok(Ok(None) | Err(_)) => return (text, true),
        }
    }
    (text, false)
}

/// Every block of an SSE text is a heartbeat or a whole event with JSON data.
fn assert_whole_blocks(text: &str) {
    for block in text.split_terminator("\n\n") {
        if block == ": keep-alive" {
            continue;
        }
        let data = block
            .strip_prefix("event: message\ndata: ")
            .unwrap_or_else(|| {
                panic!("a block that is neither an event nor a heartbeat: {block:?} in {text:?}")
            });
        serde_json::from_str::<serde_json::Value>(data)
            .unwrap_or_else(|e| panic!("event data {data:?} is not JSON ({e}) in {text:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_get_stream_outlives_the_read_timeout() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(300)
        .start()
        .await;
    let resp = open(&gw, "/quiet?gap_ms=1200").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut events = SseReader::new(resp);
    for seq in 1..=2 {
        let (event, _) = events
            .next()
            .await
            .expect("the stream stays open through the silence");
        assert_eq!(event["params"]["data"]["seq"], seq, "{event}");
    }
    drop(events);
    // The stream is accounted for and released once the client leaves.
    gw.metrics_until(|t| t.contains("drio_open_streams 0"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_fill_the_silence_between_events() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .server_toml("stream_heartbeat_seconds = 1")
        .app("notes", &upstream)
        .read_timeout_ms(300)
        .start()
        .await;
    let mut resp = open(&gw, "/quiet?gap_ms=2500").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (text, ended) = read_until(&mut resp, Duration::from_secs(10), |t| {
        t.contains(r#""seq":2"#) && t.ends_with("\n\n")
    })
    .await;
    assert!(!ended, "the stream stays open: {text:?}");
    let beats = text.matches(HEARTBEAT).count();
    assert!(
        (1..=3).contains(&beats),
        "heartbeats during 2.5 s of silence at 1/s: {text:?}"
    );
    assert_whole_blocks(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_never_land_inside_an_event() {
    let upstream = TestUpstream::start().await;
    // Each event's halves arrive 1.2 s apart: a heartbeat due mid-event
    // (after 1 s of silence) must wait for the event's end.
    let gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(300)
        .app_toml("stream_heartbeat_seconds = 1")
        .start()
        .await;
    let mut resp = open(&gw, "/quiet?gap_ms=2400&split=1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (text, ended) = read_until(&mut resp, Duration::from_secs(10), |t| {
        t.contains(r#""seq":2"#) && t.ends_with("\n\n")
    })
    .await;
    assert!(!ended, "the stream stays open: {text:?}");
    assert!(
        text.contains(HEARTBEAT),
        "heartbeats between events: {text:?}"
    );
    assert_whole_blocks(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_cuts_a_silent_stream() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(10_000)
        .app_toml("stream_idle_timeout_seconds = 1")
        .start()
        .await;
    let mut resp = open(&gw, "/quiet?gap_ms=4000").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let started = Instant::now();
    let (text, ended) = read_until(&mut resp, Duration::from_secs(3), |t| {
        t.contains(r#""seq":2"#)
    })
    .await;
    assert!(ended, "the silent stream is cut after 1 s: {text:?}");
    assert!(
        text.contains(r#""seq":1"#) && !text.contains(r#""seq":2"#),
        "{text:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut too early: {:?}",
        started.elapsed()
    );
    let m = gw
        .metrics_until(|t| t.contains("drio_open_streams 0"))
        .await;
    assert!(
        m.contains(r#"drio_upstream_errors_total{app="notes",kind="timeout"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_request_answered_slowly_without_sse_still_times_out() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(300)
        .start()
        .await;
    let resp = open(&gw, "/slow?ms=2000").await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    // A non-SSE answer to a stream request is passed on like any other.
    let resp = open(&gw, "/big?bytes=100").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), 100);
    let resp = open(&gw, "/nope").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.text().await.unwrap(), "not found");
}
