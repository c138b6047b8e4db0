//! Token-endpoint bodies (RFC 6749 §4.1.3, §6): `oauth::params` on a
//! fuzzed body sent as a form or as JSON (first byte chooses), the way the
//! token, refresh and revoke handlers read them.
#![no_main]

use bytes::Bytes;
use drio_gateway::web::LocalRequest;
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let ct = match kind % 4 {
        0 => "application/x-www-form-urlencoded",
        1 => "application/json",
        2 => "application/json; charset=utf-8",
        _ => "text/plain",
    };
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    let req = LocalRequest {
        method: Method::POST,
        path: "/oauth/token".into(),
        query: std::str::from_utf8(body).ok().map(str::to_owned),
        headers,
        body: Bytes::copy_from_slice(body),
        client_ip: None,
        request_id: "fuzz".into(),
    };
    if let Ok(p) = drio_gateway::oauth::params(&req) {
        // What the token handler does with the fields it reads.
        if let (Some(v), Some(c)) = (p.get("code_verifier"), p.get("code_challenge")) {
            let _ = drio_gateway::oauth::pkce_ok(v, c);
        }
        if let Some(r) = p.get("redirect_uri") {
            let _ = drio_gateway::oauth::clients::check_redirect_uri(r);
        }
    }
    let _ = drio_gateway::oauth::query(&req);
});
