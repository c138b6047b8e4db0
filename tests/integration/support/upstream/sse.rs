//! The upstream's streaming responses: SSE bodies written event by event
//! from a channel, so every event leaves the upstream on its own and a test
//! can tell whether the gateway passed it on at once or held it back.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::Body;

/// How often the long-lived `GET /mcp` stream emits an event.
const GET_STREAM_EVERY: Duration = Duration::from_millis(200);

/// `count` progress notifications `delay` apart, then the JSON-RPC result.
pub(super) fn progress_events(id: Value, count: u64, delay: Duration) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for i in 1..=count {
            if i > 1 {
                tokio::time::sleep(delay).await;
            }
            let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": "stream", "progress": i, "total": count}});
            if tx.send(event(&note)).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(delay).await;
        let done = json!({"jsonrpc": "2.0", "id": id,
            "result": {"content": [{"type": "text", "text": format!("streamed {count} events")}]}});
        let _ = tx.send(event(&done)).await;
    });
    rx
}

/// The `GET /mcp` stream: a comment right away, then an event every 200 ms
/// until the client goes away (the send fails once hyper drops the body).
pub(super) fn ticker() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if tx.send(Bytes::from_static(b": ping\n\n")).await.is_err() {
            return;
        }
        for seq in 1u64.. {
            tokio::time::sleep(GET_STREAM_EVERY).await;
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": {"seq": seq}}});
            if tx.send(event(&note)).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// The `GET /quiet` stream: event `seq` 1 at once, then one every `gap`;
/// with `split`, each event leaves in two writes `gap / 2` apart.
pub(super) fn quiet(gap: Duration, split: bool) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for seq in 1u64.. {
            if seq > 1 {
                tokio::time::sleep(gap).await;
            }
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": {"seq": seq}}});
            let whole = event(&note);
            let parts = if split {
                let (a, b) = whole.split_at(whole.len() / 2);
                vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]
            } else {
                vec![whole]
            };
            for (i, part) in parts.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(gap / 2).await;
                }
                if tx.send(part).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

/// A `text/event-stream` response whose body is written chunk by chunk as the
/// channel yields, so each event is flushed on its own.
pub(super) fn sse(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(ChannelBody(rx).boxed())
        .expect("static response parts")
}

/// A response body fed by a channel; ends when every sender is gone.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
