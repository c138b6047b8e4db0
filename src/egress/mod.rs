//! Egress policy: which addresses the gateway may connect to on a user's
//! behalf. Every URL a signed-in user supplies through the management API
//! (an app's `upstreamUrl`, a connection's token, registration and refresh
//! endpoints) is checked here, so a user cannot make the gateway reach its
//! own admin listener, the cloud metadata service or the private network
//! (server-side request forgery, OWASP SSRF; CWE-918).
//!
//! Forbidden are the special-purpose ranges of the IANA IPv4 and IPv6
//! Special-Purpose Address Registries (RFC 6890): loopback, unspecified,
//! private (RFC 1918, RFC 4193), link-local (RFC 3927, RFC 4291), shared
//! CGNAT space (RFC 6598), multicast, broadcast, reserved (RFC 1112 240/4),
//! benchmarking (RFC 2544), documentation (RFC 5737, RFC 3849) and the IETF
//! protocol assignments (192.0.0.0/24) — plus every IPv6 form that embeds a
//! forbidden IPv4 address: IPv4-mapped and IPv4-compatible (RFC 4291
//! §2.5.5), NAT64 (RFC 6052, RFC 8215) and 6to4 (RFC 3056). An operator may
//! re-allow ranges with `[security] allow_upstream_cidrs`.
//!
//! Two layers use it: [`EgressPolicy::check_url`] refuses a URL when any
//! address its host resolves to is forbidden (fail closed), and
//! [`EgressClient`] is a `reqwest` client whose resolver drops forbidden
//! addresses at connect time, so a DNS answer that changes between the check
//! and the connection (DNS rebinding) still cannot reach a forbidden address.
//! Config-file apps and the identity provider are the operator's and are not
//! subject to this policy.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// Why an address is forbidden: a class of the special-purpose registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressClass {
    Loopback,
    Unspecified,
    Private,
    LinkLocal,
    SharedCgnat,
    Multicast,
    Broadcast,
    Reserved,
    Benchmarking,
    Documentation,
    ProtocolAssignments,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedCgnat => "shared (CGNAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Documentation => "documentation",
            AddressClass::ProtocolAssignments => "IETF protocol assignment",
        })
    }
}

/// The class of a forbidden IPv4 address, or None for a global one.
fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => Broadcast,
        (0, ..) => Unspecified,
        (127, ..) => Loopback,
        (10, ..) => Private,
        (172, 16..=31, _) => Private,
        (192, 168, _) => Private,
        (169, 254, _) => LinkLocal,
        (100, 64..=127, _) => SharedCgnat,
        (192, 0, 0) => ProtocolAssignments,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (224..=239, ..) => Multicast,
        (240..=255, ..) => Reserved,
        _ => return None,
    })
}

/// The class of a forbidden IPv6 address (including one embedding a
/// forbidden IPv4 address), or None for a global one.
fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    let s = ip.segments();
    let v4_at = |i: usize| Ipv4Addr::from((u32::from(s[i]) << 16) | u32::from(s[i + 1]));
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): a
    // dual-stack socket connects to the embedded IPv4 address.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return classify_v4(v4_at(6));
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): the translator
    // connects to the embedded address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(v4_at(6));
    }
    // Local-use NAT64 64:ff9b:1::/48 (RFC 8215): the operator chooses the
    // prefix length, so the embedded address cannot be located for sure.
    // Name the class of a forbidden /96 or /48 embedding when there is one
    // (RFC 6052 §2.2 layouts); the whole prefix is local use, so it is
    // private either way.
    if s[..3] == [0x64, 0xff9b, 0x1] {
        let at48 = Ipv4Addr::from(
            (u32::from(s[3]) << 16) | (u32::from(s[4] >> 8) << 8) | u32::from(s[5] & 0xff),
        );
        // The unused layout reads as zeros (0.0.0.0): prefer the other.
        return [classify_v4(v4_at(6)), classify_v4(at48)]
            .into_iter()
            .flatten()
            .find(|c| *c != Unspecified)
            .or(Some(Private));
    }
    // 6to4 2002::/16 (RFC 3056): the relay forwards to the embedded address.
    if s[0] == 0x2002 {
        return classify_v4(v4_at(1));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => Private,   // fc00::/7 unique local
        x if x & 0xffc0 == 0xfec0 => Private,   // fec0::/10 site-local (deprecated)
        x if x & 0xffc0 == 0xfe80 => LinkLocal, // fe80::/10
        x if x & 0xff00 == 0xff00 => Multicast, // ff00::/8
        0x2001 if s[1] == 0x0db8 => Documentation,
        _ => return None,
    })
}

/// The class of a forbidden address, or None when it is global.
pub(crate) fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Why an outbound URL or address is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum EgressError {
    #[error("is not an http(s) URL with a host")]
    InvalidUrl,
    #[error("resolves to a {0} address")]
    Forbidden(AddressClass),
    #[error("does not resolve")]
    Unresolvable,
}

/// The policy: forbidden classes minus the operator's allowed ranges.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

