//! What a gateway session (`sess:{sid}`, see [`super::sessions`]) keeps of
//! the identity provider's tokens, and the one reader outside the OAuth
//! server: RFC 8693 token exchange (`credentials::token_exchange`) takes the
//! user's IdP access token from their session as its `subject_token`.
//!
//! Kept apart from `sessions` so the process state can build the reader
//! without a dependency cycle (sessions use the process state).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::idp::IdpTokens;
use crate::credentials::token_exchange::{SubjectTokenError, SubjectTokens};
use crate::store::vault::Vault;
use crate::store::{keys, Store};

/// A value stored sealed (AES-GCM). `Plain` is only read, from sessions
/// written before a secrets key was required; nothing writes it any more.
#[derive(Serialize, Deserialize, Clone)]
#[serde(tag = "t", content = "v")]
pub(crate) enum Sealed {
    Plain(String),
    Sealed(String),
}

/// A session's store key; also the reference its sealed values are bound to.
pub(crate) fn key(sid: &str) -> String {
    keys::session(sid)
}

/// The part of a stored session this reader needs.
#[derive(Deserialize)]
struct StoredSession {
    #[serde(default)]
    upstream: Option<Sealed>,
}

struct SessionTokens {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
}

#[async_trait::async_trait]
impl SubjectTokens for SessionTokens {
    async fn access_token(&self, sid: &str) -> Result<Option<String>, SubjectTokenError> {
        let unreadable = |_| SubjectTokenError::Unreadable;
        let Some(bytes) = self
            .store
            .get(&key(sid))
            .await
            .map_err(|e| SubjectTokenError::Store(e.to_string()))?
        else {
            return Ok(None);
        };
        let s: StoredSession = serde_json::from_slice(&bytes).map_err(unreadable)?;
        let b64 = match &s.upstream {
            Some(Sealed::Sealed(b64)) => b64,
            // Clear-text sessions predate the secrets key: never exchanged.
            Some(Sealed::Plain(_)) | None => return Ok(None),
        };
        // The same policy as `sessions::open`: bound to the session's key.
        let plain = self
            .vault
            .open_text(&key(sid), &key(sid), b64)
            .map_err(|_| SubjectTokenError::Sealed)?;
        let up: IdpTokens = serde_json::from_slice(&plain).map_err(unreadable)?;
        Ok(Some(up.access_token))
    }
}

/// The reader for gateway token mode; None otherwise (in upstream mode the
/// client's bearer is the IdP's token). `[oauth]` does not start without a
/// secrets key, so gateway mode always has one.
pub(crate) fn reader(
    gateway_mode: bool,
    store: &Arc<dyn Store>,
    vault: &Option<Arc<Vault>>,
) -> Option<Arc<dyn SubjectTokens>> {
    match (gateway_mode, vault) {
        (true, Some(vault)) => Some(Arc::new(SessionTokens {
            store: store.clone(),
            vault: vault.clone(),
        })),
        _ => None,
    }
}
