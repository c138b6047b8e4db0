//! Every forbidden class, the IPv6 forms embedding an IPv4 address, the
//! operator's allowance, and the checks on URLs and the client.

use super::*;
use AddressClass::*;

fn class(s: &str) -> Option<AddressClass> {
    classify(s.parse().unwrap())
}

#[test]
fn ipv4_classes() {
    for (ip, want) in [
        ("127.0.0.1", Loopback),
        ("127.255.255.254", Loopback),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("10.1.2.3", Private),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("192.168.1.1", Private),
        ("169.254.169.254", LinkLocal),
        ("100.64.0.1", SharedCgnat),
        ("100.127.255.255", SharedCgnat),
        ("224.0.0.1", Multicast),
        ("239.255.255.255", Multicast),
        ("255.255.255.255", Broadcast),
        ("240.0.0.1", Reserved),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.255", Benchmarking),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("192.0.0.8", ProtocolAssignments),
    ] {
        assert_eq!(class(ip), Some(want), "{ip}");
    }
}

#[test]
fn global_addresses_pass() {
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "192.0.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "::ffff:8.8.8.8",
    ] {
        assert_eq!(class(ip), None, "{ip}");
    }
}

#[test]
fn ipv6_classes() {
    for (ip, want) in [
        ("::1", Loopback),
        ("::", Unspecified),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("fec0::1", Private),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("ff02::1", Multicast),
        ("2001:db8::1", Documentation),
    ] {
        assert_eq!(class(ip), Some(want), "{ip}");
    }
}

#[test]
fn ipv6_forms_of_forbidden_ipv4() {
    for (ip, want) in [
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:7f00:1", Loopback),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:10.0.0.1", Private),
        ("::127.0.0.1", Loopback),
        ("::10.0.0.1", Private),
        ("64:ff9b::127.0.0.1", Loopback),
        ("64:ff9b::a9fe:a9fe", LinkLocal),
        ("64:ff9b:1::7f00:1", Loopback),
        // A /48 local-use embedding of 10.0.0.1 (RFC 6052 §2.2: u octet skipped).
        ("64:ff9b:1:a00:0:1::", Private),
        ("64:ff9b:1::808:808", Private),
        ("2002:7f00:1::", Loopback),
        ("2002:a9fe:a9fe::1", LinkLocal),
        ("2002:c0a8:101::", Private),
    ] {
        assert_eq!(class(ip), Some(want), "{ip}");
    }
}

fn policy(allow: &[&str]) -> EgressPolicy {
    EgressPolicy::new(allow.iter().map(|c| parse_cidr(c).unwrap()).collect())
}

#[test]
fn allowance_reopens_only_its_ranges() {
    let p = policy(&["127.0.0.0/8", "::1/128", "10.1.0.0/16"]);
    assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
    assert!(p.check_ip("::1".parse().unwrap()).is_ok());
    // A mapped address is judged as the IPv4 address it reaches.
    assert!(p.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
    assert!(p.check_ip("10.1.2.3".parse().unwrap()).is_ok());
    assert!(matches!(
        p.check_ip("10.2.0.1".parse().unwrap()),
        Err(EgressError::Forbidden(Private))
    ));
    assert!(matches!(
        p.check_ip("169.254.169.254".parse().unwrap()),
        Err(EgressError::Forbidden(LinkLocal))
    ));
    assert!(EgressPolicy::default()
        .check_ip("::ffff:127.0.0.1".parse().unwrap())
        .is_err());
}

#[test]
fn cidrs_parse() {
    assert_eq!(
        parse_cidr("127.0.0.1/8").unwrap().to_string(),
        "127.0.0.0/8"
    );
    assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
    assert!(parse_cidr("10.0.0.0/33").is_none());
    assert!(parse_cidr("localhost").is_none());
}

#[tokio::test]
async fn urls_are_checked_after_resolution() {
    let p = EgressPolicy::default();
    let refused = |r: Result<(), EgressError>| match r {
        Err(EgressError::Forbidden(c)) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refused(p.check_url("http://127.0.0.1:9090/").await),
        Loopback
    );
    assert_eq!(
        refused(p.check_url("http://[::ffff:127.0.0.1]:1/").await),
        Loopback
    );
    assert_eq!(refused(p.check_url("http://0.0.0.0:1/").await), Unspecified);
    assert_eq!(refused(p.check_url("http://0x7f.1:1/").await), Loopback);
    assert_eq!(refused(p.check_url("http://localhost:1/").await), Loopback);
    assert_eq!(
        refused(p.check_url("http://169.254.169.254/latest/meta-data").await),
        LinkLocal
    );
    assert!(matches!(
        p.check_url("ftp://example.com/").await,
        Err(EgressError::InvalidUrl)
    ));
    assert!(matches!(
        p.check_url("http://does-not-exist.invalid/").await,
        Err(EgressError::Unresolvable)
    ));
    assert!(policy(&["127.0.0.0/8", "::1/128"])
        .check_url("http://localhost:1/")
        .await
        .is_ok());
}

#[tokio::test]
async fn the_client_refuses_before_connecting() {
    let c = EgressClient::new(Arc::new(EgressPolicy::default())).unwrap();
    assert!(matches!(
        c.post("http://[::1]:1/"),
        Err(EgressError::Forbidden(Loopback))
    ));
    // A name is refused by the resolver at connect time.
    let err = c
        .post("http://localhost:1/")
        .unwrap()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        OutboundFailure::from(&err),
        OutboundFailure::Forbidden(Loopback)
    );
}
