//! Talking OAuth 2.0 to an upstream provider's token endpoint (RFC 6749 §3.2)
//! with the provider options of seed `003_*`: scope separator, credentials
//! in the body or a Basic header, form or JSON token bodies, a separate
//! refresh URL, PKCE-only clients without a secret.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{Connection, ConnectionSecrets};
use crate::secrets::{Secret, SecretBox};
use crate::store::Store;

/// What credential builders need from the gateway.
#[derive(Clone)]
pub struct OAuthContext {
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub sbox: Option<Arc<SecretBox>>,
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub connection_id: String,
    pub app_id: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub refresh_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub audience: Option<String>,
    pub basic_auth: bool,
    pub json_body: bool,
    pub pkce: bool,
    pub authorization_params: Vec<(String, String)>,
}

impl ProviderSettings {
    pub fn from_connection(conn: &Connection, secrets: &ConnectionSecrets) -> Result<Self, String> {
        let c = &conn.config;
        Ok(Self {
            connection_id: conn.id.clone(),
            app_id: conn.app_id.clone(),
            authorization_endpoint: c.authorization_endpoint.clone(),
            token_endpoint: c.token_endpoint.clone().ok_or("tokenEndpoint is missing")?,
            refresh_url: c.refresh_url.clone(),
            client_id: c.client_id.clone().ok_or("clientId is missing")?,
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

    pub fn scope(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(&self.scope_separator))
    }
}

#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenCallError {
    /// The provider refused the grant (`invalid_grant`, `invalid_client`, …).
    #[error("the token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
    },
    #[error("the token endpoint could not be reached: {0}")]
    Network(String),
}

/// POSTs a token request with `params` plus client authentication.
pub async fn token_request(
    http: &reqwest::Client,
    s: &ProviderSettings,
    url: &str,
    mut params: Vec<(&str, String)>,
) -> Result<TokenResponse, TokenCallError> {
    let mut req = http
        .post(url)
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
    let resp = req
        .send()
        .await
        .map_err(|e| TokenCallError::Network(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| TokenCallError::Network(e.without_url().to_string()))?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(|_| TokenCallError::Refused {
            status,
            error: "invalid_response".into(),
            description: Some("the token response is not a JSON token".into()),
        });
    }
    #[derive(Deserialize)]
    struct Err {
        error: Option<String>,
        error_description: Option<String>,
    }
    if status >= 500 {
        return Err(TokenCallError::Network(format!(
            "token endpoint answered {status}"
        )));
    }
    let e: Option<Err> = serde_json::from_slice(&body).ok();
    Err(TokenCallError::Refused {
        status,
        error: e
            .as_ref()
            .and_then(|e| e.error.clone())
            .unwrap_or_else(|| format!("http_{status}")),
        description: e.and_then(|e| e.error_description),
    })
}
