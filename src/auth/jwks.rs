//! Signing keys for JWT verification (RFC 7517 JWK sets).
//!
//! Keys come from a [`KeySource`] (the identity provider's `jwks_uri`, or the
//! gateway's own keyring in the store) and live in an `ArcSwap`, so the hot
//! path reads them without a lock. They are refreshed in the background; a
//! token naming an unknown `kid` triggers one refetch, rate-limited so a flood
//! of forged `kid`s cannot turn the gateway into a JWKS hammer. When the
//! source is down the keys already fetched keep serving until `max_stale`.
//!
//! HMAC (`oct`) keys are never loaded: a JWKS publishes public keys, and an
//! HMAC key there would let anyone who reads it forge tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::metrics::AuthMetrics;
use super::TokenError;

/// Why a key set could not be fetched. The text goes to the log and, when
/// nothing was ever fetched, into the `Unavailable` token error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyFetchError {
    /// The JWKS URL did not answer, or answered with something else than a
    /// JWK set.
    #[error("GET {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("GET {url}: status {status}")]
    Status { url: String, status: u16 },
    /// The identity provider's discovery failed or names no `jwks_uri`.
    #[error("{0}")]
    Discovery(String),
    /// The gateway's own keyring could not be read.
    #[error("{0}")]
    Keyring(String),
}

/// Where signing keys come from.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError>;
}

/// A JWKS document served over HTTP(S).
pub(crate) struct HttpKeySource {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        // Traced when a request's validation fetches keys (an unknown `kid`).
        let mut span = crate::telemetry::child("idp", opentelemetry::trace::SpanKind::Client);
        crate::telemetry::set(&mut span, "idp.operation", "jwks");
        let unreachable = |e: reqwest::Error| KeyFetchError::Unreachable {
            url: self.url.clone(),
            reason: e.without_url().to_string(),
        };
        let resp = self
            .http
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        if !resp.status().is_success() {
            return Err(KeyFetchError::Status {
                url: self.url.clone(),
                status: resp.status().as_u16(),
            });
        }
        resp.json::<JwkSet>().await.map_err(unreachable)
    }
}

/// One usable verification key.
pub(crate) struct VerifyKey {
    pub(crate) key: DecodingKey,
    /// The algorithm the JWK pins, if it names one.
    pub(crate) alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeyMap {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    fetched_at: Option<Instant>,
}

pub struct JwksSettings {
    pub refresh_every: Duration,
    pub min_refetch_interval: Duration,
    pub max_stale: Duration,
}

pub struct Jwks {
    source: Arc<dyn KeySource>,
    keys: ArcSwap<KeyMap>,
    /// Serialises fetches (single flight) and remembers the last on-demand one.
    refetch: tokio::sync::Mutex<Option<Instant>>,
    settings: JwksSettings,
    metrics: Arc<AuthMetrics>,
}

impl Jwks {
    pub fn new(
        source: Arc<dyn KeySource>,
        settings: JwksSettings,
        metrics: Arc<AuthMetrics>,
    ) -> Self {
        Self {
            source,
            keys: ArcSwap::from_pointee(KeyMap::default()),
            refetch: tokio::sync::Mutex::new(None),
            settings,
            metrics,
        }
    }

    /// Fetches now; keeps the old keys on failure.
    pub async fn refresh(&self) -> Result<usize, KeyFetchError> {
        match self.source.fetch().await {
            Ok(set) => {
                let by_kid = usable_keys(&set);
                let n = by_kid.len();
                self.keys.store(Arc::new(KeyMap {
                    by_kid,
                    fetched_at: Some(Instant::now()),
                }));
                self.metrics.jwks_refresh.with_label_values(&["ok"]).inc();
                Ok(n)
            }
            Err(e) => {
                self.metrics
                    .jwks_refresh
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys already fetched");
                Err(e)
            }
        }
    }

    /// Refreshes every `refresh_every` for as long as the process runs.
    pub(crate) fn spawn_refresh(self: &Arc<Self>) {
        let jwks = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let _ = jwks.refresh().await;
                tokio::time::sleep(jwks.settings.refresh_every).await;
            }
        });
    }

    /// The key for a token header, refetching once if the `kid` is unknown.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyKey>, TokenError> {
        if let Some(k) = self.lookup(kid, alg)? {
            return Ok(k);
        }
        self.refetch_unknown().await?;
        self.lookup(kid, alg)?
            .ok_or_else(|| TokenError::Invalid("no signing key matches the token's kid".into()))
    }

    fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<Arc<VerifyKey>>, TokenError> {
        let map = self.keys.load();
        if let Some(at) = map.fetched_at {
            if at.elapsed() > self.settings.max_stale {
                return Err(TokenError::Unavailable(
                    "signing keys are stale and the JWKS cannot be fetched".into(),
                ));
            }
        }
        let found = match kid {
            Some(kid) => map.by_kid.get(kid).cloned(),
            // Without a kid, accept only an unambiguous key of the right family.
            None => {
                let mut fitting = map
                    .by_kid
                    .values()
                    .filter(|k| k.key.family() == alg.family());
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        };
        match found {
            Some(k) if k.key.family() != alg.family() || k.alg.is_some_and(|a| a != alg) => Err(
                TokenError::Invalid("token algorithm does not match its key".into()),
            ),
            other => Ok(other),
        }
    }

    async fn refetch_unknown(&self) -> Result<(), TokenError> {
        let before = self.keys.load().fetched_at;
        let mut last = self.refetch.lock().await;
        // Someone refetched while we waited: use their result.
        if self.keys.load().fetched_at != before {
            return Ok(());
        }
        if last.is_some_and(|t| t.elapsed() < self.settings.min_refetch_interval) {
            return Ok(());
        }
        *last = Some(Instant::now());
        match self.refresh().await {
            Ok(_) => Ok(()),
            // Never fetched at all: nothing can be verified, and that is not the token's fault.
            Err(e) if before.is_none() && self.keys.load().fetched_at.is_none() => {
                Err(TokenError::Unavailable(format!("JWKS unavailable: {e}")))
            }
            Err(_) => Ok(()),
        }
    }
}

fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<VerifyKey>> {
    let mut out = HashMap::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            tracing::warn!("ignoring a symmetric (oct) key published in a JWKS");
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
        out.insert(kid, Arc::new(VerifyKey { key, alg }));
    }
    out
}
