//! The OTLP/HTTP exporter (OTLP specification §"OTLP/HTTP"), wrapped so
//! what becomes of the spans is visible: `drio_trace_spans_total{result}`
//! counts spans delivered (`exported`) and lost to a failed export
//! (`failed`), and a collector that starts or stops failing is logged once
//! per change, not once per batch (an outage must not flood the log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Debug)]
pub(super) struct Counted<E> {
    inner: E,
    exported: IntCounter,
    failed: IntCounter,
    failing: AtomicBool,
}

/// Registers `drio_trace_spans_total` and wraps `inner`.
pub(super) fn counted<E>(inner: E, registry: &Registry) -> Result<Counted<E>, prometheus::Error> {
    let spans = IntCounterVec::new(
        Opts::new(
            "drio_trace_spans_total",
            "Spans handed to the OTLP exporter, by result (exported, failed)",
        ),
        &["result"],
    )?;
    registry.register(Box::new(spans.clone()))?;
    Ok(Counted {
        inner,
        exported: spans.with_label_values(&["exported"]),
        failed: spans.with_label_values(&["failed"]),
        failing: AtomicBool::new(false),
    })
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.exported.inc_by(n);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("trace export to the collector works again");
                }
            }
            Err(e) => {
                self.failed.inc_by(n);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "trace export to the collector failed; spans are dropped until it answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
