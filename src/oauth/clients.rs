//! OAuth clients: the metadata of RFC 7591 registrations and of Client ID
//! Metadata Documents, the redirect-URI rules of RFC 8252 (https, http
//! loopback, private-use schemes; no fragments) and exact matching, with any
//! port for loopback redirects (RFC 8252 §7.3).

use serde::{Deserialize, Serialize};

use crate::errors::OAuthError;

/// A client as the gateway knows it (`client:{id}` for registrations).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub(crate) client_id: String,
    #[serde(default)]
    pub(crate) client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub(crate) grant_types: Vec<String>,
    pub(crate) response_types: Vec<String>,
    pub(crate) token_endpoint_auth_method: String,
    /// SHA-256 (hex) of the client secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret_hash: Option<String>,
    #[serde(default)]
    pub(crate) client_id_issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) software_version: Option<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == "none"
    }
}

/// Registration metadata as a client sends it (RFC 7591 §2).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ClientMetadata)]
pub struct Metadata {
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub client_uri: Option<String>,
    #[serde(default)]
    pub logo_uri: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub software_id: Option<String>,
    #[serde(default)]
    pub software_version: Option<String>,
    /// Client ID Metadata Documents carry their own id.
    #[serde(default)]
    pub client_id: Option<String>,
}

const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 2000;
const MAX_NAME_LEN: usize = 200;

/// Validates metadata into a client (without id and secret).
pub fn validate(m: Metadata, client_id: String, issued_at: u64) -> Result<Client, OAuthError> {
    let uris = m
        .redirect_uris
        .ok_or_else(|| OAuthError::invalid_client_metadata("redirect_uris is required"))?;
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::invalid_redirect_uri(format!(
            "redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"
        )));
    }
    for u in &uris {
        check_redirect_uri(u)?;
    }
    let method = m
        .token_endpoint_auth_method
        .unwrap_or_else(|| "none".into());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_post" | "client_secret_basic"
    ) {
        return Err(OAuthError::invalid_client_metadata(format!(
            "token_endpoint_auth_method `{method}` is not supported (none, client_secret_post, client_secret_basic)"
        )));
    }
    let grant_types = m
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant_types: `{g}` is not supported"
        )));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must include authorization_code",
        ));
    }
    let response_types = m.response_types.unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(OAuthError::invalid_client_metadata(
            "response_types: only `code` is supported",
        ));
    }
    if m.client_name
        .as_ref()
        .is_some_and(|n| n.len() > MAX_NAME_LEN)
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "client_name is longer than {MAX_NAME_LEN} characters"
        )));
    }
    for (field, v) in [("client_uri", &m.client_uri), ("logo_uri", &m.logo_uri)] {
        if v.as_ref().is_some_and(|u| {
            u.len() > MAX_URI_LEN || !url::Url::parse(u).is_ok_and(|p| p.scheme() == "https")
        }) {
            return Err(OAuthError::invalid_client_metadata(format!(
                "{field} must be an https URL"
            )));
        }
    }
    Ok(Client {
        client_id,
        client_name: m.client_name,
        redirect_uris: uris,
        grant_types,
        response_types,
        token_endpoint_auth_method: method,
        secret_hash: None,
        client_id_issued_at: issued_at,
        client_uri: m.client_uri,
        logo_uri: m.logo_uri,
        scope: m.scope,
        software_id: m.software_id,
        software_version: m.software_version,
    })
}

/// RFC 8252 §7 and RFC 6749 §3.1.2: https, http on a loopback host, or a
/// private-use scheme; absolute; no fragment.
pub fn check_redirect_uri(u: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::invalid_redirect_uri(format!("redirect_uris: `{u}` {why}"));
    if u.len() > MAX_URI_LEN {
        return Err(bad("is too long"));
    }
    let url = url::Url::parse(u).map_err(|_| bad("is not an absolute URI"))?;
    if url.fragment().is_some() || u.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(bad("uses http on a non-loopback host; use https")),
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss" => {
            Err(bad("uses a forbidden scheme"))
        }
        // Private-use URI schemes for native apps, in reverse domain name
        // form (RFC 8252 §7.1: `com.example.app`). A bare scheme such as
        // `ms-msdt:` would let a registration aim the browser at any
        // handler installed on the user's machine.
        scheme if scheme.contains('.') && !scheme.starts_with('.') && !scheme.ends_with('.') => {
            Ok(())
        }
        _ => Err(bad(
            "uses a private-use scheme that is not in reverse domain name form (like com.example.app)",
        )),
    }
}

pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The registered redirect URI `requested` matches, if any: exact string
/// match, except that loopback http URIs match on any port (RFC 8252 §7.3).
pub fn match_redirect<'a>(client: &'a Client, requested: &str) -> Option<&'a str> {
    if let Some(exact) = client.redirect_uris.iter().find(|r| *r == requested) {
        return Some(exact);
    }
    let req = url::Url::parse(requested).ok()?;
    if req.scheme() != "http" || !is_loopback(&req) {
        return None;
    }
    client.redirect_uris.iter().map(String::as_str).find(|r| {
        url::Url::parse(r).is_ok_and(|reg| {
            reg.scheme() == "http"
                && is_loopback(&reg)
                && reg.host() == req.host()
                && reg.path() == req.path()
                && reg.query() == req.query()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str]) -> Client {
        let m = Metadata {
            redirect_uris: Some(uris.iter().map(|s| s.to_string()).collect()),
            client_name: None,
            grant_types: None,
            response_types: None,
            token_endpoint_auth_method: None,
            client_uri: None,
            logo_uri: None,
            scope: None,
            software_id: None,
            software_version: None,
            client_id: None,
        };
        validate(m, "c".into(), 0).unwrap()
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:7777/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(check_redirect_uri("http://evil.example.com/cb").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb#frag").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("/relative").is_err());
    }

    #[test]
    fn loopback_matches_any_port_others_exactly() {
        let c = client(&["http://127.0.0.1:1000/cb", "https://app.example.com/cb"]);
        assert_eq!(
            match_redirect(&c, "http://127.0.0.1:5555/cb"),
            Some("http://127.0.0.1:1000/cb")
        );
        assert_eq!(match_redirect(&c, "http://127.0.0.1:5555/other"), None);
        assert_eq!(
            match_redirect(&c, "https://app.example.com/cb"),
            Some("https://app.example.com/cb")
        );
        assert_eq!(match_redirect(&c, "https://app.example.com/cb/"), None);
        assert_eq!(match_redirect(&c, "https://app.example.com:8443/cb"), None);
    }
}
