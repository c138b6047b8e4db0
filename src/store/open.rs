//! Builds the configured [`Store`] backend behind an `Arc<dyn Store>`.
//!
//! Kept apart from `mod.rs` so the config-driven dispatch can live next to
//! the configuration types without the backends depending on them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::embedded::EmbeddedStore;
use super::redis::RedisStore;
use super::{Store, StoreError};

/// How often the embedded store deletes expired entries from disk. Reads
/// never see expired entries regardless; this only bounds file growth.
const EMBEDDED_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Opens (creating if needed) the embedded store at `path` with the default
/// page cache and starts its sweeper. Must be called inside a tokio runtime.
pub async fn open_embedded(path: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_embedded_with_cache(path, super::embedded::DEFAULT_CACHE_BYTES).await
}

/// [`open_embedded`] with redb's page cache bounded to `cache_bytes`
/// (`[storage] cache_size_mib`).
pub(crate) async fn open_embedded_with_cache(
    path: &Path,
    cache_bytes: usize,
) -> Result<Arc<dyn Store>, StoreError> {
    let path = path.to_owned();
    // Opening may replay or repair the file: blocking work, off the runtime.
    let store =
        tokio::task::spawn_blocking(move || EmbeddedStore::open_with_cache(&path, cache_bytes))
            .await
            .map_err(|e| StoreError::Backend(format!("opening embedded store: {e}")))??;
    let store = Arc::new(store);
    store.spawn_sweeper(EMBEDDED_SWEEP_EVERY);
    Ok(store)
}

/// Prepares the Redis store. Succeeds while Redis is down (only an invalid
/// URL fails); readiness is reported by [`Store::ping`].
pub async fn open_redis(
    url: &str,
    prefix: &str,
    timeout: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(RedisStore::connect(url, prefix, timeout).await?))
}
