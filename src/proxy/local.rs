//! The in-process router's entry for routes the gateway answers itself
//! (`/.well-known/*`, `/api/v1/*`, `/healthz`), called from `request_filter`
//! so there is no second HTTP server and no extra hop. The routes are in
//! [`crate::routes`]; their request and response types in [`crate::web`].

use http::{header, HeaderMap};
use pingora::http::RequestHeader;

use crate::state::State;
use crate::web::{LocalRequest, LocalResponse};

pub(crate) use crate::web::MAX_LOCAL_BODY;

/// True when `path` belongs to the gateway rather than to an app.
pub fn is_local_path(path: &str) -> bool {
    crate::routes::is_local_path(path)
}

/// True when a request's authority (`Host`, or the URI's) names the gateway
/// itself: `expected` is `public_url`'s `host[:port]` (lower-case, default
/// port omitted), so `host` may differ in case or spell the default port.
///
/// A DNS-rebinding page reaches a loopback or private gateway under its own
/// host name; refusing every other name keeps its scripts away from the
/// sign-in and management routes (MCP spec, "Security Best Practices").
pub fn authority_matches(host: &[u8], expected: &str, https: bool) -> bool {
    let expected = expected.as_bytes();
    if host.eq_ignore_ascii_case(expected) {
        return true;
    }
    let default_port: &[u8] = if https { b":443" } else { b":80" };
    host.len() == expected.len() + default_port.len()
        && host[..expected.len()].eq_ignore_ascii_case(expected)
        && &host[expected.len()..] == default_port
}

/// The request's headers for a local handler, with `Host` even over HTTP/2,
/// which names the host in `:authority` instead (RFC 9113 §8.3.1): handlers
/// (discovery on an app's own host) read `Host`, as an HTTP/1 hop would.
pub(crate) fn headers_with_host(head: &RequestHeader) -> HeaderMap {
    let mut headers = head.headers.clone();
    if !headers.contains_key(header::HOST) {
        if let Some(v) = head.uri.authority().and_then(|a| a.as_str().parse().ok()) {
            headers.insert(header::HOST, v);
        }
    }
    headers
}

/// Answers a local route (see [`crate::routes`]).
pub(crate) async fn dispatch(state: &State, req: &LocalRequest) -> LocalResponse {
    crate::routes::dispatch(state, req).await
}

#[cfg(test)]
mod tests {
    use super::authority_matches;

    #[test]
    fn only_the_public_authority_matches() {
        assert!(authority_matches(
            b"127.0.0.1:8080",
            "127.0.0.1:8080",
            false
        ));
        assert!(authority_matches(b"GW.example.COM", "gw.example.com", true));
        assert!(authority_matches(
            b"gw.example.com:443",
            "gw.example.com",
            true
        ));
        assert!(authority_matches(
            b"gw.example.com:80",
            "gw.example.com",
            false
        ));
        for host in [
            &b"evil.example"[..],
            b"gw.example.com:80",
            b"gw.example.com:4430",
            b"gw.example.com.",
            b"gw.example.com.evil.example",
            b"127.0.0.1:80800",
            b"127.0.0.1",
            b"",
        ] {
            let expected = if host.starts_with(b"127") {
                "127.0.0.1:8080"
            } else {
                "gw.example.com"
            };
            assert!(
                !authority_matches(host, expected, true),
                "{}",
                String::from_utf8_lossy(host)
            );
        }
    }
}
