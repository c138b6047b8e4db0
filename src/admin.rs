//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process
//! is serving), `/readyz` (the store answers and the process is not draining,
//! see [`crate::drain`]) and `POST /tokens/revoke` (an operator revokes a bearer token on every instance, RFC 7009 semantics) and
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
}

impl AdminApp {
    pub(crate) fn new(state: Arc<State>) -> Self {
        Self { state }
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
