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
use crate::credentials::token_exchange::SubjectTokens;
use crate::secrets::SecretBox;
use crate::store::Store;

/// A value stored sealed (AES-GCM). `Plain` is only read, from sessions
/// written before a secrets key was required; nothing writes it any more.
#[derive(Serialize, Deserialize, Clone)]
#[serde(tag = "t", content = "v")]
pub enum Sealed {
    Plain(String),
    Sealed(String),
}

/// A session's store key; also the reference its sealed values are bound to.
pub fn key(sid: &str) -> String {
    format!("sess:{sid}")
}

/// The part of a stored session this reader needs.
#[derive(Deserialize)]
struct StoredSession {
    #[serde(default)]
    upstream: Option<Sealed>,
}

struct SessionTokens {
    store: Arc<dyn Store>,
    sbox: Arc<SecretBox>,
}

#[async_trait::async_trait]
impl SubjectTokens for SessionTokens {
    async fn access_token(&self, sid: &str) -> Result<Option<String>, String> {
        use base64::Engine;
        let unreadable = || "unreadable session".to_string();
        let Some(bytes) = self.store.get(&key(sid)).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let s: StoredSession = serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
        let raw = match &s.upstream {
            Some(Sealed::Sealed(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| unreadable())?,
            // Clear-text sessions predate the secrets key: never exchanged.
            Some(Sealed::Plain(_)) | None => return Ok(None),
        };
        let plain = self
            .sbox
            .open(&key(sid), &raw)
            .map_err(|_| "the session's tokens cannot be opened".to_string())?;
        let up: IdpTokens = serde_json::from_slice(&plain).map_err(|_| unreadable())?;
        Ok(Some(up.access_token))
    }
}

/// The reader for gateway token mode; None otherwise (in upstream mode the
/// client's bearer is the IdP's token). `[oauth]` does not start without a
/// secrets key, so gateway mode always has one.
pub(crate) fn reader(
    gateway_mode: bool,
    store: &Arc<dyn Store>,
    sbox: &Option<Arc<SecretBox>>,
) -> Option<Arc<dyn SubjectTokens>> {
    match (gateway_mode, sbox) {
        (true, Some(sbox)) => Some(Arc::new(SessionTokens {
            store: store.clone(),
            sbox: sbox.clone(),
        })),
        _ => None,
    }
}
