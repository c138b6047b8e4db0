//! Registration and client-metadata bodies (RFC 7591 §2, Client ID Metadata
//! Documents): JSON into `Metadata`, then `validate`, then the redirect
//! matching a validated client goes through at /authorize.
#![no_main]

use drio_gateway::oauth::clients::{match_redirect, validate, Client, Metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Metadata>(data) else {
        return;
    };
    if let Ok(client) = validate(m, "fuzz".into(), 0) {
        // What registration stores, read back as the gateway reads it.
        let stored = serde_json::to_vec(&client).expect("a client serialises");
        let back: Client = serde_json::from_slice(&stored).expect("a stored client reads back");
        assert_eq!(back.redirect_uris, client.redirect_uris);
        for r in &client.redirect_uris {
            assert!(match_redirect(&client, r).is_some());
        }
        let _ = client.is_public();
    }
});
