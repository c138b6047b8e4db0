//! Host / path → app → upstream peer.
//!
//! The route table is rebuilt off the hot path (at start, on a live change,
//! when upstream DNS is refreshed) and swapped in atomically; a request only
//! reads it. Upstream host names are resolved while building the table, so
//! choosing a peer never does DNS on the request path.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use moka::future::Cache;

use crate::config::AppConfig;
use crate::credentials::Injection;
use crate::egress::{EgressError, EgressPolicy};

/// One routable app with its resolved upstream address.
#[derive(Debug)]
pub struct Route {
    pub(crate) app: Arc<AppConfig>,
    /// None when the upstream host did not resolve, or (for an API-created
    /// app) resolved to an address the egress policy forbids; requests then
    /// get 502.
    pub(crate) addr: Option<SocketAddr>,
    /// False for API-created apps (see [`RouteSpec::trusted`]).
    pub(crate) trusted: bool,
    /// The app's MCP URL: its RFC 8707 resource identifier and token audience.
    pub(crate) resource: String,
    /// Where its RFC 9728 protected-resource metadata lives (sent in 401 challenges).
    pub(crate) resource_metadata_url: String,
    /// Token audiences accepted here (RFC 8707): the resource URL in its path
    /// and host forms and any configured extras (never the gateway's own URL).
    pub(crate) audiences: Vec<String>,
    /// Upstream credentials of the app's default auth connection.
    pub(crate) injection: Arc<Injection>,
    /// Tools whose `tools/call` the gateway refuses.
    pub(crate) disabled_tools: Arc<HashSet<String>>,
    /// Per-request constants, computed once per route rather than per request.
    pub(crate) hot: RouteHot,
}

/// What the proxy's hot path needs of a route, prepared once.
pub(crate) struct RouteHot {
    /// The upstream's `Host` (its authority).
    pub(crate) host: http::HeaderValue,
    /// The upstream request target of a request for the app's MCP endpoint
    /// with no query (what MCP clients send): base path + `mcp_path`, parsed
    /// once. `None` when that is not a valid target.
    pub(crate) mcp_uri: Option<http::Uri>,
    /// Metric handles of the app (resolved on first use).
    pub(crate) metrics: crate::metrics::AppMetrics,
}

impl std::fmt::Debug for RouteHot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteHot")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl RouteHot {
    fn new(app: &AppConfig) -> Self {
        Self {
            // The authority was parsed from a URL: a valid header value.
            host: http::HeaderValue::from_str(&app.upstream.authority)
                .unwrap_or_else(|_| http::HeaderValue::from_static("invalid")),
            mcp_uri: http::Uri::try_from(format!("{}{}", app.upstream.base_path, app.mcp_path))
                .ok(),
            metrics: crate::metrics::AppMetrics::new(&app.slug),
        }
    }
}

/// What a route is built from: the app plus its catalog extras.
pub struct RouteSpec {
    pub app: Arc<AppConfig>,
    pub injection: Arc<Injection>,
    pub disabled_tools: Arc<HashSet<String>>,
    /// True for config-file apps (the operator's); false for apps users
    /// created through the API, whose upstream must pass the egress policy.
    pub trusted: bool,
}

impl RouteSpec {
    /// A trusted app with no upstream credentials and every tool enabled.
    #[cfg(test)]
    pub(crate) fn plain(app: Arc<AppConfig>) -> Self {
        Self {
            app,
            injection: Arc::new(Injection::None),
            disabled_tools: Arc::default(),
            trusted: true,
        }
    }
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credential itself.
        f.write_str(match self {
            Injection::None => "None",
            Injection::Header(..) => "Header(***)",
            Injection::Query { .. } => "Query(***)",
            Injection::ClientCredentials(_) => "ClientCredentials",
            Injection::PerUser(_) => "PerUser",
            Injection::TokenExchange(_) => "TokenExchange",
            Injection::WorkosPipes(_) => "WorkosPipes",
        })
    }
}

#[derive(Debug, Default)]
pub struct RouteTable {
    by_slug: HashMap<String, Arc<Route>>,
    by_host: HashMap<String, Arc<Route>>,
}

/// What a request path selected.
pub struct Selected<'a> {
    pub(crate) route: Arc<Route>,
    /// The path below the app prefix, always starting with '/'.
    pub rest: &'a str,
}

