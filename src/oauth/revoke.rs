//! `POST /api/v1/auth/revoke` (RFC 7009): revokes a refresh token (ending
//! its whole session and the access tokens it issued) or an access token
//! (on every instance, through the token cache's revocation broadcast).
//!
//! The client authenticates as at the token endpoint (RFC 7009 §2.1) and
//! may revoke only what was issued to it. A revocation is remembered only
//! for a token the gateway can verify (its own, or in upstream mode the
//! IdP's), until the verified expiry: an unauthenticated caller can no
//! longer fill the store with tombstones for made-up strings. Requests are
//! rate-limited per client address. Always 200 for a well-formed request,
//! so token validity does not leak (§2.2).

use super::{params, sessions, OAuthCtx, OAuthServer};
use crate::auth::{Audience, TokenError};
use crate::config::oauth::TokenMode;
use crate::errors::OAuthError;
use crate::store::keys;
use crate::web::{LocalRequest, LocalResponse};

/// RFC 7009 §2.2: the (empty) success body, `{}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Revoked {}

/// Revocation requests per client address and minute.
const PER_MINUTE: u64 = 60;

pub(crate) async fn revoke(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    match try_revoke(cx, oauth, req).await {
        Ok(()) => LocalResponse::json(200, &Revoked {}).no_store(),
        Err(e) => LocalResponse::oauth_error(&e),
    }
}

async fn try_revoke(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> Result<(), OAuthError> {
    let p = params(req)?;
    let token = p
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required field: token"))?;
    // Counted before anything is looked up: failed authentications too.
    limit(cx, req).await?;
    let client = super::token::authenticate(cx, oauth, req, &p).await?;
    let hint = p.get("token_type_hint").map(String::as_str);
    if hint != Some("access_token") {
        if let Some(s) = sessions::find(cx, token).await {
            // RFC 7009 §2.1: only the client the token was issued to may revoke it.
            if client.client_id == s.client_id {
                sessions::revoke(cx, oauth, &s.sid).await?;
            }
            return Ok(());
        }
    }
    if oauth.cfg.token_mode == TokenMode::Upstream {
        // The IdP's own tokens (refresh tokens included): it judges them.
        oauth.idp.revoke(token).await;
    }
    let verified = match cx.auth.validate(token, Audience::Any, &[]).await {
        Ok(p) => p,
        // Unknown, forged, expired or already revoked: nothing to remember.
        Err(TokenError::Unavailable(e)) => return Err(OAuthError::temporarily_unavailable(e)),
        Err(_) => return Ok(()),
    };
    match oauth.cfg.token_mode {
        // The gateway's tokens name the client they were issued to.
        TokenMode::Gateway if verified.client_id.as_deref() != Some(client.client_id.as_str()) => {
            return Ok(())
        }
        TokenMode::Gateway => {}
        // The IdP's tokens name the gateway as their client, not the MCP client.
        TokenMode::Upstream => {}
    }
    cx.auth
        .revoke_until(token, verified.expires_at)
        .await
        .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))
}

async fn limit(cx: &OAuthCtx<'_>, req: &LocalRequest) -> Result<(), OAuthError> {
    let ip = req
        .client_ip
        .map(crate::web::client_addr::limit_bucket)
        .unwrap_or_else(|| "unknown".into());
    let minute = cx.clock.now_secs() / 60;
    let n = cx
        .store
        .incr(
            &keys::revocation_limit(&ip, minute),
            std::time::Duration::from_secs(60),
        )
        .await
        .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))?;
    if n > PER_MINUTE {
        return Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            "too many revocation requests from this address; retry in a minute",
        ));
    }
    Ok(())
}
