//! CORS (Fetch standard) for browser-based MCP clients such as the MCP
//! Inspector: the OAuth discovery, registration, token, revocation and `me`
//! routes are public to any origin (they use no cookies; a token is proof
//! enough), and an app answers preflights and exposes `Mcp-Session-Id` and
//! `WWW-Authenticate` to the origins it allows (see [`super::origin`]).
//! Preflights never carry credentials, so they are answered before the
//! bearer check and never reach the upstream.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{HeaderName, HeaderValue};

use crate::web::LocalResponse;

const ALLOW_HEADERS: &str = "authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, x-request-id";
const EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate, x-request-id";

/// Local routes any origin may call from a browser (declared in
/// [`crate::routes`]).
pub(crate) fn is_public_cors_path(path: &str) -> bool {
    crate::routes::cors_for(path) == crate::routes::Cors::AnyOrigin
}

/// Headers added to every answer of a public CORS route.
pub(crate) fn public_headers() -> [(HeaderName, HeaderValue); 2] {
    [
        (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        (
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        ),
    ]
}

/// The answer to a preflight of a public CORS route.
pub(crate) fn public_preflight() -> LocalResponse {
    preflight(HeaderValue::from_static("*"), "GET, POST, OPTIONS")
}

/// The answer to a preflight of an app, for an allowed origin.
pub(crate) fn app_preflight(origin: HeaderValue) -> LocalResponse {
    preflight(origin, "GET, POST, DELETE, OPTIONS")
        .with_header(VARY, HeaderValue::from_static("origin"))
}

/// Headers added to an app's responses for an allowed cross-origin caller.
pub(crate) fn app_headers(origin: &HeaderValue) -> [(HeaderName, HeaderValue); 3] {
    [
        (ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
        (
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        ),
        (VARY, HeaderValue::from_static("origin")),
    ]
}

fn preflight(origin: HeaderValue, methods: &'static str) -> LocalResponse {
    let mut resp = LocalResponse::new(204, "text/plain; charset=utf-8", bytes::Bytes::new());
    resp.headers.extend([
        (ACCESS_CONTROL_ALLOW_ORIGIN, origin),
        (
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        ),
        (
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        ),
        (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600")),
    ]);
    resp
}

/// True for a CORS preflight (an OPTIONS naming the method it prepares).
pub(crate) fn is_preflight(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::OPTIONS && req.headers.contains_key("access-control-request-method")
}
