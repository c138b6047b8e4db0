//! `[oauth]` (the authorization server MCP clients talk to) and `[idp]` (the
//! identity provider it signs users in with): raw structs that reject
//! unknown keys, and their validated forms.

use std::time::Duration;

use serde::Deserialize;

use crate::secrets::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth {
    pub(crate) token_mode: Option<String>,
    pub(crate) signing_algorithm: Option<String>,
    pub(crate) access_token_ttl_seconds: Option<u64>,
    pub(crate) refresh_token_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    #[serde(default)]
    pub(crate) trusted_clients: Vec<String>,
    pub(crate) registration_ttl_seconds: Option<u64>,
    pub(crate) registrations_per_minute: Option<u64>,
    pub(crate) registrations_per_hour: Option<u64>,
    pub(crate) allow_private_cimd: Option<bool>,
    pub(crate) refresh_grace_seconds: Option<u64>,
    /// Plain-language descriptions of scopes on the consent page.
    #[serde(default)]
    pub(crate) scope_descriptions: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdp {
    pub(crate) kind: String,
    pub(crate) issuer: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret_env: Option<String>,
    pub(crate) token_endpoint_auth_method: Option<String>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) userinfo_endpoint: Option<String>,
    pub(crate) revocation_endpoint: Option<String>,
    /// `workos_sso`: sign in through this organization…
    pub(crate) organization: Option<String>,
    /// …or this connection…
    pub(crate) connection: Option<String>,
    /// …or this provider (`GoogleOAuth`, `MicrosoftOAuth`, …)…
    pub(crate) provider: Option<String>,
    /// …or the organization of the e-mail domain the user types first.
    pub(crate) organizations_by_domain: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenMode {
    /// The gateway issues its own JWT access tokens and opaque refresh tokens.
    Gateway,
    /// The identity provider's tokens are handed to the client (drio-compatible).
    Upstream,
}

#[derive(Debug, Clone)]
pub(crate) struct OAuthConfig {
    pub(crate) token_mode: TokenMode,
    pub(crate) es256: bool,
    pub(crate) access_token_ttl: Duration,
    pub(crate) refresh_token_ttl: Duration,
    pub(crate) scopes: Vec<String>,
    pub(crate) trusted_clients: Vec<String>,
    pub(crate) registration_ttl: Duration,
    pub(crate) registrations_per_minute: u64,
    pub(crate) registrations_per_hour: u64,
    pub(crate) allow_private_cimd: bool,
    pub(crate) refresh_grace: Duration,
    /// Scope → what it lets a client do, in the person's words (consent page).
    pub(crate) scope_descriptions: std::collections::BTreeMap<String, String>,
    pub(crate) idp: IdpConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdpKind {
    WorkOs,
    /// The WorkOS SSO API (`/sso/authorize`, `/sso/token`).
    WorkOsSso,
    Oidc,
    Dev,
}

/// Which single sign-on a `workos_sso` sign-in goes through: exactly one
/// of WorkOS's `organization`, `connection` or `provider` parameters,
/// fixed, or an organization chosen by the user's e-mail domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SsoTarget {
    Organization(String),
    Connection(String),
    Provider(String),
    /// Lower-case e-mail domain → organization id.
    ByDomain(std::collections::BTreeMap<String, String>),
}

#[derive(Debug, Clone)]
pub(crate) struct IdpConfig {
    pub(crate) kind: IdpKind,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) basic_auth: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) userinfo_endpoint: Option<String>,
    pub(crate) revocation_endpoint: Option<String>,
    /// `workos_sso` only.
    pub(crate) sso: Option<SsoTarget>,
}

type FieldError = (String, String);

