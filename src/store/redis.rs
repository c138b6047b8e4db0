//! The Redis state store, shared by every gateway instance pointing at it.
//!
//! Owns the mapping of [`Store`] operations onto Redis commands, key and
//! channel prefixing, per-operation timeouts, and resilience to Redis
//! outages: the [`ConnectionManager`] is built lazily and reconnects on its
//! own, so the gateway starts (and reports not-ready) while Redis is down and
//! recovers without a restart. Subscriptions run on their own pub/sub
//! connections, re-established with backoff after every disconnect.
//!
//! Values may hold secrets (tokens, codes), so nothing here logs a value.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult};
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};

/// Keys fetched per SCAN round trip.
const SCAN_COUNT: usize = 200;
const SUBSCRIBER_BUFFER: usize = 256;
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(1);
/// How often an idle pub/sub connection is probed: a peer that vanished
/// without closing the socket would otherwise leave the subscriber deaf.
const PUBSUB_KEEPALIVE: Duration = Duration::from_secs(15);

/// CAS in one script so no other client can interleave between the
/// comparison and the write. ARGV: expected-present flag, expected value,
/// new-present flag, new value, TTL in ms (0 = none).
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[3] == '1' then
  if tonumber(ARGV[5]) > 0 then
    redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
  else
    redis.call('SET', KEYS[1], ARGV[4])
  end
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// Fixed-window counter: the TTL is set only when the window opens, so
/// later increments do not extend it.
const INCR_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// Redis-backed [`Store`].
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
    op_timeout: Duration,
}

