//! Bearer extraction (RFC 6750 §2.1): `extract_bearer` on an arbitrary
//! `Authorization` value, and the guard's refusal of tokens in query strings
//! (RFC 6750 §2.3) on the same bytes as a query.
#![no_main]

use drio_gateway::auth::{extract_bearer, guard::query_carries_token, verify::looks_like_jwt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = extract_bearer(Some(data)) {
        assert!(!token.is_empty() && !token.contains(' '));
        let _ = looks_like_jwt(token);
        let _ = drio_gateway::auth::token_hash(token);
    }
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = query_carries_token(q);
    }
});
