//! Rate-limit refusals on the wire (issue 17): [`crate::limits`] decides,
//! this edge writes. `429 rate_limited` in drio's envelope with
//! `Retry-After` (RFC 9110 §10.2.3, delay-seconds); for one MCP `tools/call`
//! a JSON-RPC 2.0 error (code [`limits::RATE_LIMITED`], HTTP 200, like a
//! disabled tool) so the client's tool call fails with a message it can
//! show (SDK transports turn a non-2xx answer into a transport failure);
//! `503 rate_limit_unavailable` when the limits cannot be checked.

use pingora::proxy::Session;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::limits::{self, Limiter, Refusal};
use crate::web::LocalResponse;

/// The response for `refusal`; `body` is the request's JSON-RPC body when
/// the gateway read it.
pub(super) fn response(
    refusal: &Refusal<'_>,
    body: Option<&Value>,
    request_id: &str,
) -> LocalResponse {
    let retry_after = http::HeaderValue::from(refusal.retry_after());
    let message = refusal.to_string();
    let Refusal::Limited { limit, tool, .. } = refusal else {
        let err = ApiError::new(503, "rate_limit_unavailable", message);
        return LocalResponse::api_error(&err, request_id)
            .with_header(http::header::RETRY_AFTER, retry_after);
    };
    let mut details = json!({ "limit": limit, "retryAfterSeconds": refusal.retry_after() });
    if let Some(tool) = tool {
        details["tool"] = json!(tool);
    }
    let single_call = body
        .filter(|b| b.get("method").and_then(Value::as_str) == Some("tools/call"))
        .filter(|b| b.get("id").is_some());
    match single_call {
        Some(b) => {
            let error =
                json!({ "code": limits::RATE_LIMITED, "message": message, "data": details });
            let body = json!({ "jsonrpc": "2.0", "id": b["id"], "error": error });
            LocalResponse::new(200, "application/json", body.to_string())
        }
        None => LocalResponse::api_error(
            &ApiError::new(429, "rate_limited", message).with_details(details),
            request_id,
        ),
    }
    .with_header(http::header::RETRY_AFTER, retry_after)
}

/// The user key of a caller without a token: its address bucket (IPv4
/// address, IPv6 /64), as every per-address limit of the gateway counts.
pub(super) fn caller_bucket(session: &Session, limiter: &Limiter) -> String {
    let head = session.req_header();
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| {
            let trusted = &limiter.trusted_proxies;
            let ip = crate::web::client_addr::client_ip(a.ip(), &head.headers, trusted);
            crate::web::client_addr::limit_bucket(ip)
        })
        .unwrap_or_else(|| "unknown".into())
}
