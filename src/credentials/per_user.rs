//! Per-user delegated OAuth to an upstream (RFC 6749 §4.1 with PKCE, RFC
//! 7636): each user connects their own upstream account once, through
//! `GET /api/v1/apps/{appId}/auth/{authId}/connect`, and their requests then
//! carry their own upstream token, refreshed when needed.
//!
//! Tokens live encrypted in the store (`utok:{authId}:{sha256(sub)}`) and in
//! a small in-process cache, so a request costs no store round trip while
//! its token is fresh. A miss is a single flight per (connection, user): one
//! user's concurrent requests share one store read and at most one refresh
//! call, and users never wait on each other (one `PerUser` serves one
//! connection; its cache is keyed by user). A refresh the provider refuses (`invalid_grant`: the
//! user revoked the grant) deletes the tokens, and the user is asked to
//! connect again.

use crate::store::keys;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::oauth::{
    user_token_request, OAuthContext, ProviderSettings, TokenCallError, TokenResponse,
};
use super::{mark_sensitive, InjectError};
use crate::auth::Principal;
use crate::catalog::Connection;

/// Refresh this many seconds before expiry.
const MARGIN: u64 = 30;

#[derive(Serialize, Deserialize, Clone)]
pub struct UserTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: Option<String>,
    /// Unix seconds; 0 when the provider stated none.
    pub(crate) expires_at: u64,
}

impl UserTokens {
    pub(crate) fn from_response(
        t: TokenResponse,
        previous_refresh: Option<String>,
        now: u64,
    ) -> Self {
        Self {
            access_token: t.access_token,
            // RFC 6749 §6: a provider may keep the old refresh token.
            refresh_token: t.refresh_token.or(previous_refresh),
            expires_at: t.expires_in.map_or(0, |e| now + e),
        }
    }

    fn fresh(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now + MARGIN
    }
}

pub struct PerUser {
    pub(crate) settings: ProviderSettings,
    ctx: OAuthContext,
    /// Fresh tokens by user (subject): this connection's own cache, so a
    /// hit neither hashes nor allocates a key. Also the single flight of
    /// misses (`try_get_with` runs one load per user, others wait for it).
    local: Cache<String, Arc<UserTokens>>,
}

pub(crate) fn tokens_key(auth_id: &str, subject: &str) -> String {
    keys::user_tokens(auth_id, &hex::encode(Sha256::digest(subject.as_bytes())))
}