pub(crate) fn oauth(
    raw: RawOAuth,
    idp: Option<RawIdp>,
    public_url: &url::Url,
) -> Result<OAuthConfig, FieldError> {
    let f = |k: &str| format!("oauth.{k}");
    let token_mode = match raw.token_mode.as_deref().unwrap_or("gateway") {
        "gateway" => TokenMode::Gateway,
        "upstream" => TokenMode::Upstream,
        other => {
            return Err((
                f("token_mode"),
                format!("`{other}` is not gateway or upstream"),
            ))
        }
    };
    let es256 = match raw.signing_algorithm.as_deref().unwrap_or("ES256") {
        "ES256" => true,
        "RS256" => false,
        other => {
            return Err((
                f("signing_algorithm"),
                format!("`{other}` is not ES256 or RS256"),
            ))
        }
    };
    let idp = idp.ok_or((
        "idp".to_string(),
        "[oauth] needs an [idp] section".to_string(),
    ))?;
    let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d).max(1));
    let idp = idp_config(idp, public_url)?;
    if idp.kind == IdpKind::Dev && token_mode == TokenMode::Upstream {
        return Err((
            f("token_mode"),
            "the dev sign-in page issues no tokens of its own; use token_mode = \"gateway\"".into(),
        ));
    }
    if idp.kind == IdpKind::WorkOsSso && token_mode == TokenMode::Upstream {
        return Err((
            f("token_mode"),
            "WorkOS SSO access tokens are not for MCP clients; use token_mode = \"gateway\"".into(),
        ));
    }
    for (scope, text) in &raw.scope_descriptions {
        let t = text.trim();
        if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
            return Err((
                f(&format!("scope_descriptions.{scope}")),
                "must be 1-200 characters of plain text".into(),
            ));
        }
    }
    Ok(OAuthConfig {
        token_mode,
        es256,
        access_token_ttl: secs(raw.access_token_ttl_seconds, 3600),
        refresh_token_ttl: secs(raw.refresh_token_ttl_seconds, 30 * 86_400),
        scopes: raw.scopes,
        trusted_clients: raw.trusted_clients,
        registration_ttl: secs(raw.registration_ttl_seconds, 30 * 86_400),
        registrations_per_minute: raw.registrations_per_minute.unwrap_or(20),
        registrations_per_hour: raw.registrations_per_hour.unwrap_or(1000),
        allow_private_cimd: raw.allow_private_cimd.unwrap_or(false),
        refresh_grace: Duration::from_secs(raw.refresh_grace_seconds.unwrap_or(5)),
        scope_descriptions: raw.scope_descriptions,
        idp,
    })
}

fn idp_config(raw: RawIdp, public_url: &url::Url) -> Result<IdpConfig, FieldError> {
    let f = |k: &str| format!("idp.{k}");
    let url = |k: &str, v: Option<String>| -> Result<Option<String>, FieldError> {
        match v {
            Some(u)
                if url::Url::parse(&u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) =>
            {
                Ok(Some(u.trim_end_matches('/').to_string()))
            }
            Some(u) => Err((f(k), format!("`{u}` is not an http(s) URL"))),
            None => Ok(None),
        }
    };
    let kind = match raw.kind.as_str() {
        "workos" => IdpKind::WorkOs,
        "oidc" => IdpKind::Oidc,
        "dev" => IdpKind::Dev,
        "workos_sso" => IdpKind::WorkOsSso,
        other => {
            return Err((
                f("kind"),
                format!("`{other}` is not workos, workos_sso, oidc or dev"),
            ))
        }
    };
    let sso_keys = raw.organization.is_some()
        || raw.connection.is_some()
        || raw.provider.is_some()
        || raw.organizations_by_domain.is_some();
    if kind != IdpKind::WorkOsSso && sso_keys {
        return Err((
            f("kind"),
            "organization, connection, provider and organizations_by_domain are for kind = \"workos_sso\"".into(),
        ));
    }
    if kind == IdpKind::WorkOsSso {
        return workos_sso(raw);
    }
    if kind == IdpKind::Dev {
        let loopback = match public_url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if !loopback {
            return Err((f("kind"), "the dev sign-in page accepts anyone: it runs only when public_url is a loopback address".into()));
        }
        return Ok(IdpConfig {
            kind,
            issuer: format!(
                "{}/api/v1/auth/dev",
                public_url.as_str().trim_end_matches('/')
            ),
            client_id: "dev".into(),
            client_secret: None,
            basic_auth: false,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            authorization_endpoint: None,
            token_endpoint: None,
            jwks_uri: None,
            userinfo_endpoint: None,
            revocation_endpoint: None,
            sso: None,
        });
    }
    let issuer = url("issuer", raw.issuer)?.ok_or((f("issuer"), "is required".to_string()))?;
    let client_id = raw
        .client_id
        .ok_or((f("client_id"), "is required".to_string()))?;
    let client_secret = match raw.client_secret_env {
        Some(var) => Some(Secret::from_env(&var).ok_or((
            f("client_secret_env"),
            format!("environment variable `{var}` is not set"),
        ))?),
        None => None,
    };
    let basic_auth = match raw
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_post")
    {
        "client_secret_basic" => true,
        "client_secret_post" | "none" => false,
        other => {
            return Err((
                f("token_endpoint_auth_method"),
                format!("`{other}` is not client_secret_post, client_secret_basic or none"),
            ))
        }
    };
    let workos = kind == IdpKind::WorkOs;
    let scopes = raw.scopes.unwrap_or_else(|| {
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    });
    let or_workos = |v: Option<String>, path: &str| {
        if workos && v.is_none() {
            Some(format!("{issuer}{path}"))
        } else {
            v
        }
    };
    Ok(IdpConfig {
        authorization_endpoint: or_workos(
            url("authorization_endpoint", raw.authorization_endpoint)?,
            "/oauth2/authorize",
        ),
        token_endpoint: or_workos(url("token_endpoint", raw.token_endpoint)?, "/oauth2/token"),
        jwks_uri: or_workos(url("jwks_uri", raw.jwks_uri)?, "/oauth2/jwks"),
        userinfo_endpoint: url("userinfo_endpoint", raw.userinfo_endpoint)?,
        revocation_endpoint: url("revocation_endpoint", raw.revocation_endpoint)?,
        kind,
        issuer,
        client_id,
        client_secret,
        basic_auth,
        scopes,
        sso: None,
    })
}

