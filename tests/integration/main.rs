//! The `integration` test target: black-box tests that run the real
//! gateway binary against real upstreams and stores (see `support`).

mod admin_listener;
mod audit;
mod bearer;
mod config_cli;
mod egress;
mod elicitation;
mod graceful;
mod h2c;
mod hardening;
mod idp_selftest;
mod keepalive;
mod kubernetes;
mod layering;
mod limits;
mod link_proof;
mod management;
mod monitoring;
mod oauth;
mod openapi;
mod proxy_core;
mod races;
mod readiness;
mod sealing_and_hosts;
mod step_up;
mod store_conformance;
mod streams;
mod support;
mod tenancy;
mod tenancy_connect;
mod token_exchange;
mod tracing;
mod upstream_writes;
mod vault_upgrade;
mod workos_pipes;
mod workos_sso;
