//! Dynamic client registration (RFC 7591 §3): `POST /api/v1/auth/register`.
//!
//! Registrations persist (`client:{id}`) but expire after
//! `registration_ttl_seconds` unused (each use extends them), are capped in
//! size, and are rate-limited per source address and per hour overall, so
//! clients that re-register on every login cannot grow the store unbounded.
//! A confidential client's secret is returned once and stored hashed.

use crate::store::keys;
use serde::Serialize;

use super::clients::{self, Client, Metadata};
use super::{random, sha256_hex, OAuthCtx, OAuthServer};
use crate::errors::OAuthError;
use crate::store::StoreExt;
use crate::web::{LocalRequest, LocalResponse};

const MAX_BODY: usize = 16 * 1024;

/// The client information response (RFC 7591 §3.2.1): the registered
/// metadata, and for a confidential client its secret, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ClientInformation)]
pub(crate) struct Registered {
    client_id: String,
    #[schema(required = true)]
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    token_endpoint_auth_method: String,
    client_id_issued_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    software_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// `0`: the secret does not expire (RFC 7591 §3.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<u64>,
}

impl Registered {
    /// Never the stored `secret_hash`.
    fn new(c: Client, secret: Option<String>) -> Self {
        Self {
            client_id: c.client_id,
            client_name: c.client_name,
            redirect_uris: c.redirect_uris,
            grant_types: c.grant_types,
            response_types: c.response_types,
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            client_id_issued_at: c.client_id_issued_at,
            client_uri: c.client_uri,
            logo_uri: c.logo_uri,
            scope: c.scope,
            software_id: c.software_id,
            software_version: c.software_version,
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret,
        }
    }
}

pub(crate) async fn register(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    match try_register(cx, oauth, req).await {
        Ok(r) => r,
        Err(e) => LocalResponse::oauth_error(&e),
    }
}

async fn try_register(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> Result<LocalResponse, OAuthError> {
    if req.body.len() > MAX_BODY {
        return Err(OAuthError::invalid_client_metadata(format!(
            "the registration is larger than {MAX_BODY} bytes"
        )));
    }
    rate_limit(cx, oauth, req).await?;
    let meta: Metadata = serde_json::from_slice(&req.body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!(
            "the body is not valid client metadata JSON: {e}"
        ))
    })?;
    let mut client =
        clients::validate(meta, format!("drc_{}", random(16)?), oauth.clock.now_secs())?;
    let secret = (!client.is_public()).then(|| random(32)).transpose()?;
    client.secret_hash = secret.as_deref().map(sha256_hex);
    save(cx, oauth, &client).await?;
    Ok(LocalResponse::json(201, &Registered::new(client, secret)).no_store())
}

/// Stores (or re-stores, extending its life) a registered client.
pub(crate) async fn save(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    client: &Client,
) -> Result<(), OAuthError> {
    cx.store
        .put_json(
            &key(&client.client_id),
            client,
            Some(oauth.cfg.registration_ttl),
        )
        .await
        .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))
}

pub(crate) fn key(client_id: &str) -> String {
    keys::client(client_id)
}

/// Per-client limits (RFC 7591 §3 leaves abuse control to the server): per
/// address — per /64 for IPv6 — and minute, and per address and hour. There
/// is no gateway-wide cap: one host must not be able to use it up for
/// everyone. Behind a load balancer the address is the one
/// `server.trusted_proxies` vouch for.
async fn rate_limit(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> Result<(), OAuthError> {
    let now = oauth.clock.now_secs();
    let bucket = req
        .client_ip
        .map(crate::web::client_addr::limit_bucket)
        .unwrap_or_else(|| "unknown".into());
    let count = |window: u64| {
        let key = keys::registration_limit(&bucket, window, now / window);
        async move {
            cx.store
                .incr(&key, std::time::Duration::from_secs(window))
                .await
                .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))
        }
    };
    // Both windows count every attempt, so one round trip's wait serves both.
    let (minute, hour) = tokio::join!(count(60), count(3600));
    if minute? > oauth.cfg.registrations_per_minute {
        return Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            "too many registrations from this address; retry in a minute",
        ));
    }
    if hour? > oauth.cfg.registrations_per_hour {
        return Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            "too many registrations from this address this hour; retry later",
        ));
    }
    Ok(())
}
