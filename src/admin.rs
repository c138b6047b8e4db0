//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process
//! is serving), `/readyz` (the proxy listener accepts connections, the store
//! answers and the process is not draining, see [`crate::drain`]) and `POST /tokens/revoke` (an operator revokes a bearer token on every instance, RFC 7009 semantics) and
//! `POST /oauth/keys/rotate` (a new token-signing key; the previous one stays
//! published in the JWKS so the tokens it signed verify until they expire).
//! Kept off the proxy listener so it can stay private.
//!
//! The two write routes also require `Authorization: Bearer <token>` (RFC
//! 6750 §2.1) with the token from the variable named by
//! `listen.admin_token_env`: the listener may be reachable by more than the
//! operator (another process on the host, a sidecar, a misrouted upstream).
//! Without a configured token they are off (404). `/metrics`, `/healthz` and
//! `/readyz` stay open for scrapers and probes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::state::State;

pub(crate) struct AdminApp {
    state: Arc<State>,
    proxy: ProxyListener,
}

impl AdminApp {
    pub(crate) fn new(state: Arc<State>) -> Self {
        let proxy = ProxyListener::new(state.config.listen.proxy);
        Self { state, proxy }
    }
}

/// Whether the proxy listener accepts connections, as `/readyz` reports it.
///
/// Pingora starts each service on its own thread: the admin listener can
/// answer before the proxy listener is bound, and a proxy address found busy
/// at that moment is retried for 30 s and then given up while the admin
/// listener keeps serving. A readiness probe that said "ready" then would
/// send traffic to a port nobody serves. So readiness connects to the proxy
/// address itself (a TCP handshake, nothing sent) until it succeeds once;
/// the process never closes that listener again except to stop, which
/// `/readyz` reports as draining first.
pub(crate) struct ProxyListener {
    /// Where to connect: the configured address, a wildcard one replaced by
    /// loopback of its family. None for port 0 (the kernel picks a port
    /// nobody is told, so there is nothing to wait for).
    probe: Option<SocketAddr>,
    accepting: AtomicBool,
}

impl ProxyListener {
    pub(crate) fn new(listen: SocketAddr) -> Self {
        let probe = (listen.port() != 0).then(|| {
            let ip = match listen.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            SocketAddr::new(ip, listen.port())
        });
        Self {
            probe,
            accepting: AtomicBool::new(false),
        }
    }

    /// True once a connection to the proxy address has been accepted.
    pub(crate) async fn accepting(&self) -> bool {
        if self.accepting.load(Ordering::Relaxed) {
            return true;
        }
        let Some(addr) = self.probe else {
            return true;
        };
        let connected = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        let ok = matches!(connected, Ok(Ok(_)));
        if ok {
            self.accepting.store(true, Ordering::Relaxed);
        }
        ok
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_default()
}

impl AdminApp {
    /// None when the request carries the admin token; else the answer.
    fn refused(&self, session: &mut ServerSession) -> Option<Response<Vec<u8>>> {
        let Some(token) = &self.state.admin_token else {
            return Some(reply(
                404,
                "application/json",
                br#"{"error":"not_found"}"#.to_vec(),
            ));
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        // Digests compared in constant time: neither the token's bytes nor
        // its length leak through timing.
        let ok = presented.is_some_and(|p| {
            let (a, b) = (
                Sha256::digest(p.as_bytes()),
                Sha256::digest(token.expose().as_bytes()),
            );
            bool::from(a.as_slice().ct_eq(b.as_slice()))
        });
        if ok {
            return None;
        }
        let challenge = if presented.is_some() {
            r#"Bearer realm="drio-admin", error="invalid_token""#
        } else {
            r#"Bearer realm="drio-admin""#
        };
        let mut resp = reply(
            401,
            "application/json",
            br#"{"error":"unauthorized"}"#.to_vec(),
        );
        // The body is left unread: close rather than reuse the connection.
        session.set_keepalive(None);
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(challenge),
        );
        Some(resp)
    }

