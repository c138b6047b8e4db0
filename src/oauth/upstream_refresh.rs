//! Refresh in upstream token mode (drio-compatible, seed 001): the client
//! holds the identity provider's own refresh token, so the gateway relays
//! the refresh to the IdP (RFC 6749 §6). Because IdPs rotate refresh tokens,
//! concurrent refreshes of one token must reach the IdP once: the first
//! takes a store lock (shared by every instance) and records the IdP's
//! answer, sealed, for the grace window; the others wait and get that same
//! answer instead of a second call that the IdP would treat as reuse.

use crate::store::keys;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::idp::IdpError;
use super::sessions::{locked, open, seal, Issued, Sealed};
use super::{sha256_hex, OAuthCtx, OAuthServer};
use crate::errors::OAuthError;
use crate::store::StoreExt;

/// The IdP's answer to one refresh, kept for the grace window (`rtans:{sha256}`).
#[derive(Serialize, Deserialize)]
struct Answer {
    client_id: String,
    issued: Sealed,
}

pub(crate) async fn refresh(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    client_id: &str,
    presented: &str,
    resource: Option<&str>,
) -> Result<Issued, OAuthError> {
    let hash = sha256_hex(presented);
    let key = keys::refresh_answer(&hash);
    if let Some(answer) = answered(cx, &key, client_id).await {
        return Ok(answer);
    }
    locked(cx, &keys::refresh_lock(&hash), async {
        // A request that waited for the lock finds the first one's answer.
        if let Some(answer) = answered(cx, &key, client_id).await {
            return Ok(answer);
        }
        let issued = match oauth.idp.refresh(presented, resource).await {
            Ok(up) => super::token::upstream_issued(up, None),
            Err(IdpError::Refused(e)) => {
                return Err(OAuthError::invalid_grant(format!("the identity provider refused the refresh token ({e})")))
            }
            Err(e) => return Err(OAuthError::temporarily_unavailable(e.to_string())),
        };
        let grace = oauth.cfg.refresh_grace;
        if grace > Duration::ZERO {
            let answer = Answer { client_id: client_id.to_string(), issued: seal(cx, &key, &issued)? };
            if let Err(e) = cx.store.put_json(&key, &answer, Some(grace)).await {
                tracing::warn!(error = %e, "could not keep the refresh answer for concurrent retries");
            }
        }
        Ok(issued)
    })
    .await
}

async fn answered(cx: &OAuthCtx<'_>, key: &str, client_id: &str) -> Option<Issued> {
    let answer: Answer = cx.store.get_json(key).await.ok()??;
    (answer.client_id == client_id)
        .then(|| open(cx, key, &answer.issued))
        .flatten()
}
