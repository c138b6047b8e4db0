//! The embedded state store: redb on local disk, for a single gateway instance.
//!
//! Owns the on-disk format (one table `&str -> &[u8]`, each value prefixed
//! with an 8-byte big-endian expiry in unix milliseconds, 0 = never), TTL
//! enforcement (expired entries are invisible everywhere, purged lazily on read
//! and by [`EmbeddedStore::spawn_sweeper`]) and in-process pub/sub.
//!
//! redb is blocking disk I/O, so every call runs on tokio's blocking pool: the
//! proxy's request path must never stall a runtime worker on an fsync.
//! Read-modify-write operations (`take`, `compare_and_swap`, `incr`, …) each
//! run inside one redb write transaction; redb allows a single writer at a
//! time, which is what makes them atomic. Commits use redb's default
//! `Durability::Immediate`, so acknowledged writes survive a crash or restart.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::{broadcast, mpsc};

use super::{Store, StoreError};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// Bytes of expiry header in front of every stored value.
const HEADER: usize = 8;

/// redb's page cache when the configuration says nothing
/// (`[storage] cache_size_mib`). redb's own default is 1 GiB, which the
/// process fills as the file grows (every new token verdict and session is
/// written and its pages stay cached): the soak showed RSS climbing by
/// hundreds of MiB per hour. The working set is small (hot sessions and
/// token verdicts, which L1 caches in front anyway); the OS page cache still
/// holds the rest of the file.
pub(crate) const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Per-channel broadcast buffer; a subscriber that falls this far behind
/// loses the oldest messages rather than slowing publishers down.
const CHANNEL_CAPACITY: usize = 256;

type KvTable<'t> = Table<'t, &'static str, &'static [u8]>;

/// redb-backed [`Store`]. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    db: Arc<Database>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
    /// Capped streams (the audit log), kept in process: bounded by their
    /// `max_len`, lost on restart like the process's other in-memory state.
    streams: Mutex<Streams>,
}

