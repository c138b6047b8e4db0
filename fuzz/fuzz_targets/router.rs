//! The request router: method + path + host against a fixed table of several
//! apps (two routed by host): `is_local_path`, `by_host`, `by_path`, and
//! the local authority check. Input: `METHOD PATH\nHOST`.
#![no_main]

mod common;

use drio_gateway::proxy::local::{authority_matches, is_local_path};
use drio_gateway::catalog::route::is_app_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (line, host) = text.split_once('\n').unwrap_or((text, ""));
    let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
    let _ = http::Method::from_bytes(method.as_bytes());
    let table = common::table();
    let _ = authority_matches(host.as_bytes(), "127.0.0.1:8080", false);
    let _ = table.by_host(host);
    if is_local_path(path) {
        return;
    }
    if let Some(sel) = table.by_path(path) {
        assert!(sel.rest.starts_with('/'));
        assert!(is_app_path(path));
    }
});
