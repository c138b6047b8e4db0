//! DNS-rebinding protection: the MCP Streamable HTTP transport requires
//! servers to validate `Origin` (MCP 2025-06-18 §Transports, Security
//! Warning). A present Origin must be the gateway's own or one the app
//! allows; an absent one (non-browser clients) passes.

use crate::config::AppConfig;

pub(crate) fn origin_allowed(origin: Option<&[u8]>, public_origin: &str, app: &AppConfig) -> bool {
    let Some(raw) = origin else { return true };
    let Ok(origin) = std::str::from_utf8(raw) else {
        return false;
    };
    // Browsers send a serialised origin; compare case-insensitively on the
    // scheme and host, which is what the normalised config holds.
    let matches = |allowed: &str| allowed.eq_ignore_ascii_case(origin.trim_end_matches('/'));
    matches(public_origin)
        || app.allowed_origins.iter().any(|a| matches(a))
        || app.host.as_ref().is_some_and(|h| {
            origin
                .split_once("://")
                .is_some_and(|(scheme, rest)| scheme == "https" && rest.eq_ignore_ascii_case(h))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::parse_upstream;
    use std::time::Duration;

    fn app() -> AppConfig {
        AppConfig {
            id: "a".into(),
            slug: "a".into(),
            name: "a".into(),
            description: None,
            upstream: parse_upstream("http://127.0.0.1:1").unwrap(),
            mcp_path: "/mcp".into(),
            host: Some("notes.mcp.example.com".into()),
            public: true,
            access: crate::config::access::Access::anyone(),
            limits: Default::default(),
            audit: Default::default(),
            allowed_origins: vec!["https://allowed.example".into()],
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            stream: Default::default(),
            required_scopes: vec![],
            identity_headers: Default::default(),
            tool_scopes: Default::default(),
        }
    }

    #[test]
    fn checks_origin() {
        let a = app();
        let own = "https://gw.example.com";
        assert!(origin_allowed(None, own, &a));
        assert!(origin_allowed(Some(b"https://gw.example.com"), own, &a));
        assert!(origin_allowed(Some(b"https://allowed.example"), own, &a));
        assert!(origin_allowed(
            Some(b"https://notes.mcp.example.com"),
            own,
            &a
        ));
        assert!(!origin_allowed(Some(b"https://evil.example"), own, &a));
        assert!(!origin_allowed(Some(b"null"), own, &a));
        assert!(!origin_allowed(Some(b"http://gw.example.com"), own, &a));
    }
}
