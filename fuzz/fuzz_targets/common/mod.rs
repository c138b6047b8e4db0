//! Fixtures shared by the fuzz targets: one fixed configuration with several
//! apps (path- and host-routed) and the route table built from it once, the
//! way the gateway builds it at start (`RouteTable::build`). Upstreams are IP
//! literals so building never does DNS.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use drio_gateway::config::Config;
use drio_gateway::credentials::Injection;
use drio_gateway::egress::EgressPolicy;
use drio_gateway::catalog::route::{RouteSpec, RouteTable, UpstreamDns};

pub const CONFIG: &str = r#"
public_url = "http://127.0.0.1:8080"

[listen]
proxy = "127.0.0.1:8080"
admin = "127.0.0.1:9090"

[[apps]]
id = "app_everything"
slug = "everything"
name = "Everything"
upstream = "http://127.0.0.1:3001"
mcp_path = "/mcp"
public = true

[[apps]]
id = "app_github"
slug = "github"
name = "GitHub"
upstream = "https://10.0.0.7:8443/base"
mcp_path = "/mcp"
host = "github.mcp.example.com"
public = true

[[apps]]
id = "app_notes"
slug = "notes"
name = "Notes"
upstream = "http://[::1]:3002"
mcp_path = "/v1/mcp"
host = "Notes.Example.COM"
public = true
"#;

/// Tools the fixture disables on every app.
pub const DISABLED: &[&str] = &["delete_repo", "exec", "rm -rf", ""];

/// The fixed route table (several apps, two host names), built once.
pub fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let cfg = Config::from_toml(Path::new("fuzz.toml"), CONFIG).expect("fixture config");
        let disabled: Arc<HashSet<String>> =
            Arc::new(DISABLED.iter().map(|s| s.to_string()).collect());
        let specs: Vec<RouteSpec> = cfg
            .apps
            .iter()
            .map(|app| RouteSpec {
                app: Arc::new(app.clone()),
                injection: Arc::new(Injection::None),
                disabled_tools: disabled.clone(),
                trusted: true,
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(RouteTable::build(
            &cfg.public_url,
            &[],
            &EgressPolicy::new(Vec::new()),
            &UpstreamDns::default(),
            specs,
        ))
    })
}
