//! drio-gateway: a Pingora reverse proxy that lets MCP clients sign in through
//! OAuth 2.1 and reach upstream MCP tool servers with the right credentials.
//!
//! The crate is laid out by responsibility:
//! - [`config`]: TOML → validated configuration;
//! - [`server`]: assembles the Pingora server (proxy + admin listeners);
//! - [`bootstrap`]: builds every service from the configuration into [`state::State`];
//! - [`drain`]: graceful stop and upgrade (signals, keep-alive draining);
//! - [`proxy`]: the one `ProxyHttp` implementation and its phases;
//! - [`oauth`]: the authorization server MCP clients talk to (RFC 6749, 7591, 8414, 9728);
//! - [`auth`]: bearer validation with a two-tier cache (RFC 6750, 7519, 7662);
//! - [`credentials`]: upstream credential injection;
//! - [`store`]: embedded and Redis state stores;
//! - [`metrics`], [`errors`]: what operators and clients see when things go wrong.
#![forbid(unsafe_code)]

pub(crate) mod admin;
pub mod api;
pub(crate) mod audit;
pub mod auth;
pub(crate) mod bootstrap;
pub mod catalog;
pub mod config;
pub mod credentials;
pub(crate) mod drain;
pub mod egress;
pub(crate) mod errors;
pub(crate) mod limits;
pub(crate) mod metrics;
pub mod oauth;
pub(crate) mod openapi;
pub mod proxy;
pub(crate) mod routes;
pub(crate) mod secrets;
pub mod server;
pub(crate) mod state;
pub mod store;
pub(crate) mod telemetry;
pub(crate) mod util;
pub mod web;
