//! `[oauth]` (the authorization server MCP clients talk to) and `[idp]` (the
//! identity provider it signs users in with): raw structs that reject
//! unknown keys, and their validated forms.

use std::time::Duration;

use serde::Deserialize;

use crate::secrets::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    pub token_mode: Option<String>,
    pub signing_algorithm: Option<String>,
    pub access_token_ttl_seconds: Option<u64>,
    pub refresh_token_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub trusted_clients: Vec<String>,
    pub registration_ttl_seconds: Option<u64>,
    pub registrations_per_minute: Option<u64>,
    pub registrations_per_hour: Option<u64>,
    pub allow_private_cimd: Option<bool>,
    pub refresh_grace_seconds: Option<u64>,
    /// Plain-language descriptions of scopes on the consent page.
    #[serde(default)]
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdp {
    pub kind: String,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// The gateway issues its own JWT access tokens and opaque refresh tokens.
    Gateway,
    /// The identity provider's tokens are handed to the client (drio-compatible).
    Upstream,
}

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub token_mode: TokenMode,
    pub es256: bool,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub scopes: Vec<String>,
    pub trusted_clients: Vec<String>,
    pub registration_ttl: Duration,
    pub registrations_per_minute: u64,
    pub registrations_per_hour: u64,
    pub allow_private_cimd: bool,
    pub refresh_grace: Duration,
    /// Scope → what it lets a client do, in the person's words (consent page).
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    pub idp: IdpConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpKind {
    WorkOs,
    Oidc,
    Dev,
}

#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub kind: IdpKind,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub basic_auth: bool,
    pub scopes: Vec<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

type FieldError = (String, String);

pub fn oauth(
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
        other => return Err((f("kind"), format!("`{other}` is not workos, oidc or dev"))),
    };
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
    })
}
