//! Token-validation metrics (registered on the gateway's one registry).
//! Labels are closed sets: result and source, never token data.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// `result` label values of `drio_token_validations_total`.
pub(crate) const RESULTS: [&str; 7] = [
    "valid",
    "malformed",
    "invalid",
    "expired",
    "revoked",
    "insufficient_scope",
    "unavailable",
];
/// `source` label values: where the answer came from.
pub(crate) const SOURCES: [&str; 5] = ["l1", "l2", "jwt", "introspection", "userinfo"];

pub struct AuthMetrics {
    // Never read: owns the registered family whose children `by_label` holds.
    #[allow(dead_code)]
    validations: IntCounterVec,
    /// Every (result, source) child resolved once: the hot path must not hash label strings.
    by_label: Vec<IntCounter>,
    pub(crate) duration: Histogram,
    pub(crate) jwks_refresh: IntCounterVec,
    pub(crate) cache_entries: IntGauge,
    pub(crate) l2_errors: IntCounter,
}

impl AuthMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let validations = IntCounterVec::new(
            Opts::new(
                "drio_token_validations_total",
                "Bearer validations by result and where the answer came from",
            ),
            &["result", "source"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "drio_token_validation_duration_seconds",
                "Time to validate a bearer token missing from the in-process cache",
            )
            .buckets(vec![
                1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.02, 0.1, 0.5, 2.0,
            ]),
        )?;
        let jwks_refresh = IntCounterVec::new(
            Opts::new("drio_jwks_refresh_total", "JWKS fetches by result"),
            &["result"],
        )?;
        let cache_entries = IntGauge::new(
            "drio_token_cache_entries",
            "Entries in the in-process token cache",
        )?;
        let l2_errors = IntCounter::new(
            "drio_token_l2_errors_total",
            "Shared token-cache lookups that failed or timed out",
        )?;
        registry.register(Box::new(validations.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(jwks_refresh.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(l2_errors.clone()))?;
        let by_label = RESULTS
            .iter()
            .flat_map(|r| SOURCES.iter().map(move |s| (r, s)))
            .map(|(r, s)| validations.with_label_values(&[r, s]))
            .collect();
        Ok(Self {
            validations,
            by_label,
            duration,
            jwks_refresh,
            cache_entries,
            l2_errors,
        })
    }

    /// The counter for one validation outcome.
    pub fn validation(&self, result: &str, source: &str) -> Option<&IntCounter> {
        let r = RESULTS.iter().position(|x| *x == result)?;
        let s = SOURCES.iter().position(|x| *x == source)?;
        self.by_label.get(r * SOURCES.len() + s)
    }
}
