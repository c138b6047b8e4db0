//! The `integration` test target: black-box tests that run the real
//! gateway binary against real upstreams and stores (see `support`).

mod bearer;
mod config_cli;
mod hardening;
mod idp_selftest;
mod management;
mod oauth;
mod proxy_core;
mod store_conformance;
mod support;
mod tenancy_connect;
