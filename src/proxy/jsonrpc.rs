//! Looking inside an MCP request (JSON-RPC 2.0 over Streamable HTTP) when an
//! app needs it: refusing `tools/call` of a disabled tool before the
//! upstream sees it, and answering in JSON-RPC when the gateway itself must
//! refuse (a user who has not connected their upstream account).
//!
//! Only POST bodies up to Pingora's 64 KiB retry buffer are inspected, so the
//! body read here is replayed to the upstream unchanged.

use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::{json, Value};

use crate::proxy::local::LocalResponse;
use crate::proxy::route::Route;

/// Pingora replays at most this much of a body read before proxying.
pub const MAX_INSPECTED_BODY: usize = 64 * 1024;

/// JSON-RPC "invalid params": what MCP servers answer for an unknown tool.
const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server error: the user must connect an account.
pub const AUTH_REQUIRED: i64 = -32001;

pub enum Inspected {
    /// Nothing to inspect (not a POST, or nothing configured needs it).
    Skipped,
    Body(Option<Value>),
}

/// Reads the body when `needed`, keeping it for the upstream.
pub async fn inspect(
    session: &mut Session,
    needed: bool,
) -> pingora::Result<Result<Inspected, LocalResponse>> {
    if !needed || session.req_header().method != http::Method::POST {
        return Ok(Ok(Inspected::Skipped));
    }
    session.enable_retry_buffering();
    match crate::proxy::respond::read_body(session, MAX_INSPECTED_BODY).await? {
        Some(body) => Ok(Ok(Inspected::Body(serde_json::from_slice(&body).ok()))),
        None => Ok(Err(error_response(
            &Value::Null,
            -32600,
            "Request too large for this app's tool policy (64 KiB)",
            None,
            413,
        ))),
    }
}

/// A refusal when the body calls a disabled tool.
pub fn check_tools(route: &Route, body: &Value) -> Option<LocalResponse> {
    if route.disabled_tools.is_empty() {
        return None;
    }
    let messages: Vec<&Value> = match body {
        Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    };
    messages.into_iter().find_map(|m| {
        let name =
            (m.get("method")? == "tools/call").then(|| m.pointer("/params/name")?.as_str())??;
        route.disabled_tools.contains(name).then(|| {
            error_response(
                m.get("id").unwrap_or(&Value::Null),
                INVALID_PARAMS,
                &format!("Tool {name} is disabled on this gateway"),
                Some(json!({ "tool": name, "reason": "disabled" })),
                200,
            )
        })
    })
}

/// The JSON-RPC id of a request body, for answering it.
pub fn request_id(body: Option<&Value>) -> Value {
    body.and_then(|b| b.get("id"))
        .cloned()
        .unwrap_or(Value::Null)
}

pub fn error_response(
    id: &Value,
    code: i64,
    message: &str,
    data: Option<Value>,
    status: u16,
) -> LocalResponse {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = data {
        error["data"] = d;
    }
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": error });
    LocalResponse::new(status, "application/json", Bytes::from(body.to_string()))
}
