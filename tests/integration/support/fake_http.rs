//! A tiny HTTP/1.1 server for hermetic fakes of third-party APIs (the STS,
//! WorkOS): each fake is a function from a buffered request to a reply.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request, read whole.
pub struct FakeRequest {
    pub method: http::Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl FakeRequest {
    /// The body as a form (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

pub type Reply = Response<Full<Bytes>>;

pub fn json_reply(status: u16, body: Value) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub fn redirect(location: &str) -> Reply {
    Response::builder()
        .status(302)
        .header(header::LOCATION, location)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A running fake; stops when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start<F, Fut>(handler: F) -> FakeServer
    where
        F: Fn(FakeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        Self::start_on("127.0.0.1", handler).await
    }

    /// Listens on `ip` (another loopback address, to test the egress policy).
    pub async fn start_on<F, Fut>(ip: &str, handler: F) -> FakeServer
    where
        F: Fn(FakeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind fake");
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        // The harness's one accept loop (support/http_server.rs).
        let server = super::http_server::spawn(listener, move |r: http::Request<Incoming>| {
            let handler = handler.clone();
            async move {
                let (parts, body) = r.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
                handler(FakeRequest {
                    method: parts.method,
                    path: parts.uri.path().to_string(),
                    query,
                    headers: parts.headers,
                    body,
                })
                .await
            }
        });
        FakeServer { addr, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
