//! Refresh sessions (gateway token mode): one per authorization, holding the
//! user, the grant and the upstream IdP tokens, with refresh-token rotation
//! and reuse detection (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
//!
//! Refresh tokens are `{sid}.{secret}`; only the SHA-256 of the current and
//! previous one is stored. Presenting the previous token within the grace
//! window returns the same new tokens (a client retrying a refresh whose
//! answer it lost); presenting it later, or any older one, is reuse and
//! revokes the session and every access token it issued, everywhere.
//! Refreshes of one session are serialised by a store lock, so the upstream
//! IdP is refreshed once however many requests arrive together.

use crate::store::keys;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::idp::{IdpError, IdpTokens, User};
use super::{sha256_hex, OAuthCtx, OAuthServer};
use crate::store::StoreError;

/// Why a session could not be created, rotated or ended. The token
/// endpoint turns these into OAuth errors (RFC 6749 §5.2) in one place,
/// `From<SessionError> for OAuthError` in `oauth/mod.rs`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// Unknown, expired, revoked, reused or another client's token.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    /// The identity provider refused the upstream refresh token.
    #[error("the identity provider ended the session ({0})")]
    EndedUpstream(String),
    #[error("the session is busy; retry")]
    Busy,
    #[error("the session changed during the refresh; retry")]
    Changed,
    /// The identity provider could not be reached or failed.
    #[error("{0}")]
    Idp(IdpError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A fault of the gateway's own (encoding, sealing, signing, randomness).
    #[error("{0}")]
    Internal(String),
}

fn random(n: usize) -> Result<String, SessionError> {
    crate::util::random::token(n).map_err(|e| SessionError::Internal(e.to_string()))
}

/// What a token endpoint returns (RFC 6749 §5.1).
#[derive(Serialize, Deserialize, Clone, Debug, utoipa::ToSchema)]
#[schema(as = TokenResponse)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_in: u64,
    pub(crate) token_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct Session {
    pub(crate) sid: String,
    pub(crate) client_id: String,
    pub(crate) user: User,
    pub(crate) scope: String,
    pub(crate) resource: Option<String>,
    /// Upstream IdP tokens, sealed when a secrets key is configured.
    upstream: Option<Sealed>,
    upstream_expires_at: u64,
    current: String,
    previous: Option<String>,
    /// Hashes of the refresh tokens before `previous`, newest last (at most
    /// [`MAX_RETIRED`]): presenting any of them is reuse too.
    #[serde(default)]
    retired: Vec<String>,
    rotated_at: u64,
    /// The answer to the last rotation, for retries within the grace window.
    grace: Option<Sealed>,
    /// SHA-256 (hex) and expiry of access tokens issued in this session.
    pub(crate) access: Vec<(String, u64)>,
    expires_at: u64,
}

pub(crate) use super::session_tokens::{key, Sealed};

pub(super) fn seal(
    cx: &OAuthCtx<'_>,
    reference: &str,
    value: &impl Serialize,
) -> Result<Sealed, SessionError> {
    let text = serde_json::to_string(value).map_err(|_| SessionError::Internal("encode".into()))?;
    // `[oauth]` does not start without a secrets key; should one be missing
    // anyway, fail rather than store the IdP's tokens in clear.
    let b = cx
        .vault
        .as_ref()
        .ok_or_else(|| SessionError::Internal("no secrets key".into()))?;
    Ok(Sealed::Sealed(
        b.seal_text(reference, text.as_bytes())
            .map_err(|_| SessionError::Internal("seal".into()))?,
    ))
}

pub(super) fn open<T: serde::de::DeserializeOwned>(
    cx: &OAuthCtx<'_>,
    reference: &str,
    s: &Sealed,
) -> Option<T> {
    let text = match s {
        Sealed::Plain(t) => t.as_bytes().to_vec(),
        Sealed::Sealed(b64) => cx
            .vault
            .as_ref()?
            .open_text(reference, reference, b64)
            .ok()?,
    };
    serde_json::from_slice(&text).ok()
}

/// How many rotated-out refresh tokens a session remembers for reuse
/// detection (about four days of hourly refreshes).
const MAX_RETIRED: usize = 100;

