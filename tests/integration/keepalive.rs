//! The gateway's own answers keep a client's HTTP/1.1 connection (issue 15):
//! a 401 to a `tools/call` used to go out before the request body was read,
//! so Pingora closed the connection and every refused request cost the
//! client a new TCP handshake. Checked on one raw socket.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::gateway::TestGateway;
use crate::support::idp::TestIdp;
use crate::support::upstream::TestUpstream;

const BODY: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;

/// Reads one response (headers and a `Content-Length` body) off the socket;
/// returns its head, lower-cased.
async fn read_response(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut byte))
            .await
            .expect("a response within 10 s")
            .expect("read the response head");
        assert_eq!(
            n,
            1,
            "the connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.expect("the response body");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_survives_a_401_and_serves_the_next_request() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .raw_toml(&format!(
            "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n",
            iss = idp.issuer()
        ))
        .app("notes", &up)
        .protected()
        .start()
        .await;
    let token = idp.mint_access_token("user_ada", &gw.app_url("notes", "/mcp"), "", 600);
    let authority = gw.url().trim_start_matches("http://").to_string();
    let mut sock = TcpStream::connect(&authority).await.expect("connect");
    let post = |auth: &str| {
        format!(
            "POST /apps/notes/echo HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{auth}\r\n{BODY}",
            BODY.len()
        )
    };
    // Refused without a token, twice, then served: all on one connection.
    for _ in 0..2 {
        sock.write_all(post("").as_bytes()).await.unwrap();
        let head = read_response(&mut sock).await;
        assert!(head.starts_with("http/1.1 401"), "{head}");
        assert!(
            !head.contains("connection: close"),
            "the 401 closes the connection: {head}"
        );
    }
    let before = up.count();
    sock.write_all(post(&format!("Authorization: Bearer {token}\r\n")).as_bytes())
        .await
        .unwrap();
    let head = read_response(&mut sock).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        up.count(),
        before + 1,
        "the served request reached the upstream"
    );
    let seen = up.last_request().unwrap();
    assert_eq!(
        &seen.body[..],
        BODY.as_bytes(),
        "the body was not eaten by the drain"
    );
}