    async fn revoke(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= 64 * 1024 => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return reply(
                        413,
                        "application/json",
                        br#"{"error":"body_too_large"}"#.to_vec(),
                    )
                }
                Ok(None) => break,
                Err(_) => {
                    return reply(400, "application/json", br#"{"error":"bad_body"}"#.to_vec())
                }
            }
        }
        #[derive(serde::Deserialize)]
        struct Req {
            token: String,
        }
        let Ok(req) = serde_json::from_slice::<Req>(&body) else {
            return reply(
                400,
                "application/json",
                br#"{"error":"expected {\"token\": \"...\"}"}"#.to_vec(),
            );
        };
        match self.state.auth.revoke_token(&req.token).await {
            Ok(()) => reply(200, "application/json", br#"{"revoked":true}"#.to_vec()),
            Err(e) => reply(
                503,
                "application/json",
                serde_json::json!({"error": "store_unavailable", "reason": e.to_string()})
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

impl AdminApp {
    async fn rotate_keys(&self) -> Response<Vec<u8>> {
        let keys = self.state.oauth.as_ref().and_then(|o| o.keys.clone());
        let Some(keys) = keys else {
            return reply(409, "application/json", br#"{"error":"not_signing","reason":"the gateway signs tokens only with [oauth] token_mode = \"gateway\""}"#.to_vec());
        };
        match keys.rotate().await {
            Ok(kid) => {
                tracing::info!(%kid, "token-signing key rotated");
                reply(
                    200,
                    "application/json",
                    serde_json::json!({"kid": kid}).to_string().into_bytes(),
                )
            }
            Err(e) => reply(
                503,
                "application/json",
                serde_json::json!({"error": "rotation_failed", "reason": e.to_string()})
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().method == http::Method::POST
            && session.req_header().uri.path() == "/tokens/revoke"
        {
            if let Some(refused) = self.refused(session) {
                return refused;
            }
            return self.revoke(session).await;
        }
        if session.req_header().method == http::Method::POST
            && session.req_header().uri.path() == "/oauth/keys/rotate"
        {
            if let Some(refused) = self.refused(session) {
                return refused;
            }
            return self.rotate_keys().await;
        }
        match session.req_header().uri.path() {
            "/metrics" => reply(
                200,
                "text/plain; version=0.0.4",
                self.state.metrics.render(),
            ),
            "/healthz" => reply(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/readyz" if crate::drain::is_draining() => reply(
                503,
                "application/json",
                br#"{"status":"draining"}"#.to_vec(),
            ),
            "/readyz" if !self.proxy.accepting().await => reply(
                503,
                "application/json",
                br#"{"status":"not_ready","reason":"the proxy listener does not accept connections yet"}"#.to_vec(),
            ),
            "/readyz" => {
                let store = self.state.store.backend();
                match tokio::time::timeout(Duration::from_secs(1), self.state.store.ping()).await {
                    Ok(Ok(())) => reply(200, "application/json", format!(r#"{{"status":"ready","store":"{store}"}}"#).into_bytes()),
                    Ok(Err(e)) => reply(503, "application/json", serde_json::json!({"status": "not_ready", "store": store, "reason": e.to_string()}).to_string().into_bytes()),
                    Err(_) => reply(503, "application/json", format!(r#"{{"status":"not_ready","store":"{store}","reason":"timeout"}}"#).into_bytes()),
                }
            }
            _ => reply(
                404,
                "application/json",
                br#"{"error":"not_found"}"#.to_vec(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port with nothing listening on it (bound, then closed).
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_proxy_address_nobody_listens_on_is_not_ready() {
        let proxy = ProxyListener::new(SocketAddr::from(([127, 0, 0, 1], closed_port())));
        assert!(!proxy.accepting().await);
        assert!(!proxy.accepting().await, "still not, asked again");
    }

    #[tokio::test]
    async fn ready_once_the_listener_accepts_and_stays_so() {
        let port = closed_port();
        let proxy = ProxyListener::new(SocketAddr::from(([127, 0, 0, 1], port)));
        assert!(!proxy.accepting().await);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        assert!(proxy.accepting().await);
        drop(listener);
        assert!(proxy.accepting().await, "latched: no connection per probe");
    }

    #[tokio::test]
    async fn a_wildcard_address_is_probed_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = ProxyListener::new(SocketAddr::from(([0, 0, 0, 0], port)));
        assert_eq!(proxy.probe, Some(SocketAddr::from(([127, 0, 0, 1], port))));
        assert!(proxy.accepting().await);
        let v6 = ProxyListener::new(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
        assert_eq!(
            v6.probe,
            Some(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
        );
    }

    #[tokio::test]
    async fn port_zero_has_nothing_to_wait_for() {
        let proxy = ProxyListener::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(proxy.probe, None);
        assert!(proxy.accepting().await);
    }
}
