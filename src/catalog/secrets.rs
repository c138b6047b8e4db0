//! Connection secrets at rest: `secret:{ref}` holds the sealed JSON of
//! [`ConnectionSecrets`] (see [`crate::store::vault`]), bound to its key
//! (records written before the vault were bound to the bare reference). Without the key,
//! nothing secret can be written or read, and the gateway says so.

use crate::catalog::ConnectionSecrets;
use crate::errors::ApiError;
use crate::store::vault::Vault;
use crate::store::Store;

pub fn key(reference: &str) -> String {
    crate::store::keys::secret(reference)
}

pub async fn put(
    store: &dyn Store,
    vault: Option<&Vault>,
    reference: &str,
    secrets: &ConnectionSecrets,
) -> Result<(), ApiError> {
    let vault = vault.ok_or_else(no_key)?;
    let plain = serde_json::to_vec(secrets).map_err(|_| ApiError::internal())?;
    let sealed = vault
        .seal(&key(reference), &plain)
        .map_err(|_| ApiError::internal())?;
    store
        .put(&key(reference), &sealed, None)
        .await
        .map_err(|e| ApiError::unavailable(format!("store: {e}")))
}

pub async fn get(
    store: &dyn Store,
    vault: Option<&Vault>,
    reference: &str,
) -> Result<ConnectionSecrets, ApiError> {
    let vault = vault.ok_or_else(no_key)?;
    let Some(sealed) = store
        .get(&key(reference))
        .await
        .map_err(|e| ApiError::unavailable(format!("store: {e}")))?
    else {
        return Ok(ConnectionSecrets::default());
    };
    let plain = vault
        .open_v1_as(&key(reference), reference, &sealed)
        .map_err(|e| {
            tracing::error!(error = %e, "stored secret cannot be decrypted");
            ApiError::new(
                500,
                "secret_unreadable",
                "A stored secret cannot be decrypted with the configured key",
            )
        })?;
    serde_json::from_slice(&plain).map_err(|_| ApiError::internal())
}

fn no_key() -> ApiError {
    ApiError::new(
        503,
        "secrets_unavailable",
        "Secrets cannot be stored: the gateway has no encryption key (set secrets.key_env's variable)",
    )
}