impl RouteTable {
    /// Builds a table, resolving the upstream hosts (concurrently, through
    /// `dns`, never on the request path). An untrusted app's addresses are
    /// checked against `egress` at every rebuild, and the checked address is
    /// the one Pingora connects to: a name re-pointed at a forbidden address
    /// (DNS rebinding) loses its route instead of reaching it.
    pub async fn build(
        public_url: &str,
        extra_audiences: &[String],
        egress: &EgressPolicy,
        dns: &UpstreamDns,
        specs: impl IntoIterator<Item = RouteSpec>,
    ) -> RouteTable {
        let specs: Vec<RouteSpec> = specs.into_iter().collect();
        // In spec order, LOOKUPS_AT_ONCE at a time: a rebuild of N apps
        // costs about N / LOOKUPS_AT_ONCE lookups, not N one after another.
        // (Plain loops, not stream combinators: those trip rustc's
        // higher-ranked Send inference for the spawned rebuild task.)
        let mut resolved: Vec<Arc<Vec<SocketAddr>>> = Vec::with_capacity(specs.len());
        for chunk in specs.chunks(LOOKUPS_AT_ONCE) {
            let mut lookups = Vec::with_capacity(chunk.len());
            for s in chunk {
                lookups.push(dns.lookup(&s.app.upstream.host, s.app.upstream.port));
            }
            resolved.extend(join_all(lookups).await);
        }
        let mut table = RouteTable::default();
        for (spec, addrs) in specs.into_iter().zip(resolved) {
            let app = spec.app;
            let addr = if spec.trusted {
                let addr = addrs.first().copied();
                if addr.is_none() {
                    tracing::warn!(app = %app.slug, host = %app.upstream.host, "upstream host did not resolve");
                }
                addr
            } else {
                match egress_checked(egress, &addrs) {
                    Ok(addr) => Some(addr),
                    Err(e) => {
                        tracing::warn!(app = %app.slug, host = %app.upstream.host, reason = %e, "upstream of an API-created app refused by the egress policy");
                        None
                    }
                }
            };
            let resource = app.resource_url(public_url);
            // The app's own MCP URL (path form first: refusals name it), its
            // host form, and the operator's extras. Never `public_url`: that
            // audience is the management API's, and a token for it must not
            // reach any app (RFC 8707 audience restriction).
            let mut audiences = vec![resource.clone()];
            if let (Some(h), Some((scheme, _))) = (&app.host, public_url.split_once("://")) {
                audiences.push(format!("{scheme}://{h}{}", app.mcp_path));
            }
            for extra in extra_audiences {
                if !audiences.contains(extra) {
                    audiences.push(extra.clone());
                }
            }
            let route = Arc::new(Route {
                audiences,
                resource,
                resource_metadata_url: format!(
                    "{public_url}/.well-known/oauth-protected-resource/apps/{}{}",
                    app.slug, app.mcp_path
                ),
                app: app.clone(),
                addr,
                trusted: spec.trusted,
                injection: spec.injection,
                disabled_tools: spec.disabled_tools,
                hot: RouteHot::new(&app),
            });
            // First claim wins (config apps come first, then stored apps by
            // creation): a later app can never take a slug or a host, nor
            // anyone the gateway's own name, whatever the store holds.
            if table.by_slug.contains_key(&app.slug) {
                tracing::warn!(app = %app.id, slug = %app.slug, "slug already routed; app skipped");
                continue;
            }
            if let Some(h) = &app.host {
                if crate::config::validate::is_public_host(public_url, h)
                    || table.by_host.contains_key(h)
                {
                    tracing::warn!(app = %app.id, host = %h, "host already routed or the gateway's own; routing this app by path only");
                } else {
                    table.by_host.insert(h.clone(), route.clone());
                }
            }
            table.by_slug.insert(app.slug.clone(), route);
        }
        table
    }

    pub(crate) fn apps(&self) -> impl Iterator<Item = &Arc<AppConfig>> {
        self.by_slug.values().map(|r| &r.app)
    }

    /// The route whose MCP URL (RFC 8707 resource) is `resource`.
    pub(crate) fn by_resource(&self, resource: &str) -> Option<&Arc<Route>> {
        self.by_slug.values().find(|r| r.resource == resource)
    }

    pub fn by_slug(&self, slug: &str) -> Option<&Arc<Route>> {
        self.by_slug.get(slug)
    }