/// `kind = "workos_sso"`: `issuer` is the WorkOS API base (default
/// `https://api.workos.com`), `client_secret_env` names the API key, and
/// exactly one sign-in target.
fn workos_sso(raw: RawIdp) -> Result<IdpConfig, FieldError> {
    let f = |k: &str| format!("idp.{k}");
    let issuer = match raw.issuer {
        Some(u) if url::Url::parse(&u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) => {
            u.trim_end_matches('/').to_string()
        }
        Some(u) => return Err((f("issuer"), format!("`{u}` is not an http(s) URL"))),
        None => "https://api.workos.com".to_string(),
    };
    let client_id = raw
        .client_id
        .filter(|c| !c.is_empty())
        .ok_or((f("client_id"), "is required".to_string()))?;
    let var = raw.client_secret_env.ok_or((
        f("client_secret_env"),
        "is required: the variable holding the WorkOS API key".to_string(),
    ))?;
    let client_secret = Some(Secret::from_env(&var).ok_or((
        f("client_secret_env"),
        format!("environment variable `{var}` is not set"),
    ))?);
    let non_empty = |k: &str, v: Option<String>| match v {
        Some(v) if v.trim().is_empty() => Err((f(k), "is empty".to_string())),
        other => Ok(other),
    };
    let mut targets = Vec::new();
    if let Some(o) = non_empty("organization", raw.organization)? {
        targets.push(SsoTarget::Organization(o));
    }
    if let Some(c) = non_empty("connection", raw.connection)? {
        targets.push(SsoTarget::Connection(c));
    }
    if let Some(p) = non_empty("provider", raw.provider)? {
        targets.push(SsoTarget::Provider(p));
    }
    if let Some(map) = raw.organizations_by_domain {
        let mut by_domain = std::collections::BTreeMap::new();
        for (domain, org) in map {
            let d = domain.trim().to_ascii_lowercase();
            if d.is_empty() || d.contains('@') || !d.contains('.') || org.trim().is_empty() {
                return Err((
                    f("organizations_by_domain"),
                    format!("`{domain}` = `{org}` is not an e-mail domain and an organization id"),
                ));
            }
            by_domain.insert(d, org);
        }
        if by_domain.is_empty() {
            return Err((f("organizations_by_domain"), "is empty".to_string()));
        }
        targets.push(SsoTarget::ByDomain(by_domain));
    }
    if targets.len() != 1 {
        return Err((
            f("organization"),
            "set exactly one of organization, connection, provider or organizations_by_domain"
                .to_string(),
        ));
    }
    Ok(IdpConfig {
        kind: IdpKind::WorkOsSso,
        issuer,
        client_id,
        client_secret,
        basic_auth: false,
        scopes: Vec::new(),
        authorization_endpoint: None,
        token_endpoint: None,
        jwks_uri: None,
        userinfo_endpoint: None,
        revocation_endpoint: None,
        sso: targets.pop(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sso(extra: &str) -> Result<IdpConfig, FieldError> {
        // `PATH` is set in every test environment: it stands in for the API key.
        let raw: RawIdp = toml::from_str(&format!(
            "kind = \"workos_sso\"\nclient_id = \"client_1\"\nclient_secret_env = \"PATH\"\n{extra}"
        ))
        .unwrap();
        idp_config(raw, &url::Url::parse("https://gw.example.com").unwrap())
    }

    #[test]
    fn workos_sso_takes_exactly_one_target() {
        let c = sso("connection = \"conn_1\"").unwrap();
        assert_eq!(c.sso, Some(SsoTarget::Connection("conn_1".into())));
        assert_eq!(c.issuer, "https://api.workos.com");
        let c = sso("organizations_by_domain = { \"ACME.com\" = \"org_1\" }").unwrap();
        let Some(SsoTarget::ByDomain(m)) = c.sso else {
            panic!("by domain")
        };
        assert_eq!(m.get("acme.com").map(String::as_str), Some("org_1"));
        for bad in [
            "",
            "organization = \"org_1\"\nconnection = \"conn_1\"",
            "provider = \" \"",
            "organizations_by_domain = { \"@acme\" = \"org_1\" }",
            "organizations_by_domain = {}",
        ] {
            assert!(sso(bad).is_err(), "{bad}");
        }
        let raw: RawIdp =
            toml::from_str("kind = \"oidc\"\nissuer = \"https://idp\"\nclient_id = \"c\"\norganization = \"org_1\"").unwrap();
        assert!(idp_config(raw, &url::Url::parse("https://gw.example.com").unwrap()).is_err());
    }
}