impl EgressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Ok when the gateway may connect to `ip` for a user. An IPv4-mapped
    /// address is judged as the IPv4 address it connects to.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        let ip = ip.to_canonical();
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match classify(ip) {
            Some(class) => Err(EgressError::Forbidden(class)),
            None => Ok(()),
        }
    }

    /// Resolves `host` and checks every address; refuses when any is
    /// forbidden (a name with one private answer is not half-trusted) or
    /// when nothing resolves. Returns the addresses with `port`.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| EgressError::Unresolvable)?
            .collect();
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable);
        }
        for a in &addrs {
            self.check_ip(a.ip())?;
        }
        Ok(addrs)
    }

    /// Checks a user-supplied URL: http(s), a host, and every address the
    /// host resolves to allowed.
    pub(crate) async fn check_url(&self, url: &str) -> Result<(), EgressError> {
        let url = url::Url::parse(url).map_err(|_| EgressError::InvalidUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::InvalidUrl);
        }
        let port = url.port_or_known_default().ok_or(EgressError::InvalidUrl)?;
        match url.host().ok_or(EgressError::InvalidUrl)? {
            url::Host::Ipv4(ip) => self.check_ip(ip.into()),
            url::Host::Ipv6(ip) => self.check_ip(ip.into()),
            url::Host::Domain(d) => self.resolve(d, port).await.map(|_| ()),
        }
    }
}

/// A `reqwest` resolver that drops forbidden addresses, so the connection
/// goes only to an address the policy allows whatever DNS answers now.
struct PolicyResolver(Arc<EgressPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| EgressError::Unresolvable)?;
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = addrs
                .filter(|a| match policy.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        first_refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let e = first_refusal.unwrap_or(EgressError::Unresolvable);
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The outbound client for user-supplied URLs: the policy's resolver, no
/// proxy (a proxy would resolve the name where the policy cannot see it),
/// no redirects (a redirect could point anywhere), and IP-literal hosts
/// checked before sending (reqwest resolves no literal).
#[derive(Clone)]
pub(crate) struct EgressClient {
    http: reqwest::Client,
    policy: Arc<EgressPolicy>,
}

impl EgressClient {
    pub(crate) fn new(policy: Arc<EgressPolicy>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver(Arc::clone(&policy))))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drio-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, policy })
    }

    pub(crate) fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// A request to `url`, or why the URL may not be called.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, EgressError> {
        let parsed = url::Url::parse(url).map_err(|_| EgressError::InvalidUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(EgressError::InvalidUrl);
        }
        match parsed.host().ok_or(EgressError::InvalidUrl)? {
            url::Host::Ipv4(ip) => self.policy.check_ip(ip.into())?,
            url::Host::Ipv6(ip) => self.policy.check_ip(ip.into())?,
            url::Host::Domain(_) => {}
        }
        Ok(self.http.request(method, parsed))
    }

    pub(crate) fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, EgressError> {
        self.request(reqwest::Method::POST, url)
    }
}

/// What went wrong with an outbound call, as a class that can be shown to
/// the user: never any byte the remote sent (an internal service's answer
/// must not be readable through an error message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutboundFailure {
    #[error("connect")]
    Connect,
    #[error("timeout")]
    Timeout,
    #[error("tls")]
    Tls,
    #[error("forbidden address ({0})")]
    Forbidden(AddressClass),
    #[error("does not resolve")]
    Unresolvable,
    #[error("invalid URL")]
    InvalidUrl,
    #[error("status {0}")]
    Status(u16),
    #[error("invalid response")]
    InvalidResponse,
}

impl From<EgressError> for OutboundFailure {
    fn from(e: EgressError) -> Self {
        match e {
            EgressError::InvalidUrl => OutboundFailure::InvalidUrl,
            EgressError::Forbidden(c) => OutboundFailure::Forbidden(c),
            EgressError::Unresolvable => OutboundFailure::Unresolvable,
        }
    }
}

impl From<&reqwest::Error> for OutboundFailure {
    /// Classifies a transport error by walking its source chain: the
    /// policy's own refusal, then timeouts, TLS and connection failures.
    /// The text looked at is our own stack's, and only the class leaves.
    fn from(e: &reqwest::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut text = String::new();
        while let Some(s) = source {
            if let Some(egress) = s.downcast_ref::<EgressError>() {
                return egress.clone().into();
            }
            text.push_str(&s.to_string().to_ascii_lowercase());
            text.push(' ');
            source = s.source();
        }
        if e.is_timeout() {
            OutboundFailure::Timeout
        } else if text.contains("certificate") || text.contains("tls") {
            OutboundFailure::Tls
        } else if e.is_connect() || e.is_request() {
            OutboundFailure::Connect
        } else {
            OutboundFailure::InvalidResponse
        }
    }
}

impl From<reqwest::Error> for OutboundFailure {
    fn from(e: reqwest::Error) -> Self {
        (&e).into()
    }
}

/// Parses `allow_upstream_cidrs` entries: `10.0.0.0/8`, `::1/128`, or a
/// bare address (one host). Host bits past the prefix are cleared.
pub(crate) fn parse_cidr(s: &str) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

#[cfg(test)]
mod tests;
