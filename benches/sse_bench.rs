//! Tools for `benches/streams.sh` and `benches/soak.sh` (an example, so
//! `cargo test --all-targets` only compiles it):
//!
//! - `sse_bench upstream ADDR EVERY_MS`: an SSE server (HTML §9.2) answering
//!   every request with `text/event-stream` (close-delimited), one event
//!   `data: {seq}` every `EVERY_MS`, forever; `/ready` answers 200.
//! - `sse_bench clients URL N SECONDS [RAMP_PER_S]`: opens N concurrent
//!   streams to URL (`GET`, `Accept: text/event-stream`), keeps them
//!   `SECONDS`, and prints one line `SSE_RESULT open=… events=… out_of_order=…
//!   failed=…`: how many streams were open at the end, the events received,
//!   events whose `seq` was not the previous plus one, and streams that failed
//!   to open or ended early. With `--churn`, each stream closes and reopens
//!   every few seconds (soak). With `--h2`, the streams are HTTP/2 streams
//!   (prior knowledge, RFC 9113 §3.3; the gateway needs `[server] h2c =
//!   true`) multiplexed over ceil(N / 100) connections, 100 being Pingora's
//!   default `SETTINGS_MAX_CONCURRENT_STREAMS`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Streams per HTTP/2 connection: Pingora's default
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (more would queue in the client).
const STREAMS_PER_CONN: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: sse_bench upstream ADDR EVERY_MS | clients [--h2] URL N SECONDS [RAMP_PER_S] [--churn]";
    let flag = |f: &str| args.iter().any(|a| a == f);
    let pos: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match pos.first().copied() {
        Some("upstream") => {
            let every = pos.get(2).and_then(|v| v.parse().ok()).expect(usage);
            upstream(pos.get(1).expect(usage), Duration::from_millis(every)).await
        }
        Some("clients") => {
            let n: usize = pos.get(2).and_then(|v| v.parse().ok()).expect(usage);
            let secs: u64 = pos.get(3).and_then(|v| v.parse().ok()).expect(usage);
            let ramp: usize = pos.get(4).and_then(|v| v.parse().ok()).unwrap_or(2000);
            let run = Run {
                end: Instant::now() + Duration::from_secs(secs),
                churn: flag("--churn"),
            };
            clients(pos.get(1).expect(usage), n, ramp, flag("--h2"), run).await
        }
        _ => panic!("{usage}"),
    }
}

