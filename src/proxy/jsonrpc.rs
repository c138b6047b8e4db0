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

use crate::catalog::route::Route;
use crate::web::LocalResponse;

/// Pingora replays at most this much of a body read before proxying.
pub(crate) const MAX_INSPECTED_BODY: usize = 64 * 1024;

/// JSON-RPC "invalid params": what MCP servers answer for an unknown tool.
const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC "parse error" and "invalid request".
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
/// MCP 2026-07-28: routing headers that disagree with the body.
const HEADER_MISMATCH: i64 = -32020;
/// Implementation-defined server error: the user must connect an account.
pub(crate) const AUTH_REQUIRED: i64 = -32001;

pub(crate) enum Inspected {
    /// Nothing to inspect (not a POST, or nothing configured needs it).
    Skipped,
    Body(Option<Value>),
}

/// Reads the body when `needed`, keeping it for the upstream.
///
/// With `strict` (a tool policy applies) a body the gateway cannot read with
/// certainty is refused, never forwarded: an encoded body, or one serde_json
/// rejects that a lenient server might still accept (a lone surrogate,
/// `1e400`, deep nesting, a byte-order mark). Failing open there would let
/// a disabled tool through.
pub(crate) async fn inspect(
    session: &mut Session,
    needed: bool,
    strict: bool,
) -> pingora::Result<Result<Inspected, LocalResponse>> {
    if !needed || session.req_header().method != http::Method::POST {
        return Ok(Ok(Inspected::Skipped));
    }
    if strict && is_encoded(session.req_header()) {
        return Ok(Err(error_response(
            &Value::Null,
            INVALID_REQUEST,
            "Encoded request bodies are not accepted by this app's tool policy",
            None,
            415,
        )));
    }
    session.enable_retry_buffering();
    let Some(body) = crate::proxy::respond::read_body(session, MAX_INSPECTED_BODY).await? else {
        return Ok(Err(error_response(
            &Value::Null,
            INVALID_REQUEST,
            "Request too large for this app's tool policy (64 KiB)",
            None,
            413,
        )));
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => Ok(headers_match(session.req_header(), &v).map(|()| Inspected::Body(Some(v)))),
        Err(_) if strict => Ok(Err(error_response(
            &Value::Null,
            PARSE_ERROR,
            "The request body is not JSON this gateway can check against the app's tool policy",
            None,
            400,
        ))),
        Err(_) => Ok(Ok(Inspected::Body(None))),
    }
}

/// A `Content-Encoding` other than identity (gzip, deflate, br…).
fn is_encoded(head: &pingora::http::RequestHeader) -> bool {
    head.headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// MCP transport 2026-07-28: `Mcp-Method` and `Mcp-Name`, when sent, must
/// say what the body says (a router that trusts the headers must not be
/// shown one call and forward another).
/// `pub` for the fuzz targets (fuzz/fuzz_targets/jsonrpc.rs).
pub fn headers_match(
    head: &pingora::http::RequestHeader,
    body: &Value,
) -> Result<(), LocalResponse> {
    let header = |n: &str| {
        head.headers
            .get(n)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
    };
    let (method_h, name_h) = (header("mcp-method"), header("mcp-name"));
    if method_h.is_none() && name_h.is_none() {
        return Ok(());
    }
    let method = body.get("method").and_then(Value::as_str);
    let name = body
        .pointer("/params/name")
        .or_else(|| body.pointer("/params/uri"))
        .and_then(Value::as_str);
    let mismatch = |what: &str| {
        Err(error_response(
            body.get("id").unwrap_or(&Value::Null),
            HEADER_MISMATCH,
            &format!("The {what} header does not match the request body"),
            None,
            400,
        ))
    };
    if method_h.is_some_and(|h| Some(h) != method) {
        return mismatch("Mcp-Method");
    }
    if name_h.is_some_and(|h| Some(h) != name) {
        return mismatch("Mcp-Name");
    }
    Ok(())
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

pub(crate) fn error_response(
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
