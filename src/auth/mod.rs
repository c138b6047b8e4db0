//! Bearer validation for every protected request (RFC 6750), with a two-tier
//! cache so that the hot path costs a hash and a map lookup.
//!
//! - [`bearer`]: extraction from `Authorization` and `WWW-Authenticate`
//!   challenges (RFC 6750 §3, MCP authorization spec);
//! - [`jwks`]: signing keys fetched, cached and refreshed (RFC 7517);
//! - [`verify`]: JWT verification (RFC 7519, RFC 9068) and introspection
//!   (RFC 7662);
//! - [`validator`]: L1 (moka) → L2 (the shared store) → verification, single
//!   flight, negative caching and revocation broadcast.
//!
//! The raw token is never stored or logged: caches are keyed by its SHA-256.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) mod bearer;
pub(crate) mod build;
pub mod claims;
pub mod guard;
pub mod jwks;
pub mod metrics;
pub(crate) mod validator;
pub mod verify;

pub use bearer::extract_bearer;
pub use validator::{CacheSettings, TokenValidator};
pub use verify::{Verifier, VerifierSettings};

/// Who a validated token speaks for. Cached in L1 and L2; holds no secret.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Principal {
    pub(crate) subject: String,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) picture: Option<String>,
    /// The provider vouches for `email` (OIDC Core §5.1 `email_verified`).
    /// Only a verified e-mail may grant anything (admin rights, e-mail
    /// domain access policies).
    #[serde(default)]
    pub(crate) email_verified: bool,
    /// The organization the provider signed the user in for (WorkOS `org_id`).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    /// The provider's group names for the user (WorkOS SSO `groups`).
    #[serde(default)]
    pub(crate) groups: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) audience: Vec<String>,
    /// Unix seconds.
    pub(crate) expires_at: u64,
    pub(crate) session_id: Option<String>,
    /// The source could not state an audience (userinfo): accepted for any.
    #[serde(default)]
    pub(crate) any_audience: bool,
}

/// Which audiences a request accepts (RFC 8707: the app's resource URL).
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// Whether the token is genuine at all, whatever it is for: revocation
    /// only (RFC 7009). No route accepts a caller with it.
    Any,
    /// An app: its resource URL(s), compared without a trailing slash.
    OneOf(&'a [String]),
}

impl std::fmt::Debug for Principal {
    // Identity is personal data: keep it out of debug output by default.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a bearer token was not accepted. Mapped exhaustively to a status and
/// a `WWW-Authenticate` challenge in [`bearer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed authorization: {0}")]
    Malformed(&'static str),
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Valid, but issued for another audience (RFC 8707); names the one expected.
    #[error("the token was not issued for {expected}")]
    Audience { expected: String },
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
    #[error("insufficient scope")]
    InsufficientScope { required: Vec<String> },
    #[error("token cannot be verified now: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// The RFC 6750 §3.1 error code, if the challenge carries one.
    pub(crate) fn oauth_code(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            Self::Malformed(_) => Some("invalid_request"),
            Self::Invalid(_) | Self::Audience { .. } | Self::Expired | Self::Revoked => {
                Some("invalid_token")
            }
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::Unavailable(_) => None,
        }
    }

    /// The `result` label of `drio_token_validations_total`.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Self::Missing | Self::Malformed(_) => "malformed",
            Self::Invalid(_) | Self::Audience { .. } => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// Checks the token was issued for this resource (RFC 8707, RFC 9068 §4).
pub(crate) fn check_audience(
    principal: &Principal,
    accepted: Audience<'_>,
) -> Result<(), TokenError> {
    let Audience::OneOf(accepted) = accepted else {
        return Ok(());
    };
    if principal.any_audience {
        return Ok(());
    }
    let norm = |s: &str| s.strip_suffix('/').unwrap_or(s).len();
    let fits = principal.audience.iter().any(|a| {
        accepted
            .iter()
            .any(|r| norm(a) == norm(r) && a.as_bytes()[..norm(a)] == r.as_bytes()[..norm(r)])
    });
    if fits {
        Ok(())
    } else {
        Err(TokenError::Audience {
            expected: accepted.first().cloned().unwrap_or_default(),
        })
    }
}

/// SHA-256 of the token: the only form in which a token is kept.
pub fn token_hash(token: &str) -> [u8; 32] {
    token_hash_bytes(token.as_bytes())
}

/// [`token_hash`] of a token's bytes (a bearer credential not yet checked
/// as text).
pub(crate) fn token_hash_bytes(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Checks that the principal holds every scope the app requires.
pub fn check_scopes(principal: &Principal, required: &[String]) -> Result<(), TokenError> {
    if required
        .iter()
        .all(|r| principal.scopes.iter().any(|s| s == r))
    {
        Ok(())
    } else {
        Err(TokenError::InsufficientScope {
            required: required.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_must_all_be_present() {
        let p = Principal {
            subject: "user-secret-id".into(),
            email: None,
            name: None,
            picture: None,
            email_verified: false,
            org_id: None,
            groups: vec![],
            scopes: vec!["read".into(), "write".into()],
            client_id: None,
            audience: vec![],
            expires_at: 0,
            session_id: None,
            any_audience: false,
        };
        assert!(check_scopes(&p, &["read".into()]).is_ok());
        let err = check_scopes(&p, &["read".into(), "admin".into()]).unwrap_err();
        assert_eq!(err.oauth_code(), Some("insufficient_scope"));
        assert!(!format!("{p:?}").contains("user-secret-id"));
    }

    #[test]
    fn audience_must_match_the_resource() {
        let mut p: Principal = serde_json::from_value(serde_json::json!({
            "subject": "u", "email": null, "name": null, "picture": null, "scopes": [],
            "client_id": null, "audience": ["https://gw.example.com/apps/notes/mcp/"],
            "expires_at": 0, "session_id": null
        }))
        .unwrap();
        let notes = ["https://gw.example.com/apps/notes/mcp".to_string()];
        let other = ["https://gw.example.com/apps/other/mcp".to_string()];
        assert!(check_audience(&p, Audience::OneOf(&notes)).is_ok());
        assert!(check_audience(&p, Audience::OneOf(&other)).is_err());
        assert!(check_audience(&p, Audience::Any).is_ok());
        p.audience.clear();
        assert!(check_audience(&p, Audience::OneOf(&notes)).is_err());
    }

    #[test]
    fn hash_is_sha256() {
        assert_eq!(
            hex::encode(token_hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