#[derive(Default)]
struct Streams {
    next: u64,
    by_key: HashMap<String, std::collections::VecDeque<(u64, Vec<u8>)>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path` with the default page
    /// cache ([`DEFAULT_CACHE_BYTES`]). Blocking, like [`Self::open_with_cache`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the database file at `path`, creating parent
    /// directories, with redb's page cache bounded to `cache_bytes`.
    /// Blocking: call it at startup or from `spawn_blocking`.
    pub(crate) fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("creating {}: {e}", parent.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", path.display())))?;
        // Create the table up front so readers never meet "table does not exist".
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(TABLE).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(Self {
            db: Arc::new(db),
            channels: Mutex::new(HashMap::new()),
            streams: Mutex::new(Streams::default()),
        })
    }

    /// Periodically deletes expired entries so the file does not grow with
    /// keys nobody reads again. The task holds only a weak reference and ends
    /// once the store is dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { return };
                match store.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "embedded store swept expired entries"),
                    Err(e) => tracing::warn!(error = %e, "embedded store sweep failed"),
                }
            }
        })
    }

    /// Deletes every expired entry; returns how many were removed.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.write(|table, now| {
            let mut removed = 0usize;
            table
                .retain(|_, raw| {
                    let live = !is_expired(raw, now);
                    if !live {
                        removed += 1;
                    }
                    live
                })
                .map_err(backend)?;
            Ok((removed, removed > 0))
        })
        .await
    }

    /// Runs `f` on the blocking pool with a handle to the database.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("embedded store task failed: {e}")))?
    }

    /// Runs `f` inside one write transaction. `f` returns its result and
    /// whether it changed anything; unchanged transactions are aborted to
    /// spare an fsync.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&mut KvTable<'t>, u64) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let (out, dirty) = {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                f(&mut table, now_ms())?
            };
            if dirty {
                txn.commit().map_err(backend)?;
            } else {
                txn.abort().map_err(backend)?;
            }
            Ok(out)
        })
        .await
    }

    fn channel(&self, name: &str) -> broadcast::Sender<Vec<u8>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(name.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn stream_append(
        &self,
        key: &str,
        entry: &[u8],
        max_len: usize,
    ) -> Result<String, StoreError> {
        let mut st = self
            .streams
            .lock()
            .map_err(|_| StoreError::Backend("stream lock poisoned".into()))?;
        st.next += 1;
        let id = st.next;
        let list = st.by_key.entry(key.to_owned()).or_default();
        list.push_back((id, entry.to_vec()));
        while list.len() > max_len.max(1) {
            list.pop_front();
        }
        Ok(format!("{id}-0"))
    }

    async fn stream_page(
        &self,
        key: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let before = match before {
            None => u64::MAX,
            Some(c) => c
                .split_once('-')
                .and_then(|(n, _)| n.parse().ok())
                .ok_or_else(|| StoreError::Backend("not a stream id".into()))?,
        };
        let st = self
            .streams
            .lock()
            .map_err(|_| StoreError::Backend("stream lock poisoned".into()))?;
        Ok(st
            .by_key
            .get(key)
            .into_iter()
            .flat_map(|l| l.iter().rev())
            .filter(|(id, _)| *id < before)
            .take(limit)
            .map(|(id, e)| (format!("{id}-0"), e.clone()))
            .collect())
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let now = now_ms();
            let found = {
                let txn = db.begin_read().map_err(backend)?;
                let table = txn.open_table(TABLE).map_err(backend)?;
                let raw = table.get(key.as_str()).map_err(backend)?;
                raw.map(|g| g.value().to_vec())
            };
            let Some(raw) = found else { return Ok(None) };
            if !is_expired(&raw, now) {
                return Ok(Some(payload(&raw)?.to_vec()));
            }
            // Lazy purge; re-checked under the write lock because a writer
            // may have replaced the value since we read it.
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                if live(&table, &key, now_ms())?.is_none() {
                    table.remove(key.as_str()).map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)?;
            Ok(None)
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write(move |table, now| {
            set(table, &key, expiry(now, ttl), &value)?;
            Ok(((), true))
        })
        .await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write(move |table, now| {
            if live(table, &key, now)?.is_some() {
                return Ok((false, false));
            }
            set(table, &key, expiry(now, ttl), &value)?;
            Ok((true, true))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(move |table, now| {
            let removed = table.remove(key.as_str()).map_err(backend)?;
            let was_live = removed
                .as_ref()
                .is_some_and(|g| !is_expired(g.value(), now));
            let dirty = removed.is_some();
            Ok((was_live, dirty))
        })
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.write(move |table, now| {
            let Some(guard) = table.remove(key.as_str()).map_err(backend)? else {
                return Ok((None, false));
            };
            let raw = guard.value();
            let value = if is_expired(raw, now) {
                None
            } else {
                Some(payload(raw)?.to_vec())
            };
            Ok((value, true))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let new = new.map(<[u8]>::to_vec);
        self.write(move |table, now| {
            if live(table, &key, now)? != expected {
                return Ok((false, false));
            }
            match new {
                Some(value) => set(table, &key, expiry(now, ttl), &value)?,
                None => drop(table.remove(key.as_str()).map_err(backend)?),
            }
            Ok((true, true))
        })
        .await
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.write(move |table, now| {
            // Stored as decimal text, like Redis INCR, so `get` on a counter
            // yields the same bytes with either backend.
            let current = {
                let guard = table.get(key.as_str()).map_err(backend)?;
                match guard {
                    Some(g) if !is_expired(g.value(), now) => {
                        let raw = g.value();
                        Some((header(raw)?, parse_counter(&key, payload(raw)?)?))
                    }
                    _ => None,
                }
            };
            let (exp, next) = match current {
                Some((exp, n)) => (exp, n.saturating_add(1)),
                None => (expiry(now, Some(ttl)), 1),
            };
            set(table, &key, exp, next.to_string().as_bytes())?;
            Ok((next, true))
        })
        .await
    }

    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking(move |db| {
            let now = now_ms();
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(TABLE).map_err(backend)?;
            let mut out = Vec::new();
            // Keys are ordered, so the prefix's entries are one contiguous run.
            for entry in table.range(prefix.as_str()..).map_err(backend)? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = entry.map_err(backend)?;
                let key = k.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                if !is_expired(v.value(), now) {
                    out.push((key.to_owned(), payload(v.value())?.to_vec()));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(channel) {
            // A send error only means nobody listens any more: forget the channel.
            if sender.send(message.to_vec()).is_err() {
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<mpsc::Receiver<Vec<u8>>, StoreError> {
        let mut source = self.channel(channel).subscribe();
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let name = channel.to_owned();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    msg = source.recv() => match msg {
                        Ok(m) => {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(channel = %name, skipped = n, "slow subscriber lost messages");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        Ok(rx)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(backend)?;
            txn.open_table(TABLE).map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// The live (unexpired) payload under `key`, read inside the caller's transaction.
fn live<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    key: &str,
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    match table.get(key).map_err(backend)? {
        Some(g) if !is_expired(g.value(), now) => Ok(Some(payload(g.value())?.to_vec())),
        _ => Ok(None),
    }
}

fn set(
    table: &mut KvTable<'_>,
    key: &str,
    expires_at: u64,
    value: &[u8],
) -> Result<(), StoreError> {
    let mut raw = Vec::with_capacity(HEADER + value.len());
    raw.extend_from_slice(&expires_at.to_be_bytes());
    raw.extend_from_slice(value);
    table.insert(key, raw.as_slice()).map_err(backend)?;
    Ok(())
}

fn header(raw: &[u8]) -> Result<u64, StoreError> {
    raw.get(..HEADER)
        .and_then(|h| <[u8; HEADER]>::try_from(h).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("value shorter than its expiry header".into()))
}

fn payload(raw: &[u8]) -> Result<&[u8], StoreError> {
    raw.get(HEADER..)
        .ok_or_else(|| StoreError::Corrupt("value shorter than its expiry header".into()))
}

/// Corrupt (header-less) values count as expired so they cannot be served.
fn is_expired(raw: &[u8], now: u64) -> bool {
    match header(raw) {
        Ok(0) => false,
        Ok(exp) => exp <= now,
        Err(_) => true,
    }
}

fn expiry(now: u64, ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            // 0 means "never" in the header, so a zero TTL must still land in the past-or-now.
            now.saturating_add(ms).max(1)
        }
    }
}

fn parse_counter(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{key}: counter is not an integer")))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}
