//! The two-tier token cache in front of [`Verifier`].
//!
//! - L1: moka, in process, keyed by the token's SHA-256, bounded by entries
//!   and memory. A hit costs a hash and a map lookup: no I/O, no allocation.
//! - L2: the shared store (`tok:{sha256}`), so a token one instance verified
//!   is accepted by every other without another call to the identity
//!   provider. One round trip per L1 miss, with a short timeout; when the
//!   store fails, L2 is skipped for a second so Redis being down costs nothing.
//! - Concurrent misses for one token share one verification (moka's entry
//!   API is a single flight).
//! - Valid entries live `min(max_ttl, exp − now − margin)`; rejections a few
//!   seconds (to blunt floods); `Unavailable` is never cached.
//! - Revocation writes a tombstone to L2 and publishes the hash; every
//!   instance (this one included) marks it revoked in L1 on receipt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde::{Deserialize, Serialize};

use super::metrics::AuthMetrics;
use super::verify::Verifier;
use super::{
    check_audience, check_scopes, token_hash, token_hash_bytes, Audience, Principal, TokenError,
};
use crate::store::{Store, StoreError};
use crate::util::clock::Clock;
use opentelemetry::trace::SpanKind;

pub(crate) const REVOCATION_CHANNEL: &str = "drio:token-revocations";

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub max_entries: u64,
    pub max_memory_bytes: u64,
    pub max_ttl: Duration,
    pub safety_margin: Duration,
    pub negative_ttl: Duration,
    /// How long a revocation is remembered when the token's expiry is unknown.
    pub revocation_ttl: Duration,
    pub l2: bool,
    pub l2_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_memory_bytes: 64 << 20,
            max_ttl: Duration::from_secs(300),
            safety_margin: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(10),
            revocation_ttl: Duration::from_secs(24 * 3600),
            l2: true,
            l2_timeout: Duration::from_millis(100),
        }
    }
}

#[derive(Clone)]
enum Verdict {
    Valid(Arc<Principal>),
    Rejected(TokenError),
    /// Unix seconds until which the revocation holds.
    Revoked(u64),
}

#[derive(Clone)]
struct Entry {
    verdict: Verdict,
    /// Where the verdict was first obtained (reported for the miss only).
    source: &'static str,
}

/// What L2 holds for a token hash.
#[derive(Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
enum L2Record {
    // Boxed: a principal is large and the record only passes through.
    Valid { p: Box<Principal> },
    Revoked { until: u64 },
}

struct VerdictExpiry {
    settings: CacheSettings,
    clock: Clock,
}

impl VerdictExpiry {
    fn ttl(&self, v: &Verdict) -> Duration {
        let now = self.clock.now_secs();
        match v {
            Verdict::Valid(p) => valid_ttl(&self.settings, p.expires_at, now),
            Verdict::Rejected(_) => self.settings.negative_ttl,
            Verdict::Revoked(until) => Duration::from_secs(until.saturating_sub(now).max(1)),
        }
    }
}

impl Expiry<[u8; 32], Entry> for VerdictExpiry {
    fn expire_after_create(&self, _: &[u8; 32], e: &Entry, _: Instant) -> Option<Duration> {
        Some(self.ttl(&e.verdict))
    }
    // A revocation replaces a valid entry: its lifetime must replace it too.
    fn expire_after_update(
        &self,
        _: &[u8; 32],
        e: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.ttl(&e.verdict))
    }
}

fn valid_ttl(s: &CacheSettings, exp: u64, now: u64) -> Duration {
    let left = exp
        .saturating_sub(now)
        .saturating_sub(s.safety_margin.as_secs());
    s.max_ttl.min(Duration::from_secs(left))
}

pub struct TokenValidator {
    verifier: Verifier,
    l1: Cache<[u8; 32], Entry>,
    store: Arc<dyn Store>,
    settings: CacheSettings,
    metrics: Arc<AuthMetrics>,
    epoch: Instant,
    /// Milliseconds since `epoch` before which L2 is not tried.
    l2_skip_until: AtomicU64,
}

