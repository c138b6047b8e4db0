//! Long-lived server-sent event streams: the MCP Streamable HTTP `GET`
//! (MCP spec 2025-06-18, "Listening for Messages from the Server"), whose
//! body is `text/event-stream` (HTML Living Standard §9.2, "Server-sent
//! events") and may be silent for hours between notifications.
//!
//! Pingora's proxy loop applies one read timeout to the whole upstream
//! response and has no hook that runs while nothing arrives, so an idle
//! notification stream would be cut after `read_timeout_ms` and no heartbeat
//! could be written. Requests that ask for a stream ([`wants_stream`]) are
//! therefore proxied here, with the same request rewriting, credential
//! injection and response headers as the main loop ([`super::Gateway`]):
//!
//! - the response headers must still arrive within the app's
//!   `read_timeout_ms` (504 otherwise);
//! - a `text/event-stream` body is then read with the app's stream idle
//!   timeout (`stream_idle_timeout_seconds`, none by default: the stream
//!   lives as long as both ends do); any other body keeps `read_timeout_ms`;
//! - with `stream_heartbeat_seconds`, a `: keep-alive` comment is written
//!   after that much upstream silence, but only between events: a comment
//!   inside an event the upstream is still writing would corrupt it;
//! - the stream ends as soon as the client goes away (the upstream
//!   connection is dropped with it).

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Version};
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::protocols::http::HttpTask;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{peer_for, Ctx, Gateway};

/// The SSE comment written during upstream silence (HTML §9.2.6: a line
/// starting with a colon is ignored, a blank line ends the block; a block
/// without `data` dispatches no event).
pub(crate) const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// Whether this request opens a server-to-client stream: a `GET` that accepts
/// `text/event-stream` and carries no body and no upgrade.
pub(crate) fn wants_stream(head: &RequestHeader) -> bool {
    head.method == Method::GET
        && head
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| contains(v.as_bytes(), b"text/event-stream"))
        && !head.headers.contains_key(header::CONTENT_LENGTH)
        && !head.headers.contains_key(header::TRANSFER_ENCODING)
        && !head.headers.contains_key(header::UPGRADE)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) are the client's connection to the
/// gateway's business, not the upstream's.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Aborts the upstream reader when the stream ends for any reason (the
/// reader may be parked in a read without a timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tracks whether the bytes forwarded so far end between two events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Boundary {
    /// The last three bytes forwarded, oldest first (0 before any).
    tail: [u8; 3],
}

impl Boundary {
    pub(crate) fn new() -> Self {
        Self { tail: [0; 3] }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        for &b in &chunk[chunk.len().saturating_sub(3)..] {
            self.tail = [self.tail[1], self.tail[2], b];
        }
    }

    /// True at the start of the stream and right after an empty line, which
    /// ends an event (HTML §9.2.5; a line ends with CRLF, LF or CR). A
    /// trailing lone CR is not trusted: an LF may follow and belong to it.
    pub(crate) fn between_events(&self) -> bool {
        matches!(
            self.tail,
            [0, 0, 0] | [_, b'\n', b'\n'] | [_, b'\r', b'\r'] | [b'\n' | b'\r', b'\r', b'\n']
        )
    }
}

/// What the upstream reader hands the downstream writer.
enum Chunk {
    Body(Bytes),
    End,
    Failed(Box<Error>),
}

impl Gateway {
    /// Proxies a [`wants_stream`] request to the routed app. Errors carry
    /// their side (`into_up`/`into_down`) so `fail_to_proxy` answers them
    /// like the main loop's (502/504 envelope while nothing was written).
    pub(super) async fn proxy_stream(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // The opening (connect, request head, response head) runs in a future
        // of its own, freed once the stream is open: a future is as large as
        // its largest state, and the connector's is several KiB that an open
        // stream, held for hours, has no use for.
        let Some((upstream, heartbeat)) = Box::pin(self.open_stream(session, ctx)).await? else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel(8);
        let _reader = AbortOnDrop(tokio::spawn(read_upstream(upstream, tx)));
        relay(session, rx, heartbeat).await
    }

    /// Sends the request upstream and forwards the response head. Returns the
    /// upstream session and the heartbeat period when a body follows, `None`
    /// when the response ended with its head.
    async fn open_stream(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<(UpstreamSession, Option<Duration>)>> {
        let route = ctx
            .route
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
        let policy = route.app.stream.over(self.state.config.server.stream);
        let peer = peer_for(&route)?;

        let mut req = session.req_header().clone();
        req.set_version(Version::HTTP_11);
        for name in HOP_BY_HOP {
            req.remove_header(name);
        }
        self.rewrite_upstream_request(session, &mut req, ctx)?;

        let (mut upstream, _reused) = self
            .stream_connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.into_up())?;
        upstream.read_timeout = Some(route.app.read_timeout);
        upstream.write_timeout = Some(route.app.read_timeout);
        upstream
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| e.into_up())?;

        let mut resp = loop {
            let head = upstream
                .read_resp_header_parts()
                .await
                .map_err(|e| e.into_up())?;
            // 1xx interim answers are not forwarded on a GET stream.
            if !head.status.is_informational() {
                break head;
            }
        };
        self.filter_response(&mut resp, ctx)?;
        let end = upstream.is_body_done();
        if ctx.streaming {
            upstream.read_timeout = policy.idle_timeout;
        }
        session
            .write_response_header(resp, end)
            .await
            .map_err(|e| e.into_down())?;
        if end {
            return Ok(None);
        }
        let heartbeat = if ctx.streaming {
            policy.heartbeat
        } else {
            None
        };
        Ok(Some((upstream, heartbeat)))
    }
}

