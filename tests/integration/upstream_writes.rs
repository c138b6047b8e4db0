//! How the gateway writes requests to an upstream, with the carried
//! pingora-core patches (patches/README.md, issue 15): a small request's head
//! and body leave in one TCP segment, one pooled connection serves request
//! after request, and the bodies that must not be held back or joined (a
//! `100-continue` head, a large body, a body that arrives in parts) still
//! arrive whole. The segments are counted by the kernel (`ss -ti`,
//! `data_segs_out` of the gateway's upstream socket), so a head written on
//! its own shows as a second segment. The head's bytes are read raw too:
//! the carried pingora-http patch changes how header names are held, and
//! the client's spelling and the gateway's own headers must come out as
//! before. Last, what clients send the gateway: its listener reads straight
//! from the socket, and large heads and bodies must still arrive whole.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::gateway::{AppSpec, TestGateway};

/// What the raw upstream saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    connection: usize,
    body_len: usize,
    /// The request head as it arrived, bytes unchanged.
    head: String,
}

/// A bare HTTP/1.1 upstream on a raw socket: answers `100 Continue` when
/// asked, reads each `Content-Length` body whole, answers 200 with its size.
struct RawUpstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            for connection in 0.. {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(serve(sock, connection, log.clone()));
            }
        });
        Self { port, seen, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// `data_segs_out` of every established socket to this upstream (the
    /// gateway's pooled connections), from the kernel.
    fn segments_sent_to(&self) -> Vec<u64> {
        let out = std::process::Command::new("ss")
            .args(["-tinH", "state", "established"])
            .arg(format!("( dport = :{} )", self.port))
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .filter_map(|w| w.strip_prefix("data_segs_out:"))
            .map(|n| n.parse().unwrap())
            .collect()
    }
}

async fn serve(mut sock: TcpStream, connection: usize, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let raw_head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let head = raw_head.to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if head.contains("\r\nexpect: 100-continue") {
            sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .unwrap();
        }
        buf.drain(..head_end);
        while buf.len() < len {
            let mut chunk = vec![0u8; 64 * 1024];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..len);
        log.lock().unwrap().push(Seen {
            connection,
            body_len: len,
            head: raw_head,
        });
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bytes":{len}}}}}"#);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if sock.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn gateway_in_front_of(up: &RawUpstream) -> crate::support::gateway::TestGateway {
    TestGateway::new()
        .app_with(AppSpec::new("raw", &up.url()))
        .start()
        .await
}

const SMALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

