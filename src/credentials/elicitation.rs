//! Telling an MCP client "connect your account first" in the client's own
//! terms: URL-mode elicitation (MCP 2025-11-25, "Elicitation" — URL mode,
//! and the `URLElicitationRequiredError`, JSON-RPC code `-32042`).
//!
//! This module owns which clients get that answer and its shape:
//! - a client declares URL mode in `initialize`
//!   (`params.capabilities.elicitation.url`), or, stateless (MCP transport
//!   2026-07-28, no `initialize`), in every request's
//!   `params._meta["io.modelcontextprotocol/clientCapabilities"]`;
//! - what a session declared is remembered per (app, user, `Mcp-Session-Id`)
//!   in the store (`elcap:{app}:{sha256(len subject ‖ subject ‖ session)}`, 24 h), written
//!   when the upstream's `initialize` answer carries the session id: the id
//!   is the upstream's, so the key also names the user and the app — another
//!   user replaying the id finds nothing;
//! - a client that declared it gets `-32042` with
//!   `data.elicitations = [{mode: "url", elicitationId, url, message}]`;
//!   any other keeps the gateway's `-32001` with `data.connectUrl`.
//!
//! The URL itself is the connect link of the credential (single use, bound
//! to the user it was issued to; see `api::connect`).

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::store::Store;

/// MCP 2025-11-25 `ErrorCode.UrlElicitationRequired`.
pub(crate) const URL_ELICITATION_REQUIRED: i64 = -32042;
/// Where stateless (2026-07-28) clients put their capabilities.
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// How long a session's declaration is remembered (upstream sessions are
/// rarely longer; a client past it gets `-32001`, which still works).
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Whether a JSON-RPC message (or any message of a batch) declares URL-mode
/// elicitation, in `initialize` capabilities or `_meta`.
pub(crate) fn declares_url_mode(body: &Value) -> bool {
    let declares = |m: &Value| {
        let from_init = (m.get("method").and_then(Value::as_str) == Some("initialize"))
            .then(|| m.pointer("/params/capabilities/elicitation/url"))
            .flatten();
        let from_meta = m
            .pointer("/params/_meta")
            .and_then(|meta| meta.get(META_CAPABILITIES))
            .and_then(|c| c.pointer("/elicitation/url"));
        from_init.or(from_meta).is_some_and(Value::is_object)
    };
    match body {
        Value::Array(batch) => batch.iter().any(declares),
        one => declares(one),
    }
}

/// Whether the body is an `initialize` that declares URL mode (the session
/// it opens is then remembered when the upstream names it).
pub(crate) fn initialize_declares_url_mode(body: &Value) -> bool {
    body.get("method").and_then(Value::as_str) == Some("initialize") && declares_url_mode(body)
}

fn session_key(app_id: &str, subject: &str, session_id: &str) -> String {
    let mut h = Sha256::new();
    // Length-prefixed: no (subject, session) pair can collide with another.
    h.update((subject.len() as u64).to_be_bytes());
    h.update(subject.as_bytes());
    h.update(session_id.as_bytes());
    crate::store::keys::elicitation_capability(app_id, &hex::encode(h.finalize()))
}

/// Remembers that this user's session with this app declared URL mode.
pub(crate) async fn remember_session(
    store: &dyn Store,
    app_id: &str,
    subject: &str,
    session_id: &str,
) {
    let key = session_key(app_id, subject, session_id);
    if let Err(e) = store.put(&key, b"url", Some(SESSION_TTL)).await {
        // Only the error's form is lost: the client then gets -32001.
        tracing::warn!(error = %e, "could not remember a session's elicitation capability");
    }
}

/// Whether this user's session declared URL mode. A store failure answers
/// false: the client then gets the `-32001` answer every client understands.
pub(crate) async fn session_declared(
    store: &dyn Store,
    app_id: &str,
    subject: &str,
    session_id: &str,
) -> bool {
    matches!(
        store.get(&session_key(app_id, subject, session_id)).await,
        Ok(Some(_))
    )
}

/// The `error.data` of a `-32042` answer: one URL-mode elicitation.
pub(crate) fn elicitation_data(url: &str, message: &str) -> Value {
    // The id lets the client correlate a later
    // `notifications/elicitation/complete`; it carries no authority (the
    // URL's ticket does), so a failed RNG only costs uniqueness.
    let id = crate::util::random::token(16).unwrap_or_else(|_| "connect".into());
    json!({ "elicitations": [{
        "mode": "url",
        "elicitationId": id,
        "url": url,
        "message": message,
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_mode_is_read_from_initialize_or_meta_only() {
        let init = json!({"method": "initialize", "params": {"capabilities": {"elicitation": {"url": {}}}}});
        assert!(declares_url_mode(&init));
        assert!(initialize_declares_url_mode(&init));
        let form_only = json!({"method": "initialize", "params": {"capabilities": {"elicitation": {"form": {}}}}});
        assert!(!declares_url_mode(&form_only));
        let call_caps = json!({"method": "tools/call", "params": {"capabilities": {"elicitation": {"url": {}}}}});
        assert!(
            !declares_url_mode(&call_caps),
            "capabilities count in initialize only"
        );
        let meta = json!({"method": "tools/call", "params": {"_meta": {META_CAPABILITIES: {"elicitation": {"url": {}}}}}});
        assert!(declares_url_mode(&meta));
        assert!(!initialize_declares_url_mode(&meta));
        let not_object = json!({"method": "tools/call", "params": {"_meta": {META_CAPABILITIES: {"elicitation": {"url": true}}}}});
        assert!(!declares_url_mode(&not_object));
        assert!(declares_url_mode(&json!([{"method": "ping"}, meta])));
    }

    #[test]
    fn session_keys_name_app_user_and_session() {
        let k = session_key("app_1", "user_a", "s1");
        assert!(k.starts_with(&crate::store::keys::elicitation_capability("app_1", "")));
        assert_ne!(k, session_key("app_1", "user_b", "s1"));
        assert_ne!(k, session_key("app_2", "user_a", "s1"));
        assert_ne!(session_key("a", "b\0c", "d"), session_key("a", "b", "c\0d"));
    }
}
