//! OAuth 2.0 Token Exchange (RFC 8693) as an upstream credential: each
//! user's request carries a token the app's security token service (STS)
//! issued in exchange for that user's own identity-provider access token.
//!
//! The subject token (RFC 8693 §2.1 `subject_token`) is the IdP access token
//! of the user's gateway session in gateway token mode (read sealed from
//! the session through [`SubjectTokens`], implemented by the OAuth server),
//! and the bearer the client presented otherwise (upstream token mode, or
//! `[auth]` only: that bearer *is* the IdP's token).
//!
//! Results are cached per (connection, user) until `expires_in` minus a
//! margin; a miss is one flight per (connection, user), exactly as in
//! [`super::per_user`]. The STS URL is the user's: it is called through the
//! egress policy, and a refusal is reported by its RFC 6749 §5.2 / RFC 8693
//! §2.2.2 error code only, never with the bytes the STS sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::HeaderValue;
use moka::future::Cache;

use super::oauth::{user_token_request, OAuthContext, ProviderSettings, TokenCallError};
use super::{mark_sensitive, InjectError};
use crate::auth::Principal;
use crate::catalog::{Connection, ConnectionSecrets};

pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Exchange again this long before the STS's expiry.
const MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the STS states none (`expires_in` is RECOMMENDED).
const DEFAULT_LIFE: Duration = Duration::from_secs(300);

/// The IdP access token held in a gateway session (gateway token mode).
/// Implemented where sessions are owned (`oauth::sessions`), so this module
/// does not reach up into the authorization server.
#[async_trait]
pub(crate) trait SubjectTokens: Send + Sync {
    /// The session's IdP access token; None when the session is gone or
    /// holds none.
    async fn access_token(&self, session_id: &str) -> Result<Option<String>, SubjectTokenError>;
}

/// Why a session's IdP token could not be read (never the token itself).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SubjectTokenError {
    #[error("the store cannot be read: {0}")]
    Store(String),
    #[error("the session record is unreadable")]
    Unreadable,
    #[error("the session's tokens cannot be opened")]
    Sealed,
}

/// Who a credential is resolved for.
#[derive(Clone, Copy, Default)]
pub(crate) struct Subject<'a> {
    pub(crate) principal: Option<&'a Principal>,
    /// The bearer the client presented (upstream token mode's subject token).
    pub(crate) bearer: Option<&'a str>,
}

struct Exchanged {
    header: HeaderValue,
    fresh_until: Instant,
}

pub struct TokenExchange {
    settings: ProviderSettings,
    resource: Option<String>,
    requested_token_type: Option<String>,
    ctx: OAuthContext,
    /// Fresh tokens by (connection, user); `try_get_with` is the single flight.
    local: Cache<String, Arc<Exchanged>>,
}

impl TokenExchange {
    pub(crate) fn new(
        conn: &Connection,
        secrets: &ConnectionSecrets,
        ctx: OAuthContext,
    ) -> Result<Self, super::ConnectionError> {
        let c = &conn.config;
        if c.audience.is_none() && c.resource.is_none() {
            return Err(super::ConnectionError::AudienceOrResource);
        }
        Ok(Self {
            settings: ProviderSettings::from_connection(conn, secrets)?,
            resource: c.resource.clone(),
            requested_token_type: c.requested_token_type.clone(),
            ctx,
            local: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        })
    }

    pub(crate) async fn header(&self, who: Subject<'_>) -> Result<HeaderValue, InjectError> {
        let p = who.principal.ok_or(InjectError::Refused {
            reason: "no_subject_token",
        })?;
        // This connection's own cache, so the user is the whole key: a hit
        // neither hashes nor allocates (every request of the app).
        if let Some(e) = self.local.get(p.subject.as_str()).await {
            if Instant::now() < e.fresh_until {
                crate::telemetry::note("cache.hit", true);
                return Ok(e.header.clone());
            }
            self.local.invalidate(p.subject.as_str()).await;
        }
        crate::telemetry::note("cache.hit", false);
        match self
            .local
            .try_get_with(p.subject.clone(), self.exchange(p, who.bearer))
            .await
        {
            Ok(got) => Ok(got.header.clone()),
            // OIDC Core §3.1.2.6: the user must act at the identity
            // provider (consent, MFA). In gateway token mode a fresh sign-in
            // replaces the session's IdP token, the subject of the next
            // exchange; the link for it is delivered like a connect link.
            Err(e) => match (&*e, &self.ctx.sessions, &p.session_id) {
                (InjectError::Refused { reason }, Some(_), Some(_))
                    if *reason == "interaction_required" =>
                {
                    Err(InjectError::NotConnected {
                        connect_url: super::per_user::issue_sign_in_again_url(
                            &self.ctx,
                            &self.settings.app_id,
                            &self.settings.connection_id,
                            p,
                        )
                        .await,
                    })
                }
                _ => Err((*e).clone()),
            },
        }
    }

    /// The subject token for this request (see the module docs).
    async fn subject_token(
        &self,
        p: &Principal,
        bearer: Option<&str>,
    ) -> Result<String, InjectError> {
        let missing = InjectError::Refused {
            reason: "no_subject_token",
        };
        match &self.ctx.sessions {
            Some(sessions) => {
                let sid = p.session_id.as_deref().ok_or(missing.clone())?;
                sessions
                    .access_token(sid)
                    .await
                    .map_err(|e| InjectError::Unavailable(e.to_string()))?
                    .ok_or(missing)
            }
            None => bearer.map(str::to_string).ok_or(missing),
        }
    }

    async fn exchange(
        &self,
        p: &Principal,
        bearer: Option<&str>,
    ) -> Result<Arc<Exchanged>, InjectError> {
        let subject = self.subject_token(p, bearer).await?;
        let t = self.request(subject).await.map_err(|e| match e {
            TokenCallError::Refused { status, error } => InjectError::Refused {
                reason: error.unwrap_or(if status == 401 { "invalid_client" } else { "refused" }),
            },
            TokenCallError::Network(n) => {
                tracing::warn!(connection = %self.settings.connection_id, error = %n, "token exchange failed");
                InjectError::Refused {
                    reason: "unavailable",
                }
            }
        })?;
        let header = HeaderValue::from_str(&format!("Bearer {}", t.access_token))
            .map(mark_sensitive)
            .map_err(|_| {
                InjectError::Unavailable("the token service issued an unusable token".into())
            })?;
        let life = t.expires_in.map_or(DEFAULT_LIFE, Duration::from_secs);
        Ok(Arc::new(Exchanged {
            header,
            fresh_until: Instant::now() + life.saturating_sub(MARGIN).max(Duration::from_secs(1)),
        }))
    }

    /// One RFC 8693 §2.1 request; also used to check a new connection (with
    /// a made-up subject token).
    pub(crate) async fn request(
        &self,
        subject_token: String,
    ) -> Result<super::oauth::TokenResponse, TokenCallError> {
        let s = &self.settings;
        let mut params = vec![
            ("grant_type", GRANT_TYPE.to_string()),
            ("subject_token", subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE.to_string()),
        ];
        if let Some(a) = &s.audience {
            params.push(("audience", a.clone()));
        }
        if let Some(r) = &self.resource {
            params.push(("resource", r.clone()));
        }
        if let Some(scope) = s.scope() {
            params.push(("scope", scope));
        }
        params.push((
            "requested_token_type",
            self.requested_token_type
                .clone()
                .unwrap_or_else(|| ACCESS_TOKEN_TYPE.to_string()),
        ));
        user_token_request(&self.ctx.egress, s, &s.token_endpoint, params).await
    }
}
