//! Redirect URIs (RFC 8252 §7, RFC 6749 §3.1.2): `check_redirect_uri` on
//! every line, a client validated from the first lines, and `match_redirect`
//! of the last line against it (loopback any-port matching, RFC 8252 §7.3).
#![no_main]

use drio_gateway::oauth::clients::{check_redirect_uri, match_redirect, validate, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    for l in &lines {
        let _ = check_redirect_uri(l);
    }
    let (requested, registered) = lines.split_last().expect("split yields one item");
    let m = Metadata {
        redirect_uris: Some(registered.iter().map(|s| s.to_string()).collect()),
        client_name: None,
        grant_types: None,
        response_types: None,
        token_endpoint_auth_method: None,
        client_uri: None,
        logo_uri: None,
        scope: None,
        software_id: None,
        software_version: None,
        client_id: None,
    };
    if let Ok(client) = validate(m, "fuzz".into(), 0) {
        if let Some(hit) = match_redirect(&client, requested) {
            // A match is always one of the registered URIs.
            assert!(client.redirect_uris.iter().any(|r| r == hit));
        }
        // Every registered URI matches itself.
        for r in &client.redirect_uris {
            assert_eq!(match_redirect(&client, r), Some(r.as_str()));
        }
    }
});
