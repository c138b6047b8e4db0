//! The request and response rewriting shared by Pingora's proxy loop and
//! [`super::stream`]: the upstream peer, the upstream request (path, `Host`,
//! forwarding headers per RFC 7239's de-facto `X-Forwarded-*` predecessors,
//! credentials; no token passthrough per the MCP authorization spec) and the
//! response headers the client sees. This is the hot path: header names are
//! constants and per-route values are prepared once (`Route::hot`), so a
//! request allocates only the values that differ per request.

use std::io::Write;
use std::net::IpAddr;

use http::{header, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use super::{authn, cors, Ctx, Gateway};
use crate::credentials;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Cookies the gateway sets for its own pages; never forwarded upstream.
/// The gateway's own cookies (`__Host-drio-*` over https, `drio-*` over http).
fn own_cookie(c: &str) -> bool {
    c.starts_with("__Host-drio") || c.starts_with("drio-")
}

/// The sandbox every non-JSON, non-SSE app response runs in (CSP 3 `sandbox`
/// without `allow-same-origin`: an opaque origin).
const APP_DOCUMENT_CSP: &str = "sandbox allow-scripts allow-forms allow-popups allow-downloads";

impl Gateway {
    /// The upstream request: path rewrite, `Host`, forwarding headers, and
    /// removal of the client's credentials (no token passthrough). Shared by
    /// Pingora's proxy loop and [`stream`].
    pub(super) fn rewrite_upstream_request(
        &self,
        session: &Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let Some(route) = ctx.route.as_ref() else {
            return Ok(());
        };
        if let Some(uri) = ctx.upstream_uri.take() {
            upstream.set_uri(uri);
        }
        upstream.insert_header(header::HOST, route.hot.host.clone())?;
        // The client's token is for the gateway, never for the upstream (MCP
        // authorization spec, "Token Passthrough").
        upstream.remove_header(&header::AUTHORIZATION);
        strip_own_cookies(upstream)?;
        authn::identity_headers(upstream, route, ctx.principal.as_deref())?;
        if let Some(c) = &ctx.credential {
            credentials::apply(c, upstream)?;
        }
        upstream.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let trusted = &self.state.config.server.trusted_proxies;
        let trusted_peer = peer.is_some_and(|ip| crate::web::client_addr::is_trusted(ip, trusted));
        // W3C Trace Context: the upstream sees the upstream span's context;
        // with tracing off, a trusted proxy's passes through and anyone
        // else's is dropped (it would name a trace the gateway never joined).
        if let Some(t) = ctx.trace.as_mut() {
            upstream.remove_header(&TRACEPARENT);
            upstream.remove_header(&TRACESTATE);
            for (name, value) in t.upstream_headers(&route.app.upstream.host).0 {
                upstream.insert_header(name, value)?;
            }
        } else if !trusted_peer {
            upstream.remove_header(&TRACEPARENT);
            upstream.remove_header(&TRACESTATE);
        }
        if let Some(ip) = peer {
            // A chain is kept only when a trusted proxy forwarded it; anyone
            // else's `X-Forwarded-For` is replaced, not extended.
            let prev = upstream
                .headers
                .get(&X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
                .filter(|_| trusted_peer);
            let xff = match prev {
                Some(prev) => HeaderValue::try_from(format!("{prev}, {ip}")),
                None => ip_header_value(ip),
            }
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "x-forwarded-for", e))?;
            upstream.insert_header(X_FORWARDED_FOR, xff)?;
        }
        let proto = if self.state.config.public_url.starts_with("https:") {
            HeaderValue::from_static("https")
        } else {
            HeaderValue::from_static("http")
        };
        upstream.insert_header(X_FORWARDED_PROTO, proto)?;
        Ok(())
    }

    /// The response headers the client sees: request id, CORS, the sandbox
    /// for app documents, stream accounting. Shared with [`stream`].
    pub(super) fn filter_response(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if let Some(t) = ctx.trace.as_mut() {
            t.upstream_answered(resp.status.as_u16());
        }
        resp.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        if let Some(origin) = &ctx.cors_origin {
            // The gateway, not the upstream, decides which origins may read.
            for (name, value) in cors::app_headers(origin) {
                resp.insert_header(name, value)?;
            }
        }
        let content_type = resp
            .headers
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes);
        let is_sse = content_type.is_some_and(|v| v.starts_with(b"text/event-stream"));
        if !is_sse && !content_type.is_some_and(|v| v.starts_with(b"application/json")) {
            // An app's documents share the gateway's origin with the consent
            // and sign-in pages: run them in an opaque origin so their
            // scripts can neither read the gateway's pages nor its cookies.
            resp.append_header(header::CONTENT_SECURITY_POLICY, APP_DOCUMENT_CSP)?;
            resp.insert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
        }
        if is_sse && !ctx.streaming {
            ctx.streaming = true;
            self.state.metrics.open_streams.inc();
        }
        Ok(())
    }
}