impl PerUser {
    pub(crate) fn new(conn: &Connection, settings: ProviderSettings, ctx: OAuthContext) -> Self {
        let _ = conn;
        Self {
            settings,
            ctx,
            local: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }

    pub(crate) async fn connect_url(&self, principal: Option<&Principal>) -> String {
        issue_connect_url(
            &self.ctx,
            &self.settings.app_id,
            &self.settings.connection_id,
            principal,
        )
        .await
    }

    pub(crate) async fn header(
        &self,
        principal: Option<&Principal>,
    ) -> Result<HeaderValue, InjectError> {
        match self.token_header(principal).await {
            Err(InjectError::NotConnected { .. }) => Err(InjectError::NotConnected {
                connect_url: self.connect_url(principal).await,
            }),
            other => other,
        }
    }

    async fn token_header(
        &self,
        principal: Option<&Principal>,
    ) -> Result<HeaderValue, InjectError> {
        let not_connected = || InjectError::NotConnected {
            connect_url: String::new(),
        };
        let p = principal.ok_or_else(not_connected)?;
        let tokens = match self.local.get(p.subject.as_str()).await {
            Some(t) if t.fresh(self.ctx.clock.now_secs()) => {
                crate::telemetry::note("cache.hit", true);
                t
            }
            stale => {
                crate::telemetry::note("cache.hit", false);
                // A stale entry must go, or the flight would return it. Should
                // this drop a token another flight just refreshed, the next
                // flight finds it fresh in the store: still one refresh call.
                if stale.is_some() {
                    self.local.invalidate(p.subject.as_str()).await;
                }
                let key = tokens_key(&self.settings.connection_id, &p.subject);
                self.local
                    .try_get_with(p.subject.clone(), self.load_or_refresh(&key))
                    .await
                    .map_err(|e| (*e).clone())?
            }
        };
        HeaderValue::from_str(&format!("Bearer {}", tokens.access_token))
            .map(mark_sensitive)
            .map_err(|_| InjectError::Unavailable("the upstream issued an unusable token".into()))
    }

    /// The flight of one (connection, user) miss: the stored tokens, refreshed
    /// when stale. Its result is cached by `try_get_with`; errors are not.
    async fn load_or_refresh(&self, key: &str) -> Result<Arc<UserTokens>, InjectError> {
        match self.load(key).await? {
            Some(t) if t.fresh(self.ctx.clock.now_secs()) => Ok(t),
            Some(t) => self.refreshed(key, &t).await,
            None => Err(InjectError::NotConnected {
                connect_url: String::new(),
            }),
        }
    }

    async fn load(&self, key: &str) -> Result<Option<Arc<UserTokens>>, InjectError> {
        let unavailable = |e: String| InjectError::Unavailable(e);
        let Some(vault) = &self.ctx.vault else {
            return Err(unavailable("no secrets key".into()));
        };
        let Some(sealed) = self
            .ctx
            .store
            .get(key)
            .await
            .map_err(|e| unavailable(e.to_string()))?
        else {
            return Ok(None);
        };
        let plain = vault
            .open(key, &sealed)
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(serde_json::from_slice(&plain).ok().map(Arc::new))
    }

    async fn refreshed(&self, key: &str, old: &UserTokens) -> Result<Arc<UserTokens>, InjectError> {
        let not_connected = || InjectError::NotConnected {
            connect_url: String::new(),
        };
        let Some(refresh) = old.refresh_token.clone() else {
            let _ = self.ctx.store.delete(key).await;
            return Err(not_connected());
        };
        let s = &self.settings;
        let url = s.refresh_url.as_deref().unwrap_or(&s.token_endpoint);
        let params = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh.clone()),
        ];
        match user_token_request(&self.ctx.egress, s, url, params).await {
            Ok(t) => {
                let tokens = UserTokens::from_response(t, Some(refresh), self.ctx.clock.now_secs());
                // Store only: the flight caches what it returns.
                save_tokens(&self.ctx, key, &tokens).await?;
                Ok(Arc::new(tokens))
            }
            // The grant was revoked upstream: forget it and ask the user to reconnect.
            Err(TokenCallError::Refused { .. }) => {
                let _ = self.ctx.store.delete(key).await;
                Err(not_connected())
            }
            Err(e) => Err(InjectError::Unavailable(e.to_string())),
        }
    }
}

/// A link the user can open in a browser (no bearer there): it carries a
/// single-use ticket, valid 10 minutes, naming the user and connection.
pub(crate) async fn issue_connect_url(
    ctx: &OAuthContext,
    app_id: &str,
    auth_id: &str,
    principal: Option<&Principal>,
) -> String {
    issue_link(ctx, app_id, auth_id, principal, None).await
}

/// A link that has the user sign in again at the identity provider (with
/// `prompt=consent`), replacing the IdP tokens of their gateway session:
/// what a token service's `interaction_required` asks for.
pub(crate) async fn issue_sign_in_again_url(
    ctx: &OAuthContext,
    app_id: &str,
    auth_id: &str,
    principal: &Principal,
) -> String {
    let sid = principal.session_id.as_deref();
    issue_link(ctx, app_id, auth_id, Some(principal), sid).await
}