    /// Matches a request's Host header (port ignored, case-insensitive).
    pub fn by_host(&self, host: &str) -> Option<&Arc<Route>> {
        if self.by_host.is_empty() {
            return None;
        }
        let name = strip_port(host);
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&name.to_ascii_lowercase())
        } else {
            self.by_host.get(name)
        }
    }

    /// Matches `/apps/{slug}` or `/apps/{slug}/…`.
    pub fn by_path<'a>(&self, path: &'a str) -> Option<Selected<'a>> {
        let after = path.strip_prefix("/apps/")?;
        let (slug, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        let route = self.by_slug.get(slug)?.clone();
        Some(Selected { route, rest })
    }
}

/// True when the path is under `/apps/` (so a miss is an unknown app).
pub fn is_app_path(path: &str) -> bool {
    path.starts_with("/apps/")
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| h.trim_start_matches('['));
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The first address of an API-created app's upstream, when every address
/// it resolved to passes the egress policy (as [`EgressPolicy::resolve`]
/// judges: a name with one forbidden answer is not half-trusted).
fn egress_checked(egress: &EgressPolicy, addrs: &[SocketAddr]) -> Result<SocketAddr, EgressError> {
    let first = *addrs.first().ok_or(EgressError::Unresolvable)?;
    for a in addrs {
        egress.check_ip(a.ip())?;
    }
    Ok(first)
}

/// Upstream lookups in flight at once during one rebuild.
const LOOKUPS_AT_ONCE: usize = 32;
/// How long a lookup's answer (or failure) serves later rebuilds. Short: the
/// periodic rebuild exists to follow DNS changes.
const DNS_TTL: Duration = Duration::from_secs(10);
/// A resolver that drops the query would otherwise hold the whole rebuild
/// (and every writer waiting on it) for its full retry schedule.
const LOOKUP_LIMIT: Duration = Duration::from_secs(2);

/// Upstream (host, port) → addresses, briefly cached and shared by
/// rebuilds. Concurrent lookups of one name become one (moka's `get_with`),
/// so many apps on one host cost one query. An empty answer means "did not
/// resolve". Addresses are cached unchecked: the egress policy is applied
/// per app at every rebuild.
pub struct UpstreamDns {
    cache: Cache<(String, u16), Arc<Vec<SocketAddr>>>,
}

impl Default for UpstreamDns {
    fn default() -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(DNS_TTL)
                .build(),
        }
    }
}