async fn upstream(addr: &str, every: Duration) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if head.starts_with(b"GET /ready") {
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                return;
            }
            let hdr = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
            if sock.write_all(hdr.as_bytes()).await.is_err() {
                return;
            }
            let mut tick = tokio::time::interval(every);
            for seq in 1u64.. {
                tick.tick().await;
                let ev = format!("event: message\ndata: {seq}\n\n");
                if sock.write_all(ev.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[derive(Default)]
struct Tally {
    open: AtomicU64,
    events: AtomicU64,
    out_of_order: AtomicU64,
    failed: AtomicU64,
}

/// How long the clients run and whether their streams churn.
#[derive(Clone, Copy)]
struct Run {
    end: Instant,
    churn: bool,
}

impl Run {
    /// When stream `i`'s current stream should end: 2–6 s from now with
    /// churn (spread by index), else at the end of the run.
    fn until(&self, i: usize) -> Instant {
        if self.churn {
            (Instant::now() + Duration::from_millis(2000 + (i as u64 * 37) % 4000)).min(self.end)
        } else {
            self.end
        }
    }
}

async fn clients(url: &str, n: usize, ramp: usize, h2: bool, run: Run) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n\r\n");
    let uri: http::Uri = url.parse().expect("a URL");
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::with_capacity(n);
    let mut conn: Option<SendRequest<Empty<Bytes>>> = None;
    for i in 0..n {
        if ramp > 0 && i > 0 && i % ramp == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if h2 && i % STREAMS_PER_CONN == 0 {
            conn = connect_h2(authority).await;
        }
        let (authority, req, uri, tally) = (
            authority.to_string(),
            req.clone(),
            uri.clone(),
            tally.clone(),
        );
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let until = run.until(i);
                let last_one = until >= run.end;
                let ok = match (h2, conn.clone()) {
                    (false, _) => one_stream(&authority, &req, until, last_one, &tally).await,
                    (true, Some(c)) => one_stream_h2(c, &uri, until, last_one, &tally).await,
                    (true, None) => false,
                };
                if !ok {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                }
                if !run.churn || Instant::now() >= run.end || (h2 && conn.is_none()) {
                    return;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "SSE_RESULT open={} events={} out_of_order={} failed={}",
        tally.open.load(Ordering::Relaxed),
        tally.events.load(Ordering::Relaxed),
        tally.out_of_order.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed)
    );
}

/// An HTTP/2 connection with prior knowledge; None if it cannot be made.
async fn connect_h2(authority: &str) -> Option<SendRequest<Empty<Bytes>>> {
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(authority))
        .await
        .ok()?
        .ok()?;
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    // Many slow streams: no per-stream window worth more than a few events.
    builder.initial_stream_window_size(64 * 1024);
    let (sender, conn) = builder.handshake(TokioIo::new(tcp)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// Counts the `data: {seq}` lines of the complete lines in `text` (other
/// lines, e.g. chunk sizes of a chunked body, are skipped).
fn count_events(text: &mut String, last: &mut u64, tally: &Tally) {
    while let Some(nl) = text.find('\n') {
        let line: String = text.drain(..=nl).collect();
        if let Some(seq) = line.trim_end().strip_prefix("data: ") {
            let Ok(seq) = seq.parse::<u64>() else {
                continue;
            };
            tally.events.fetch_add(1, Ordering::Relaxed);
            if *last != 0 && seq != *last + 1 {
                tally.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            *last = seq;
        }
    }
}

/// [`one_stream`] as one HTTP/2 stream on a shared connection.
async fn one_stream_h2(
    mut conn: SendRequest<Empty<Bytes>>,
    uri: &http::Uri,
    until: Instant,
    last_one: bool,
    tally: &Tally,
) -> bool {
    let req = http::Request::get(uri.clone())
        .header("accept", "text/event-stream")
        .body(Empty::new())
        .expect("a GET request");
    let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(10), conn.send_request(req)).await
    else {
        return false;
    };
    if resp.status() != http::StatusCode::OK {
        return false;
    }
    tally.open.fetch_add(1, Ordering::Relaxed);
    let mut body = resp.into_body();
    let (mut text, mut last) = (String::new(), 0u64);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if !last_one {
                tally.open.fetch_sub(1, Ordering::Relaxed);
            }
            return true;
        }
        match tokio::time::timeout(left, body.frame()).await {
            Err(_) => continue,
            Ok(None | Some(Err(_))) => {
                tally.open.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    text.push_str(&String::from_utf8_lossy(&data));
                }
            }
        }
        count_events(&mut text, &mut last, tally);
    }
}

/// One stream until `until`; false if it failed to open or ended early.
/// A stream still open at the end of the run (`last_one`) stays counted in
/// `open`.
async fn one_stream(
    authority: &str,
    req: &str,
    until: Instant,
    last_one: bool,
    tally: &Tally,
) -> bool {
    let Ok(Ok(mut sock)) =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(authority)).await
    else {
        return false;
    };
    if sock.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 2048];
    let mut text = String::new();
    let mut headed = false;
    let mut last = 0u64;
    let mut counted_open = false;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if counted_open && !last_one {
                tally.open.fetch_sub(1, Ordering::Relaxed);
            }
            return headed;
        }
        let n = match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => {
                if counted_open {
                    tally.open.fetch_sub(1, Ordering::Relaxed);
                }
                return false;
            }
            Ok(Ok(n)) => n,
        };
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !headed {
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            if !text.starts_with("HTTP/1.1 200") {
                return false;
            }
            headed = true;
            counted_open = true;
            tally.open.fetch_add(1, Ordering::Relaxed);
            text.drain(..end + 4);
        }
        count_events(&mut text, &mut last, tally);
    }
}