async fn issue_link(
    ctx: &OAuthContext,
    app_id: &str,
    auth_id: &str,
    principal: Option<&Principal>,
    session_id: Option<&str>,
) -> String {
    let base = format!(
        "{}/api/v1/apps/{app_id}/auth/{auth_id}/connect",
        ctx.public_url
    );
    let Some(p) = principal else { return base };
    // Without randomness no ticket: the link then needs the user's bearer.
    let Ok(ticket) = crate::catalog::new_id("ct") else {
        return base;
    };
    let record = ConnectTicket {
        subject: p.subject.clone(),
        email: p.email.clone(),
        org_id: p.org_id.clone(),
        app_id: app_id.to_string(),
        auth_id: auth_id.to_string(),
        session_id: session_id.map(str::to_string),
    };
    let stored = match serde_json::to_vec(&record) {
        Ok(b) => ctx
            .store
            .put(&ticket_key(&ticket), &b, Some(Duration::from_secs(600)))
            .await
            .is_ok(),
        Err(_) => false,
    };
    if stored {
        format!("{base}?ticket={ticket}")
    } else {
        base
    }
}

/// Who a connect link was issued to (`ctkt:{ticket}`).
#[derive(Serialize, Deserialize)]
pub struct ConnectTicket {
    pub(crate) subject: String,
    /// Shown on the confirmation page, so a person who opened someone else's
    /// link sees whose account it is.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// The organization of the user's sign-in (WorkOS Pipes needs it).
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    pub(crate) app_id: String,
    pub(crate) auth_id: String,
    /// A token exchange the STS refused with `interaction_required`: the
    /// gateway session whose IdP tokens a fresh sign-in replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session_id: Option<String>,
}

/// A connect link proven to be opened by its user (`lproof:{token}`, single
/// use; written by `oauth::proof`, spent by the link).
#[derive(Serialize, Deserialize)]
pub(crate) struct LinkProof {
    pub(crate) ticket: String,
}

pub(crate) fn ticket_key(ticket: &str) -> String {
    keys::connect_ticket(ticket)
}

/// Seals and stores a user's upstream tokens (bound to their store key).
pub(crate) async fn save_tokens(
    ctx: &OAuthContext,
    key: &str,
    tokens: &UserTokens,
) -> Result<(), InjectError> {
    let unavailable = |e: String| InjectError::Unavailable(e);
    let Some(vault) = &ctx.vault else {
        return Err(unavailable("no secrets key".into()));
    };
    let plain = serde_json::to_vec(tokens).map_err(|e| unavailable(e.to_string()))?;
    let sealed = vault
        .seal(key, &plain)
        .map_err(|e| unavailable(e.to_string()))?;
    ctx.store
        .put(key, &sealed, None)
        .await
        .map_err(|e| unavailable(e.to_string()))
}

#[cfg(test)]
mod clock_tests {
    use super::*;
    use crate::util::clock::Clock;
    use std::time::Duration;

    /// A user's upstream token is refreshed `MARGIN` seconds before it
    /// expires; a token without a stated lifetime never goes stale.
    #[test]
    fn tokens_go_stale_a_margin_before_expiry() {
        let clock = Clock::manual(1_700_000_000);
        let t: TokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "expires_in": 3600
        }))
        .unwrap();
        let tokens = UserTokens::from_response(t, Some("r".into()), clock.now_secs());
        assert_eq!(
            tokens.refresh_token.as_deref(),
            Some("r"),
            "kept (RFC 6749 §6)"
        );
        clock.advance(Duration::from_secs(3600 - MARGIN - 1));
        assert!(tokens.fresh(clock.now_secs()));
        clock.advance(Duration::from_secs(1));
        assert!(!tokens.fresh(clock.now_secs()));
        let forever: TokenResponse =
            serde_json::from_value(serde_json::json!({ "access_token": "a" })).unwrap();
        let forever = UserTokens::from_response(forever, None, clock.now_secs());
        clock.advance(Duration::from_secs(10 * 365 * 86_400));
        assert!(forever.fresh(clock.now_secs()));
    }
}
