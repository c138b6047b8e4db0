//! Dynamic client registration (RFC 7591 §3): `POST /api/v1/auth/register`.
//!
//! Registrations persist (`client:{id}`) but expire after
//! `registration_ttl_seconds` unused (each use extends them), are capped in
//! size, and are rate-limited per source address and per hour overall, so
//! clients that re-register on every login cannot grow the store unbounded.
//! A confidential client's secret is returned once and stored hashed.

use serde_json::json;

use super::clients::{self, Client, Metadata};
use super::{random, sha256_hex, OAuthServer};
use crate::errors::OAuthError;
use crate::proxy::local::{LocalRequest, LocalResponse};
use crate::state::State;
use crate::store::StoreExt;

const MAX_BODY: usize = 16 * 1024;

pub async fn register(state: &State, oauth: &OAuthServer, req: &LocalRequest) -> LocalResponse {
    match try_register(state, oauth, req).await {
        Ok(r) => r,
        Err(e) => LocalResponse::oauth_error(&e),
    }
}

async fn try_register(
    state: &State,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> Result<LocalResponse, OAuthError> {
    if req.body.len() > MAX_BODY {
        return Err(OAuthError::invalid_client_metadata(format!(
            "the registration is larger than {MAX_BODY} bytes"
        )));
    }
    rate_limit(state, oauth, req).await?;
    let meta: Metadata = serde_json::from_slice(&req.body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!(
            "the body is not valid client metadata JSON: {e}"
        ))
    })?;
    let mut client = clients::validate(meta, format!("drc_{}", random(16)))?;
    let secret = (!client.is_public()).then(|| random(32));
    client.secret_hash = secret.as_deref().map(sha256_hex);
    save(state, oauth, &client).await?;
    let mut body = serde_json::to_value(&client)
        .map_err(|_| OAuthError::server_error("cannot encode the client"))?;
    body.as_object_mut().map(|o| o.remove("secret_hash"));
    if let Some(s) = secret {
        body["client_secret"] = json!(s);
        body["client_secret_expires_at"] = json!(0);
    }
    Ok(LocalResponse::json(201, &body).no_store())
}

/// Stores (or re-stores, extending its life) a registered client.
pub async fn save(state: &State, oauth: &OAuthServer, client: &Client) -> Result<(), OAuthError> {
    state
        .store
        .put_json(
            &key(&client.client_id),
            client,
            Some(oauth.cfg.registration_ttl),
        )
        .await
        .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))
}

pub fn key(client_id: &str) -> String {
    format!("client:{client_id}")
}

async fn rate_limit(
    state: &State,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> Result<(), OAuthError> {
    let now = crate::auth::verify::now_secs();
    let ip = req
        .client_ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into());
    let per_ip = state
        .store
        .incr(
            &format!("rl:reg:{ip}:{}", now / 60),
            std::time::Duration::from_secs(60),
        )
        .await;
    let global = state
        .store
        .incr(
            &format!("rl:reg:*:{}", now / 3600),
            std::time::Duration::from_secs(3600),
        )
        .await;
    match (per_ip, global) {
        (Ok(n), _) if n > oauth.cfg.registrations_per_minute => Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            "too many registrations from this address; retry in a minute",
        )),
        (_, Ok(n)) if n > oauth.cfg.registrations_per_hour => Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            "the gateway's registration limit for this hour is reached; retry later",
        )),
        (Err(e), _) | (_, Err(e)) => {
            Err(OAuthError::temporarily_unavailable(format!("store: {e}")))
        }
        _ => Ok(()),
    }
}
