//! JWT header and claims (RFC 7519, RFC 9068 §2.2, OIDC Core §2): the
//! pre-check `looks_like_jwt`, `jsonwebtoken::decode_header`, the claims
//! the validator reads into a `Principal`, and the ID-token claim shape the
//! IdP bridge reads (`IdClaims` in `oauth::idp::verify_id_token`, a local
//! struct there, mirrored here).
#![no_main]

use base64::Engine as _;
use drio_gateway::auth::claims::{Claims, UserInfo};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The shape of `oauth::idp::verify_id_token`'s `IdClaims`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct IdClaims {
    #[serde(flatten)]
    user: UserInfo,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    aud: serde_json::Value,
}

fn claims(json: &[u8]) {
    if let Ok(c) = serde_json::from_slice::<Claims>(json) {
        let p = c.into_principal(Some(1));
        let _ = drio_gateway::auth::check_scopes(&p, &["mcp".to_string()]);
    }
    if let Ok(u) = serde_json::from_slice::<UserInfo>(json) {
        let _ = u.into_principal(1);
    }
    if let Ok(c) = serde_json::from_slice::<IdClaims>(json) {
        let _ = c.aud.as_array().is_some_and(|a| a.len() > 1);
    }
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes as a claims object…
    claims(data);
    // …and as a compact token, whose segments are decoded as the gateway does.
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = drio_gateway::auth::verify::looks_like_jwt(token);
    let _ = jsonwebtoken::decode_header(token);
    if let Some(payload) = token.split('.').nth(1) {
        if let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) {
            claims(&json);
        }
    }
});
