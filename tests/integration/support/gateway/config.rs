//! The configuration file a `TestGateway` runs with, generated from the
//! builder: a valid baseline (loopback listeners, one thread, no grace
//! period, embedded store in the gateway's tempdir) plus the apps and any
//! raw TOML the test added.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::GatewayBuilder;

/// One `[[apps]]` entry. Fields map one-to-one onto the TOML keys.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub upstream: String,
    pub mcp_path: String,
    pub host: Option<String>,
    pub public: bool,
    pub allowed_origins: Vec<String>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// Raw TOML lines placed inside this app's table (e.g. `required_scopes`).
    pub extra_toml: String,
}

impl AppSpec {
    /// A public app `slug` in front of `upstream` (a base URL), with short timeouts.
    pub fn new(slug: &str, upstream: &str) -> AppSpec {
        AppSpec {
            id: format!("app_{slug}"),
            slug: slug.into(),
            name: slug.into(),
            upstream: upstream.into(),
            mcp_path: "/mcp".into(),
            host: None,
            public: true,
            allowed_origins: Vec::new(),
            connect_timeout_ms: 1000,
            read_timeout_ms: 2000,
            extra_toml: String::new(),
        }
    }

    fn to_toml(&self) -> String {
        let mut out = format!(
            "[[apps]]\nid = {}\nslug = {}\nname = {}\nupstream = {}\nmcp_path = {}\npublic = {}\n\
             connect_timeout_ms = {}\nread_timeout_ms = {}\n",
            q(&self.id),
            q(&self.slug),
            q(&self.name),
            q(&self.upstream),
            q(&self.mcp_path),
            self.public,
            self.connect_timeout_ms,
            self.read_timeout_ms,
        );
        if let Some(host) = &self.host {
            out += &format!("host = {}\n", q(host));
        }
        if !self.allowed_origins.is_empty() {
            let list: Vec<String> = self.allowed_origins.iter().map(|o| q(o)).collect();
            out += &format!("allowed_origins = [{}]\n", list.join(", "));
        }
        out += &self.extra_toml;
        out.push('\n');
        out
    }
}

/// A TOML basic string. JSON string escaping is a subset of TOML's.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The ports and paths one generated configuration refers to.
pub struct Layout<'a> {
    pub proxy_port: u16,
    pub admin_port: u16,
    pub dir: &'a Path,
}

impl GatewayBuilder {
    /// The configuration file this builder describes, for the given layout.
    pub fn render(&self, layout: &Layout<'_>) -> String {
        let storage = match &self.redis_url {
            Some(url) => {
                // A fresh prefix per gateway so tests sharing a Redis never collide.
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let prefix = self.redis_prefix.clone().unwrap_or_else(|| {
                    format!(
                        "t:{}:{}:",
                        std::process::id(),
                        NEXT.fetch_add(1, Ordering::Relaxed)
                    )
                });
                format!(
                    "backend = \"redis\"\nurl = {}\nkey_prefix = {}\n",
                    q(url),
                    q(&prefix)
                )
            }
            None => format!(
                "backend = \"embedded\"\npath = {}\n",
                q(&layout.dir.join("gw.redb").display().to_string())
            ),
        };
        let admin_token = if self.admin_token {
            format!("admin_token_env = {}\n", q(super::ADMIN_TOKEN_ENV))
        } else {
            String::new()
        };
        let mut toml = format!(
            "public_url = \"http://127.0.0.1:{proxy}\"\n\n\
             [listen]\nproxy = \"127.0.0.1:{proxy}\"\nadmin = \"127.0.0.1:{admin}\"\n{admin_token}\n\
             [server]\nthreads = 1\ngrace_period_seconds = {grace}\nupgrade_sock = {sock}\n{server}\n\
             [storage]\n{storage}\n\
             [logging]\nlevel = \"info\"\nformat = \"json\"\n\n",
            proxy = layout.proxy_port,
            admin = layout.admin_port,
            grace = self.grace_period_seconds,
            // In the gateway's own directory: parallel tests never share one.
            sock = q(&layout.dir.join("upgrade.sock").display().to_string()),
            server = self.server_toml,
        );
        for app in &self.apps {
            toml += &app.to_toml();
            toml.push('\n');
        }
        toml += &self.extra_toml;
        toml
    }
}
