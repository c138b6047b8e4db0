//! Talking OAuth 2.0 to an upstream provider's token endpoint (RFC 6749 §3.2)
//! with the provider options of seed `003_*`: scope separator, credentials
//! in the body or a Basic header, form or JSON token bodies, a separate
//! refresh URL, PKCE-only clients without a secret.
//!
//! Token endpoints of connections are user-supplied URLs: they are called
//! through the [`EgressClient`], and a failure is reported as a class
//! (`status 401`, `connect`, `forbidden address (loopback)`, or a standard
//! RFC 6749 §5.2 error code), never with bytes the endpoint sent.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{Connection, ConnectionSecrets};
use crate::egress::{EgressClient, OutboundFailure};
use crate::secrets::Secret;
use crate::store::vault::Vault;
use crate::store::Store;

/// What credential builders need from the gateway.
#[derive(Clone)]
pub(crate) struct OAuthContext {
    /// User-supplied token and refresh endpoints go through the egress policy.
    pub(crate) egress: EgressClient,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) vault: Option<Arc<Vault>>,
    pub(crate) public_url: String,
    /// Gateway token mode: where a token exchange finds the user's IdP
    /// access token (their session). None: the client's bearer is it.
    pub(crate) sessions: Option<Arc<dyn super::token_exchange::SubjectTokens>>,
    /// Upstream token expiry is judged by this clock.
    pub(crate) clock: crate::util::clock::Clock,
    /// The WorkOS API base of a `workos_sso` sign-in (WorkOS Pipes); None
    /// with any other identity provider.
    pub(crate) workos_api: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ProviderSettings {
    pub(crate) connection_id: String,
    pub(crate) app_id: String,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) token_endpoint: String,
    pub(crate) refresh_url: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) scopes: Vec<String>,
    pub(crate) scope_separator: String,
    pub(crate) audience: Option<String>,
    pub(crate) basic_auth: bool,
    pub(crate) json_body: bool,
    pub(crate) pkce: bool,
    pub(crate) authorization_params: Vec<(String, String)>,
}

impl ProviderSettings {
    pub(crate) fn from_connection(
        conn: &Connection,
        secrets: &ConnectionSecrets,
    ) -> Result<Self, super::ConnectionError> {
        use super::ConnectionError::Missing;
        let c = &conn.config;
        Ok(Self {
            connection_id: conn.id.clone(),
            app_id: conn.app_id.clone(),
            authorization_endpoint: c.authorization_endpoint.clone(),
            token_endpoint: c.token_endpoint.clone().ok_or(Missing("tokenEndpoint"))?,
            refresh_url: c.refresh_url.clone(),
            client_id: c.client_id.clone().ok_or(Missing("clientId"))?,
            client_secret: secrets.client_secret.clone().map(Secret::new),
            scopes: c.scopes.clone().unwrap_or_default(),
            scope_separator: c.scope_separator.clone().unwrap_or_else(|| " ".into()),
            audience: c.audience.clone(),
            basic_auth: c.client_auth_method.as_deref() == Some("client_secret_basic"),
            json_body: c.token_content_type.as_deref() == Some("application/json"),
            pkce: c.pkce.unwrap_or(true),
            authorization_params: c
                .authorization_params
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }

    pub(crate) fn scope(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(&self.scope_separator))
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

/// The error codes of RFC 6749 §5.2, RFC 8693 §2.2.2 (`invalid_target`)
/// and OIDC Core §3.1.2.6 (`interaction_required`, which token services
/// use for "the user must act first"): the only words of a token
/// endpoint's answer that are repeated (they come from a closed set).
const STANDARD_ERRORS: [&str; 8] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "interaction_required",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenCallError {
    /// The provider refused the grant with a 4xx; `error` is an RFC 6749
    /// §5.2 code when the body carried one, else None.
    #[error("the token endpoint refused: status {status}{}", error.map(|e| format!(" ({e})")).unwrap_or_default())]
    Refused {
        status: u16,
        error: Option<&'static str>,
    },
    #[error("the token endpoint failed: {0}")]
    Network(OutboundFailure),
}

impl TokenCallError {
    /// True when the provider says the client itself is not accepted.
    pub(crate) fn rejects_client(&self) -> bool {
        matches!(
            self,
            TokenCallError::Refused { status: 401, .. }
                | TokenCallError::Refused {
                    error: Some("invalid_client" | "unauthorized_client"),
                    ..
                }
        )
    }
}

/// POSTs a token request to an operator-configured endpoint (the identity
/// provider) with `params` plus client authentication.
pub(crate) async fn token_request(
    http: &reqwest::Client,
    s: &ProviderSettings,
    url: &str,
    params: Vec<(&str, String)>,
) -> Result<TokenResponse, TokenCallError> {
    send_token_request(http.post(url), s, params).await
}

/// POSTs a token request to a user-supplied endpoint, through the egress
/// policy.
pub(crate) async fn user_token_request(
    egress: &EgressClient,
    s: &ProviderSettings,
    url: &str,
    params: Vec<(&str, String)>,
) -> Result<TokenResponse, TokenCallError> {
    let req = egress
        .post(url)
        .map_err(|e| TokenCallError::Network(e.into()))?;
    send_token_request(req, s, params).await
}

async fn send_token_request(
    req: reqwest::RequestBuilder,
    s: &ProviderSettings,
    mut params: Vec<(&str, String)>,
) -> Result<TokenResponse, TokenCallError> {
    let mut req = req
        .header("accept", "application/json")
        .timeout(Duration::from_secs(10));
    match (&s.client_secret, s.basic_auth) {
        (Some(secret), true) => req = req.basic_auth(&s.client_id, Some(secret.expose())),
        (Some(secret), false) => {
            params.push(("client_id", s.client_id.clone()));
            params.push(("client_secret", secret.expose().to_string()));
        }
        (None, _) => params.push(("client_id", s.client_id.clone())),
    }
    req = if s.json_body {
        let map: serde_json::Map<String, serde_json::Value> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect();
        req.json(&map)
    } else {
        req.form(&params)
    };
    let network = |e: reqwest::Error| TokenCallError::Network((&e).into());
    let resp = req.send().await.map_err(network)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(network)?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body)
            .map_err(|_| TokenCallError::Network(OutboundFailure::InvalidResponse));
    }
    if !(400..500).contains(&status) {
        return Err(TokenCallError::Network(OutboundFailure::Status(status)));
    }
    #[derive(Deserialize)]
    struct Err {
        error: Option<String>,
    }
    let code = serde_json::from_slice::<Err>(&body)
        .ok()
        .and_then(|e| e.error)
        .and_then(|e| STANDARD_ERRORS.into_iter().find(|s| *s == e));
    Err(TokenCallError::Refused {
        status,
        error: code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_classes_only() {
        let e = TokenCallError::Refused {
            status: 401,
            error: None,
        };
        assert_eq!(e.to_string(), "the token endpoint refused: status 401");
        assert!(e.rejects_client());
        let e = TokenCallError::Refused {
            status: 400,
            error: Some("invalid_grant"),
        };
        assert_eq!(
            e.to_string(),
            "the token endpoint refused: status 400 (invalid_grant)"
        );
        assert!(!e.rejects_client());
        let e = TokenCallError::Network(OutboundFailure::Forbidden(
            crate::egress::AddressClass::Loopback,
        ));
        assert_eq!(
            e.to_string(),
            "the token endpoint failed: forbidden address (loopback)"
        );
    }
}
