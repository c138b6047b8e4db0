//! Which address a request comes from, for every per-address limit
//! (registration, revocation) and for the `X-Forwarded-For` the upstream
//! sees. Behind a load balancer every connection comes from the balancer,
//! so the peer address alone would put every client in one bucket; but a
//! client-sent `X-Forwarded-For` is a lie until a trusted hop vouches for
//! it. The rule (as in nginx's `real_ip_recursive`): start from the peer,
//! and while the current hop is one of `server.trusted_proxies`, step to
//! the address it forwarded for, right to left.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request from `peer` with these headers.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        hops.extend(text.split(','));
    }
    let mut current = peer;
    for hop in hops.iter().rev() {
        // An entry that is not an address ends the chain: nothing before it
        // can be vouched for.
        let Ok(ip) = hop.trim().parse::<IpAddr>().map(canonical) else {
            return current;
        };
        current = ip;
        if !is_trusted(ip, trusted) {
            return ip;
        }
    }
    current
}

/// True when `ip` is one of the operator's proxies.
pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    !trusted.is_empty() && trusted.iter().any(|n| n.contains(&canonical(ip)))
}

/// An IPv4 client seen through a dual-stack listener (`::ffff:a.b.c.d`)
/// is that IPv4 address, for proxies and limits alike.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The bucket a per-address limit counts in: the address for IPv4, its /64
/// for IPv6 (one host usually owns a whole /64).
pub(crate) fn limit_bucket(ip: IpAddr) -> String {
    // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`: count
    // them as the IPv4 address, not all in the one /64 they share.
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_trusted_hops_vouch_for_forwarded_addresses() {
        let lb: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        let h = headers(&["6.6.6.6, 203.0.113.7", "10.2.2.2"]);
        assert_eq!(
            client_ip(peer, &h, &lb),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &lb), stranger);
        // A dual-stack listener's mapped form of a trusted proxy is trusted.
        let mapped: IpAddr = "::ffff:10.1.1.1".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &h, &lb),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // Nothing trusted: the peer, always.
        assert_eq!(client_ip(peer, &h, &[]), peer);
        // Garbage ends the chain at the last vouched hop.
        assert_eq!(
            client_ip(peer, &headers(&["203.0.113.7, nonsense"]), &lb),
            peer
        );
    }

    #[test]
    fn ipv6_counts_per_slash_64() {
        let a = limit_bucket("2001:db8::1".parse().unwrap());
        let b = limit_bucket("2001:db8::ffff:2".parse().unwrap());
        let c = limit_bucket("2001:db8:0:1::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(limit_bucket("192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_eq!(
            limit_bucket("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1"
        );
        assert_ne!(
            limit_bucket("::ffff:192.0.2.1".parse().unwrap()),
            limit_bucket("::ffff:192.0.2.2".parse().unwrap())
        );
    }
}