fn store_err(e: StoreError) -> SessionError {
    SessionError::Store(e)
}

/// Starts a session for a redeemed code and issues its first tokens.
pub(crate) async fn create(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    client_id: &str,
    user: User,
    scope: String,
    resource: Option<String>,
    upstream: Option<IdpTokens>,
) -> Result<(Session, Issued), SessionError> {
    let sid = random(16)?;
    let refresh = format!("{sid}.{}", random(32)?);
    let now = oauth.clock.now_secs();
    let mut s = Session {
        upstream_expires_at: upstream
            .as_ref()
            .and_then(|u| u.expires_in)
            .map_or(0, |e| now + e),
        upstream: upstream
            .as_ref()
            .map(|u| seal(cx, &key(&sid), u))
            .transpose()?,
        sid: sid.clone(),
        client_id: client_id.to_string(),
        user,
        scope,
        resource,
        current: sha256_hex(&refresh),
        previous: None,
        retired: Vec::new(),
        rotated_at: now,
        grace: None,
        access: Vec::new(),
        expires_at: now + oauth.cfg.refresh_token_ttl.as_secs(),
    };
    let issued = issue(cx, oauth, &mut s, refresh)?;
    let bytes = serde_json::to_vec(&s).map_err(|_| SessionError::Internal("encode".into()))?;
    cx.store
        .put(&key(&sid), &bytes, Some(oauth.cfg.refresh_token_ttl))
        .await
        .map_err(store_err)?;
    Ok((s, issued))
}

/// Signs an access token for the session and records its hash.
fn issue(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    s: &mut Session,
    refresh: String,
) -> Result<Issued, SessionError> {
    let keys = oauth
        .keys
        .as_ref()
        .ok_or_else(|| SessionError::Internal("no signing keys".into()))?;
    let now = oauth.clock.now_secs();
    let ttl = oauth.cfg.access_token_ttl.as_secs();
    let claims = json!({
        "iss": cx.config.public_url, "sub": s.user.sub,
        "aud": s.resource.clone().unwrap_or_else(|| cx.config.public_url.clone()),
        "scope": s.scope, "client_id": s.client_id, "sid": s.sid, "jti": random(12)?,
        "iat": now, "nbf": now, "exp": now + ttl,
        "email": s.user.email, "name": s.user.name, "picture": s.user.picture,
        "email_verified": s.user.email_verified, "org_id": s.user.org_id,
    });
    let mut claims = claims;
    if !s.user.groups.is_empty() {
        claims["groups"] = json!(s.user.groups);
    }
    let access = keys
        .sign(&claims)
        .map_err(|e| SessionError::Internal(e.to_string()))?;
    s.access.retain(|(_, exp)| *exp > now);
    s.access.push((sha256_hex(&access), now + ttl));
    if s.access.len() > 20 {
        s.access.remove(0);
    }
    Ok(Issued {
        access_token: access,
        refresh_token: Some(refresh),
        expires_in: ttl,
        token_type: "Bearer".into(),
        scope: Some(s.scope.clone()),
    })
}

/// Rotates a refresh token (see the module docs for the rules).
pub(crate) async fn refresh(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    client_id: &str,
    presented: &str,
) -> Result<Issued, SessionError> {
    let (sid, _) = presented
        .split_once('.')
        .ok_or(SessionError::InvalidGrant)?;
    locked(
        cx,
        &keys::session_lock(sid),
        rotate(cx, oauth, client_id, sid, presented),
    )
    .await
}