#[tokio::test]
async fn small_requests_leave_in_one_segment_each_on_one_pooled_connection() {
    let up = RawUpstream::start().await;
    let gw = gateway_in_front_of(&up).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let r = client
            .post(gw.app_url("raw", "/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(SMALL)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.body_len == SMALL.len()), "{seen:?}");
    assert!(
        seen.iter().all(|s| s.connection == seen[0].connection),
        "every request reused the first upstream connection: {seen:?}"
    );
    // One data segment per request: head and body together.
    assert_eq!(up.segments_sent_to(), vec![5]);
}

/// Writes `head` and then `body` in `parts`, `pause` apart, on a raw client
/// socket; returns the status line of the answer.
async fn post_raw(
    gw: &TestGateway,
    head_extra: &str,
    body: &[u8],
    parts: usize,
    pause: Duration,
) -> String {
    let authority = gw.url().trim_start_matches("http://").to_string();
    let mut sock = TcpStream::connect(&authority).await.unwrap();
    let head = format!(
        "POST /apps/raw/mcp HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n{head_extra}\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    if head_extra.contains("100-continue") {
        // The client waits for the interim answer before sending the body:
        // it needs the head to have reached the upstream.
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
            .await
            .expect("100 Continue within 5 s: the head must not be held back")
            .unwrap();
        answer.extend_from_slice(&chunk[..n]);
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        answer.clear();
    }
    for part in body.chunks(body.len().div_ceil(parts)) {
        sock.write_all(part).await.unwrap();
        tokio::time::sleep(pause).await;
    }
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        read_more(&mut sock, &mut answer).await;
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_100_continue_head_reaches_the_upstream_before_its_body() {
    let up = RawUpstream::start().await;
    let gw = gateway_in_front_of(&up).await;
    let status = post_raw(
        &gw,
        "Expect: 100-continue\r\n",
        SMALL.as_bytes(),
        1,
        Duration::ZERO,
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(up.seen().last().unwrap().body_len, SMALL.len());
}

#[tokio::test]
async fn a_body_sent_in_parts_and_a_large_body_arrive_whole() {
    let up = RawUpstream::start().await;
    let gw = gateway_in_front_of(&up).await;
    // Three parts 150 ms apart: the head waits for the first, the rest follow.
    let status = post_raw(&gw, "", SMALL.as_bytes(), 3, Duration::from_millis(150)).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(up.seen().last().unwrap().body_len, SMALL.len());
    // 1 MiB: far above the 16 KiB joined behind the head.
    let large = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(1 << 20)
    );
    let status = post_raw(&gw, "", large.as_bytes(), 1, Duration::ZERO).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(up.seen().last().unwrap().body_len, large.len());
}

/// The head's header lines whose name equals `name` (any case).
fn lines_named<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .collect()
}

#[tokio::test]
async fn header_names_reach_the_upstream_spelled_as_sent_and_the_gateways_own_once() {
    let up = RawUpstream::start().await;
    let gw = gateway_in_front_of(&up).await;
    // Forty headers in mixed case (past any map's first growth), plus
    // forged forwarding headers the gateway must replace, not repeat.
    let mut extra: String = (0..40)
        .map(|i| format!("X-Case-{i}-Kept: v{i}\r\n"))
        .collect();
    extra.push_str("x-FORWARDED-for: 6.6.6.6\r\nX-Forwarded-Proto: gopher\r\nX-Request-Id: rid-from-client\r\n");
    let status = post_raw(&gw, &extra, SMALL.as_bytes(), 1, Duration::ZERO).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let head = up.seen().last().unwrap().head.clone();
    let sent: Vec<String> = (0..40).map(|i| format!("X-Case-{i}-Kept: v{i}")).collect();
    let arrived: Vec<&str> = head
        .split("\r\n")
        .filter(|l| l.starts_with("X-Case-"))
        .collect();
    assert_eq!(
        arrived, sent,
        "client headers keep their spelling and order:\n{head}"
    );
    // The gateway's own headers: once each, spelled as its constants are.
    let host = format!("Host: 127.0.0.1:{}", up.port);
    for want in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-request-id: rid-from-client",
        host.as_str(),
    ] {
        let name = want.split(':').next().unwrap();
        assert_eq!(lines_named(&head, name), [want], "{head}");
    }
}

/// Writes `request` in one write on `sock` and reads one answer with a
/// `Content-Length` body; returns its status line.
async fn exchange(sock: &mut TcpStream, request: &[u8]) -> String {
    sock.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if answer.len() >= end + 4 + len {
                return head.lines().next().unwrap_or_default().to_string();
            }
        }
        read_more(sock, &mut answer).await;
    }
}

/// Appends what the gateway sends next on `sock` to `answer` (within 10 s).
async fn read_more(sock: &mut TcpStream, answer: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(n > 0, "the gateway closed the connection");
    answer.extend_from_slice(&chunk[..n]);
}

/// The proxy listener reads straight from the socket (no 64 KiB L4 buffer in
/// front, `server::plain_listener`): what Pingora's own buffers must then
/// handle is a head far larger than its first 4 KiB read, arriving in one
/// write with its body; a body larger than the old buffer in the same write;
/// and the next request on the same connection.
#[tokio::test]
async fn large_heads_and_bodies_in_one_write_then_the_next_request_arrive_whole() {
    let up = RawUpstream::start().await;
    let gw = gateway_in_front_of(&up).await;
    let authority = gw.url().trim_start_matches("http://").to_string();
    let mut sock = TcpStream::connect(&authority).await.unwrap();
    let request = |extra: &str, body: &str| {
        format!(
            "POST /apps/raw/mcp HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    // ~24 KiB of headers: six times Pingora's first read buffer.
    let big_head: String = (0..96)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "f".repeat(240)))
        .collect();
    let large = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
        "y".repeat(100 * 1024)
    );
    for (extra, body) in [
        (big_head.as_str(), SMALL),
        ("", large.as_str()),
        ("", SMALL),
    ] {
        let status = exchange(&mut sock, request(extra, body).as_bytes()).await;
        assert!(status.starts_with("http/1.1 200"), "{status}");
    }
    let seen = up.seen();
    assert_eq!(
        seen.iter().map(|s| s.body_len).collect::<Vec<_>>(),
        [SMALL.len(), large.len(), SMALL.len()]
    );
    let filler = lines_named(&seen[0].head, "X-Filler-95");
    assert_eq!(filler, [format!("X-Filler-95: {}", "f".repeat(240))]);
    assert_eq!(
        seen[0].head.matches("\r\nX-Filler-").count(),
        96,
        "every header of the large head arrived"
    );
}
