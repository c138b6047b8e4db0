//! The one `ProxyHttp` implementation. Each phase is thin and hands off:
//!
//! - `request_filter`: request id, local routes ([`local`]), app routing
//!   ([`route`]), Origin check ([`origin`]), bearer validation;
//! - `upstream_peer`: the routed app's upstream;
//! - `upstream_request_filter`: path rewrite, `Host`, forwarding headers, and
//!   removal of the client's credentials (no token passthrough);
//! - `response_filter`: request id, stream accounting;
//! - `fail_to_proxy`: upstream failures as 502/504 envelopes;
//! - `logging`: metrics, the access log line, the audit event, and the end
//!   of the request's trace ([`crate::telemetry`], started first thing in
//!   `request_filter`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};

use forward::peer_for;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use crate::errors::ApiError;
use crate::metrics::{method_label, UpstreamErrorKind};
use crate::state::State;

mod authn;
pub(crate) mod cors;
pub(crate) mod ctx;
mod forward;
pub mod jsonrpc;
mod limited;
pub mod local;
pub(crate) mod origin;
mod prepare;
pub(crate) mod request_id;
pub(crate) mod respond;
mod stream;

pub(crate) use ctx::Ctx;

pub(crate) struct Gateway {
    state: Arc<State>,
    /// The runtime the state's store connections live on (see
    /// [`Gateway::serve_local`]).
    state_runtime: tokio::runtime::Handle,
    /// Upstream connections of [`stream`]'s long-lived responses (its own
    /// pool: those connections are rarely reusable anyway).
    stream_connector: pingora::connectors::http::v1::Connector,
}

impl Gateway {
    pub(crate) fn new(state: Arc<State>, state_runtime: tokio::runtime::Handle) -> Self {
        Self {
            state,
            state_runtime,
            stream_connector: pingora::connectors::http::v1::Connector::new(None),
        }
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
        if let Some(t) = &ctx.trace {
            t.route("local", None);
        }
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
            headers: local::headers_with_host(head),
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
        // The gateway's own routes (OAuth, management API) make several
        // store round trips each. The Redis connection's driver task lives on
        // the state's runtime, so awaiting it from a Pingora thread costs two
        // cross-thread wake-ups per command; running the whole handler there
        // costs two per request instead. Spawned, a handler also finishes
        // its writes when the client hangs up mid-request.
        let state = self.state.clone();
        let cx = ctx.trace.as_ref().map(|t| t.context().clone());
        let handler = self
            .state_runtime
            .spawn(crate::telemetry::within(cx, async move {
                local::dispatch(&state, &req).await
            }));
        let mut resp = match handler.await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "local handler failed");
                crate::web::LocalResponse::api_error(&ApiError::internal(), &ctx.request_id)
            }
        };
        if public_cors {
            resp.headers.extend(cors::public_headers());
        }
        respond::write(session, &ctx.request_id, resp).await?;
        Ok(true)
    }

    /// `request_filter` proper (run inside the request's trace context).
    async fn filter_request(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        if crate::drain::is_draining() {
            // Stopping or handing over: this connection's last response.
            session.set_keepalive(None);
        }
        let head = session.req_header();
        ctx.request_id = request_id::from_client_or_new(
            head.headers.get("x-request-id").map(HeaderValue::as_bytes),
        );
        if local::is_local_path(head.uri.path()) {
            // Boxed, like every branch off the proxied path below: an
            // `async_trait` phase allocates its whole future per request, so
            // the largest branch would set the size (and the copies) of
            // every proxied request's.
            return Box::pin(self.serve_local(session, ctx)).await;
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
            if let Some(t) = &ctx.trace {
                t.route("unrouted", None);
            }
            let err = ApiError::not_found(if crate::catalog::route::is_app_path(path) {
                "App"
            } else {
                "Route"
            });
            respond::error(session, &ctx.request_id, &err).await?;
            return Ok(true);
        };
        let app = &route.app;
        if let Some(t) = &ctx.trace {
            t.route("app", Some(&app.id));
        }

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
                    let (err, challenge) = authn::refusal(&e, &route, &self.state);
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

        ctx.upstream_uri = Some(match (&route.hot.mcp_uri, head.uri.query()) {
            // The MCP endpoint: the target parsed when the route was built.
            (Some(mcp), None) if rest == app.mcp_path => mcp.clone(),
            (_, query) => {
                let mut uri = String::with_capacity(app.upstream.base_path.len() + rest.len() + 64);
                uri.push_str(&app.upstream.base_path);
                uri.push_str(rest);
                if let Some(q) = query {
                    uri.push('?');
                    uri.push_str(q);
                }
                http::Uri::try_from(uri)
                    .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "upstream uri", e))?
            }
        });
        ctx.route = Some(route.clone());
        if let Some(refusal) = prepare::prepare_upstream(session, &self.state, ctx, &route).await? {
            respond::write(session, &ctx.request_id, refusal).await?;
            return Ok(true);
        }
        if stream::wants_stream(session.req_header()) {
            Box::pin(self.proxy_stream(session, ctx)).await?;
            return Ok(true);
        }
        Ok(false)
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
        let head = session.req_header();
        ctx.trace = crate::telemetry::start_request(
            &head.method,
            &head.headers,
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            &self.state.config.server.trusted_proxies,
        );
        // The request span is the current context of every phase below, so
        // token validation, IdP calls and credential resolution find it.
        let cx = ctx.trace.as_ref().map(|t| t.context().clone());
        crate::telemetry::within(cx, self.filter_request(session, ctx)).await
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
        if let Some(t) = ctx.trace.as_mut() {
            t.begin_upstream(&route.app.upstream.host);
        }
        peer_for(route).map(Box::new)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        self.rewrite_upstream_request(session, upstream, ctx)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        self.filter_response(resp, ctx)?;
        if ctx.url_elicitation_session {
            // Once per session, boxed: the store call would otherwise size
            // every response's phase future.
            Box::pin(prepare::remember_url_elicitation(&self.state, resp, ctx)).await;
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
        let handles = match &ctx.route {
            Some(r) => &r.hot.metrics,
            None => m.unrouted(ctx.local),
        };
        handles.finished(
            m,
            &session.req_header().method,
            status,
            ctx.streaming,
            elapsed.as_secs_f64(),
        );
        if let Some(kind) = ctx.upstream_error {
            m.upstream_errors
                .with_label_values(&[app, kind.as_str()])
                .inc();
        }
        let (route, principal) = (ctx.route.as_deref(), ctx.principal.as_deref());
        let audit = &self.state.audit;
        let trace = ctx.trace.as_deref();
        let trusted = &self.state.config.server.trusted_proxies;
        audit.record(
            session,
            route,
            principal,
            &ctx.request_id,
            &ctx.audit,
            status,
            || match trace {
                Some(t) => Some(t.trace_id()),
                // Tracing off: a trusted proxy's trace id is still worth
                // correlating on; anyone else's is not adopted.
                None => session
                    .client_addr()
                    .and_then(|a| a.as_inet())
                    .filter(|a| crate::web::client_addr::is_trusted(a.ip(), trusted))
                    .and_then(|_| {
                        crate::audit::event::trace_id(
                            session
                                .req_header()
                                .headers
                                .get("traceparent")
                                .map(|v| v.as_bytes()),
                        )
                    }),
            },
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
        if let Some(t) = ctx.trace.take() {
            t.finish(status, ctx.upstream_error.map(UpstreamErrorKind::as_str));
        }
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