/// Replaces the IdP tokens of `subject`'s session `sid` after they signed
/// in again ([`super::proof`]): the next token exchange uses the new access
/// token as its subject token (RFC 8693 §2.1).
pub(crate) async fn replace_upstream(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    sid: &str,
    subject: &str,
    fresh: &IdpTokens,
) -> Result<(), SessionError> {
    let work = async {
        let Some(before) = cx.store.get(&key(sid)).await.map_err(store_err)? else {
            return Err(SessionError::InvalidGrant);
        };
        let mut s: Session =
            serde_json::from_slice(&before).map_err(|_| SessionError::InvalidGrant)?;
        if s.user.sub != subject {
            return Err(SessionError::InvalidGrant);
        }
        let now = oauth.clock.now_secs();
        s.upstream_expires_at = fresh.expires_in.map_or(0, |e| now + e);
        s.upstream = Some(seal(cx, &key(sid), fresh)?);
        let after = serde_json::to_vec(&s).map_err(|_| SessionError::Internal("encode".into()))?;
        let ttl = Duration::from_secs(s.expires_at.saturating_sub(now).max(1));
        let swapped = cx
            .store
            .compare_and_swap(&key(sid), Some(&before), Some(&after), Some(ttl))
            .await
            .map_err(store_err)?;
        if swapped {
            Ok(())
        } else {
            Err(SessionError::Changed)
        }
    };
    locked(cx, &keys::session_lock(sid), work).await
}

/// Runs `work` holding a store lease (every instance sees it), waiting up
/// to five seconds for it. The lease is renewed while the work runs (an IdP
/// call may outlast it) and released only by its holder; it expires by
/// itself should an instance die holding it.
pub(crate) async fn locked<T, E: From<SessionError>>(
    cx: &OAuthCtx<'_>,
    lock: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use crate::store::lock::{Lease, LeaseSettings, LockError};
    let lease = Lease::acquire(cx.store.clone(), lock, LeaseSettings::default())
        .await
        .map_err(|e| match e {
            LockError::Busy => SessionError::Busy,
            LockError::Store(e) => store_err(e),
            LockError::Random => SessionError::Internal("randomness unavailable".into()),
        })?;
    lease.hold(work).await
}

async fn rotate(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    client_id: &str,
    sid: &str,
    presented: &str,
) -> Result<Issued, SessionError> {
    let invalid = || SessionError::InvalidGrant;
    let Some(before) = cx.store.get(&key(sid)).await.map_err(store_err)? else {
        return Err(invalid());
    };
    let mut s: Session = serde_json::from_slice(&before).map_err(|_| invalid())?;
    let now = oauth.clock.now_secs();
    let hash = sha256_hex(presented);
    if s.client_id != client_id {
        return Err(invalid());
    }
    if hash != s.current {
        if in_grace(&s, &hash, now, oauth.cfg.refresh_grace) {
            if let Some(answer) = s
                .grace
                .as_ref()
                .and_then(|g| open::<Issued>(cx, &key(sid), g))
            {
                return Ok(answer);
            }
        }
        if s.previous.as_deref() == Some(hash.as_str()) || s.retired.contains(&hash) {
            tracing::warn!(client_id, "refresh token reuse: revoking the session");
            revoke(cx, oauth, sid).await?;
        }
        return Err(invalid());
    }
    // The upstream grant is refreshed (once, under the lock) when it expired.
    if let Some(up) = s
        .upstream
        .as_ref()
        .and_then(|u| open::<IdpTokens>(cx, &key(sid), u))
    {
        if s.upstream_expires_at != 0 && s.upstream_expires_at <= now {
            if let Some(rt) = &up.refresh_token {
                match oauth.idp.refresh(rt, None).await {
                    Ok(mut fresh) => {
                        fresh.refresh_token = fresh.refresh_token.or(up.refresh_token.clone());
                        s.upstream_expires_at = fresh.expires_in.map_or(0, |e| now + e);
                        s.upstream = Some(seal(cx, &key(sid), &fresh)?);
                    }
                    Err(IdpError::Refused(e)) => {
                        revoke(cx, oauth, sid).await?;
                        return Err(SessionError::EndedUpstream(e));
                    }
                    Err(e) => return Err(SessionError::Idp(e)),
                }
            }
        }
    }
    let refresh = format!("{sid}.{}", random(32)?);
    let newest = std::mem::replace(&mut s.current, sha256_hex(&refresh));
    if let Some(older) = s.previous.replace(newest) {
        s.retired.push(older);
        if s.retired.len() > MAX_RETIRED {
            s.retired.remove(0);
        }
    }
    s.rotated_at = now;
    let issued = issue(cx, oauth, &mut s, refresh)?;
    s.grace = Some(seal(cx, &key(sid), &issued)?);
    let after = serde_json::to_vec(&s).map_err(|_| SessionError::Internal("encode".into()))?;
    let ttl = Duration::from_secs(s.expires_at.saturating_sub(now).max(1));
    if !cx
        .store
        .compare_and_swap(&key(sid), Some(&before), Some(&after), Some(ttl))
        .await
        .map_err(store_err)?
    {
        return Err(SessionError::Changed);
    }
    Ok(issued)
}

