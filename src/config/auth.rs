//! `[auth]`: how bearer tokens are verified (RFC 6750, RFC 7519, RFC 7662)
//! and cached, and `apps[].identity_headers`: what an app learns of the
//! caller. Raw structs reject unknown keys; [`auth`] validates them.

use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::auth::CacheSettings;
use crate::secrets::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) algorithms: Option<Vec<String>>,
    pub(crate) leeway_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    pub(crate) introspection_endpoint: Option<String>,
    pub(crate) introspection_client_id: Option<String>,
    pub(crate) introspection_client_secret_env: Option<String>,
    pub(crate) userinfo_endpoint: Option<String>,
    pub(crate) jwks_refresh_seconds: Option<u64>,
    pub(crate) jwks_refetch_interval_ms: Option<u64>,
    pub(crate) jwks_max_stale_seconds: Option<u64>,
    #[serde(default)]
    pub(crate) cache: RawAuthCache,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthCache {
    pub(crate) max_entries: Option<u64>,
    pub(crate) max_memory_mb: Option<u64>,
    pub(crate) max_ttl_seconds: Option<u64>,
    pub(crate) safety_margin_seconds: Option<u64>,
    pub(crate) negative_ttl_seconds: Option<u64>,
    pub(crate) revocation_ttl_seconds: Option<u64>,
    pub(crate) l2: Option<bool>,
    pub(crate) l2_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentityHeaders {
    pub(crate) subject: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) scopes: Option<String>,
    pub(crate) client_id: Option<String>,
    /// The identity provider's organization id (`org_id`).
    pub(crate) organization: Option<String>,
    /// The user's groups, comma-separated (WorkOS SSO).
    pub(crate) groups: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct IntrospectionConfig {
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthConfig {
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    /// Audiences accepted at every app besides the app's own resource URL.
    pub(crate) audiences: Vec<String>,
    pub(crate) introspection: Option<IntrospectionConfig>,
    pub(crate) userinfo_endpoint: Option<String>,
    pub(crate) jwks_refresh: Duration,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) jwks_max_stale: Duration,
    pub(crate) cache: CacheSettings,
}

impl AuthConfig {
    /// True when some way of verifying a token is configured.
    pub(crate) fn can_verify(&self) -> bool {
        self.jwks_uri.is_some() || self.introspection.is_some() || self.userinfo_endpoint.is_some()
    }
}

/// Headers an app receives describing the caller (never the token itself).
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityHeaders {
    pub(crate) subject: Option<HeaderName>,
    pub(crate) email: Option<HeaderName>,
    pub(crate) name: Option<HeaderName>,
    pub(crate) scopes: Option<HeaderName>,
    pub(crate) client_id: Option<HeaderName>,
    pub(crate) organization: Option<HeaderName>,
    pub(crate) groups: Option<HeaderName>,
}

impl IdentityHeaders {
    pub(crate) fn all(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.subject,
            &self.email,
            &self.name,
            &self.scopes,
            &self.client_id,
            &self.organization,
            &self.groups,
        ]
        .into_iter()
        .flatten()
    }
}

type FieldError = (String, String);

fn url(field: &str, v: Option<String>) -> Result<Option<String>, FieldError> {
    match v {
        Some(u)
            if url::Url::parse(&u)
                .map(|p| matches!(p.scheme(), "http" | "https"))
                .unwrap_or(false) =>
        {
            Ok(Some(u))
        }
        Some(u) => Err((field.into(), format!("`{u}` is not an http(s) URL"))),
        None => Ok(None),
    }
}