/// Reads the upstream body into `tx` until it ends, fails, or the
/// downstream side stops listening.
async fn read_upstream(mut upstream: UpstreamSession, tx: mpsc::Sender<Chunk>) {
    loop {
        let chunk = match upstream.read_response_task().await {
            Ok(HttpTask::Body(Some(b), false)) => Chunk::Body(b),
            Ok(HttpTask::Body(Some(b), true)) => {
                if tx.send(Chunk::Body(b)).await.is_err() {
                    return;
                }
                Chunk::End
            }
            Ok(HttpTask::Body(None, false)) => continue,
            Ok(HttpTask::Body(None, true) | HttpTask::Done) => Chunk::End,
            Ok(_) => Chunk::Failed(Error::explain(
                ErrorType::InvalidHTTPHeader,
                "unexpected message in an upstream stream",
            )),
            Err(e) => Chunk::Failed(e.into_up()),
        };
        let last = !matches!(chunk, Chunk::Body(_));
        if tx.send(chunk).await.is_err() || last {
            return;
        }
    }
}

/// Writes the upstream's body to the client as it arrives, with heartbeats
/// between events during silence, until either side ends.
async fn relay(
    session: &mut Session,
    mut rx: mpsc::Receiver<Chunk>,
    heartbeat: Option<Duration>,
) -> pingora::Result<()> {
    let mut boundary = Boundary::new();
    let mut beat = heartbeat.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    enum Step {
        Upstream(Option<Chunk>),
        Beat,
        ClientGone(pingora::Result<Option<Bytes>>),
    }
    loop {
        let step = tokio::select! {
            chunk = rx.recv() => Step::Upstream(chunk),
            _ = async { beat.as_mut().expect("guarded").tick().await }, if beat.is_some() => Step::Beat,
            // A GET has no body: this only returns when the client closes
            // (or sends bytes it must not send mid-response).
            r = session.downstream_session.read_body_or_idle(true) => Step::ClientGone(r),
        };
        match step {
            Step::Upstream(Some(Chunk::Body(b))) => {
                boundary.feed(&b);
                if let Some(t) = beat.as_mut() {
                    t.reset();
                }
                session
                    .write_response_body(Some(b), false)
                    .await
                    .map_err(|e| e.into_down())?;
            }
            Step::Upstream(Some(Chunk::End)) | Step::Upstream(None) => {
                return session
                    .write_response_body(None, true)
                    .await
                    .map_err(|e| e.into_down());
            }
            Step::Upstream(Some(Chunk::Failed(e))) => return Err(e),
            Step::Beat => {
                if boundary.between_events() {
                    session
                        .write_response_body(Some(Bytes::from_static(HEARTBEAT)), false)
                        .await
                        .map_err(|e| e.into_down())?;
                }
            }
            Step::ClientGone(r) => {
                return Err(match r {
                    // Over HTTP/2 the client leaves with RST_STREAM, which
                    // Pingora reports as an h2 error: it is a hang-up all the same.
                    Err(e) if *e.etype() == ErrorType::H2Error => {
                        Error::because(ErrorType::ConnectionClosed, "client left the stream", e)
                            .into_down()
                    }
                    Err(e) => e.into_down(),
                    Ok(_) => Error::explain(ErrorType::ConnectionClosed, "client left the stream")
                        .into_down(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(chunks: &[&[u8]]) -> bool {
        let mut b = Boundary::new();
        for c in chunks {
            b.feed(c);
        }
        b.between_events()
    }

    #[test]
    fn boundaries_between_events_only() {
        assert!(fed(&[]));
        assert!(fed(&[b"data: 1\n\n"]));
        assert!(fed(&[b"data: 1\r\n\r\n"]));
        assert!(fed(&[b"data: 1\r\r"]));
        assert!(fed(&[b"data: 1\n", b"\n"]));
        assert!(fed(&[b"data: 1\r\n", b"\r", b"\n"]));
        assert!(fed(&[b"data: 1\n\r\n"]));
        assert!(!fed(&[b"data: 1\r\n\r"]));
        assert!(!fed(&[b"data: 1\n"]));
        assert!(!fed(&[b"data: 1\r\n"]));
        assert!(!fed(&[b"event: message\n", b"data: {\"a\""]));
        assert!(!fed(&[b"data: 1\n\n", b"data: 2"]));
    }

    #[test]
    fn stream_requests_are_bodyless_gets_accepting_sse() {
        let mut h = RequestHeader::build(Method::GET, b"/mcp", None).unwrap();
        assert!(!wants_stream(&h));
        h.insert_header("accept", "application/json, Text/Event-Stream")
            .unwrap();
        assert!(wants_stream(&h));
        h.insert_header("content-length", "3").unwrap();
        assert!(!wants_stream(&h));
        let mut p = RequestHeader::build(Method::POST, b"/mcp", None).unwrap();
        p.insert_header("accept", "text/event-stream").unwrap();
        assert!(!wants_stream(&p));
    }
}
