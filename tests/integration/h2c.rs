//! HTTP/2 cleartext downstream (`[server] h2c = true`, prior knowledge per
//! RFC 9113 §3.3): MCP clients speaking h2 get the same gateway as over
//! HTTP/1.1 (tool calls, bearer refusals with their challenge, CORS, the
//! request id, discovery on an app's own host) and many SSE streams share one
//! connection. With the default (`h2c` off) the h2 preface is not served.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::gateway::TestGateway;
use crate::support::idp::TestIdp;
use crate::support::upstream::TestUpstream;

const STEP: Duration = Duration::from_secs(10);
const APP_HOST: &str = "notes.mcp.example.com";
const ORIGIN: &str = "https://inspector.example";
/// The HTTP/2 connection preface a prior-knowledge client starts with.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 connection to the gateway (prior knowledge: no upgrade dance).
async fn connect(gw: &TestGateway) -> hyper::Result<SendRequest<Full<Bytes>>> {
    let authority = gw.url().trim_start_matches("http://").to_string();
    let tcp = TcpStream::connect(&authority).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A request on `h2` with the gateway's authority; `path` starts with `/`.
async fn send(
    h2: &mut SendRequest<Full<Bytes>>,
    req: http::request::Builder,
    body: &str,
) -> Response<Incoming> {
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    tokio::time::timeout(STEP, h2.send_request(req))
        .await
        .expect("answered within a step")
        .expect("h2 request")
}

fn get(gw: &TestGateway, authority: Option<&str>, path: &str) -> http::request::Builder {
    let base = match authority {
        Some(a) => format!("http://{a}"),
        None => gw.url(),
    };
    Request::builder()
        .method(Method::GET)
        .uri(format!("{base}{path}"))
}

/// An MCP `initialize` body.
const INIT: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;

/// An MCP `initialize` to the public app `notes`.
async fn initialize(gw: &TestGateway, h2: &mut SendRequest<Full<Bytes>>) -> Response<Incoming> {
    send(h2, post_json(gw, "/apps/notes/mcp"), INIT).await
}

fn post_json(gw: &TestGateway, path: &str) -> http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(format!("{}{path}", gw.url()))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
}

async fn body_json(resp: Response<Incoming>) -> Value {
    let body = tokio::time::timeout(STEP, resp.into_body().collect())
        .await
        .expect("body within a step")
        .expect("body");
    serde_json::from_slice(&body.to_bytes()).expect("JSON body")
}

fn header<'a>(resp: &'a Response<Incoming>, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The next `seq` of a notification stream (`data: {…"seq": n…}`).
async fn next_seq(body: &mut Incoming, buf: &mut String) -> u64 {
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).expect("event data is JSON");
                return v["params"]["data"]["seq"].as_u64().expect("seq");
            }
        }
        let frame = tokio::time::timeout(STEP, body.frame())
            .await
            .expect("an event within a step")
            .expect("the stream stays open")
            .expect("read the stream");
        if let Ok(data) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
    }
}

