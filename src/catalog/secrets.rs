//! Connection secrets at rest: `secret:{ref}` holds the AES-256-GCM sealed
//! JSON of [`ConnectionSecrets`], bound to its reference. Without the key,
//! nothing secret can be written or read, and the gateway says so.

use crate::catalog::ConnectionSecrets;
use crate::errors::ApiError;
use crate::secrets::SecretBox;
use crate::store::Store;

pub fn key(reference: &str) -> String {
    crate::store::keys::secret(reference)
}

pub async fn put(
    store: &dyn Store,
    sbox: Option<&SecretBox>,
    reference: &str,
    secrets: &ConnectionSecrets,
) -> Result<(), ApiError> {
    let sbox = sbox.ok_or_else(no_key)?;
    let plain = serde_json::to_vec(secrets).map_err(|_| ApiError::internal())?;
    let sealed = sbox
        .seal(reference, &plain)
        .map_err(|_| ApiError::internal())?;
    store
        .put(&key(reference), &sealed, None)
        .await
        .map_err(|e| ApiError::unavailable(format!("store: {e}")))
}

pub async fn get(
    store: &dyn Store,
    sbox: Option<&SecretBox>,
    reference: &str,
) -> Result<ConnectionSecrets, ApiError> {
    let sbox = sbox.ok_or_else(no_key)?;
    let Some(sealed) = store
        .get(&key(reference))
        .await
        .map_err(|e| ApiError::unavailable(format!("store: {e}")))?
    else {
        return Ok(ConnectionSecrets::default());
    };
    let plain = sbox.open(reference, &sealed).map_err(|e| {
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
