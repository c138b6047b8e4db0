//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process
//! is serving) and `/readyz` (the store answers). Kept off the proxy
//! listener so it can stay private.

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

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
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
