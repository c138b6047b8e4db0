//! `POST /api/v1/auth/revoke` (RFC 7009): revokes a refresh token (ending
//! its whole session and the access tokens it issued) or an access token
//! (on every instance, through the token cache's revocation broadcast).
//! Always 200 for a well-formed request, so token validity does not leak.

use super::{params, sessions, OAuthServer};
use crate::config::oauth::TokenMode;
use crate::errors::OAuthError;
use crate::proxy::local::{LocalRequest, LocalResponse};
use crate::state::State;

pub async fn revoke(state: &State, oauth: &OAuthServer, req: &LocalRequest) -> LocalResponse {
    match try_revoke(state, oauth, req).await {
        Ok(()) => LocalResponse::json(200, &serde_json::json!({})).no_store(),
        Err(e) => LocalResponse::oauth_error(&e),
    }
}

async fn try_revoke(
    state: &State,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> Result<(), OAuthError> {
    let p = params(req)?;
    let token = p
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required field: token"))?;
    let hint = p.get("token_type_hint").map(String::as_str);
    if hint != Some("access_token") {
        if let Some(s) = sessions::find(state, token).await {
            // RFC 7009 §2.1: only the client the token was issued to may revoke it.
            let client_id = p
                .get("client_id")
                .map(String::as_str)
                .unwrap_or(&s.client_id);
            if client_id == s.client_id {
                sessions::revoke(state, oauth, &s.sid).await?;
            }
            return Ok(());
        }
    }
    if oauth.cfg.token_mode == TokenMode::Upstream {
        oauth.idp.revoke(token).await;
    }
    state
        .auth
        .revoke_token(token)
        .await
        .map_err(|e| OAuthError::temporarily_unavailable(format!("store: {e}")))
}
