//! `TestUpstream`: a real HTTP/1.1 server on `127.0.0.1:0` that behaves like a
//! Streamable-HTTP MCP server and records every request it receives, so tests
//! can assert on what the gateway actually forwarded.
//!
//! Routes:
//! - `POST /mcp`: JSON-RPC. `initialize` issues an `Mcp-Session-Id`; every
//!   other method needs an issued id (else 404). `tools/call` of the `stream`
//!   tool with `Accept: text/event-stream` answers with SSE events spaced by
//!   `delay_ms`, each flushed on its own; `tools/list` lists `echo` and
//!   `stream`; other methods echo as JSON.
//! - `GET /mcp`: a long-lived SSE stream, one event every 200 ms.
//! - `DELETE /mcp`: forgets the session.
//! - `GET /quiet?gap_ms=N[&split=1]`: an SSE stream whose events (`seq` 1, 2,
//!   …) are `gap_ms` apart; with `split`, each event's second half is sent
//!   `gap_ms / 2` after its first (an upstream slow mid-event).
//! - `GET /big?bytes=N`, `POST /echo`, `GET /slow?ms=N`; anything else is 404.
//!
//! The server stops when the handle is dropped.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod sse;

use sse::{progress_events, quiet, sse, ticker};

type Body = BoxBody<Bytes, Infallible>;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RecordedRequest {
    /// A header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    sessions: Mutex<HashSet<String>>,
}

/// A running fake MCP server.
pub struct TestUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test upstream");
        let addr = listener.local_addr().expect("test upstream address");
        let shared = Arc::new(Shared::default());
        let server = {
            let shared = shared.clone();
            super::http_server::spawn(listener, move |request| {
                let shared = shared.clone();
                async move { handle(&shared, request).await }
            })
        };
        TestUpstream {
            addr,
            shared,
            server,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`: what an app's `upstream` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`: the `Host` the upstream expects.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.requests).last().cloned()
    }

    pub fn count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Whether a session id is currently live (issued and not deleted).
    pub fn has_session(&self, id: &str) -> bool {
        lock(&self.shared.sessions).contains(id)
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    // A body that fails mid-way is recorded as what arrived: empty.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let req = RecordedRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    lock(&shared.requests).push(req.clone());

    let session = req.header("mcp-session-id").map(str::to_string);
    let live = session
        .as_deref()
        .is_some_and(|id| lock(&shared.sessions).contains(id));
    match (&req.method, req.path.as_str()) {
        (&Method::POST, "/mcp") => mcp_post(shared, &req, live),
        (&Method::GET, "/mcp") if live => sse(ticker()),
        (&Method::DELETE, "/mcp") if live => {
            lock(&shared.sessions).remove(session.as_deref().unwrap_or_default());
            reply(StatusCode::OK, "application/json", "{}")
        }
        (&Method::GET | &Method::DELETE, "/mcp") => no_session(Value::Null),
        (&Method::GET, "/quiet") => {
            let gap = Duration::from_millis(query_number(&req, "gap_ms").unwrap_or(1000));
            sse(quiet(gap, query_number(&req, "split") == Some(1)))
        }
        (&Method::GET, "/big") => {
            let n = query_number(&req, "bytes").unwrap_or(1024) as usize;
            reply(StatusCode::OK, "application/json", big_payload(n))
        }
        (&Method::POST, "/echo") => {
            let ct = req
                .header("content-type")
                .unwrap_or("application/octet-stream");
            reply(StatusCode::OK, ct, req.body.clone())
        }
        (&Method::GET, "/slow") => {
            let ms = query_number(&req, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(StatusCode::OK, "text/plain", "slow")
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

/// `POST /mcp`: one JSON-RPC message.
fn mcp_post(shared: &Shared, req: &RecordedRequest, live_session: bool) -> Response<Body> {
    let Ok(msg) = serde_json::from_slice::<Value>(&req.body) else {
        let err = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}});
        return reply(StatusCode::BAD_REQUEST, "application/json", err.to_string());
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    if method == "initialize" {
        let session = uuid::Uuid::new_v4().to_string();
        lock(&shared.sessions).insert(session.clone());
        let result = json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "test-upstream", "version": "0.0.0"},
        }});
        let mut resp = reply(StatusCode::OK, "application/json", result.to_string());
        resp.headers_mut().insert(
            "mcp-session-id",
            session.parse().expect("uuid is a header value"),
        );
        return resp;
    }
    if !live_session {
        return no_session(id);
    }
    if msg.get("id").is_none() {
        // A notification: accepted, nothing to answer (Streamable HTTP).
        return reply(StatusCode::ACCEPTED, "text/plain", "");
    }
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let wants_sse = req
        .header("accept")
        .is_some_and(|a| a.contains("text/event-stream"));
    if method == "tools/call" && params["name"] == "stream" && wants_sse {
        let count = params["arguments"]["count"].as_u64().unwrap_or(3);
        let delay = Duration::from_millis(params["arguments"]["delay_ms"].as_u64().unwrap_or(300));
        return sse(progress_events(id, count, delay));
    }
    if method == "tools/list" {
        let tools = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
            {"name": "echo", "description": "Echoes its arguments", "inputSchema": {"type": "object"}},
            {"name": "stream", "description": "Streams progress events", "inputSchema": {"type": "object"}},
        ]}});
        return reply(StatusCode::OK, "application/json", tools.to_string());
    }
    let echo = json!({"jsonrpc": "2.0", "id": id, "result": {"method": method, "params": params}});
    reply(StatusCode::OK, "application/json", echo.to_string())
}

fn no_session(id: Value) -> Response<Body> {
    let err = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32001, "message": "Session not found"}});
    reply(StatusCode::NOT_FOUND, "application/json", err.to_string())
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("valid response parts")
}

fn query_number(req: &RecordedRequest, name: &str) -> Option<u64> {
    req.query
        .as_deref()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// Exactly `n` bytes shaped like `{"data":"xxxx…"}` (just `x`s when too short).
fn big_payload(n: usize) -> Vec<u8> {
    const FRAME: usize = r#"{"data":""}"#.len();
    if n < FRAME {
        return vec![b'x'; n];
    }
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(br#"{"data":""#);
    out.resize(n - 2, b'x');
    out.extend_from_slice(br#""}"#);
    out
}
