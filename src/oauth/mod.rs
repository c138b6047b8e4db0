//! The authorization server MCP clients talk to (the "drio OAuth bridge"):
//! OAuth 2.1 with PKCE, bridged to an upstream identity provider.
//!
//! One file per step: [`metadata`] (RFC 8414, RFC 9728), [`register`]
//! (RFC 7591) and [`cimd`] (Client ID Metadata Documents), [`authorize`],
//! [`callback`] (and the [`dev`] sign-in page), [`consent`], [`token`]
//! (RFC 6749 §4.1.3 and §6, RFC 7636), [`sessions`] (refresh rotation and
//! reuse detection, RFC 9700 §4.14), [`revoke`] (RFC 7009), [`me`], and
//! [`signing`] (gateway-mode JWT access tokens, RFC 9068).
//!
//! Auth routes answer RFC 6749 errors `{error, error_description}`; until a
//! client and its redirect URI are proven, errors are shown, never redirected.
//!
//! Handlers take the [`OAuthServer`] and an [`OAuthCtx`]: the shared handles
//! they use, lent for one request by `State::oauth_ctx` (the only place that
//! assembles one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::auth::TokenValidator;
use crate::catalog::route::RouteTable;
use crate::config::oauth::OAuthConfig;
use crate::config::Config;
use crate::store::vault::Vault;
use crate::store::Store;
use crate::util::clock::Clock;
use crate::web::LocalRequest;

pub mod authorize;
pub mod callback;
pub(crate) mod cimd;
pub mod clients;
pub mod consent;
pub(crate) mod dev;
pub(crate) mod idp;
pub(crate) mod metadata;
pub(crate) mod proof;
pub(crate) mod register;
pub(crate) mod revoke;
pub(crate) mod session_tokens;
pub mod sessions;
pub mod signing;
pub(crate) mod token;
pub(crate) mod upstream_refresh;
pub(crate) mod workos_sso;

pub(crate) struct OAuthServer {
    pub(crate) cfg: OAuthConfig,
    pub(crate) idp: Arc<idp::Idp>,
    /// Gateway token mode only.
    pub(crate) keys: Option<Arc<signing::Keyring>>,
    pub(crate) cimd: cimd::Cache,
    /// Expiries, grace windows and rate-limit windows read this clock.
    pub(crate) clock: crate::util::clock::Clock,
}

/// What the authorization server's handlers use besides the server itself,
/// borrowed for one request.
pub(crate) struct OAuthCtx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) store: &'a Arc<dyn Store>,
    /// The live route table: resources (RFC 8707) and apps' scopes.
    pub(crate) routes: &'a ArcSwap<RouteTable>,
    /// Outbound client for the operator's endpoints (the identity provider).
    pub(crate) http: &'a reqwest::Client,
    /// Token validation (revocation, RFC 7009).
    pub(crate) auth: &'a TokenValidator,
    /// Seals the IdP's tokens in codes, consents and sessions.
    pub(crate) vault: &'a Option<Arc<Vault>>,
    pub(crate) clock: &'a Clock,
    /// The authorization server, when `[oauth]` is configured (discovery
    /// answers without it).
    pub(crate) oauth: Option<&'a OAuthServer>,
}

impl OAuthServer {
    pub(crate) fn scopes_supported(&self) -> Vec<String> {
        let mut s: Vec<String> = ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec();
        s.extend(self.cfg.scopes.iter().cloned());
        s.dedup();
        s
    }
}

/// Form or JSON body parameters (token and refresh accept both).
pub fn params(req: &LocalRequest) -> Result<HashMap<String, String>, crate::errors::OAuthError> {
    let json = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"));
    if json {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&req.body)
            .map_err(|_| {
                crate::errors::OAuthError::invalid_request("the JSON body is not an object")
            })?;
        Ok(v.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect())
    } else {
        Ok(url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect())
    }
}

pub fn query(req: &LocalRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `n` random bytes, base64url: codes, tokens, states (≥128 bits each).
/// Session errors as OAuth errors (RFC 6749 §5.2): the one place they
/// become wire errors. A bad or reused token is `invalid_grant`; anything the
/// client should retry is `temporarily_unavailable`.
impl From<sessions::SessionError> for crate::errors::OAuthError {
    fn from(e: sessions::SessionError) -> Self {
        use crate::errors::OAuthError;
        use sessions::SessionError as E;
        match e {
            E::InvalidGrant | E::EndedUpstream(_) => OAuthError::invalid_grant(e.to_string()),
            E::Busy | E::Changed | E::Idp(_) | E::Store(_) => {
                OAuthError::temporarily_unavailable(e.to_string())
            }
            E::Internal(m) => OAuthError::server_error(m),
        }
    }
}

pub(crate) fn random(n: usize) -> Result<String, crate::errors::OAuthError> {
    crate::util::random::token(n)
        .map_err(|e| crate::errors::OAuthError::server_error(e.to_string()))
}

pub(crate) fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, in constant time.
pub fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    valid && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `uri` with extra query parameters (the client's redirect URI with code,
/// state and iss, or with an error).
pub(crate) fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut u = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return uri.to_string(),
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// How long pending authorizations live (issue: 10 minutes, single use).
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(600);
/// Bridge codes: 60 s, single use.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_ok(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_ok("short", "x"));
    }
}
