//! A tiny OpenTelemetry collector: OTLP/HTTP (OTLP specification §"OTLP/HTTP
//! Request") `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`
//! body, decoded with prost; the spans are kept for the tests to inspect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One exported span, ids as lowercase hex (`parent` empty for a root).
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    /// OTLP `SpanKind` (2 server, 3 client, 1 internal).
    pub kind: i32,
    pub attributes: HashMap<String, String>,
    pub service_name: Option<String>,
}

impl ExportedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// (trace id, parent id, flags) of a `traceparent`.
pub fn parse(tp: &str) -> (String, String, String) {
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// The spans called `name` in `trace`.
pub fn named<'a>(spans: &'a [ExportedSpan], trace: &str, name: &str) -> Vec<&'a ExportedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == trace && s.name == name)
        .collect()
}

/// The one span called `name` in `trace` (fails on none or several).
pub fn one<'a>(spans: &'a [ExportedSpan], trace: &str, name: &str) -> &'a ExportedSpan {
    let found = named(spans, trace, name);
    assert_eq!(found.len(), 1, "one {name} span in {trace}: {spans:#?}");
    found[0]
}

/// Whether `trace` has its request, token validation and upstream spans.
pub fn has_tree(spans: &[ExportedSpan], trace: &str) -> bool {
    ["request", "token validation", "upstream"]
        .iter()
        .all(|n| !named(spans, trace, n).is_empty())
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
    server: JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind otlp");
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let spans = spans.clone();
            super::http_server::spawn(listener, move |req| {
                let spans = spans.clone();
                async move { handle(&spans, req).await }
            })
        };
        OtlpReceiver {
            addr,
            spans,
            server,
        }
    }

    /// The traces endpoint, for `[tracing] otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Polls until `done` holds for the spans received so far (the gateway
    /// exports in batches, off the request path).
    pub async fn spans_until(&self, done: impl Fn(&[ExportedSpan]) -> bool) -> Vec<ExportedSpan> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "spans so far: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

async fn handle(spans: &Mutex<Vec<ExportedSpan>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let ok = req.method() == http::Method::POST
        && req.uri().path() == "/v1/traces"
        && req
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let (true, Ok(body)) = (ok, body) else {
        return Response::builder()
            .status(400)
            .body(Full::default())
            .unwrap();
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return Response::builder()
            .status(400)
            .body(Full::default())
            .unwrap();
    };
    let mut out = spans.lock().unwrap();
    for rs in export.resource_spans {
        let service_name = rs.resource.as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
        });
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(ExportedSpan {
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                    service_name: service_name.clone(),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse (all accepted).
    Response::builder()
        .status(200)
        .header("content-type", "application/x-protobuf")
        .body(Full::default())
        .unwrap()
}
