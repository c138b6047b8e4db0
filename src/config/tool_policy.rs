//! Per-tool scopes: the part of an app's tool policy that says which OAuth
//! scopes a token must carry to call a tool (`tools/call`, MCP 2025-11-25
//! §Tools), and the step-up answer when it does not.
//!
//! A `tools/call` whose token lacks one of the tool's scopes is refused with
//! `403` and `WWW-Authenticate: Bearer error="insufficient_scope",
//! scope="…", resource_metadata="…"` (RFC 6750 §3.1; MCP authorization
//! 2025-11-25, "Scope Challenge Handling"): `scope` names every scope the
//! client needs — what the token has plus what the tool requires — so a
//! client re-authorizes once with the larger set (step-up) and retries.
//!
//! Scope values are RFC 6749 §3.3 `scope-token`s (`%x21 / %x23-5B /
//! %x5D-7E`: no space, `"` or `\`), so they are safe inside the challenge's
//! quoted-string.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tool name → the scopes its `tools/call` needs (each list sorted, no
/// duplicates; tools without scopes are absent).
pub(crate) type ToolScopes = BTreeMap<String, Vec<String>>;

/// Longest scope token and most scopes per tool the gateway keeps.
const MAX_SCOPE_LEN: usize = 128;
const MAX_SCOPES_PER_TOOL: usize = 32;
/// Longest tool name (as the commands API's switches).
pub(crate) const MAX_TOOL_NAME: usize = 256;

/// One tool's policy as written: `[[apps.tools]]` in TOML, `config.tools[]`
/// in the management API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ToolPolicy {
    pub(crate) name: String,
    #[serde(default, alias = "required_scopes")]
    pub(crate) required_scopes: Vec<String>,
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_LEN
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Checks one tool's scopes; the error is the reason (the caller names the field).
pub(crate) fn check_scopes(scopes: &[String]) -> Result<Vec<String>, String> {
    if scopes.len() > MAX_SCOPES_PER_TOOL {
        return Err(format!("at most {MAX_SCOPES_PER_TOOL} scopes per tool"));
    }
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(format!(
            "`{}` is not an OAuth scope token (RFC 6749 §3.3: 1-{MAX_SCOPE_LEN} visible ASCII characters, no space, '\"' or '\\')",
            bad.escape_default()
        ));
    }
    let mut out = scopes.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Validates written policies into a [`ToolScopes`]; errors name the field
/// as `tools[i].name` / `tools[i].required_scopes`.
pub(crate) fn validate(tools: &[ToolPolicy]) -> Result<ToolScopes, (String, String)> {
    let mut out = ToolScopes::new();
    for (i, t) in tools.iter().enumerate() {
        if t.name.is_empty() || t.name.len() > MAX_TOOL_NAME {
            return Err((
                format!("tools[{i}].name"),
                format!("must be a tool name (1-{MAX_TOOL_NAME} characters)"),
            ));
        }
        if out.contains_key(&t.name) {
            return Err((
                format!("tools[{i}].name"),
                format!("tool `{}` is listed twice", t.name.escape_default()),
            ));
        }
        let scopes = check_scopes(&t.required_scopes)
            .map_err(|m| (format!("tools[{i}].required_scopes"), m))?;
        if !scopes.is_empty() {
            out.insert(t.name.clone(), scopes);
        }
    }
    Ok(out)
}

/// The written form of a [`ToolScopes`] (what `GET …/config` shows).
pub(crate) fn to_policies(map: &ToolScopes) -> Vec<ToolPolicy> {
    map.iter()
        .map(|(name, s)| ToolPolicy {
            name: name.clone(),
            required_scopes: s.clone(),
        })
        .collect()
}

/// `extra`'s scopes added to `base`'s, tool by tool (a config-file app's
/// stored policy adds to its TOML one and never removes from it).
pub(crate) fn merged(base: &ToolScopes, extra: &ToolScopes) -> ToolScopes {
    let mut out = base.clone();
    for (tool, scopes) in extra {
        let e = out.entry(tool.clone()).or_default();
        e.extend(scopes.iter().cloned());
        e.sort();
        e.dedup();
    }
    out.retain(|_, s| !s.is_empty());
    out
}

/// Every scope some tool of the app requires (sorted, no duplicates).
pub(crate) fn all_scopes(map: &ToolScopes) -> Vec<String> {
    let mut out: Vec<String> = map.values().flatten().cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// The scopes a request body (one message or a batch) needs that `held`
/// lacks: None when every `tools/call` in it is allowed; otherwise every
/// scope the client should ask for — `held` plus what the called tools
/// require — sorted, for the challenge. Token scopes that are not scope
/// tokens are left out of the challenge (they cannot be quoted safely).
pub(crate) fn step_up(map: &ToolScopes, held: &[String], body: &Value) -> Option<Vec<String>> {
    if map.is_empty() {
        return None;
    }
    let messages: Vec<&Value> = match body {
        Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    };
    let mut needed: Vec<&String> = Vec::new();
    for m in messages {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            continue;
        }
        let Some(name) = m.pointer("/params/name").and_then(Value::as_str) else {
            continue;
        };
        if let Some(scopes) = map.get(name) {
            needed.extend(scopes.iter().filter(|s| !held.contains(s)));
        }
    }
    if needed.is_empty() {
        return None;
    }
    let mut all: Vec<String> = held
        .iter()
        .filter(|s| is_scope_token(s))
        .cloned()
        .chain(needed.into_iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    Some(all)
}

/// The step-up challenge (RFC 6750 §3, MCP authorization 2025-11-25).
pub(crate) fn challenge(scopes: &[String], resource_metadata: &str) -> String {
    format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{resource_metadata}\"",
        scopes.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> ToolScopes {
        validate(&[ToolPolicy {
            name: "delete".into(),
            required_scopes: vec!["files:write".into(), "files:read".into()],
        }])
        .unwrap()
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        for ok in ["files:read", "a", "x!#[]~", "https://api.example.com/x"] {
            assert!(is_scope_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb", &"x".repeat(129)] {
            assert!(!is_scope_token(bad), "{bad}");
        }
        let err = validate(&[ToolPolicy {
            name: "t".into(),
            required_scopes: vec!["ok".into(), "not ok".into()],
        }])
        .unwrap_err();
        assert_eq!(err.0, "tools[0].required_scopes");
    }

    #[test]
    fn step_up_names_held_plus_missing() {
        let map = policy();
        let held = vec!["openid".to_string(), "files:read".to_string()];
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete"}});
        assert_eq!(
            step_up(&map, &held, &call).unwrap(),
            vec!["files:read", "files:write", "openid"]
        );
        let other =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list"}});
        assert!(step_up(&map, &held, &other).is_none());
        let batch = json!([other, call]);
        assert!(step_up(&map, &held, &batch).is_some());
        let full = vec!["files:read".to_string(), "files:write".to_string()];
        assert!(step_up(&map, &full, &batch).is_none());
        // A token scope that cannot be quoted stays out of the challenge.
        let odd = vec!["a\"b".to_string()];
        assert!(!step_up(&map, &odd, &call).unwrap().contains(&"a\"b".into()));
    }
}
