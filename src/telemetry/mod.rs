//! OpenTelemetry traces of the gateway's requests, exported over OTLP/HTTP
//! (protobuf bodies; OTLP specification §"OTLP/HTTP") by a batch processor
//! on its own thread: an exporter that is slow or down only fills a bounded
//! queue, whose overflow is dropped, and never blocks a request.
//!
//! Spans: `request` (server) per request, with children `token validation`,
//! `idp`, `credential resolution` and `upstream` (client). The W3C Trace
//! Context `traceparent`/`tracestate` (W3C Recommendation "Trace Context")
//! of a request is adopted only from a peer in `server.trusted_proxies`:
//! anyone else could otherwise pick the trace id that operators correlate
//! on, or force sampling. The upstream always receives the upstream span's
//! context, never a client's.
//!
//! Off (no `[tracing] otlp_endpoint`), [`start_request`] returns `None` after
//! one `OnceLock` read and nothing else is created on the request path.

pub(crate) mod config;
mod export;

use std::net::IpAddr;
use std::sync::OnceLock;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span,
};
use opentelemetry_sdk::Resource;

pub(crate) use config::TracingConfig;

/// Why tracing could not start (a startup error: fail closed rather than
/// run without the traces the operator asked for).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TelemetryError {
    #[error("tracing.headers_env.{header}: environment variable {var} is not set")]
    MissingHeaderEnv { header: String, var: String },
    #[error("tracing: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("tracing: cannot register its metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The provider (kept alive: dropping it shuts the exporter down) and the
/// tracer every span comes from. Unset: tracing is off.
static TRACING: OnceLock<(SdkTracerProvider, SdkTracer)> = OnceLock::new();

/// Starts the exporter. Idempotent: a second call (tests building several
/// states in one process) keeps the first.
pub(crate) fn init(
    cfg: Option<&TracingConfig>,
    registry: &prometheus::Registry,
) -> Result<(), TelemetryError> {
    let Some(cfg) = cfg else {
        return Ok(());
    };
    if TRACING.get().is_some() {
        return Ok(());
    }
    let mut headers = std::collections::HashMap::new();
    for (name, var) in &cfg.headers_env {
        let value = std::env::var(var).map_err(|_| TelemetryError::MissingHeaderEnv {
            header: name.clone(),
            var: var.clone(),
        })?;
        headers.insert(name.clone(), value);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.endpoint.clone())
        .with_timeout(std::time::Duration::from_secs(5))
        .with_headers(headers)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let exporter = export::counted(exporter, registry)?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(cfg.queue)
        .with_max_export_batch_size(cfg.queue.min(512))
        .with_scheduled_delay(cfg.batch_delay)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    // Parent-based: a sampled (trusted) parent is honoured, an unsampled one
    // too; new traces are kept at the configured ratio.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio)));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("drio-gateway");
    let _ = TRACING.set((provider, tracer));
    Ok(())
}

/// Sends what is queued (graceful shutdown).
pub(crate) fn shutdown() {
    if let Some((provider, _)) = TRACING.get() {
        let _ = provider.force_flush();
    }
}

fn tracer() -> Option<&'static SdkTracer> {
    TRACING.get().map(|(_, t)| t)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The `traceparent`/`tracestate` pair to send upstream.
#[derive(Default)]
pub(crate) struct Outgoing(pub(crate) Vec<(&'static str, String)>);

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        // An empty `tracestate` says nothing (W3C Trace Context §3.3).
        if value.is_empty() {
            return;
        }
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((key, value));
    }
}

/// The trace of one request, carried in the proxy's `Ctx`.
pub(crate) struct RequestTrace {
    /// Holds the `request` span: the parent of every child span.
    cx: Context,
    upstream: Option<Span>,
}

/// Starts the `request` span, as a child of the client's `traceparent` only
/// when `peer` is a trusted proxy. `None` when tracing is off.
pub(crate) fn start_request(
    method: &http::Method,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted: &[ipnet::IpNet],
) -> Option<Box<RequestTrace>> {
    let tracer = tracer()?;
    let parent = if peer.is_some_and(|p| crate::web::client_addr::is_trusted(p, trusted)) {
        TraceContextPropagator::new().extract(&Headers(headers))
    } else {
        Context::new()
    };
    let span = tracer
        .span_builder("request")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new(
            "http.request.method",
            method.as_str().to_owned(),
        )])
        .start_with_context(tracer, &parent);
    Some(Box::new(RequestTrace {
        cx: parent.with_span(span),
        upstream: None,
    }))
}

impl RequestTrace {
    /// The context whose active span is `request`.
    pub(crate) fn context(&self) -> &Context {
        &self.cx
    }

    /// The trace id (32 lowercase hex digits), for the audit log.
    pub(crate) fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Where the request was routed: `local`, `app` (or none).
    pub(crate) fn route(&self, kind: &'static str, app_id: Option<&str>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("drio.route.kind", kind));
        if let Some(id) = app_id {
            span.set_attribute(KeyValue::new("drio.app.id", id.to_owned()));
        }
    }

