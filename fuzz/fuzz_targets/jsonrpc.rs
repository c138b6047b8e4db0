//! JSON-RPC inspection (JSON-RPC 2.0, MCP Streamable HTTP): a body parsed
//! as `inspect` parses it, then the routing-header check (`headers_match`
//! with fuzzed `Mcp-Method`/`Mcp-Name`) and the disabled-tool check
//! (`check_tools`) on a route with disabled tools.
#![no_main]

mod common;

use drio_gateway::proxy::jsonrpc::{check_tools, headers_match, request_id};
use libfuzzer_sys::fuzz_target;
use pingora_http::RequestHeader;

fuzz_target!(|data: &[u8]| {
    // Optional header lines before a blank line: `mcp-method: …`, `mcp-name: …`.
    let (head_text, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) if data.starts_with(b"mcp-") => (&data[..i], &data[i + 2..]),
        _ => (&b""[..], data),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let route = common::table().by_slug("github").expect("fixture app");
    let _ = check_tools(route, &value);
    let _ = request_id(Some(&value));
    let mut head = RequestHeader::build("POST", b"/apps/github/mcp", None).expect("header");
    for line in head_text.split(|b| *b == b'\n') {
        let Some(i) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = if line[..i].eq_ignore_ascii_case(b"mcp-method") {
            "mcp-method"
        } else {
            "mcp-name"
        };
        let v = line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..]);
        if let Ok(v) = http::HeaderValue::from_bytes(v) {
            let _ = head.append_header(name, v);
        }
    }
    let _ = headers_match(&head, &value);
});