impl TokenValidator {
    pub fn new(
        verifier: Verifier,
        store: Arc<dyn Store>,
        settings: CacheSettings,
        metrics: Arc<AuthMetrics>,
    ) -> Arc<Self> {
        // Weigh entries in bytes, but never less than memory/entries: the
        // one capacity then bounds both the memory and the entry count.
        let floor = (settings.max_memory_bytes / settings.max_entries.max(1)).max(1);
        let l1 = Cache::builder()
            .max_capacity(settings.max_memory_bytes)
            .weigher(move |_k, e: &Entry| {
                u32::try_from(approx_size(e).max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(VerdictExpiry {
                settings: settings.clone(),
                clock: verifier.clock().clone(),
            })
            .build();
        Arc::new(Self {
            verifier,
            l1,
            store,
            settings,
            metrics,
            epoch: Instant::now(),
            l2_skip_until: AtomicU64::new(0),
        })
    }

    fn now_secs(&self) -> u64 {
        self.verifier.clock().now_secs()
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Starts the revocation listener and the cache-size gauge.
    pub(crate) async fn spawn_background(self: &Arc<Self>) -> Result<(), StoreError> {
        let mut rx = self.store.subscribe(REVOCATION_CHANNEL).await?;
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let Some(v) = me.upgrade() else { break };
                if let Some((hash, until)) = parse_revocation(&msg) {
                    v.l1.insert(
                        hash,
                        Entry {
                            verdict: Verdict::Revoked(until),
                            source: "l2",
                        },
                    )
                    .await;
                }
            }
        });
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(v) = me.upgrade() else { break };
                v.l1.run_pending_tasks().await;
                v.metrics
                    .cache_entries
                    .set(i64::try_from(v.l1.entry_count()).unwrap_or(i64::MAX));
            }
        });
        if let Some(jwks) = self.verifier.jwks() {
            jwks.spawn_refresh();
        }
        Ok(())
    }

    /// Validates `token` for a resource and the scopes it requires.
    pub async fn validate(
        &self,
        token: &str,
        audience: Audience<'_>,
        scopes: &[String],
    ) -> Result<Arc<Principal>, TokenError> {
        self.validate_as(token.as_bytes(), |_| Ok(token), audience, scopes)
            .await
    }

    /// Validates a bearer credential whose grammar is checked only when the
    /// cache does not know it (see [`super::bearer::credential`]). A
    /// malformed credential is refused before any lookup in the store or
    /// call to the identity provider, as [`super::extract_bearer`] would.
    pub(crate) async fn validate_credential(
        &self,
        credential: &[u8],
        audience: Audience<'_>,
        scopes: &[String],
    ) -> Result<Arc<Principal>, TokenError> {
        self.validate_as(credential, super::bearer::b64token, audience, scopes)
            .await
    }

    async fn validate_as<'t>(
        &self,
        raw: &'t [u8],
        // The token as text, checked: run on an L1 miss only.
        text: impl FnOnce(&'t [u8]) -> Result<&'t str, TokenError>,
        audience: Audience<'_>,
        scopes: &[String],
    ) -> Result<Arc<Principal>, TokenError> {
        // None unless this request is traced (see `crate::telemetry`).
        let mut span = crate::telemetry::child("token validation", SpanKind::Internal);
        let hash = token_hash_bytes(raw);
        // The hot path: a hash and a lookup. Not timed (two clock reads would
        // cost as much as the lookup); the duration histogram covers misses.
        if let Some(e) = self.l1.get(&hash).await {
            let result = authorize(verdict_result(e.verdict), audience, scopes);
            self.count(&result, "l1");
            crate::telemetry::validated(&mut span, "l1", outcome(&result));
            return result;
        }
        let token = text(raw)?;
        let started = Instant::now();
        // Calls to the IdP (introspection, userinfo) nest below this span.
        let cx = span.as_ref().map(crate::telemetry::Child::context);
        // Boxed: the miss path (store, IdP) is many times the hit path's
        // size, and every request's future would carry it.
        let miss = Box::pin(self.miss(hash, token));
        let (result, source) = crate::telemetry::within(cx, miss).await;
        let result = authorize(result, audience, scopes);
        self.count(&result, source);
        crate::telemetry::validated(&mut span, source, outcome(&result));
        self.metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
        result
    }

    fn count(&self, result: &Result<Arc<Principal>, TokenError>, source: &'static str) {
        if let Some(c) = self.metrics.validation(outcome(result), source) {
            c.inc();
        }
    }

    async fn miss(
        &self,
        hash: [u8; 32],
        token: &str,
    ) -> (Result<Arc<Principal>, TokenError>, &'static str) {
        let entry = self
            .l1
            .entry(hash)
            .or_try_insert_with(self.resolve(hash, token))
            .await;
        match entry {
            Ok(e) => {
                let source = if e.is_fresh() { e.value().source } else { "l1" };
                (verdict_result(e.into_value().verdict), source)
            }
            Err(e) => (Err(e.0.clone()), e.1),
        }
    }

    /// An L1 miss: one L2 read, then verification. `Err` is not cached.
    async fn resolve(
        &self,
        hash: [u8; 32],
        token: &str,
    ) -> Result<Entry, (TokenError, &'static str)> {
        if let Some(rec) = self.l2_get(&hash).await {
            let verdict = match rec {
                L2Record::Valid { p } if p.expires_at > self.now_secs() => {
                    Some(Verdict::Valid(Arc::from(p)))
                }
                L2Record::Valid { .. } => None,
                L2Record::Revoked { until } => Some(Verdict::Revoked(until)),
            };
            if let Some(verdict) = verdict {
                return Ok(Entry {
                    verdict,
                    source: "l2",
                });
            }
        }
        let (result, source) = self.verifier.verify(token).await;
        let verdict = match result {
            Ok(p) => {
                let p = Arc::new(p);
                self.l2_put_valid(hash, &p);
                Verdict::Valid(p)
            }
            Err(TokenError::Unavailable(e)) => {
                return Err((TokenError::Unavailable(e), source.label()))
            }
            Err(e) => Verdict::Rejected(e),
        };
        Ok(Entry {
            verdict,
            source: source.label(),
        })
    }

    async fn l2_get(&self, hash: &[u8; 32]) -> Option<L2Record> {
        if !self.settings.l2 || self.now_ms() < self.l2_skip_until.load(Ordering::Relaxed) {
            return None;
        }
        let key = l2_key(hash);
        match tokio::time::timeout(self.settings.l2_timeout, self.store.get(&key)).await {
            Ok(Ok(Some(bytes))) => serde_json::from_slice(&bytes).ok(),
            Ok(Ok(None)) => None,
            Ok(Err(_)) | Err(_) => {
                self.metrics.l2_errors.inc();
                self.l2_skip_until
                    .store(self.now_ms() + 1_000, Ordering::Relaxed);
                None
            }
        }
    }

    /// Shares a verification, in the background: the request never waits on it.
    fn l2_put_valid(&self, hash: [u8; 32], p: &Arc<Principal>) {
        let ttl = valid_ttl(&self.settings, p.expires_at, self.now_secs());
        if !self.settings.l2
            || ttl.is_zero()
            || self.now_ms() < self.l2_skip_until.load(Ordering::Relaxed)
        {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&L2Record::Valid {
            p: Box::new((**p).clone()),
        }) else {
            return;
        };
        let store = Arc::clone(&self.store);
        let timeout = self.settings.l2_timeout * 5;
        tokio::spawn(async move {
            // Never overwrite a revocation tombstone.
            let _ = tokio::time::timeout(
                timeout,
                store.put_if_absent(&l2_key(&hash), &bytes, Some(ttl)),
            )
            .await;
        });
    }

    /// Revokes a token everywhere: tombstone in L2, then a broadcast that
    /// every instance (this one included) applies to its L1.
    pub(crate) async fn revoke_token(&self, token: &str) -> Result<(), StoreError> {
        let until = jwt_expiry(token)
            .unwrap_or_else(|| self.now_secs() + self.settings.revocation_ttl.as_secs());
        self.revoke_hash(token_hash(token), until).await
    }

    /// Revokes a token whose expiry the caller verified.
    pub(crate) async fn revoke_until(&self, token: &str, until: u64) -> Result<(), StoreError> {
        self.revoke_hash(token_hash(token), until).await
    }

    pub(crate) async fn revoke_hash(&self, hash: [u8; 32], until: u64) -> Result<(), StoreError> {
        let until = until.max(self.now_secs() + 1);
        self.l1
            .insert(
                hash,
                Entry {
                    verdict: Verdict::Revoked(until),
                    source: "l2",
                },
            )
            .await;
        let rec = serde_json::to_vec(&L2Record::Revoked { until })
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let ttl = Duration::from_secs(until - self.now_secs() + 1);
        self.store.put(&l2_key(&hash), &rec, Some(ttl)).await?;
        self.store
            .publish(
                REVOCATION_CHANNEL,
                format!("{}:{until}", hex::encode(hash)).as_bytes(),
            )
            .await
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The `result` label of a validation (metrics and traces).
fn outcome(result: &Result<Arc<Principal>, TokenError>) -> &'static str {
    match result {
        Ok(_) => "valid",
        Err(e) => e.metric_label(),
    }
}