/// Whether `hash` is the refresh token rotated out last, presented within
/// the grace window (whole seconds, so a 1 s window lasts up to 2 s). A
/// zero window is none: even a retry in the same second is reuse.
fn in_grace(s: &Session, hash: &str, now: u64, grace: Duration) -> bool {
    !grace.is_zero() && s.previous.as_deref() == Some(hash) && now <= s.rotated_at + grace.as_secs()
}

/// Ends a session: its refresh tokens stop working and every access token it
/// issued is revoked on every instance; the IdP is told (best effort).
pub(crate) async fn revoke(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    sid: &str,
) -> Result<(), SessionError> {
    let Some(bytes) = cx.store.take(&key(sid)).await.map_err(store_err)? else {
        return Ok(());
    };
    let Ok(s) = serde_json::from_slice::<Session>(&bytes) else {
        return Ok(());
    };
    revoke_access(cx, &s.access).await?;
    if let Some(up) = s
        .upstream
        .as_ref()
        .and_then(|u| open::<IdpTokens>(cx, &key(sid), u))
    {
        if let Some(rt) = up.refresh_token {
            oauth.idp.revoke(&rt).await;
        }
    }
    Ok(())
}

pub(crate) async fn revoke_access(
    cx: &OAuthCtx<'_>,
    hashes: &[(String, u64)],
) -> Result<(), SessionError> {
    for (h, exp) in hashes {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(h, &mut hash).is_ok() {
            cx.auth.revoke_hash(hash, *exp).await.map_err(store_err)?;
        }
    }
    Ok(())
}

/// The session a refresh token belongs to, if the token is its current or previous one.
pub(crate) async fn find(cx: &OAuthCtx<'_>, presented: &str) -> Option<Session> {
    let (sid, _) = presented.split_once('.')?;
    let s: Session = serde_json::from_slice(&cx.store.get(&key(sid)).await.ok()??).ok()?;
    let h = sha256_hex(presented);
    (s.current == h || s.previous.as_deref() == Some(h.as_str())).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::clock::Clock;

    fn rotated(at: u64) -> Session {
        Session {
            sid: "s".into(),
            client_id: "c".into(),
            user: serde_json::from_value(json!({"sub": "u"})).unwrap(),
            scope: String::new(),
            resource: None,
            upstream: None,
            upstream_expires_at: 0,
            current: "new".into(),
            previous: Some("old".into()),
            retired: vec!["older".into()],
            rotated_at: at,
            grace: None,
            access: Vec::new(),
            expires_at: at + 3600,
        }
    }

    /// RFC 9700 §4.14.2: a retry with the token just rotated out gets the
    /// same answer within the grace window, and is reuse after it; older
    /// tokens are never in grace. The clock is advanced, not waited for.
    #[test]
    fn the_grace_window_follows_the_clock() {
        let clock = Clock::manual(1_700_000_000);
        let s = rotated(clock.now_secs());
        let grace = Duration::from_secs(1);
        assert!(in_grace(&s, "old", clock.now_secs(), grace));
        assert!(!in_grace(&s, "older", clock.now_secs(), grace));
        clock.advance(Duration::from_millis(1_900));
        assert!(
            in_grace(&s, "old", clock.now_secs(), grace),
            "whole seconds"
        );
        clock.advance(Duration::from_millis(200));
        assert!(
            !in_grace(&s, "old", clock.now_secs(), grace),
            "past the window"
        );
        assert!(!in_grace(&s, "old", clock.now_secs(), Duration::ZERO));
        assert!(
            !in_grace(&s, "old", s.rotated_at, Duration::ZERO),
            "a zero window is none, even within the same second"
        );
    }
}
