//! Connection secrets at rest: `secret:{ref}` holds the sealed JSON of
//! [`ConnectionSecrets`] (see [`crate::store::vault`]), bound to its key
//! (records written before the vault were bound to the bare reference). Without the key,
//! nothing secret can be written or read, and the gateway says so.

use crate::catalog::ConnectionSecrets;
use crate::store::vault::Vault;
use crate::store::{Store, StoreError};

/// Why connection secrets could not be stored or read. The management API
/// turns these into its envelope (`api/mod.rs`, the one place).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretsError {
    #[error("Secrets cannot be stored: the gateway has no encryption key (set secrets.key_env's variable)")]
    NoKey,
    #[error("A stored secret cannot be decrypted with the configured key")]
    Unreadable,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("connection secrets cannot be encoded or decoded")]
    Encoding,
}

pub(crate) fn key(reference: &str) -> String {
    crate::store::keys::secret(reference)
}

pub(crate) async fn put(
    store: &dyn Store,
    vault: Option<&Vault>,
    reference: &str,
    secrets: &ConnectionSecrets,
) -> Result<(), SecretsError> {
    let vault = vault.ok_or(SecretsError::NoKey)?;
    let plain = serde_json::to_vec(secrets).map_err(|_| SecretsError::Encoding)?;
    let sealed = vault
        .seal(&key(reference), &plain)
        .map_err(|_| SecretsError::Encoding)?;
    Ok(store.put(&key(reference), &sealed, None).await?)
}

pub(crate) async fn get(
    store: &dyn Store,
    vault: Option<&Vault>,
    reference: &str,
) -> Result<ConnectionSecrets, SecretsError> {
    let vault = vault.ok_or(SecretsError::NoKey)?;
    let Some(sealed) = store.get(&key(reference)).await? else {
        return Ok(ConnectionSecrets::default());
    };
    let plain = vault
        .open_v1_as(&key(reference), reference, &sealed)
        .map_err(|e| {
            tracing::error!(error = %e, "stored secret cannot be decrypted");
            SecretsError::Unreadable
        })?;
    serde_json::from_slice(&plain).map_err(|_| SecretsError::Encoding)
}
