//! The state store: everything the gateway must remember between requests.
//!
//! One [`Store`] trait with two backends: [`embedded`] (redb on local disk, the
//! default, for a single instance) and [`redis`] (shared by many instances).
//! Values are opaque bytes; callers serialise with serde (see [`StoreExt`]).
//! Keys are built by [`keys`] (every prefix in one place); the Redis
//! backend adds its configured prefix.
//!
//! The operations are the ones the OAuth flows need to be safe under
//! concurrency: `take` makes one-time codes single-use (RFC 6749 §4.1.2),
//! `compare_and_swap` makes refresh-token rotation race-free (RFC 9700 §4.14).

use std::time::Duration;

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

pub mod embedded;
pub mod keys;
pub(crate) mod lock;
pub mod open;
pub mod redis;
pub(crate) mod vault;

/// Why a store operation failed. Callers map `Unavailable` to 503 and never
/// treat it as "not found".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store operation timed out")]
    Timeout,
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("store backend error: {0}")]
    Backend(String),
}

/// The storage abstraction shared by both backends.
///
/// `ttl: None` means the value never expires. Expired values are never
/// returned, whatever the backend's clean-up schedule.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Backend name for logs and metrics: `embedded` or `redis`.
    fn backend(&self) -> &'static str;

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;

    /// Writes only if the key is absent (or expired). Returns whether it wrote.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Removes a key. Returns whether a live value was removed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Atomically reads and removes a key: of many concurrent callers, exactly
    /// one gets the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Atomically replaces the value iff the current live value equals
    /// `expected` (`None` = absent). `new: None` deletes. Returns whether it
    /// swapped.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Atomically increments a counter, creating it with `ttl` when absent
    /// (the window of a fixed-window rate limit). Returns the new value.
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// Live entries whose key starts with `prefix`, at most `limit`, in no
    /// particular order.
    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Sends a message to every subscriber of `channel` on every instance
    /// sharing this store.
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError>;

    /// Receives every message published on `channel` from now on. The
    /// subscription survives backend reconnects.
    async fn subscribe(&self, channel: &str) -> Result<mpsc::Receiver<Vec<u8>>, StoreError>;

    /// Cheap liveness check for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Appends to a capped stream that keeps at least the newest `max_len`
    /// entries (Redis trims approximately, `XADD MAXLEN ~`: a few more may
    /// stay). Returns the entry's id, a [`is_stream_id`] string.
    async fn stream_append(
        &self,
        key: &str,
        entry: &[u8],
        max_len: usize,
    ) -> Result<String, StoreError>;

    /// Up to `limit` entries, newest first, strictly older than `before`
    /// (an id this stream returned; `None`: from the newest).
    async fn stream_page(
        &self,
        key: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// A stream entry id as both backends write it: `{digits}-{digits}` (the
/// Redis stream id form). Callers check client-supplied cursors with it
/// before handing them to a backend.
pub fn is_stream_id(s: &str) -> bool {
    let part = |p: &str| (1..=20).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    s.split_once('-')
        .is_some_and(|(ms, seq)| part(ms) && part(seq))
}

/// Typed helpers over the byte-oriented [`Store`].
#[async_trait]
pub(crate) trait StoreExt: Store {
    async fn get_json<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get(key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{key}: {e}"))),
            None => Ok(None),
        }
    }

    async fn put_json<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.put(key, &bytes, ttl).await
    }

    async fn take_json<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.take(key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{key}: {e}"))),
            None => Ok(None),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
