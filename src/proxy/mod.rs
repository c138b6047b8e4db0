//! The one `ProxyHttp` implementation. Each phase is thin and hands off:
//!
//! - `request_filter`: request id, local routes ([`local`]), app routing
//!   ([`route`]), Origin check ([`origin`]), bearer validation;
//! - `upstream_peer`: the routed app's upstream;
//! - `upstream_request_filter`: path rewrite, `Host`, forwarding headers, and
//!   removal of the client's credentials (no token passthrough);
//! - `response_filter`: request id, stream accounting;
//! - `fail_to_proxy`: upstream failures as 502/504 envelopes;
//! - `logging`: metrics and the access log line.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use crate::credentials;
use crate::errors::ApiError;
use crate::metrics::{method_label, status_class, UpstreamErrorKind};
use crate::state::State;

mod authn;
pub mod cors;
pub mod ctx;
pub mod jsonrpc;
pub mod local;
pub mod origin;
mod prepare;
pub mod request_id;
pub mod respond;

pub use ctx::Ctx;

/// Cookies the gateway sets for its own pages; never forwarded upstream.
/// The gateway's own cookies (`__Host-drio-*` over https, `drio-*` over http).
fn own_cookie(c: &str) -> bool {
    c.starts_with("__Host-drio") || c.starts_with("drio-")
}

/// The sandbox every non-JSON, non-SSE app response runs in (CSP 3 `sandbox`
/// without `allow-same-origin`: an opaque origin).
const APP_DOCUMENT_CSP: &str = "sandbox allow-scripts allow-forms allow-popups allow-downloads";

pub struct Gateway {
    state: Arc<State>,
}

