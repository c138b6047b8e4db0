//! The connection providers the gateway offers (the `providers` list of
//! `GET /api/v1/apps/{appId}/auth`, seed `002_*`).

use serde_json::json;

use crate::errors::ApiError;

pub(crate) struct Provider {
    pub(crate) id: &'static str,
    pub(crate) key: &'static str,
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) docs_url: &'static str,
}

pub(crate) const PROVIDERS: &[Provider] = &[
    Provider {
        id: "provider_oauth",
        key: "custom-oauth",
        name: "OAuth",
        kind: "oauth",
        docs_url: "https://www.rfc-editor.org/rfc/rfc6749",
    },
    Provider {
        id: "provider_api_key",
        key: "api-key",
        name: "API key",
        kind: "api_key",
        docs_url: "https://swagger.io/docs/specification/authentication/api-keys/",
    },
    Provider {
        id: "provider_bearer",
        key: "bearer-token",
        name: "Bearer token",
        kind: "bearer",
        docs_url: "https://www.rfc-editor.org/rfc/rfc6750",
    },
    Provider {
        id: "provider_basic",
        key: "basic-auth",
        name: "Basic auth",
        kind: "basic",
        docs_url: "https://www.rfc-editor.org/rfc/rfc7617",
    },
    Provider {
        id: "provider_token_exchange",
        key: "token-exchange",
        name: "Token exchange",
        kind: "token_exchange",
        docs_url: "https://www.rfc-editor.org/rfc/rfc8693",
    },
    Provider {
        id: "provider_workos_pipes",
        key: "workos-pipes",
        name: "WorkOS Pipes",
        kind: "workos_pipes",
        docs_url: "https://workos.com/docs/pipes",
    },
];

/// The provider named by `providerKey`, or implied by `config.type`.
pub(crate) fn resolve(
    provider_key: Option<&str>,
    kind: Option<&str>,
) -> Result<&'static Provider, ApiError> {
    let by_key = match provider_key {
        Some(k) => Some(PROVIDERS.iter().find(|p| p.key == k).ok_or_else(|| {
            ApiError::validation("providerKey", format!("unknown provider `{k}`"))
        })?),
        None => None,
    };
    match (by_key, kind) {
        (Some(p), Some(k)) if p.kind != k => Err(ApiError::validation(
            "config.type",
            format!("`{k}` does not match provider `{}` ({})", p.key, p.kind),
        )),
        (Some(p), _) => Ok(p),
        (None, Some(k)) => PROVIDERS.iter().find(|p| p.kind == k).ok_or_else(|| {
            ApiError::validation(
                "config.type",
                format!("must be oauth, api_key, bearer, basic, token_exchange or workos_pipes, not `{k}`"),
            )
        }),
        (None, None) => Err(ApiError::validation(
            "config.type",
            "is required (or providerKey)",
        )),
    }
}

pub(crate) fn list() -> Vec<crate::api::view::ProviderView> {
    PROVIDERS
        .iter()
        .map(|p| {
            let schema = match p.kind {
                "oauth" => json!({"scopes": [], "requiresAuthorizationEndpoint": false, "requiresTokenEndpoint": true,
                                  "fields": ["authorizationEndpoint", "tokenEndpoint", "clientId", "clientSecret", "scopes", "audience",
                                             "registrationEndpoint", "registrationAuthMode", "scopeSeparator", "clientAuthMethod",
                                             "tokenContentType", "authorizationParams", "refreshUrl", "pkce"]}),
                "api_key" => json!({"fields": ["headerName", "headerPrefix", "queryParamName", "apiKey"]}),
                "bearer" => json!({"fields": ["accessToken"]}),
                "token_exchange" => json!({"requiresTokenEndpoint": true,
                                  "fields": ["tokenEndpoint", "audience", "resource", "scopes", "requestedTokenType", "clientId",
                                             "clientSecret", "clientAuthMethod", "scopeSeparator", "tokenContentType"]}),
                "workos_pipes" => json!({"fields": ["provider", "organizationScoped", "apiKey"]}),
                _ => json!({"fields": ["username", "password"]}),
            };
            crate::api::view::ProviderView {
                id: p.id,
                key: p.key,
                name: p.name,
                kind: p.kind,
                ownership: "customer_managed",
                provisioning_mode: "manual",
                docs_url: p.docs_url,
                config_schema: schema,
            }
        })
        .collect()
}