impl RedisStore {
    /// Prepares a store for `url`. Does not contact Redis: the first
    /// operation connects, so a Redis outage at startup is not fatal. Fails
    /// only on an invalid URL.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, StoreError> {
        // redis-rs parse errors never echo the URL, which may carry a password.
        let client = Client::open(url)
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        // Few quick retries: while Redis is down each operation should fail
        // fast (and trigger a fresh reconnect) rather than wait out a long
        // backoff schedule behind the op timeout.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(map_err)?;
        Ok(Self {
            client,
            conn,
            prefix: key_prefix.to_owned(),
            op_timeout,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs one whole operation under the op timeout.
    async fn timed<T, F, Fut>(&self, op: &'static str, key: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match tokio::time::timeout(self.op_timeout, f(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::debug!(op, key, error = %e, "redis operation failed");
                Err(map_err(e))
            }
            Err(_) => {
                tracing::debug!(op, key, "redis operation timed out");
                Err(StoreError::Timeout)
            }
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn stream_append(
        &self,
        key: &str,
        entry: &[u8],
        max_len: usize,
    ) -> Result<String, StoreError> {
        let k = self.key(key);
        self.timed("stream_append", key, |mut c| async move {
            redis::cmd("XADD")
                .arg(&k)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len.max(1))
                .arg("*")
                .arg("e")
                .arg(entry)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn stream_page(
        &self,
        key: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if before.is_some_and(|b| !super::is_stream_id(b)) {
            return Err(StoreError::Backend("not a stream id".into()));
        }
        let k = self.key(key);
        // `(id`: exclusive range (Redis 6.2+).
        let end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        let rows: Vec<(String, Vec<Vec<u8>>)> = self
            .timed("stream_page", key, |mut c| async move {
                redis::cmd("XREVRANGE")
                    .arg(&k)
                    .arg(&end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, mut fields)| (id, fields.pop().unwrap_or_default()))
            .collect())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = self.key(key);
        self.timed("get", key, |mut c| async move {
            redis::cmd("GET").arg(&k).query_async(&mut c).await
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let k = self.key(key);
        self.timed("put", key, |mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&k).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_ms(ttl));
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let k = self.key(key);
        self.timed("put_if_absent", key, |mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&k).arg(value).arg("NX");
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_ms(ttl));
            }
            // SET NX replies OK when it wrote and nil when the key existed.
            let reply: Option<String> = cmd.query_async(&mut c).await?;
            Ok(reply.is_some())
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let k = self.key(key);
        self.timed("delete", key, |mut c| async move {
            let n: u64 = redis::cmd("DEL").arg(&k).query_async(&mut c).await?;
            Ok(n > 0)
        })
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = self.key(key);
        self.timed("take", key, |mut c| async move {
            redis::cmd("GETDEL").arg(&k).query_async(&mut c).await
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
        let k = self.key(key);
        self.timed("compare_and_swap", key, |mut c| async move {
            let swapped: i64 = redis::cmd("EVAL")
                .arg(CAS_SCRIPT)
                .arg(1)
                .arg(&k)
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or_default())
                .arg(if new.is_some() { "1" } else { "0" })
                .arg(new.unwrap_or_default())
                .arg(ttl.map_or(0, ttl_ms))
                .query_async(&mut c)
                .await?;
            Ok(swapped == 1)
        })
        .await
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let k = self.key(key);
        self.timed("incr", key, |mut c| async move {
            redis::cmd("EVAL")
                .arg(INCR_SCRIPT)
                .arg(1)
                .arg(&k)
                .arg(ttl_ms(ttl))
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn scan_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let full = self.key(prefix);
        let strip = self.prefix.len();
        self.timed("scan_prefix", prefix, |mut c| async move {
            let pattern = format!("{}*", escape_glob(&full));
            let mut keys: Vec<String> = Vec::new();
            let mut seen = HashSet::new();
            let mut cursor: u64 = 0;
            // SCAN may return a key more than once; dedupe before fetching.
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut c)
                    .await?;
                keys.extend(batch.into_iter().filter(|k| seen.insert(k.clone())));
                cursor = next;
                if cursor == 0 || keys.len() >= limit {
                    break;
                }
            }
            keys.truncate(limit);
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(SCAN_COUNT) {
                let values: Vec<Option<Vec<u8>>> =
                    redis::cmd("MGET").arg(chunk).query_async(&mut c).await?;
                // A key that expired between SCAN and MGET comes back nil.
                for (k, v) in chunk.iter().zip(values) {
                    if let (Some(v), Some(short)) = (v, k.get(strip..)) {
                        out.push((short.to_owned(), v));
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        let ch = self.key(channel);
        self.timed("publish", channel, |mut c| async move {
            redis::cmd("PUBLISH")
                .arg(&ch)
                .arg(message)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Waits (up to the op timeout) for the first SUBSCRIBE to be confirmed,
    /// so a publish made right after this returns is received. If Redis is
    /// down the receiver is returned anyway and starts delivering once the
    /// background task manages to subscribe. Messages published while no
    /// connection is subscribed are lost: Redis pub/sub is fire-and-forget.
    async fn subscribe(&self, channel: &str) -> Result<mpsc::Receiver<Vec<u8>>, StoreError> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(pump(
            self.client.clone(),
            self.key(channel),
            self.op_timeout,
            tx,
            ready_tx,
        ));
        if tokio::time::timeout(self.op_timeout, ready_rx)
            .await
            .is_err()
        {
            tracing::warn!(
                channel,
                "redis subscription pending: will subscribe when Redis is reachable"
            );
        }
        Ok(rx)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", "", |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }
}

/// Forwards messages of `channel` to `tx`, reconnecting with capped backoff,
/// until the subscriber drops its receiver.
async fn pump(
    client: Client,
    channel: String,
    op_timeout: Duration,
    tx: mpsc::Sender<Vec<u8>>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub.split())
        };
        match tokio::time::timeout(op_timeout, attempt).await {
            Ok(Ok((mut sink, mut stream))) => {
                tracing::debug!(channel = %channel, "redis subscription active");
                backoff = RESUBSCRIBE_MIN;
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let mut keepalive = tokio::time::interval(PUBSUB_KEEPALIVE);
                keepalive.tick().await;
                loop {
                    tokio::select! {
                        _ = tx.closed() => return,
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                if tx.send(msg.get_payload_bytes().to_vec()).await.is_err() {
                                    return;
                                }
                            }
                            None => break,
                        },
                        _ = keepalive.tick() => {
                            let probe = tokio::time::timeout(op_timeout, sink.ping::<redis::Value>());
                            if !matches!(probe.await, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!(channel = %channel, "redis subscription lost; resubscribing");
            }
            Ok(Err(e)) => tracing::debug!(channel = %channel, error = %e, "redis subscribe failed"),
            Err(_) => tracing::debug!(channel = %channel, "redis subscribe timed out"),
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}

/// Redis rejects `PX 0`; a zero TTL rounds up to the shortest expiry.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Escapes glob metacharacters so a prefix matches only itself in `SCAN MATCH`.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn map_err(e: RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}
