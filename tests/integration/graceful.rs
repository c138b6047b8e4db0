//! Faults and restarts seen by a keep-alive client: a graceful stop drains
//! before closing, an upgrade hands the listeners over without losing a
//! request, and an answer after which the gateway closes the connection says
//! so (RFC 9112 §9.6). benches/fault.sh runs the same under load.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::gateway::{header_str, AppSpec, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::TestUpstream;

/// An upstream that reads a request and resets the connection (a crashed or
/// killed MCP server); returns its base URL.
async fn resetting_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                // Linger 0: close() sends RST, as a killed process's socket does.
                let _ = sock.set_zero_linger();
                drop(sock);
            });
        }
    });
    format!("http://{addr}")
}

/// Sends one keep-alive POST on `conn` and returns the response head (lowercased).
async fn post_head(conn: &mut TcpStream, path: &str) -> String {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Connection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.expect("write request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte))
            .await
            .expect("response within 10 s")
            .expect("read response");
        assert!(
            n > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_answers_502_with_connection_close() {
    let upstream = resetting_upstream().await;
    let gw = TestGateway::new()
        .app_with(AppSpec::new("crashy", &upstream))
        .start()
        .await;
    let mut conn = TcpStream::connect(gw.url().trim_start_matches("http://"))
        .await
        .expect("connect to the gateway");
    let head = post_head(&mut conn, "/apps/crashy/mcp").await;
    assert!(head.starts_with("http/1.1 502"), "{head}");
    // The gateway closes this connection after the 502; a response saying
    // keep-alive makes clients send their next request into a closing socket.
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_finishes_in_flight_requests() {
    let upstream = TestUpstream::start().await;
    let mut gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(10_000)
        .grace_period_seconds(3)
        .start()
        .await;
    let client = gw.client().clone();
    let slow = tokio::spawn(client.get(gw.app_url("notes", "/slow?ms=2500")).send());
    // The slow request is in flight at the upstream before the signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !upstream
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/slow"))
    {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.signal("TERM");
    let signalled = Instant::now();

    // Draining: still accepting, every answer closes its connection, and
    // /readyz tells load balancers to stop sending.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let ready = client
            .get(format!("{}/readyz", gw.admin_url()))
            .send()
            .await
            .expect("readyz while draining");
        if ready.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(ready.text().await.unwrap().contains("draining"));
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never reported draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = client
        .post(gw.app_url("notes", "/echo"))
        .body("after SIGTERM")
        .send()
        .await
        .expect("a request during the drain is answered");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_str(&resp, "connection").as_deref(), Some("close"));
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "checked within the grace period"
    );

    let slow = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(slow.status(), StatusCode::OK);
    assert_eq!(slow.text().await.unwrap(), "slow");
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the gateway exits after the drain");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_hands_listeners_over_without_losing_requests() {
    let redis = RedisServer::start();
    let upstream = TestUpstream::start().await;
    let mut gw = TestGateway::new()
        .app("notes", &upstream)
        .read_timeout_ms(10_000)
        .redis(&redis)
        .start()
        .await;
    let client = gw.client().clone();
    let slow = tokio::spawn(client.get(gw.app_url("notes", "/slow?ms=3000")).send());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !upstream
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/slow"))
    {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Steady requests throughout the handover, on keep-alive connections.
    let url = gw.app_url("notes", "/echo");
    // Its own client: the harness's probes leave idle connections in the shared one.
    let load = tokio::spawn({
        let client = crate::support::gateway::client();
        async move {
            let mut answered = 0;
            let until = Instant::now() + Duration::from_secs(8);
            while Instant::now() < until {
                let resp = client
                    .post(&url)
                    .body("x")
                    .send()
                    .await
                    .expect("no request lost");
                assert_eq!(resp.status(), StatusCode::OK);
                answered += 1;
            }
            answered
        }
    });
    let mut old = gw.upgrade().await;

    let slow = slow
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(slow.status(), StatusCode::OK);
    assert!(load.await.unwrap() > 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = old.try_wait().expect("wait for the old process") {
            break status;
        }
        assert!(Instant::now() < deadline, "the old process did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "old process exit status {status}");
    // The new process serves on the same ports.
    let resp = client
        .post(gw.app_url("notes", "/echo"))
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_with_the_embedded_store_is_refused_and_the_running_one_keeps_serving() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new().app("notes", &upstream).start().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drio-gateway"))
        .arg("--config")
        .arg(gw.config_path())
        .arg("--upgrade")
        .current_dir(gw.dir())
        .env(
            "DRIO_SECRETS_KEY",
            crate::support::gateway::TEST_SECRETS_KEY,
        )
        .env(
            crate::support::gateway::ADMIN_TOKEN_ENV,
            crate::support::gateway::TEST_ADMIN_TOKEN,
        )
        .output()
        .expect("run drio-gateway --upgrade");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--upgrade needs storage.backend = \"redis\""),
        "{stderr}"
    );
    assert!(
        !gw.dir().join("upgrade.sock").exists(),
        "no handover was offered"
    );
    let resp = gw
        .client()
        .post(gw.app_url("notes", "/echo"))
        .body("z")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
