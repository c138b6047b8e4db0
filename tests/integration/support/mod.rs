//! Test harness shared by the integration tests: free ports, a fake MCP
//! upstream, the gateway process, Redis and an identity provider.
// Not every test target uses every helper.
#![allow(dead_code)]

pub mod fake_http;
pub mod gateway;
pub mod http_server;
pub mod idp;
pub mod oauth_client;
pub mod openapi;
pub mod otlp;
pub mod ports;
pub mod provider;
pub mod redis;
pub mod sts;
pub mod upstream;
pub mod workos;
pub mod workos_pipes;