/// The upstream peer of a routed app, with its timeouts.
pub(super) fn peer_for(route: &crate::catalog::route::Route) -> pingora::Result<HttpPeer> {
    let app = &route.app;
    let addr = route.addr.ok_or_else(|| {
        Error::explain(ErrorType::ConnectNoRoute, "upstream host did not resolve")
    })?;
    let mut peer = HttpPeer::new(addr, app.upstream.tls, app.upstream.host.clone());
    peer.options.connection_timeout = Some(app.connect_timeout);
    peer.options.read_timeout = Some(app.read_timeout);
    peer.options.write_timeout = Some(app.read_timeout);
    Ok(peer)
}

/// An address as a header value, formatted on the stack (no `String`). An
/// IPv4 address, the common case, is written digit by digit: `Display` goes
/// through `core::fmt` for each octet (about 1 300 instructions per request
/// under `INSTRUMENT=callgrind`, against under 100).
fn ip_header_value(ip: IpAddr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut buf = [0u8; 48]; // an IPv6 address is at most 45 characters
    let n = match ip {
        IpAddr::V4(v4) => write_ipv4(&mut buf, v4.octets()),
        IpAddr::V6(_) => {
            let mut cur = &mut buf[..];
            // 48 bytes hold any address: the write cannot fail.
            let _ = write!(cur, "{ip}");
            48 - cur.len()
        }
    };
    HeaderValue::from_bytes(&buf[..n])
}

/// Dotted decimal (RFC 791's notation, as `Ipv4Addr`'s `Display` writes it)
/// into `buf`; returns the length (at most 15).
fn write_ipv4(buf: &mut [u8; 48], octets: [u8; 4]) -> usize {
    let mut n = 0;
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            buf[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            buf[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + o % 10;
        n += 1;
    }
    n
}

/// Removes the gateway's own cookies (consent and sign-in pages) from the
/// upstream request, keeping any others, across every `Cookie` header (a
/// client, or HTTP/2, may send several).
fn strip_own_cookies(req: &mut RequestHeader) -> pingora::Result<()> {
    let ours = req
        .headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.as_bytes().windows(4).any(|w| w == b"drio"));
    if !ours {
        return Ok(());
    }
    let mut kept: Vec<String> = Vec::new();
    for value in req.headers.get_all(header::COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        kept.extend(
            text.split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !own_cookie(c))
                .map(str::to_owned),
        );
    }
    req.remove_header(&header::COOKIE);
    if !kept.is_empty() {
        req.insert_header(header::COOKIE, kept.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn an_address_is_written_as_display_writes_it() {
        // Every octet value in every position, and the edges of each width.
        for o in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(o, 0, 0, 0),
                Ipv4Addr::new(1, o, 10, 100),
                Ipv4Addr::new(255, 99, o, 9),
                Ipv4Addr::new(127, 0, 0, o),
            ] {
                let v = ip_header_value(IpAddr::V4(ip)).unwrap();
                assert_eq!(v.to_str().unwrap(), ip.to_string());
            }
        }
        let v6: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert_eq!(ip_header_value(v6).unwrap(), "2001:db8::ffff:1");
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(
            ip_header_value(longest).unwrap().to_str().unwrap(),
            longest.to_string()
        );
    }
}
