//! Turning a bearer token into a [`Principal`], without any cache.
//!
//! - JWT access tokens (RFC 7519, RFC 9068): signature by JWKS with an
//!   algorithm allowlist (never `none`, never HMAC), `iss`, `exp` and `nbf`
//!   with a small leeway. Audience is checked per request by the validator,
//!   because one cached verification serves every app.
//! - Opaque tokens: RFC 7662 introspection, or OpenID Connect userinfo where
//!   that is all the provider offers.
//!
//! A network failure or 5xx at the identity provider is `Unavailable` (503),
//! never `Invalid` (401): the client should retry, not sign in again.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::claims::{Claims, UserInfo};
use super::jwks::Jwks;
use super::{Principal, TokenError};
use crate::secrets::Secret;
use crate::util::clock::Clock;

pub struct Introspection {
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
}

pub struct VerifierSettings {
    pub issuer: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub introspection: Option<Introspection>,
    pub userinfo_endpoint: Option<String>,
    /// Lifetime given to principals whose source states no expiry (userinfo).
    pub default_ttl: Duration,
}

/// Where a verification's answer came from (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Jwt,
    Introspection,
    Userinfo,
}

impl Source {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Introspection => "introspection",
            Self::Userinfo => "userinfo",
        }
    }
}

pub struct Verifier {
    settings: VerifierSettings,
    jwks: Option<Arc<Jwks>>,
    http: reqwest::Client,
    clock: Clock,
}

impl Verifier {
    pub fn new(settings: VerifierSettings, jwks: Option<Arc<Jwks>>, http: reqwest::Client) -> Self {
        Self {
            settings,
            jwks,
            http,
            clock: Clock::system(),
        }
    }

    /// The same verifier reading time from `clock` (tests use a manual one).
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock expiries are judged by (the validator's caches share it).
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    pub async fn verify(&self, token: &str) -> (Result<Principal, TokenError>, Source) {
        match (&self.jwks, looks_like_jwt(token)) {
            (Some(jwks), true) => (self.verify_jwt(jwks, token).await, Source::Jwt),
            _ if self.settings.introspection.is_some() => {
                (self.introspect(token).await, Source::Introspection)
            }
            _ if self.settings.userinfo_endpoint.is_some() => {
                (self.userinfo(token).await, Source::Userinfo)
            }
            _ => (
                Err(TokenError::Invalid("token format not accepted".into())),
                Source::Jwt,
            ),
        }
    }

    async fn verify_jwt(&self, jwks: &Jwks, token: &str) -> Result<Principal, TokenError> {
        // An unparsable header, including `alg: none`, is not a token we accept.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed or unsupported JWT header".into()))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(TokenError::Invalid("JWT algorithm not allowed".into()));
        }
        let key = jwks.key_for(header.kid.as_deref(), header.alg).await?;
        let mut v = Validation::new(header.alg);
        v.leeway = self.settings.leeway.as_secs();
        v.validate_nbf = true;
        v.validate_aud = false;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &v).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::Invalid("token not yet valid".into()),
                ErrorKind::InvalidIssuer => TokenError::Invalid("wrong issuer".into()),
                ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    TokenError::Invalid(format!("missing claim {c}"))
                }
                _ => TokenError::Invalid("JWT rejected".into()),
            })?;
        Ok(data.claims.into_principal(None))
    }

    async fn introspect(&self, token: &str) -> Result<Principal, TokenError> {
        let Some(cfg) = &self.settings.introspection else {
            return Err(TokenError::Invalid("token format not accepted".into()));
        };
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let mut req = self
            .http
            .post(&cfg.endpoint)
            .header("accept", "application/json");
        match &cfg.client_secret {
            Some(secret) => req = req.basic_auth(&cfg.client_id, Some(secret.expose())),
            None => form.push(("client_id", cfg.client_id.as_str())),
        }
        let mut span = idp_span("introspection");
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| unavailable("introspection", e))?;
        let status = resp.status();
        crate::telemetry::set(
            &mut span,
            "http.response.status_code",
            i64::from(status.as_u16()),
        );
        if !status.is_success() {
            // 401/403 here means the gateway's own credentials are wrong: an
            // operator problem, not the client's, so not a 401 to the client.
            tracing::warn!(%status, endpoint = %cfg.endpoint, "introspection endpoint refused the request");
            return Err(TokenError::Unavailable(format!(
                "introspection answered {status}"
            )));
        }
        let body: Introspected = resp
            .json()
            .await
            .map_err(|e| unavailable("introspection", e))?;
        if !body.active {
            return Err(TokenError::Invalid("token is not active".into()));
        }
        let now = self.clock.now_secs();
        if body
            .claims
            .exp
            .is_some_and(|exp| exp + self.settings.leeway.as_secs() <= now)
        {
            return Err(TokenError::Expired);
        }
        let default_exp = now + self.settings.default_ttl.as_secs();
        Ok(body.claims.into_principal(Some(default_exp)))
    }

    async fn userinfo(&self, token: &str) -> Result<Principal, TokenError> {
        let Some(url) = &self.settings.userinfo_endpoint else {
            return Err(TokenError::Invalid("token format not accepted".into()));
        };
        let mut span = idp_span("userinfo");
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| unavailable("userinfo", e))?;
        crate::telemetry::set(
            &mut span,
            "http.response.status_code",
            i64::from(resp.status().as_u16()),
        );
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(TokenError::Invalid(
                    "the identity provider rejected the token".into(),
                ))
            }
            s => return Err(TokenError::Unavailable(format!("userinfo answered {s}"))),
        }
        let info: UserInfo = resp.json().await.map_err(|e| unavailable("userinfo", e))?;
        Ok(info.into_principal(self.clock.now_secs() + self.settings.default_ttl.as_secs()))
    }
}

#[derive(Deserialize)]
struct Introspected {
    #[serde(default)]
    active: bool,
    #[serde(flatten)]
    claims: Claims,
}

fn unavailable(what: &str, e: reqwest::Error) -> TokenError {
    TokenError::Unavailable(format!("{what} failed: {}", e.without_url()))
}

/// Three base64url segments: worth trying as a JWT before asking the IdP.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// A client span for a validation call to the identity provider (None
/// unless the current request is traced; see [`crate::telemetry`]).
fn idp_span(operation: &'static str) -> Option<crate::telemetry::Child> {
    let mut span = crate::telemetry::child("idp", opentelemetry::trace::SpanKind::Client);
    crate::telemetry::set(&mut span, "idp.operation", operation);
    span
}