    /// Starts the `upstream` span (before connecting, so a connect failure
    /// is in it). A retry ends the previous attempt's span first.
    pub(crate) fn begin_upstream(&mut self, host: &str) {
        let Some(tracer) = tracer() else {
            return;
        };
        if let Some(mut old) = self.upstream.take() {
            old.set_status(Status::error("retried"));
            old.end();
        }
        self.upstream = Some(
            tracer
                .span_builder("upstream")
                .with_kind(SpanKind::Client)
                .with_attributes([KeyValue::new("server.address", host.to_owned())])
                .start_with_context(tracer, &self.cx),
        );
    }

    /// The `upstream` span's context as the headers the upstream receives
    /// (the span is started here when [`Self::begin_upstream`] was not).
    pub(crate) fn upstream_headers(&mut self, host: &str) -> Outgoing {
        if self.upstream.is_none() {
            self.begin_upstream(host);
        }
        let mut out = Outgoing::default();
        if let Some(span) = &self.upstream {
            let cx = Context::new().with_remote_span_context(span.span_context().clone());
            TraceContextPropagator::new().inject_context(&cx, &mut out);
        }
        out
    }

    /// The upstream answered with `status`: its span ends here (a stream's
    /// body may last hours; the span measures the time to its head).
    pub(crate) fn upstream_answered(&mut self, status: u16) {
        if let Some(mut span) = self.upstream.take() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                span.set_status(Status::error(""));
            }
            span.end();
        }
    }

    /// Ends the request (and an upstream span that got no answer).
    pub(crate) fn finish(mut self, status: u16, upstream_error: Option<&'static str>) {
        if let Some(mut span) = self.upstream.take() {
            if let Some(kind) = upstream_error {
                span.set_attribute(KeyValue::new("error.type", kind));
            }
            span.set_status(Status::error(upstream_error.unwrap_or("no answer")));
            span.end();
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 || status == 0 {
            span.set_status(Status::error(""));
        }
        span.end();
    }
}

/// A child span of the current context's span (set by the proxy around its
/// request phases); ends when dropped. `None` when tracing is off or the
/// caller is outside a traced request. It holds its own context, so work
/// run [`within`] it nests below it.
pub(crate) struct Child(Context);

pub(crate) fn child(name: &'static str, kind: SpanKind) -> Option<Child> {
    let tracer = tracer()?;
    let cx = Context::current();
    if !cx.has_active_span() {
        return None;
    }
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(tracer, &cx);
    Some(Child(cx.with_span(span)))
}

impl Child {
    pub(crate) fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.0.span().set_attribute(KeyValue::new(key, value));
    }

    pub(crate) fn error(&mut self, why: &'static str) {
        self.0.span().set_status(Status::error(why));
    }

    /// The context whose active span is this one.
    pub(crate) fn context(&self) -> Context {
        self.0.clone()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // The span lives in the context (shared with clones handed to
        // `within`): end it explicitly when its owner is done.
        self.0.span().end();
    }
}

/// Sets an attribute on the current context's span (the innermost span a
/// caller runs [`within`]), for code that does not hold its span; nothing
/// when tracing is off.
pub(crate) fn note(key: &'static str, value: impl Into<opentelemetry::Value>) {
    if tracer().is_none() {
        return;
    }
    let cx = Context::current();
    if cx.has_active_span() {
        cx.span().set_attribute(KeyValue::new(key, value));
    }
}

/// Sets `key` on an optional child span (the common case at call sites).
pub(crate) fn set(
    span: &mut Option<Child>,
    key: &'static str,
    value: impl Into<opentelemetry::Value>,
) {
    if let Some(s) = span {
        s.set(key, value);
    }
}

/// Records on a `token validation` span the `layer` that answered (`l1`,
/// `l2`, else `verify` with the `verifier`: jwt, introspection, userinfo)
/// and the `outcome` (the `drio_token_validations_total` result label).
pub(crate) fn validated(span: &mut Option<Child>, source: &'static str, outcome: &'static str) {
    if let Some(s) = span {
        if matches!(source, "l1" | "l2") {
            s.set("layer", source);
        } else {
            s.set("layer", "verify");
            s.set("verifier", source);
        }
        s.set("outcome", outcome);
    }
}

/// Runs `fut` with `cx` as the current context (for [`child`]) when tracing
/// this request; unchanged otherwise.
///
/// Not an `async fn`: one would hold `fut` as its argument and again as the
/// awaited value, doubling the size of every future it wraps (the whole
/// request filter among them) and copying it once more per request. The
/// `Either` is `fut` plus a tag when tracing is off.
pub(crate) fn within<F: std::future::Future>(
    cx: Option<Context>,
    fut: F,
) -> futures::future::Either<opentelemetry::context::WithContext<F>, F> {
    use futures::future::Either;
    use opentelemetry::context::FutureExt as _;
    match cx {
        Some(cx) => Either::Left(fut.with_context(cx)),
        None => Either::Right(fut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tracing off (lib tests never call `init` with an endpoint): nothing
    /// is created for a request, even one with a traceparent.
    #[test]
    fn off_creates_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let trusted = ["127.0.0.0/8".parse().unwrap()];
        let peer = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(start_request(&http::Method::GET, &headers, peer, &trusted).is_none());
        assert!(child("token validation", SpanKind::Internal).is_none());
        assert!(init(None, &prometheus::Registry::new()).is_ok());
        assert!(tracer().is_none());
    }
}
