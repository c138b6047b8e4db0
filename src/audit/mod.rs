//! The audit log of MCP calls (issue 17, item 1): one structured event per
//! JSON-RPC message sent through an app — MCP's `tools/call`,
//! `resources/read`, `prompts/get` and every other request or notification
//! (MCP specification 2025-06-18, "Base Protocol" and "Transports":
//! Streamable HTTP POSTs a JSON-RPC 2.0 message or batch, JSON-RPC 2.0 §4
//! and §6).
//!
//! Owns: what an event says ([`event`]), the `[audit]` and per-app
//! configuration ([`config`]), the writer ([`sink`]) and the management
//! route that pages through the store's copy ([`api`]). The proxy collects
//! into [`Collected`] (in its `Ctx`) while it handles the request and calls
//! [`Auditor::record`] once from its `logging` phase. Events go to a bounded
//! queue drained by a writer thread: when the queue is full the event is
//! dropped and counted in `drio_audit_events_dropped_total`, never waited
//! for.
//!
//! Arguments and results are never recorded unless the app opts in
//! (`include_arguments`), and then only after its JSON Pointer (RFC 6901)
//! redactions are applied. Results are never recorded.

use std::sync::Arc;
use std::time::Instant;

use pingora::proxy::Session;
use prometheus::{IntCounter, Registry};
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::catalog::route::Route;
use crate::metrics::status_class;
use crate::store::Store;

pub(crate) mod api;
pub(crate) mod config;
pub(crate) mod event;
pub(crate) mod sink;

pub(crate) use event::{Event, Message};

/// Per-request facts the proxy gathers for the audit event.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// The body's messages, when it was read (see `proxy::prepare`).
    pub(crate) messages: Vec<Message>,
    /// The JSON-RPC error code of a refusal the gateway answered itself.
    pub(crate) refusal_code: Option<i64>,
    /// When the request was handed to the upstream.
    pub(crate) upstream_started: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    #[error("cannot register the audit metric: {0}")]
    Metric(#[from] prometheus::Error),
    #[error("cannot start the audit writer: {0}")]
    Io(#[from] std::io::Error),
    #[error("the audit store sink needs a Tokio runtime")]
    NoRuntime,
}

/// The handle the proxy records through.
pub(crate) struct Auditor {
    tx: Option<mpsc::Sender<sink::Queued>>,
    dropped: IntCounter,
}

impl Auditor {
    /// Starts the writer when a sink is configured. The store sink writes
    /// through the current Tokio runtime (the gateway's background one).
    pub(crate) fn start(
        cfg: &config::AuditConfig,
        registry: &Registry,
        store: &Arc<dyn Store>,
    ) -> Result<Self, AuditError> {
        let dropped = IntCounter::new(
            "drio_audit_events_dropped_total",
            "Audit events dropped because the audit writer's queue was full",
        )?;
        registry.register(Box::new(dropped.clone()))?;
        let tx = if cfg.active() {
            let (tx, rx) = mpsc::channel(cfg.queue);
            let store = match cfg.store_max_entries {
                Some(max_entries) => Some(sink::StoreSink {
                    store: Arc::clone(store),
                    runtime: tokio::runtime::Handle::try_current()
                        .map_err(|_| AuditError::NoRuntime)?,
                    max_entries,
                }),
                None => None,
            };
            sink::spawn(cfg, store, rx)?;
            Some(tx)
        } else {
            None
        };
        Ok(Self { tx, dropped })
    }

    /// Whether events are written at all (the proxy reads bodies only then).
    pub(crate) fn active(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues the events of one finished request through an app (`route`
    /// None: not an app's request, nothing to audit).
    // The request's parts as the proxy holds them; the trace id is a
    // closure so nothing is formatted when auditing is off.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        session: &Session,
        route: Option<&Route>,
        principal: Option<&Principal>,
        request_id: &str,
        collected: &Collected,
        status: u16,
        trace_id: impl FnOnce() -> Option<String>,
    ) {
        let (Some(tx), Some(route)) = (&self.tx, route) else {
            return;
        };
        let head = session.req_header();
        let request_bytes = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(session.body_bytes_read() as u64);
        let base = Event {
            kind: "audit",
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id: request_id.to_owned(),
            // The request's accepted or generated trace id (see
            // [`crate::telemetry`]), never an untrusted client's.
            trace_id: trace_id(),
            app_id: route.app.id.clone(),
            app: route.app.slug.clone(),
            user: principal.map(|p| p.subject.clone()),
            client_id: principal.and_then(|p| p.client_id.clone()),
            http_method: head.method.as_str().to_owned(),
            jsonrpc_method: None,
            jsonrpc_id: None,
            name: None,
            batch_index: None,
            batch_size: None,
            status,
            status_class: status_class(status),
            jsonrpc_error: collected.refusal_code,
            upstream_ms: collected
                .upstream_started
                .map(|t| t.elapsed().as_secs_f64() * 1000.0),
            request_bytes,
            response_bytes: session.body_bytes_sent() as u64,
            arguments: None,
        };
        let msgs = &collected.messages;
        let events: Vec<Event> = if msgs.is_empty() {
            vec![base]
        } else {
            let batch = msgs.len() > 1;
            msgs.iter()
                .enumerate()
                .map(|(i, m)| Event {
                    jsonrpc_method: m.method.clone(),
                    jsonrpc_id: m.id.clone(),
                    name: m.name.clone(),
                    batch_index: batch.then_some(i),
                    batch_size: batch.then_some(msgs.len()),
                    arguments: m.arguments.clone(),
                    ..base.clone()
                })
                .collect()
        };
        for e in events {
            let Ok(mut line) = serde_json::to_vec(&e) else {
                continue;
            };
            line.push(b'\n');
            let queued = sink::Queued {
                app_id: route.app.id.clone(),
                line,
            };
            self.enqueue(tx, queued);
        }
    }

    /// Never waits: a full (or closed) queue drops the event and counts it.
    fn enqueue(&self, tx: &mpsc::Sender<sink::Queued>, queued: sink::Queued) {
        if tx.try_send(queued).is_err() {
            self.dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = mpsc::channel(2);
        let auditor = Auditor {
            tx: Some(tx.clone()),
            dropped: IntCounter::new("t", "t").unwrap(),
        };
        let q = || sink::Queued {
            app_id: "a".into(),
            line: b"{}\n".to_vec(),
        };
        for _ in 0..5 {
            auditor.enqueue(&tx, q());
        }
        assert_eq!(auditor.dropped.get(), 3);
    }
}
