//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process
//! is serving), `/readyz` (the store answers) and `POST /tokens/revoke` (an
//! operator revokes a bearer token on every instance, RFC 7009 semantics) and
//! `POST /oauth/keys/rotate` (a new token-signing key; the previous one stays
//! published in the JWKS so the tokens it signed verify until they expire).
//! Kept off the proxy listener so it can stay private.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::State;

pub struct AdminApp {
    state: Arc<State>,
}

impl AdminApp {
    pub fn new(state: Arc<State>) -> Self {
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
            return self.revoke(session).await;
        }
        if session.req_header().method == http::Method::POST
            && session.req_header().uri.path() == "/oauth/keys/rotate"
        {
            return self.rotate_keys().await;
        }
        match session.req_header().uri.path() {
            "/metrics" => reply(
                200,
                "text/plain; version=0.0.4",
                self.state.metrics.render(),
            ),
            "/healthz" => reply(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
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