pub(crate) fn auth(raw: RawAuth) -> Result<AuthConfig, FieldError> {
    let f = |k: &str| format!("auth.{k}");
    let algorithms = match raw.algorithms {
        None => vec![Algorithm::RS256, Algorithm::ES256],
        Some(list) if list.is_empty() => {
            return Err((f("algorithms"), "must name at least one algorithm".into()))
        }
        Some(list) => list
            .iter()
            .map(|a| match a.parse::<Algorithm>() {
                Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => Err((
                    f("algorithms"),
                    format!("`{a}` is symmetric; only asymmetric algorithms are allowed"),
                )),
                Ok(alg) => Ok(alg),
                Err(_) => Err((f("algorithms"), format!("`{a}` is not a JWS algorithm"))),
            })
            .collect::<Result<_, _>>()?,
    };
    let jwks_uri = url(&f("jwks_uri"), raw.jwks_uri)?;
    let issuer = raw.issuer;
    if jwks_uri.is_some() && issuer.is_none() {
        return Err((
            f("issuer"),
            "is required with jwks_uri (tokens are checked against it)".into(),
        ));
    }
    let introspection = match url(&f("introspection_endpoint"), raw.introspection_endpoint)? {
        Some(endpoint) => {
            let client_id = raw.introspection_client_id.ok_or((
                f("introspection_client_id"),
                "is required with introspection_endpoint".to_string(),
            ))?;
            let client_secret = match raw.introspection_client_secret_env {
                Some(var) => Some(Secret::from_env(&var).ok_or((
                    f("introspection_client_secret_env"),
                    format!("environment variable `{var}` is not set"),
                ))?),
                None => None,
            };
            Some(IntrospectionConfig {
                endpoint,
                client_id,
                client_secret,
            })
        }
        None => None,
    };
    let c = raw.cache;
    let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
    let defaults = CacheSettings::default();
    let cache = CacheSettings {
        max_entries: c.max_entries.unwrap_or(defaults.max_entries).max(1),
        max_memory_bytes: c
            .max_memory_mb
            .map_or(defaults.max_memory_bytes, |m| m.max(1) << 20),
        max_ttl: secs(c.max_ttl_seconds, defaults.max_ttl.as_secs()),
        safety_margin: secs(c.safety_margin_seconds, defaults.safety_margin.as_secs()),
        negative_ttl: secs(c.negative_ttl_seconds, defaults.negative_ttl.as_secs()),
        revocation_ttl: secs(c.revocation_ttl_seconds, defaults.revocation_ttl.as_secs()),
        l2: c.l2.unwrap_or(true),
        l2_timeout: Duration::from_millis(c.l2_timeout_ms.unwrap_or(100).max(1)),
    };
    Ok(AuthConfig {
        issuer,
        jwks_uri,
        algorithms,
        leeway: secs(raw.leeway_seconds, 30),
        audiences: raw.audiences,
        introspection,
        userinfo_endpoint: url(&f("userinfo_endpoint"), raw.userinfo_endpoint)?,
        jwks_refresh: secs(raw.jwks_refresh_seconds, 300).max(Duration::from_secs(1)),
        jwks_refetch_interval: Duration::from_millis(raw.jwks_refetch_interval_ms.unwrap_or(5_000)),
        jwks_max_stale: secs(raw.jwks_max_stale_seconds, 24 * 3600),
        cache,
    })
}

pub(crate) fn identity_headers(
    raw: Option<RawIdentityHeaders>,
) -> Result<IdentityHeaders, FieldError> {
    let Some(raw) = raw else {
        return Ok(IdentityHeaders::default());
    };
    let h = |field: &str, v: Option<String>| -> Result<Option<HeaderName>, FieldError> {
        match v {
            None => Ok(None),
            Some(name) => {
                let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    (
                        format!("identity_headers.{field}"),
                        format!("`{name}` is not a header name"),
                    )
                })?;
                if matches!(
                    parsed.as_str(),
                    "authorization" | "cookie" | "host" | "content-length" | "transfer-encoding"
                ) {
                    return Err((
                        format!("identity_headers.{field}"),
                        format!("`{name}` cannot carry identity"),
                    ));
                }
                Ok(Some(parsed))
            }
        }
    };
    Ok(IdentityHeaders {
        subject: h("subject", raw.subject)?,
        email: h("email", raw.email)?,
        name: h("name", raw.name)?,
        scopes: h("scopes", raw.scopes)?,
        client_id: h("client_id", raw.client_id)?,
        organization: h("organization", raw.organization)?,
        groups: h("groups", raw.groups)?,
    })
}
