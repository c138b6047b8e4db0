//! `/readyz` reports ready only once the proxy listener accepts connections.
//!
//! Pingora starts the admin and proxy services on their own threads, and a
//! proxy address found busy when it binds is retried (1 s apart, 30 times)
//! while the admin listener already serves. The scenario is made exact here:
//! the gateway's store is a Redis behind a relay that holds every connection
//! until released. The gateway checks its listen addresses before it opens
//! the store, so once the relay has seen a connection the check is behind
//! us: the test then takes the proxy port (bound, not listening, so the
//! gateway's bind fails and a connection to it is refused) and releases the
//! relay.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};

use crate::support::gateway::{client, AppSpec, TestGateway};
use crate::support::ports::free_port;
use crate::support::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_until_the_proxy_listener_accepts() {
    let redis = RedisServer::start();
    let relay = GatedRelay::start(redis.port()).await;
    let (proxy_port, admin_port) = (free_port(), free_port());
    let mut gw = TestGateway::new()
        .app_with(AppSpec::new("notes", "http://127.0.0.1:9"))
        .redis_url(&relay.url())
        .spawn_on(proxy_port, admin_port);

    // The gateway has checked its listen addresses and is opening the store.
    relay.first_connection().await;
    let taken = TcpSocket::new_v4().expect("socket");
    taken
        .bind(([127, 0, 0, 1], proxy_port).into())
        .expect("take the proxy port");
    relay.release();

    let http = client();
    let (admin, proxy) = (gw.admin_url(), gw.url());
    gw.poll_until("admin /healthz answers", || async {
        let r = http.get(format!("{admin}/healthz")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    // Alive but not ready, for as long as the port stays taken (two of
    // Pingora's bind attempts).
    for _ in 0..4 {
        let r = http
            .get(format!("{admin}/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = r.text().await.expect("body");
        assert!(body.contains("proxy listener"), "{body}");
        assert!(http.get(format!("{proxy}/healthz")).send().await.is_err());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    drop(taken);
    gw.poll_until("/readyz reports ready", || async {
        let r = http.get(format!("{admin}/readyz")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    // Ready means the proxy serves.
    let r = http.get(format!("{proxy}/healthz")).send().await;
    assert_eq!(
        r.expect("proxy answers once ready").status(),
        StatusCode::OK
    );
}

/// A TCP relay to a Redis that holds every connection until released.
struct GatedRelay {
    port: u16,
    seen: Arc<Notify>,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl GatedRelay {
    async fn start(redis_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Notify::new());
        let (open, gate) = watch::channel(false);
        let notify = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                notify.notify_one();
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(mut redis) = TcpStream::connect(("127.0.0.1", redis_port)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                });
            }
        });
        Self {
            port,
            seen,
            open,
            task,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn first_connection(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.seen.notified())
            .await
            .expect("the gateway never connected to its store");
    }

    fn release(&self) {
        let _ = self.open.send(true);
    }
}

impl Drop for GatedRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
