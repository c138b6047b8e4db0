//! Rate limits shared by every instance on one Redis: the GCRA of
//! [`super::gcra`] over all of a request's limits in one `EVAL` (one atomic
//! round trip, so two instances can never both spend the last slot).
//!
//! The script reads the clock with `TIME` on the Redis server, so instances
//! with skewed clocks still agree. It has its own lazily connecting
//! connection, so a Redis outage never blocks a request beyond the store's
//! `timeout_ms`; the caller decides what an error means
//! (`limits.on_store_error`).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;

use super::gcra::{Cell, Outcome};

/// KEYS: one per limit; ARGV: interval (µs), burst, cost for each key in
/// order. Returns `{0, 0}` when allowed (every key charged), else
/// `{index (1-based), wait µs}` with nothing charged. TATs are µs since the
/// epoch, written with `%.0f` (Lua's default number format would round them).
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local worst, worst_wait = 0, 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  local nxt = tat + interval * cost
  local allow_at = nxt - interval * burst
  if allow_at > now and allow_at - now > worst_wait then
    worst, worst_wait = i, allow_at - now
  end
  tats[i] = nxt
end
if worst > 0 then return {worst, math.ceil(worst_wait)} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {0, 0}
";

/// Why a shared limit could not be checked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SharedLimitError {
    #[error("invalid Redis URL")]
    Url,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected script answer")]
    Answer,
}

pub(crate) struct Shared {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl Shared {
    /// Prepares the connection without contacting Redis (it connects on first use).
    pub(crate) fn new(
        url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, SharedLimitError> {
        // redis-rs parse errors never echo the URL, but say nothing anyway:
        // it may carry a password.
        let client = Client::open(url).map_err(|_| SharedLimitError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            prefix: key_prefix.to_string(),
            timeout,
        })
    }

    pub(crate) async fn charge(&self, cells: &[Cell]) -> Result<Outcome, SharedLimitError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(GCRA_SCRIPT).arg(cells.len());
        for c in cells {
            cmd.arg(format!("{}{}", self.prefix, c.key));
        }
        for c in cells {
            cmd.arg(c.interval_us).arg(c.burst).arg(c.cost);
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> = tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| SharedLimitError::Timeout(self.timeout))??;
        match answer.as_slice() {
            [0, _] => Ok(Outcome::Allowed),
            [i, wait] if *i >= 1 && (*i as usize) <= cells.len() => Ok(Outcome::Limited {
                index: *i as usize - 1,
                wait_us: (*wait).max(0) as u64,
            }),
            _ => Err(SharedLimitError::Answer),
        }
    }
}
