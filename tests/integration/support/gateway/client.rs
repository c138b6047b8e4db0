//! Client-side helpers for talking to a `TestGateway`: an MCP client that
//! speaks Streamable HTTP through the gateway, an SSE reader that timestamps
//! each event as it arrives, and the assertion for drio's error envelope.
//! Every wait is bounded, so a stuck gateway fails the test instead of
//! hanging it.

use std::time::{Duration, Instant};

use reqwest::{header, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use super::TestGateway;

/// Longest any single step may take before the test fails instead of hanging.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Sends a request, failing the test if it errors or takes longer than a step.
/// A response of a route the OpenAPI document covers is read whole, checked
/// against it (`support::openapi`) and handed back rebuilt; any other
/// response (app traffic, streams) is returned untouched.
pub async fn send(req: RequestBuilder) -> Response {
    let (client, req) = req.build_split();
    let req = req.expect("a well-formed request");
    let method = req.method().clone();
    let resp = tokio::time::timeout(STEP, client.execute(req)).await;
    let resp = resp
        .expect("response within the step timeout")
        .expect("request failed");
    let contract = super::super::openapi::contract();
    if contract.template_for(resp.url().path()).is_none() {
        return resp;
    }
    let url = resp.url().to_string();
    let status = resp.status();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(STEP, resp.bytes())
        .await
        .expect("body within the step timeout")
        .expect("read body");
    super::super::openapi::check(method.as_str(), &url, status.as_u16(), &body);
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Response::from(rebuilt)
}

/// A response header as text, if present and valid UTF-8.
pub fn header_str(resp: &Response, name: &str) -> Option<String> {
    let value = resp.headers().get(name)?.to_str().ok()?;
    Some(value.to_string())
}

/// An MCP client for one app, talking through the gateway like a real one:
/// Streamable HTTP, both content types accepted, session id once it has one.
pub struct Mcp<'a> {
    gw: &'a TestGateway,
    url: String,
    session: Option<String>,
}

impl<'a> Mcp<'a> {
    /// Initializes a session with app `slug` through the gateway.
    pub async fn connect(gw: &'a TestGateway, slug: &str) -> Mcp<'a> {
        let mut mcp = Mcp {
            gw,
            url: gw.app_url(slug, "/mcp"),
            session: None,
        };
        let resp = mcp.call(1, "initialize", json!({"protocolVersion": "2025-06-18"}));
        let resp = resp.await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "initialize through the gateway"
        );
        mcp.session = Some(header_str(&resp, "mcp-session-id").expect("Mcp-Session-Id"));
        mcp
    }

    pub fn session(&self) -> &str {
        self.session.as_deref().unwrap_or_default()
    }

    pub fn request(&self, method: Method) -> RequestBuilder {
        let req = self.gw.client().request(method, &self.url);
        let req = req.header(header::ACCEPT, "application/json, text/event-stream");
        match &self.session {
            Some(id) => req.header("mcp-session-id", id),
            None => req,
        }
    }

    pub async fn call(&self, id: u64, method: &str, params: Value) -> Response {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        send(self.request(Method::POST).json(&msg)).await
    }
}

/// Asserts `resp` is a drio error envelope with this status and code whose
/// `requestId` matches the `X-Request-Id` header.
pub async fn assert_envelope(resp: Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status, "status of {code} error");
    let request_id = header_str(&resp, "x-request-id").expect("error carries X-Request-Id");
    let body: Value = resp.json().await.expect("error body is JSON");
    let err = &body["error"];
    assert_eq!(err["code"], code, "{body}");
    assert!(err["message"].is_string(), "message: {body}");
    assert!(err.get("details").is_some(), "details key present: {body}");
    assert_eq!(err["requestId"], request_id.as_str(), "{body}");
}

/// Reads SSE events off a streaming response as they arrive.
pub struct SseReader {
    resp: Response,
    buf: String,
}

impl SseReader {
    pub fn new(resp: Response) -> Self {
        let buf = String::new();
        SseReader { resp, buf }
    }

    /// The next event's `data` parsed as JSON, and the instant it was
    /// complete; `None` at the end of the stream. Comments are skipped.
    pub async fn next(&mut self) -> Option<(Value, Instant)> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let mut data = event.lines().filter_map(|l| l.strip_prefix("data:"));
                if let Some(data) = data.next() {
                    let v = serde_json::from_str(data.trim()).expect("event data is JSON");
                    return Some((v, Instant::now()));
                }
            }
            let chunk = tokio::time::timeout(STEP, self.resp.chunk()).await;
            let chunk = chunk.expect("an SSE chunk within the step timeout");
            let chunk = chunk.expect("read SSE body")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}