impl Gateway {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }

    /// Whether a request for a local route names the gateway (`public_url`'s
    /// authority) in both `Host` and the URI authority, whichever are present.
    /// `/.well-known/*` is also served on a host an app routes by: MCP clients
    /// discover the protected-resource metadata on the app's own host.
    fn own_host(&self, head: &RequestHeader) -> bool {
        let config = &self.state.config;
        let https = config.public_url.starts_with("https://");
        let header = head.headers.get(header::HOST).map(HeaderValue::as_bytes);
        let uri = head.uri.authority().map(|a| a.as_str().as_bytes());
        if header.is_none() && uri.is_none() {
            return false;
        }
        let ours = |h: Option<&[u8]>| {
            h.is_none_or(|h| local::authority_matches(h, &config.public_authority, https))
        };
        if ours(header) && ours(uri) {
            return true;
        }
        if !head.uri.path().starts_with("/.well-known/") {
            return false;
        }
        let routes = self.state.routes.load();
        let app_host = |h: Option<&[u8]>| {
            h.is_none_or(|h| std::str::from_utf8(h).is_ok_and(|h| routes.by_host(h).is_some()))
        };
        app_host(header) && app_host(uri)
    }

    async fn serve_local(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        ctx.local = true;
        if !self.own_host(session.req_header()) {
            let err = ApiError::new(
                421,
                "misdirected_request",
                "This host is not served here; use the gateway's public URL",
            );
            respond::error(session, &ctx.request_id, &err).await?;
            return Ok(true);
        }
        let public_cors = cors::is_public_cors_path(session.req_header().uri.path());
        if public_cors && cors::is_preflight(session.req_header()) {
            respond::write(session, &ctx.request_id, cors::public_preflight()).await?;
            return Ok(true);
        }
        let has_body = !matches!(session.req_header().method, Method::GET | Method::HEAD);
        let body = if has_body {
            match respond::read_body(session, local::MAX_LOCAL_BODY).await? {
                Some(b) => b,
                None => {
                    let err = ApiError::new(413, "payload_too_large", "Request body too large");
                    respond::error(session, &ctx.request_id, &err).await?;
                    return Ok(true);
                }
            }
        } else {
            Bytes::new()
        };
        let head = session.req_header();
        let req = crate::web::LocalRequest {
            method: head.method.clone(),
            path: head.uri.path().to_string(),
            query: head.uri.query().map(str::to_string),
            headers: head.headers.clone(),
            body,
            client_ip: session.client_addr().and_then(|a| a.as_inet()).map(|a| {
                crate::web::client_addr::client_ip(
                    a.ip(),
                    &head.headers,
                    &self.state.config.server.trusted_proxies,
                )
            }),
            request_id: ctx.request_id.clone(),
        };
        let mut resp = local::dispatch(&self.state, &req).await;
        if public_cors {
            resp.headers.extend(cors::public_headers());
        }
        respond::write(session, &ctx.request_id, resp).await?;
        Ok(true)
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        self.state.metrics.inflight.inc();
        if crate::drain::is_draining() {
            // Stopping or handing over: this connection's last response.
            session.set_keepalive(None);
        }
        let head = session.req_header();
        ctx.request_id = request_id::from_client_or_new(
            head.headers.get("x-request-id").map(HeaderValue::as_bytes),
        );
        if local::is_local_path(head.uri.path()) {
            return self.serve_local(session, ctx).await;
        }

        let routes = self.state.routes.load();
        let host = head
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| head.uri.host());
        let path = head.uri.path();
        let (route, rest) = if let Some(r) = host.and_then(|h| routes.by_host(h)) {
            (r.clone(), path)
        } else if let Some(sel) = routes.by_path(path) {
            (sel.route, sel.rest)
        } else {
            let err = ApiError::not_found(if crate::catalog::route::is_app_path(path) {
                "App"
            } else {
                "Route"
            });
            respond::error(session, &ctx.request_id, &err).await?;
            return Ok(true);
        };
        let app = &route.app;

        let origin = head.headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
        if !origin::origin_allowed(origin, &self.state.config.public_origin, app) {
            self.state
                .metrics
                .origin_rejections
                .with_label_values(&[&app.slug])
                .inc();
            ctx.route = Some(route.clone());
            let err = ApiError::new(403, "forbidden_origin", "Origin not allowed for this app");
            respond::error(session, &ctx.request_id, &err).await?;
            return Ok(true);
        }
        // An allowed cross-origin browser caller (MCP Inspector): preflights
        // are answered here, responses expose the MCP headers to it.
        ctx.cors_origin = head.headers.get(header::ORIGIN).cloned();
        if let Some(origin) = ctx
            .cors_origin
            .as_ref()
            .filter(|_| cors::is_preflight(head))
            .cloned()
        {
            ctx.route = Some(route.clone());
            respond::write(session, &ctx.request_id, cors::app_preflight(origin)).await?;
            return Ok(true);
        }

        if !app.public {
            match authn::authenticate(&self.state, head, &route).await {
                Ok(p) if !authn::may_use(&route, &p) => {
                    ctx.route = Some(route.clone());
                    let err = ApiError::new(403, "forbidden", "You do not have access to this app");
                    respond::error(session, &ctx.request_id, &err).await?;
                    return Ok(true);
                }
                Ok(p) => ctx.principal = Some(p),
                Err(e) => {
                    let (err, challenge) = authn::refusal(&e, &route);
                    ctx.route = Some(route.clone());
                    let cors = ctx
                        .cors_origin
                        .as_ref()
                        .map(cors::app_headers)
                        .into_iter()
                        .flatten();
                    respond::error_with(
                        session,
                        &ctx.request_id,
                        &err,
                        challenge.into_iter().chain(cors),
                    )
                    .await?;
                    return Ok(true);
                }
            }
        }

        let mut uri = String::with_capacity(app.upstream.base_path.len() + rest.len() + 64);
        uri.push_str(&app.upstream.base_path);
        uri.push_str(rest);
        if let Some(q) = head.uri.query() {
            uri.push('?');
            uri.push_str(q);
        }
        ctx.upstream_uri = Some(
            http::Uri::try_from(uri)
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "upstream uri", e))?,
        );
        ctx.route = Some(route.clone());
        let (limiter, audit) = (&self.state.limiter, &self.state.audit);
        if let Some(refusal) =
            prepare::prepare_upstream(session, ctx, &route, limiter, audit).await?
        {
            respond::write(session, &ctx.request_id, refusal).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
        let app = &route.app;
        let addr = route.addr.ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, "upstream host did not resolve")
        })?;
        let mut peer = HttpPeer::new(addr, app.upstream.tls, app.upstream.host.clone());
        peer.options.connection_timeout = Some(app.connect_timeout);
        peer.options.read_timeout = Some(app.read_timeout);
        peer.options.write_timeout = Some(app.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let Some(route) = ctx.route.as_ref() else {
            return Ok(());
        };
        if let Some(uri) = ctx.upstream_uri.take() {
            upstream.set_uri(uri);
        }
        upstream.insert_header(header::HOST, route.app.upstream.authority.as_str())?;
        // The client's token is for the gateway, never for the upstream (MCP
        // authorization spec, "Token Passthrough").
        upstream.remove_header(&header::AUTHORIZATION);
        strip_own_cookies(upstream)?;
        authn::identity_headers(upstream, route, ctx.principal.as_deref())?;
        if let Some(c) = &ctx.credential {
            credentials::apply(c, upstream)?;
        }
        upstream.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(ip) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            // A chain is kept only when a trusted proxy forwarded it; anyone
            // else's `X-Forwarded-For` is replaced, not extended.
            let trusted = &self.state.config.server.trusted_proxies;
            let prev = upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .filter(|_| crate::web::client_addr::is_trusted(ip, trusted));
            let xff = match prev {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        let proto = if self.state.config.public_url.starts_with("https:") {
            "https"
        } else {
            "http"
        };
        upstream.insert_header("x-forwarded-proto", proto)?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
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

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (status, err) = classify(e, ctx);
        let mut code = status;
        // The connection is closed after this answer (can_reuse_downstream
        // below), so the answer must say so (RFC 9112 §9.6): otherwise a
        // keep-alive client sends its next request into the closing socket
        // and loses it (seen when an upstream resets mid-request).
        session.set_keepalive(None);
        if status != 0
            && session.response_written().is_none()
            && respond::error(session, &ctx.request_id, &err)
                .await
                .is_err()
        {
            code = 0;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        // A client hanging up (routine for SSE) is not a gateway error.
        *e.esource() == ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let m = &self.state.metrics;
        m.inflight.dec();
        if ctx.streaming {
            m.open_streams.dec();
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let app = ctx.app_label();
        let method = method_label(&session.req_header().method);
        let elapsed = ctx.started.elapsed();
        m.requests
            .with_label_values(&[app, method, status_class(status)])
            .inc();
        // Long-lived SSE streams would swamp request latency; they get their own histogram.
        let hist = if ctx.streaming {
            &m.stream_duration
        } else {
            &m.duration
        };
        hist.with_label_values(&[app])
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = ctx.upstream_error {
            m.upstream_errors
                .with_label_values(&[app, kind.as_str()])
                .inc();
        }
        let (route, principal) = (ctx.route.as_deref(), ctx.principal.as_deref());
        let audit = &self.state.audit;
        audit.record(
            session,
            route,
            principal,
            &ctx.request_id,
            &ctx.audit,
            status,
        );
        tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            app,
            method,
            path = session.req_header().uri.path(),
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream_error = ctx.upstream_error.map(UpstreamErrorKind::as_str),
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }
}

/// Maps a proxy failure to the status and envelope the client sees, and
/// records the upstream error kind.
fn classify(e: &Error, ctx: &mut Ctx) -> (u16, ApiError) {
    use ErrorType::*;
    if let HTTPStatus(code) = e.etype() {
        return (
            *code,
            ApiError::new(*code, "bad_request", "Request could not be processed"),
        );
    }
    match e.esource() {
        ErrorSource::Upstream => {
            let (kind, status) = match e.etype() {
                ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                    (UpstreamErrorKind::Timeout, 504)
                }
                ConnectRefused | ConnectNoRoute | ConnectError | SocketError | BindError => {
                    (UpstreamErrorKind::Connect, 502)
                }
                TLSHandshakeFailure | InvalidCert | HandshakeError => (UpstreamErrorKind::Tls, 502),
                ConnectionClosed | ReadError | WriteError => (UpstreamErrorKind::Reset, 502),
                _ => (UpstreamErrorKind::Other, 502),
            };
            ctx.upstream_error = Some(kind);
            let err = if status == 504 {
                ApiError::new(
                    504,
                    "gateway_timeout",
                    "The app's upstream did not answer in time",
                )
            } else {
                ApiError::new(
                    502,
                    "bad_gateway",
                    "The app's upstream could not be reached",
                )
            }
            .with_details(serde_json::json!({ "kind": kind.as_str() }));
            (status, err)
        }
        ErrorSource::Downstream => match e.etype() {
            ReadError | WriteError | ConnectionClosed => {
                (0, ApiError::bad_request("client went away"))
            }
            ReadTimedout | WriteTimedout => (
                408,
                ApiError::new(408, "request_timeout", "Request timed out"),
            ),
            _ => (400, ApiError::bad_request("Malformed request")),
        },
        ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
            ConnectNoRoute => {
                ctx.upstream_error = Some(UpstreamErrorKind::Connect);
                (
                    502,
                    ApiError::new(
                        502,
                        "bad_gateway",
                        "The app's upstream could not be resolved",
                    ),
                )
            }
            _ => (500, ApiError::internal()),
        },
    }
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