fn authorize(
    r: Result<Arc<Principal>, TokenError>,
    audience: Audience<'_>,
    scopes: &[String],
) -> Result<Arc<Principal>, TokenError> {
    let p = r?;
    check_audience(&p, audience)?;
    check_scopes(&p, scopes)?;
    Ok(p)
}

fn verdict_result(v: Verdict) -> Result<Arc<Principal>, TokenError> {
    match v {
        Verdict::Valid(p) => Ok(p),
        Verdict::Rejected(e) => Err(e),
        Verdict::Revoked(_) => Err(TokenError::Revoked),
    }
}

fn l2_key(hash: &[u8; 32]) -> String {
    crate::store::keys::token(&hex::encode(hash))
}

fn parse_revocation(msg: &[u8]) -> Option<([u8; 32], u64)> {
    let s = std::str::from_utf8(msg).ok()?;
    let (h, until) = s.split_once(':')?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(h, &mut hash).ok()?;
    Some((hash, until.parse().ok()?))
}

/// A JWT's `exp`, read without verification: only used to size a tombstone.
fn jwt_expiry(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    jsonwebtoken::dangerous::insecure_decode::<Exp>(token)
        .ok()
        .map(|d| d.claims.exp)
}

fn approx_size(e: &Entry) -> u64 {
    let base = 32 + std::mem::size_of::<Entry>() as u64 + 64;
    match &e.verdict {
        Verdict::Valid(p) => {
            let strs = [&p.email, &p.name, &p.picture, &p.client_id, &p.session_id];
            base + p.subject.len() as u64
                + strs
                    .iter()
                    .map(|s| s.as_ref().map_or(0, |s| s.len() as u64))
                    .sum::<u64>()
                + p.scopes
                    .iter()
                    .chain(&p.audience)
                    .map(|s| s.len() as u64 + 24)
                    .sum::<u64>()
                + std::mem::size_of::<Principal>() as u64
        }
        _ => base,
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;
    use crate::util::clock::Clock;

    fn principal(expires_at: u64) -> Arc<Principal> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "subject": "u", "email": null, "name": null, "picture": null, "scopes": [],
                "client_id": null, "audience": [], "expires_at": expires_at, "session_id": null
            }))
            .unwrap(),
        )
    }

    /// A cached verdict lives until the token's expiry (less the margin,
    /// capped) and a revocation until its end, both judged by the clock:
    /// advancing it shortens them, no waiting.
    #[test]
    fn cache_lifetimes_follow_the_clock() {
        let clock = Clock::manual(1_000_000);
        let e = VerdictExpiry {
            settings: CacheSettings::default(),
            clock: clock.clone(),
        };
        let valid = Verdict::Valid(principal(1_000_000 + 120));
        let revoked = Verdict::Revoked(1_000_000 + 60);
        assert_eq!(e.ttl(&valid), Duration::from_secs(110));
        assert_eq!(e.ttl(&revoked), Duration::from_secs(60));
        clock.advance(Duration::from_secs(105));
        assert_eq!(e.ttl(&valid), Duration::from_secs(5));
        assert_eq!(e.ttl(&revoked), Duration::from_secs(1), "at least a second");
        clock.advance(Duration::from_secs(10));
        assert_eq!(e.ttl(&valid), Duration::ZERO, "past the safety margin");
    }
}
