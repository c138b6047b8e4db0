//! One audit event per JSON-RPC message (MCP "Base Protocol": requests and
//! notifications, alone or in a JSON-RPC 2.0 batch, §6), built from what the
//! proxy already learnt about the request.

use serde::Serialize;
use serde_json::Value;

use super::config::AppAudit;

/// Replaces a redacted value: the key stays, so readers see it was sent.
const REDACTED: &str = "[redacted]";

/// What the request body said, per message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Message {
    pub(crate) method: Option<String>,
    /// `tools/call` and `prompts/get`: `params.name`; `resources/read`: `params.uri`.
    pub(crate) name: Option<String>,
    pub(crate) id: Option<Value>,
    /// Only when the app opted in, already redacted.
    pub(crate) arguments: Option<Value>,
}

/// The messages of a parsed body (one, or each element of a batch).
pub(crate) fn messages(body: &Value, opts: &AppAudit) -> Vec<Message> {
    match body {
        Value::Array(batch) => batch.iter().map(|m| message(m, opts)).collect(),
        one => vec![message(one, opts)],
    }
}

fn message(m: &Value, opts: &AppAudit) -> Message {
    let method = m.get("method").and_then(Value::as_str);
    let name = match method {
        Some("tools/call" | "prompts/get") => m.pointer("/params/name"),
        Some("resources/read") => m.pointer("/params/uri"),
        _ => None,
    }
    .and_then(Value::as_str);
    let arguments = opts
        .include_arguments
        .then(|| match method {
            Some("tools/call" | "prompts/get") => m.pointer("/params/arguments"),
            _ => m.get("params"),
        })
        .flatten()
        .map(|a| redact(a.clone(), &opts.redact));
    Message {
        method: method.map(str::to_owned),
        name: name.map(str::to_owned),
        id: m.get("id").cloned(),
        arguments,
    }
}

/// Replaces the value at each pointer (RFC 6901) that exists.
pub(crate) fn redact(mut v: Value, pointers: &[String]) -> Value {
    for p in pointers {
        if let Some(slot) = v.pointer_mut(p) {
            *slot = Value::String(REDACTED.into());
        }
    }
    v
}

/// The trace-id of a W3C Trace Context `traceparent` (version-format
/// `00-{32 hex}-{16 hex}-{2 hex}`), if well formed and not all zeros.
pub(crate) fn trace_id(traceparent: Option<&[u8]>) -> Option<String> {
    let t = std::str::from_utf8(traceparent?).ok()?.trim();
    let mut parts = t.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && hex(flags, 2);
    ok.then(|| trace.to_owned())
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// RFC 3339, UTC, milliseconds.
    pub(crate) time: String,
    pub(crate) request_id: String,
    pub(crate) trace_id: Option<String>,
    pub(crate) app_id: String,
    pub(crate) app: String,
    pub(crate) user: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) http_method: String,
    pub(crate) jsonrpc_method: Option<String>,
    pub(crate) jsonrpc_id: Option<Value>,
    pub(crate) name: Option<String>,
    /// Index in a JSON-RPC batch, and its size; absent for a single message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch_size: Option<usize>,
    pub(crate) status: u16,
    pub(crate) status_class: &'static str,
    /// The JSON-RPC error code when the gateway itself refused the call.
    pub(crate) jsonrpc_error: Option<i64>,
    pub(crate) upstream_ms: Option<f64>,
    pub(crate) request_bytes: u64,
    pub(crate) response_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) arguments: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trace_ids() {
        let ok = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(Some(ok)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"garbage",
        ] {
            assert_eq!(trace_id(Some(bad)), None);
        }
        assert_eq!(trace_id(None), None);
    }

    #[test]
    fn names_and_redaction() {
        let opts = AppAudit {
            include_arguments: true,
            redact: vec!["/password".into(), "/nested/token".into(), "/absent".into()],
        };
        let batch = json!([
            {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x","password":"p","nested":{"token":"t"}}}},
            {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}},
            {"jsonrpc":"2.0","method":"notifications/initialized"}
        ]);
        let m = messages(&batch, &opts);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name.as_deref(), Some("search"));
        assert_eq!(
            m[0].arguments,
            Some(json!({"q":"x","password":"[redacted]","nested":{"token":"[redacted]"}}))
        );
        assert_eq!(m[1].name.as_deref(), Some("file:///a"));
        assert_eq!(m[2].id, None);
        let off = messages(&batch, &AppAudit::default());
        assert!(off.iter().all(|m| m.arguments.is_none()));
    }
}