async fn h2c_gateway(idp: &TestIdp, up: &TestUpstream) -> TestGateway {
    TestGateway::new()
        .server_toml("h2c = true")
        .raw_toml(&format!(
            "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n",
            iss = idp.issuer()
        ))
        .app("notes", up)
        .host(APP_HOST)
        .allowed_origin(ORIGIN)
        .app("vault", up)
        .protected()
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_serves_calls_refusals_cors_and_discovery() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = h2c_gateway(&idp, &up).await;
    let mut h2 = connect(&gw).await.expect("h2c handshake");

    // (a) A tool call through a public app: initialize, then tools/call.
    let resp = initialize(&gw, &mut h2).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let session = header(&resp, "mcp-session-id").to_string();
    assert!(!session.is_empty(), "Mcp-Session-Id over h2");
    body_json(resp).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "over h2"}}});
    let req = post_json(&gw, "/apps/notes/mcp")
        .header("mcp-session-id", &session)
        .header("x-request-id", "req-h2-call-1");
    let resp = send(&mut h2, req, &call.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "x-request-id"), "req-h2-call-1");
    let answer = body_json(resp).await;
    assert_eq!(answer["id"], 2, "{answer}");
    // The upstream got an HTTP/1.1 request with its own Host and the id.
    let seen = up.last_request().expect("the upstream got the call");
    assert_eq!(seen.header("host"), Some(up.authority().as_str()));
    assert_eq!(seen.header("x-request-id"), Some("req-h2-call-1"));
    assert_eq!(seen.json()["params"]["name"], "echo");

    // (b) A protected app without a token: 401 with the RFC 9728 challenge.
    let resp = send(&mut h2, post_json(&gw, "/apps/vault/mcp"), INIT).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&resp, "www-authenticate").to_string();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"")
            && challenge.contains("/.well-known/oauth-protected-resource/apps/vault/mcp"),
        "{challenge}"
    );
    let request_id = header(&resp, "x-request-id").to_string();
    let body = body_json(resp).await;
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert_eq!(body["error"]["requestId"], request_id.as_str(), "{body}");
    // With a token it passes, and the token does not reach the upstream.
    let token = idp.mint_access_token("user_ada", &gw.app_url("vault", "/mcp"), "", 600);
    let req = post_json(&gw, "/apps/vault/mcp").header("authorization", format!("Bearer {token}"));
    let resp = send(&mut h2, req, INIT).await;
    assert_eq!(resp.status(), StatusCode::OK);
    body_json(resp).await;
    let seen = up.last_request().expect("the upstream got the call");
    assert_eq!(seen.header("authorization"), None, "no token passthrough");

    // CORS: an allowed origin's preflight is answered by the gateway.
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(gw.app_url("notes", "/mcp"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST");
    let resp = send(&mut h2, preflight, "").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(header(&resp, "access-control-allow-origin"), ORIGIN);

    // Discovery on the app's own host: over h2 the host is `:authority`
    // (there is no Host header), and it must still pick the app.
    let port = gw.url().rsplit(':').next().unwrap_or_default().to_string();
    let req = get(
        &gw,
        Some(&format!("{APP_HOST}:{port}")),
        "/.well-known/oauth-protected-resource",
    );
    let resp = send(&mut h2, req, "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let prm = body_json(resp).await;
    assert_eq!(
        prm["resource_name"], "notes",
        "the app's, not the gateway's: {prm}"
    );
    assert_eq!(
        prm["resource"],
        gw.app_url("notes", "/mcp").as_str(),
        "{prm}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_multiplexes_sse_streams_on_one_connection() {
    const STREAMS: usize = 5;
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = h2c_gateway(&idp, &up).await;
    let mut h2 = connect(&gw).await.expect("h2c handshake");
    let resp = initialize(&gw, &mut h2).await;
    let session = header(&resp, "mcp-session-id").to_string();
    body_json(resp).await;

    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let req = get(&gw, None, "/apps/notes/mcp")
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("x-request-id", format!("req-h2-stream-{i}"));
        let resp = send(&mut h2, req, "").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            header(&resp, "content-type").starts_with("text/event-stream"),
            "{:?}",
            resp.headers()
        );
        assert_eq!(header(&resp, "x-request-id"), format!("req-h2-stream-{i}"));
        streams.push((resp.into_body(), String::new()));
    }
    gw.metrics_until(|t| t.contains(&format!("drio_open_streams {STREAMS}")))
        .await;
    // Every stream gets its own events, in order, interleaved on one connection.
    let mut last = [0u64; STREAMS];
    for _ in 0..3 {
        for ((body, buf), last) in streams.iter_mut().zip(last.iter_mut()) {
            let seq = next_seq(body, buf).await;
            assert!(*last == 0 || seq == *last + 1, "{seq} after {last}");
            *last = seq;
        }
    }
    // Closing the streams (RST_STREAM as the bodies drop) releases them,
    // while the connection itself still serves requests.
    drop(streams);
    gw.metrics_until(|t| t.contains("drio_open_streams 0"))
        .await;
    let resp = send(&mut h2, get(&gw, None, "/healthz"), "").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !gw.log_tail(200).contains("\"level\":\"ERROR\""),
        "a client closing its h2 streams is not a gateway error:\n{}",
        gw.log_tail(50)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h2c_the_preface_is_not_served_as_http2() {
    let up = TestUpstream::start().await;
    let gw = TestGateway::new().app("notes", &up).start().await;
    // A prior-knowledge client cannot get a response.
    let answered = match connect(&gw).await {
        Err(_) => false,
        Ok(mut h2) => {
            let req = get(&gw, None, "/healthz")
                .body(Full::new(Bytes::new()))
                .expect("request");
            matches!(
                tokio::time::timeout(STEP, h2.send_request(req)).await,
                Ok(Ok(_))
            )
        }
    };
    assert!(!answered, "h2c is off by default");
    // On the wire: the preface is read as a malformed HTTP/1 request.
    let authority = gw.url().trim_start_matches("http://").to_string();
    let mut sock = TcpStream::connect(&authority).await.expect("connect");
    sock.write_all(PREFACE).await.expect("write the preface");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(STEP, sock.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 400"),
        "not an h2 answer: {text:?}"
    );
}
