//! Raw → validated configuration. Every rule that can reject a config lives
//! here, and every rejection names its key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::raw::{RawApp, RawConfig};
use super::{
    AppConfig, Config, ConfigError, Listen, LogFormat, Logging, ServerSettings, StorageConfig,
    Upstream,
};

pub(super) fn validate(path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let err = |key: &str, msg: String| ConfigError::new(path, key, msg);

    let public =
        Url::parse(&raw.public_url).map_err(|e| err("public_url", format!("not a URL: {e}")))?;
    if !matches!(public.scheme(), "http" | "https") || public.host_str().is_none() {
        return Err(err(
            "public_url",
            "must be an http(s) URL with a host".into(),
        ));
    }
    if public.query().is_some() || public.fragment().is_some() {
        return Err(err(
            "public_url",
            "must not have a query or fragment".into(),
        ));
    }
    let public_url = raw.public_url.trim_end_matches('/').to_string();
    let public_origin = public.origin().ascii_serialization();

    let addr = |key: &str, v: &str| -> Result<SocketAddr, ConfigError> {
        v.parse().map_err(|e| {
            err(
                key,
                format!("`{v}` is not an address like 127.0.0.1:8080: {e}"),
            )
        })
    };
    let listen = Listen {
        proxy: addr("listen.proxy", &raw.listen.proxy)?,
        admin: addr("listen.admin", &raw.listen.admin)?,
        admin_token_env: match raw.listen.admin_token_env.clone() {
            Some(v) if v.is_empty() || v.contains(['=', '\0']) => {
                return Err(err(
                    "listen.admin_token_env",
                    "must name an environment variable".into(),
                ))
            }
            other => other,
        },
    };
    if listen.proxy == listen.admin && listen.proxy.port() != 0 {
        return Err(err("listen.admin", "must differ from listen.proxy".into()));
    }

    let threads = raw.server.threads.unwrap_or(2);
    if threads == 0 || threads > 256 {
        return Err(err("server.threads", "must be between 1 and 256".into()));
    }
    let trusted_proxies = raw
        .server
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, c)| {
            crate::egress::parse_cidr(c).ok_or_else(|| {
                err(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("`{c}` is not a CIDR like 10.0.0.0/8 or an address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let server = ServerSettings {
        threads,
        trusted_proxies,
        grace_period_seconds: raw.server.grace_period_seconds.unwrap_or(5),
        graceful_shutdown_timeout_seconds: raw
            .server
            .graceful_shutdown_timeout_seconds
            .unwrap_or(5),
        upgrade_sock: upgrade_sock(path, raw.server.upgrade_sock.as_deref())?,
        stream: super::StreamPolicy {
            idle_timeout: stream_seconds(raw.server.stream_idle_timeout_seconds)
                .map_err(|m| err("server.stream_idle_timeout_seconds", m))?
                .flatten(),
            heartbeat: stream_seconds(raw.server.stream_heartbeat_seconds)
                .map_err(|m| err("server.stream_heartbeat_seconds", m))?
                .flatten(),
        },
        h2c: raw.server.h2c.unwrap_or(false),
    };

    let storage = storage(path, &raw)?;

    let level = raw.logging.level.unwrap_or_else(|| "info".into());
    if !matches!(
        level.as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        return Err(err(
            "logging.level",
            format!("`{level}` is not one of trace, debug, info, warn, error"),
        ));
    }
    let format = match raw.logging.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(err(
                "logging.format",
                format!("`{other}` is not text or json"),
            ))
        }
    };

    let allow_upstream_cidrs = raw
        .security
        .allow_upstream_cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            crate::egress::parse_cidr(c).ok_or_else(|| {
                err(
                    &format!("security.allow_upstream_cidrs[{i}]"),
                    format!("`{c}` is not a CIDR like 127.0.0.0/8 or ::1/128"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let auth = super::auth::auth(raw.auth).map_err(|(k, m)| err(&k, m))?;
    let oauth = match (raw.oauth, raw.idp) {
        (Some(o), idp) => Some(super::oauth::oauth(o, idp, &public).map_err(|(k, m)| err(&k, m))?),
        (None, Some(_)) => {
            return Err(err(
                "idp",
                "[idp] is used by [oauth]; add an [oauth] section".into(),
            ))
        }
        (None, None) => None,
    };
    // The dev page signs anyone in as anyone: besides a loopback public_url
    // (what browsers are sent to), the listener itself must be unreachable
    // from other machines, or anyone who can reach the port signs in.
    if oauth
        .as_ref()
        .is_some_and(|o| o.idp.kind == super::oauth::IdpKind::Dev)
        && !listen.proxy.ip().is_loopback()
    {
        return Err(err(
            "listen.proxy",
            format!(
                "idp.kind = \"dev\" signs anyone in: listen.proxy must be a loopback address (127.0.0.1 or [::1]), not {}",
                listen.proxy.ip()
            ),
        ));
    }
    let public_authority = authority(&public);
    let limits = crate::limits::config::gateway_limits(&raw.limits)
        .map_err(|(k, m)| err(&format!("limits.{k}"), m))?;
    let audit =
        crate::audit::config::audit(&raw.audit).map_err(|(k, m)| err(&format!("audit.{k}"), m))?;
    let tracing = crate::telemetry::config::tracing(&raw.tracing)
        .map_err(|(k, m)| err(&format!("tracing.{k}"), m))?;
    let mut pages = super::PagesConfig {
        logo_hosts: raw
            .pages
            .logo_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        ..Default::default()
    };
    if let Some(i) = pages
        .logo_hosts
        .iter()
        .position(|h| h.is_empty() || h.contains(['/', ':', ' ', '*']))
    {
        return Err(err(
            &format!("pages.logo_hosts[{i}]"),
            "must be a bare host name like cdn.example.com".into(),
        ));
    }
    let mut apps = Vec::with_capacity(raw.apps.len());
    let (mut ids, mut slugs, mut hosts) = (HashSet::new(), HashSet::new(), HashSet::new());
    for (i, mut raw_app) in raw.apps.into_iter().enumerate() {
        let key = |field: &str| format!("apps[{i}].{field}");
        let branding = raw_app.branding.take();
        let app = app(raw_app, None).map_err(|(field, msg)| err(&key(&field), msg))?;
        if let Some(b) = branding {
            b.validate(&pages.logo_hosts)
                .map_err(|e| err(&key(&e.toml_key()), e.to_string()))?;
            pages.branding.insert(app.id.clone(), b);
        }
        if !app.public && !auth.can_verify() && oauth.is_none() {
            return Err(err(
                &key("public"),
                "the app requires bearer tokens but neither [oauth] nor [auth] (jwks_uri, introspection_endpoint or userinfo_endpoint) can verify them; set `public = true` or configure one".into(),
            ));
        }
        if !ids.insert(app.id.clone()) {
            return Err(err(&key("id"), format!("duplicate app id `{}`", app.id)));
        }
        if !slugs.insert(app.slug.clone()) {
            return Err(err(
                &key("slug"),
                format!("duplicate app slug `{}`", app.slug),
            ));
        }
        if let Some(h) = &app.host {
            if is_public_host(&public_url, h) {
                return Err(err(
                    &key("host"),
                    format!("`{h}` is the gateway's own host (public_url); routing it to an app would take every app's traffic"),
                ));
            }
            if !hosts.insert(h.clone()) {
                return Err(err(&key("host"), format!("duplicate app host `{h}`")));
            }
        }
        apps.push(app);
    }

    let mut management_audiences = vec![public_url.clone()];
    for (i, aud) in raw.management.audiences.iter().enumerate() {
        let aud = aud.trim_end_matches('/');
        if aud.is_empty() {
            return Err(err(
                &format!("management.audiences[{i}]"),
                "must not be empty".into(),
            ));
        }
        if apps.iter().any(|a| a.resource_url(&public_url) == aud) {
            return Err(err(
                &format!("management.audiences[{i}]"),
                format!("`{aud}` is an app's MCP URL; app tokens must not manage the gateway"),
            ));
        }
        if !management_audiences.iter().any(|a| a == aud) {
            management_audiences.push(aud.to_string());
        }
    }

    Ok(Config {
        public_url,
        public_origin,
        public_authority,
        listen,
        server,
        storage,
        logging: Logging { level, format },
        auth,
        oauth,
        secrets_key_env: raw
            .secrets
            .key_env
            .unwrap_or_else(|| "DRIO_SECRETS_KEY".into()),
        admins: raw.management.admins,
        management_audiences,
        allow_upstream_cidrs,
        apps,
        limits,
        audit,
        tracing,
        pages,
    })
}

/// `host[:port]` of `public_url`, lower-case, without the scheme's default
/// port: what a request's `Host` must be on the gateway's own routes.
fn authority(public: &Url) -> String {
    let host = public.host_str().unwrap_or_default().to_ascii_lowercase();
    match public.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

fn storage(path: &Path, raw: &RawConfig) -> Result<StorageConfig, ConfigError> {
    let s = &raw.storage;
    let err = |key: &str, msg: &str| ConfigError::new(path, key, msg);
    match s.backend.as_deref().unwrap_or("embedded") {
        "embedded" => {
            if s.url.is_some() || s.url_env.is_some() || s.key_prefix.is_some() {
                return Err(err("storage.url", "only valid with backend = \"redis\""));
            }
            let p = s.path.clone().unwrap_or_else(|| "data/gateway.redb".into());
            // Bounded: redb's own default (1 GiB) fills as the file grows.
            let cache_bytes = match s.cache_size_mib {
                None => crate::store::embedded::DEFAULT_CACHE_BYTES,
                Some(mib @ 1..=65_536) => (mib as usize) << 20,
                Some(_) => {
                    return Err(err(
                        "storage.cache_size_mib",
                        "must be between 1 and 65536 (MiB)",
                    ))
                }
            };
            Ok(StorageConfig::Embedded {
                path: PathBuf::from(p),
                cache_bytes,
            })
        }
        "redis" => {
            if s.cache_size_mib.is_some() {
                return Err(err(
                    "storage.cache_size_mib",
                    "only valid with backend = \"embedded\"",
                ));
            }
            if s.path.is_some() {
                return Err(err(
                    "storage.path",
                    "only valid with backend = \"embedded\"",
                ));
            }
            let url = match (&s.url, &s.url_env) {
                (Some(u), None) => u.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    ConfigError::new(
                        path,
                        "storage.url_env",
                        format!("environment variable {var} is not set"),
                    )
                })?,
                (Some(_), Some(_)) => {
                    return Err(err("storage.url", "set url or url_env, not both"))
                }
                (None, None) => {
                    return Err(err("storage.url", "required with backend = \"redis\""))
                }
            };
            let parsed = Url::parse(&url).map_err(|_| err("storage.url", "not a redis:// URL"))?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(err("storage.url", "must start with redis:// or rediss://"));
            }
            Ok(StorageConfig::Redis {
                url,
                key_prefix: s.key_prefix.clone().unwrap_or_else(|| "drio:".into()),
                timeout: Duration::from_millis(s.timeout_ms.unwrap_or(250)),
            })
        }
        other => Err(ConfigError::new(
            path,
            "storage.backend",
            format!("`{other}` is not embedded or redis"),
        )),
    }
}

pub(crate) type FieldError = (String, String);

/// Validates one app. `owner` is the creator of an API app (None for the
/// config file's apps, which are trusted and open to anyone by default).
pub(crate) fn app(raw: RawApp, owner: Option<&str>) -> Result<AppConfig, FieldError> {
    let valid_token = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if !valid_token(&raw.slug) {
        return Err((
            "slug".into(),
            "must be 1-64 characters of a-z, 0-9, '-' or '_'".into(),
        ));
    }
    if raw.id.is_empty() || raw.id.len() > 128 || raw.id.contains('/') {
        return Err(("id".into(), "must be 1-128 characters without '/'".into()));
    }
    let upstream =
        parse_upstream(&raw.upstream).map_err(|m| ("upstream".to_string(), m.to_string()))?;
    let mcp_path = raw.mcp_path.unwrap_or_else(|| "/mcp".into());
    if !mcp_path.starts_with('/') || mcp_path.contains(['?', '#']) {
        return Err(("mcp_path".into(), "must be a path starting with '/'".into()));
    }
    let host = match raw.host {
        Some(h) => {
            let h = h.to_ascii_lowercase();
            if h.is_empty() || h.contains(['/', ':', ' ']) {
                return Err((
                    "host".into(),
                    "must be a bare host name like notes.mcp.example.com".into(),
                ));
            }
            Some(h)
        }
        None => None,
    };
    let allowed_origins = raw
        .allowed_origins
        .iter()
        .map(|o| {
            normalize_origin(o).ok_or((
                "allowed_origins".to_string(),
                format!("`{o}` is not an origin like https://app.example.com"),
            ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ms = |v: Option<u64>, default: u64, field: &'static str| match v.unwrap_or(default) {
        0 => Err((field.to_string(), "must be greater than 0".to_string())),
        n => Ok(Duration::from_millis(n)),
    };
    let tool_scopes = crate::config::tool_policy::validate(&raw.tools)?;
    if raw.public && !tool_scopes.is_empty() {
        // A public app takes no token, so no scope could ever be checked.
        return Err((
            "tools".into(),
            "a public app takes no token: per-tool scopes need `public = false`".into(),
        ));
    }
    Ok(AppConfig {
        tool_scopes,
        name: raw.name.unwrap_or_else(|| raw.slug.clone()),
        id: raw.id,
        slug: raw.slug,
        description: raw.description,
        upstream,
        mcp_path,
        host,
        public: raw.public,
        allowed_origins,
        connect_timeout: ms(raw.connect_timeout_ms, 3_000, "connect_timeout_ms")?,
        read_timeout: ms(raw.read_timeout_ms, 300_000, "read_timeout_ms")?,
        stream: super::StreamOverrides {
            idle_timeout: stream_seconds(raw.stream_idle_timeout_seconds)
                .map_err(|m| ("stream_idle_timeout_seconds".to_string(), m))?,
            heartbeat: stream_seconds(raw.stream_heartbeat_seconds)
                .map_err(|m| ("stream_heartbeat_seconds".to_string(), m))?,
        },
        required_scopes: raw.required_scopes,
        identity_headers: super::auth::identity_headers(raw.identity_headers)?,
        access: super::access::access(raw.access, owner)?,
        limits: crate::limits::config::app_limits(raw.limits)?,
        audit: crate::audit::config::app_audit(raw.audit)?,
    })
}

/// A stream setting in seconds: unset (`None`), off (`Some(None)`, written
/// 0) or a duration. A day at most: past that a typo is likelier than intent.
fn stream_seconds(v: Option<u64>) -> Result<Option<Option<Duration>>, String> {
    match v {
        None => Ok(None),
        Some(0) => Ok(Some(None)),
        Some(n) if n <= 86_400 => Ok(Some(Some(Duration::from_secs(n)))),
        Some(_) => Err("must be between 0 (off) and 86400".into()),
    }
}

/// True when `host` (a bare, lower-case name) is `public_url`'s host.
pub(crate) fn is_public_host(public_url: &str, host: &str) -> bool {
    Url::parse(public_url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_matches(['[', ']']).eq_ignore_ascii_case(host))
        })
        .unwrap_or(false)
}

/// Why an upstream base URL is refused (the message names the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpstreamUrlError {
    #[error("`{0}` is not a URL: {1}")]
    NotAUrl(String, String),
    #[error("scheme `{0}` is not http or https")]
    Scheme(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` must not carry a query, fragment or credentials")]
    Extras(String),
}

/// Parses an upstream base URL (`http(s)://host[:port][/base]`).
pub(crate) fn parse_upstream(s: &str) -> Result<Upstream, UpstreamUrlError> {
    let url = Url::parse(s).map_err(|e| UpstreamUrlError::NotAUrl(s.into(), e.to_string()))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(UpstreamUrlError::Scheme(other.into())),
    };
    let host = url
        .host_str()
        .ok_or_else(|| UpstreamUrlError::NoHost(s.into()))?
        .to_string();
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(UpstreamUrlError::Extras(s.into()));
    }
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Upstream {
        tls,
        host,
        port,
        authority,
        base_path: url.path().trim_end_matches('/').to_string(),
    })
}

/// `scheme://host[:port]` in its ASCII serialisation, or None if `s` isn't one.
pub(crate) fn normalize_origin(s: &str) -> Option<String> {
    let url = Url::parse(s).ok()?;
    if url.path() != "/" && !url.path().is_empty() {
        return None;
    }
    match url.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// `server.upgrade_sock`: an absolute path short enough for a Unix socket
/// address (108 bytes with the NUL on Linux). No default: whoever can create
/// that path receives the listening sockets on SIGQUIT, so the operator
/// chooses a directory only the gateway's user can write (not a shared /tmp).
fn upgrade_sock(path: &Path, raw: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let sock = PathBuf::from(raw);
    if !sock.is_absolute() {
        return Err(ConfigError::new(
            path,
            "server.upgrade_sock",
            "must be an absolute path",
        ));
    }
    if sock.as_os_str().len() > 100 {
        return Err(ConfigError::new(
            path,
            "server.upgrade_sock",
            "must be at most 100 bytes (a Unix socket path)",
        ));
    }
    Ok(Some(sock))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
public_url = "https://gw.example.com/"
[listen]
proxy = "127.0.0.1:8080"
admin = "127.0.0.1:9090"
"#;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("test.toml"), &format!("{BASE}{extra}"))
    }

    #[test]
    fn public_authority_is_lower_case_without_the_default_port() {
        for (url, want) in [
            ("https://GW.Example.com/", "gw.example.com"),
            ("https://gw.example.com:443", "gw.example.com"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://[::1]:80/", "[::1]"),
        ] {
            let text = BASE.replace("https://gw.example.com/", url);
            let c = Config::from_toml(Path::new("t.toml"), &text).unwrap();
            assert_eq!(c.public_authority, want, "{url}");
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.public_url, "https://gw.example.com");
        assert_eq!(c.public_origin, "https://gw.example.com");
        assert!(matches!(c.storage, StorageConfig::Embedded { .. }));
    }

    #[test]
    fn the_embedded_page_cache_is_bounded_by_default_and_configurable() {
        // redb's own default is 1 GiB, filled as the file grows: never left to it.
        let cache = |c: Config| match c.storage {
            StorageConfig::Embedded { cache_bytes, .. } => cache_bytes,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            cache(load("").unwrap()),
            crate::store::embedded::DEFAULT_CACHE_BYTES
        );
        const _: () = assert!(crate::store::embedded::DEFAULT_CACHE_BYTES <= 64 << 20);
        assert_eq!(
            cache(load("[storage]\ncache_size_mib = 8\n").unwrap()),
            8 << 20
        );
        assert!(load("[storage]\ncache_size_mib = -1\n").is_err());
        for bad in ["0", "65537"] {
            let e = load(&format!("[storage]\ncache_size_mib = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "storage.cache_size_mib", "{bad}: {e}");
        }
        let e = load(
            "[storage]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1\"\ncache_size_mib = 8\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "storage.cache_size_mib", "{e}");
    }

    #[test]
    fn h2c_is_off_unless_asked_for() {
        assert!(!load("").unwrap().server.h2c);
        assert!(load("[server]\nh2c = true\n").unwrap().server.h2c);
        assert!(load("[server]\nh2c = 1\n").is_err());
    }

    #[test]
    fn upgrade_sock_has_no_default_and_must_be_absolute() {
        assert_eq!(load("").unwrap().server.upgrade_sock, None);
        let c = load("[server]\nupgrade_sock = \"/run/drio/upgrade.sock\"\n").unwrap();
        assert_eq!(
            c.server.upgrade_sock.as_deref(),
            Some(Path::new("/run/drio/upgrade.sock"))
        );
        let e = load("[server]\nupgrade_sock = \"upgrade.sock\"\n").unwrap_err();
        assert_eq!(e.key, "server.upgrade_sock", "{e}");
        let long = format!("[server]\nupgrade_sock = \"/{}\"\n", "x".repeat(120));
        assert_eq!(load(&long).unwrap_err().key, "server.upgrade_sock");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load("[logging]\nlevl = \"info\"\n").unwrap_err();
        assert_eq!(e.key, "levl", "{e}");
        assert!(e.to_string().starts_with("test.toml: levl"), "{e}");
    }

    #[test]
    fn bad_upstream_names_the_app_key() {
        let e = load("[[apps]]\nid = \"a\"\nslug = \"a\"\nupstream = \"ftp://x\"\n").unwrap_err();
        assert_eq!(e.key, "apps[0].upstream");
    }

    #[test]
    fn upstream_parts() {
        let u = parse_upstream("https://api.example.com/base/").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority.as_str(), u.base_path.as_str()),
            (true, 443, "api.example.com", "/base")
        );
        let u = parse_upstream("http://127.0.0.1:3001").unwrap();
        assert_eq!(
            (u.port, u.authority.as_str(), u.base_path.as_str()),
            (3001, "127.0.0.1:3001", "")
        );
    }

    #[test]
    fn security_cidrs_are_validated_by_index() {
        let c =
            load("[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n").unwrap();
        assert_eq!(c.allow_upstream_cidrs.len(), 2);
        let e = load("[security]\nallow_upstream_cidrs = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n")
            .unwrap_err();
        assert_eq!(e.key, "security.allow_upstream_cidrs[1]", "{e}");
        let e = load("[security]\nallow = []\n").unwrap_err();
        assert_eq!(e.key, "allow", "{e}");
        assert!(load("").unwrap().allow_upstream_cidrs.is_empty());
    }

    #[test]
    fn admin_token_env_is_optional() {
        assert_eq!(load("").unwrap().listen.admin_token_env, None);
        let c = Config::from_toml(
            Path::new("t.toml"),
            "public_url = \"https://gw.example.com\"\n[listen]\nproxy = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\nadmin_token_env = \"GW_ADMIN\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.admin_token_env.as_deref(), Some("GW_ADMIN"));
    }

    #[test]
    fn origins_normalise() {
        assert_eq!(
            normalize_origin("HTTPS://App.Example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(normalize_origin("https://x.com/path"), None);
    }

    #[test]
    fn an_app_may_not_take_the_gateways_own_host() {
        let e = load("[[apps]]\nid = \"a\"\nslug = \"a\"\nupstream = \"http://x\"\npublic = true\nhost = \"GW.example.com\"\n")
            .unwrap_err();
        assert_eq!(e.key, "apps[0].host", "{e}");
    }

    #[test]
    fn management_audiences_never_include_an_app() {
        let c = load("[management]\naudiences = [\"https://api.example.com/\"]\n").unwrap();
        assert_eq!(
            c.management_audiences,
            ["https://gw.example.com", "https://api.example.com"]
        );
        let e = load("[management]\naudiences = [\"https://gw.example.com/apps/a/mcp\"]\n[[apps]]\nid = \"a\"\nslug = \"a\"\nupstream = \"http://x\"\npublic = true\n")
            .unwrap_err();
        assert_eq!(e.key, "management.audiences[0]", "{e}");
    }
}
