//! Every Prometheus metric the proxy records, in one registry served on the
//! admin listener.
//!
//! Label values come from closed sets (app slugs from configuration, a fixed
//! list of methods, status classes, error kinds), never from request data, so
//! no token, user id or raw path can reach a label and cardinality stays
//! bounded.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label value used for requests answered by the gateway itself.
pub(crate) const LOCAL_APP: &str = "_gateway";
/// Label value used for requests that matched no app.
pub(crate) const NO_APP: &str = "_none";

pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) requests: IntCounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) stream_duration: HistogramVec,
    pub(crate) upstream_errors: IntCounterVec,
    pub(crate) inflight: IntGauge,
    pub(crate) open_streams: IntGauge,
    pub(crate) origin_rejections: IntCounterVec,
    /// Handles of requests answered locally / matching no app.
    local_app: OnceLock<AppMetrics>,
    no_app: OnceLock<AppMetrics>,
}

/// The method labels, in [`method_index`] order.
const METHODS: [&str; 8] = [
    "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "OTHER",
];
/// The status classes, in [`status_index`] order.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// One app's per-request metric handles, resolved on first use rather than
/// with `with_label_values` (a hash of every label and a lock) per request.
/// Series are still created only when first used, so `/metrics` shows the
/// same series as before.
pub(crate) struct AppMetrics {
    app: String,
    duration: OnceLock<Histogram>,
    stream_duration: OnceLock<Histogram>,
    requests: [[OnceLock<IntCounter>; STATUS_CLASSES.len()]; METHODS.len()],
}

impl AppMetrics {
    pub(crate) fn new(app: &str) -> Self {
        Self {
            app: app.to_string(),
            duration: OnceLock::new(),
            stream_duration: OnceLock::new(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Counts one finished request and observes its duration.
    pub(crate) fn finished(
        &self,
        m: &Metrics,
        method: &http::Method,
        status: u16,
        streaming: bool,
        secs: f64,
    ) {
        let (mi, si) = (method_index(method), status_index(status));
        self.requests[mi][si]
            .get_or_init(|| {
                m.requests
                    .with_label_values(&[self.app.as_str(), METHODS[mi], STATUS_CLASSES[si]])
            })
            .inc();
        // Long-lived SSE streams would swamp request latency; they get their own histogram.
        let (cell, vec) = if streaming {
            (&self.stream_duration, &m.stream_duration)
        } else {
            (&self.duration, &m.duration)
        };
        cell.get_or_init(|| vec.with_label_values(&[self.app.as_str()]))
            .observe(secs);
    }
}

fn method_index(m: &http::Method) -> usize {
    let label = method_label(m);
    METHODS
        .iter()
        .position(|x| *x == label)
        .unwrap_or(METHODS.len() - 1)
}

fn status_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// Upstream failure kinds (label `kind` of `drio_upstream_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamErrorKind {
    Connect,
    Timeout,
    Tls,
    Reset,
    Other,
}

impl UpstreamErrorKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Reset => "reset",
            Self::Other => "other",
        }
    }
}

/// Maps a method to a closed label set.
pub(crate) fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::DELETE => "DELETE",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "drio_requests_total",
                "Requests by app, method and status class",
            ),
            &["app", "method", "status_class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "drio_request_duration_seconds",
                "Time from request to end of response",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 120.0,
            ]),
            &["app"],
        )?;
        let stream_duration = HistogramVec::new(
            HistogramOpts::new(
                "drio_stream_duration_seconds",
                "Lifetime of server-sent event responses",
            )
            .buckets(vec![0.1, 1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0]),
            &["app"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "drio_upstream_errors_total",
                "Upstream failures by app and kind",
            ),
            &["app", "kind"],
        )?;
        let inflight = IntGauge::new("drio_inflight_requests", "Requests being served now")?;
        let open_streams =
            IntGauge::new("drio_open_streams", "Server-sent event streams open now")?;
        let origin_rejections = IntCounterVec::new(
            Opts::new(
                "drio_origin_rejections_total",
                "Requests refused for a disallowed Origin",
            ),
            &["app"],
        )?;
        let build = IntGaugeVec::new(
            Opts::new("drio_build_info", "Build information"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(stream_duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(inflight.clone()),
            Box::new(open_streams.clone()),
            Box::new(origin_rejections.clone()),
            Box::new(build),
        ] {
            registry.register(c)?;
        }
        Ok(Self {
            registry,
            requests,
            duration,
            stream_duration,
            upstream_errors,
            inflight,
            open_streams,
            origin_rejections,
            local_app: OnceLock::new(),
            no_app: OnceLock::new(),
        })
    }

    /// Handles for requests the gateway answered itself (`_gateway`) or
    /// that matched no app (`_none`).
    pub(crate) fn unrouted(&self, local: bool) -> &AppMetrics {
        if local {
            self.local_app.get_or_init(|| AppMetrics::new(LOCAL_APP))
        } else {
            self.no_app.get_or_init(|| AppMetrics::new(NO_APP))
        }
    }

    /// The Prometheus text exposition of every registered metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new().unwrap();
        m.requests
            .with_label_values(&["notes", "POST", "2xx"])
            .inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"drio_requests_total{app="notes",method="POST",status_class="2xx"} 1"#),
            "{text}"
        );
        assert!(text.contains("drio_build_info{version="), "{text}");
    }

    #[test]
    fn app_handles_count_like_label_lookups() {
        let m = Metrics::new().unwrap();
        let a = AppMetrics::new("notes");
        a.finished(&m, &http::Method::POST, 200, false, 0.001);
        a.finished(&m, &http::Method::POST, 201, false, 0.001);
        a.finished(
            &m,
            &http::Method::from_bytes(b"BREW").unwrap(),
            0,
            true,
            2.0,
        );
        m.unrouted(true)
            .finished(&m, &http::Method::GET, 404, false, 0.0);
        let text = String::from_utf8(m.render()).unwrap();
        for want in [
            r#"drio_requests_total{app="notes",method="POST",status_class="2xx"} 2"#,
            r#"drio_requests_total{app="notes",method="OTHER",status_class="none"} 1"#,
            r#"drio_requests_total{app="_gateway",method="GET",status_class="4xx"} 1"#,
            r#"drio_request_duration_seconds_count{app="notes"} 2"#,
            r#"drio_stream_duration_seconds_count{app="notes"} 1"#,
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert!(
            !text.contains(r#"method="GET",status_class="2xx""#),
            "{text}"
        );
        assert_eq!(status_index(503), 4);
        assert_eq!(METHODS[method_index(&http::Method::PATCH)], "PATCH");
    }

    #[test]
    fn labels_are_closed_sets() {
        assert_eq!(
            method_label(&http::Method::from_bytes(b"BREW").unwrap()),
            "OTHER"
        );
        assert_eq!(status_class(503), "5xx");
    }
}
