//! Assembles the [`TokenValidator`] from `[auth]`: the JWKS key source, the
//! verifier and the two-tier cache, registered on the gateway's metrics.

use std::sync::Arc;

use super::jwks::{HttpKeySource, Jwks, JwksSettings, KeySource};
use super::metrics::AuthMetrics;
use super::verify::{Introspection, Verifier, VerifierSettings};
use super::TokenValidator;
use crate::config::auth::AuthConfig;
use crate::store::Store;

/// Builds the validator. `local_keys` replaces `jwks_uri` when the gateway
/// itself signs the tokens (its keyring in the store).
pub(crate) fn validator(
    cfg: &AuthConfig,
    issuer_override: Option<String>,
    local_keys: Option<Arc<dyn KeySource>>,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    metrics: Arc<AuthMetrics>,
    clock: crate::util::clock::Clock,
) -> Result<Arc<TokenValidator>, prometheus::Error> {
    let source: Option<Arc<dyn KeySource>> = local_keys.or_else(|| {
        cfg.jwks_uri.clone().map(|url| {
            Arc::new(HttpKeySource {
                url,
                http: http.clone(),
            }) as Arc<dyn KeySource>
        })
    });
    let jwks = source.map(|s| {
        let settings = JwksSettings {
            refresh_every: cfg.jwks_refresh,
            min_refetch_interval: cfg.jwks_refetch_interval,
            max_stale: cfg.jwks_max_stale,
        };
        Arc::new(Jwks::new(s, settings, Arc::clone(&metrics)))
    });
    let settings = VerifierSettings {
        issuer: issuer_override
            .or_else(|| cfg.issuer.clone())
            .unwrap_or_default(),
        algorithms: cfg.algorithms.clone(),
        leeway: cfg.leeway,
        introspection: cfg.introspection.as_ref().map(|i| Introspection {
            endpoint: i.endpoint.clone(),
            client_id: i.client_id.clone(),
            client_secret: i.client_secret.clone(),
        }),
        userinfo_endpoint: cfg.userinfo_endpoint.clone(),
        default_ttl: cfg.cache.max_ttl,
    };
    let verifier = Verifier::new(settings, jwks, http).with_clock(clock);
    Ok(TokenValidator::new(
        verifier,
        store,
        cfg.cache.clone(),
        metrics,
    ))
}