impl UpstreamDns {
    async fn lookup(&self, host: &str, port: u16) -> Arc<Vec<SocketAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Arc::new(vec![SocketAddr::new(ip, port)]);
        }
        self.cache
            .get_with((bare.to_string(), port), async move {
                match tokio::time::timeout(LOOKUP_LIMIT, tokio::net::lookup_host((bare, port)))
                    .await
                {
                    Ok(Ok(addrs)) => Arc::new(addrs.collect()),
                    _ => Arc::new(Vec::new()),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::parse_upstream;
    use crate::config::AppConfig;

    fn app(slug: &str, host: Option<&str>) -> Arc<AppConfig> {
        Arc::new(AppConfig {
            id: format!("app_{slug}"),
            slug: slug.into(),
            name: slug.into(),
            description: None,
            upstream: parse_upstream("http://127.0.0.1:9").unwrap(),
            mcp_path: "/mcp".into(),
            host: host.map(Into::into),
            public: true,
            allowed_origins: vec![],
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            stream: Default::default(),
            required_scopes: vec![],
            identity_headers: Default::default(),
            tool_scopes: Default::default(),
            access: crate::config::access::Access::anyone(),
            limits: Default::default(),
            audit: Default::default(),
        })
    }

    #[tokio::test]
    async fn routes_by_path_and_host() {
        let t = RouteTable::build(
            "https://gw.example.com",
            &[],
            &EgressPolicy::default(),
            &UpstreamDns::default(),
            [
                RouteSpec::plain(app("notes", Some("notes.mcp.example.com"))),
                RouteSpec::plain(app("crm", None)),
            ],
        )
        .await;
        let s = t.by_path("/apps/notes/mcp").unwrap();
        assert_eq!((s.route.app.slug.as_str(), s.rest), ("notes", "/mcp"));
        assert_eq!(t.by_path("/apps/crm").unwrap().rest, "/");
        assert!(t.by_path("/apps/nope/mcp").is_none());
        assert!(t.by_path("/appsnotes/mcp").is_none());
        assert_eq!(
            t.by_host("Notes.MCP.example.com:443").unwrap().app.slug,
            "notes"
        );
        assert!(t.by_host("other.example.com").is_none());
        assert_eq!(
            t.by_slug("notes").unwrap().resource,
            "https://gw.example.com/apps/notes/mcp"
        );
        assert_eq!(
            t.by_slug("notes").unwrap().resource_metadata_url,
            "https://gw.example.com/.well-known/oauth-protected-resource/apps/notes/mcp"
        );
        assert_eq!(
            t.by_slug("crm").unwrap().addr,
            Some("127.0.0.1:9".parse().unwrap())
        );
    }

    fn app_at(slug: &str, upstream: &str) -> Arc<AppConfig> {
        Arc::new(AppConfig {
            upstream: parse_upstream(upstream).unwrap(),
            ..(*app(slug, None)).clone()
        })
    }

    #[tokio::test]
    async fn many_apps_on_one_name_share_one_lookup_and_each_is_still_policed() {
        let dns = UpstreamDns::default();
        let mut specs: Vec<RouteSpec> = (0..5)
            .map(|i| RouteSpec::plain(app_at(&format!("ops{i}"), "http://localhost:9")))
            .collect();
        specs.push(RouteSpec {
            trusted: false,
            ..RouteSpec::plain(app_at("mine", "http://localhost:9"))
        });
        let t = RouteTable::build(
            "https://gw.example.com",
            &[],
            &EgressPolicy::default(),
            &dns,
            specs,
        )
        .await;
        let first = t.by_slug("ops0").unwrap().addr;
        assert!(first.is_some_and(|a| a.ip().is_loopback()), "{first:?}");
        for i in 1..5 {
            assert_eq!(t.by_slug(&format!("ops{i}")).unwrap().addr, first);
        }
        // The cached answer is checked per app: a user's app on a loopback
        // name is refused although the operator's apps on it route.
        assert_eq!(t.by_slug("mine").unwrap().addr, None);
        dns.cache.run_pending_tasks().await;
        assert_eq!(
            dns.cache.entry_count(),
            1,
            "one lookup for one (host, port)"
        );
    }

    #[tokio::test]
    async fn an_untrusted_forbidden_upstream_gets_no_address() {
        let untrusted = |slug: &str| RouteSpec {
            trusted: false,
            ..RouteSpec::plain(app(slug, None))
        };
        let t = RouteTable::build(
            "https://gw.example.com",
            &[],
            &EgressPolicy::default(),
            &UpstreamDns::default(),
            [untrusted("mine"), RouteSpec::plain(app("ops", None))],
        )
        .await;
        assert_eq!(t.by_slug("mine").unwrap().addr, None);
        assert!(!t.by_slug("mine").unwrap().trusted);
        assert!(t.by_slug("ops").unwrap().addr.is_some());
        let allowed = EgressPolicy::new(vec![crate::egress::parse_cidr("127.0.0.0/8").unwrap()]);
        let t = RouteTable::build(
            "https://gw.example.com",
            &[],
            &allowed,
            &UpstreamDns::default(),
            [untrusted("mine")],
        )
        .await;
        assert!(t.by_slug("mine").unwrap().addr.is_some());
    }

    #[tokio::test]
    async fn the_first_claim_of_a_host_wins_and_the_gateways_own_is_never_routed() {
        let t = RouteTable::build(
            "https://gw.example.com",
            &[],
            &EgressPolicy::default(),
            &UpstreamDns::default(),
            [
                RouteSpec::plain(app("first", Some("shared.example.com"))),
                RouteSpec::plain(app("second", Some("shared.example.com"))),
                RouteSpec::plain(app("hijack", Some("gw.example.com"))),
            ],
        )
        .await;
        assert_eq!(t.by_host("shared.example.com").unwrap().app.slug, "first");
        assert!(t.by_host("gw.example.com").is_none());
        // Still reachable by path, never by another's name.
        assert!(t.by_path("/apps/second/mcp").is_some());
        assert!(t.by_path("/apps/hijack/mcp").is_some());
        let audiences = &t.by_slug("first").unwrap().audiences;
        assert_eq!(audiences[0], "https://gw.example.com/apps/first/mcp");
        assert!(
            !audiences.iter().any(|a| a == "https://gw.example.com"),
            "an app never accepts the management audience: {audiences:?}"
        );
    }
}
