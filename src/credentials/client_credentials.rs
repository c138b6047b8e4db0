//! OAuth 2.0 client credentials (RFC 6749 §4.4) for an app's upstream: one
//! token shared by every request, fetched once, reused until shortly before
//! it expires, and refreshed by exactly one request however many arrive
//! together (the others wait for that one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use super::oauth::{user_token_request, ProviderSettings, TokenCallError};
use super::{mark_sensitive, InjectError};
use crate::egress::EgressClient;

/// Refresh this long before the provider's expiry.
const MARGIN: Duration = Duration::from_secs(30);

struct Cached {
    header: HeaderValue,
    fresh_until: Instant,
}

pub struct ClientCredentials {
    settings: ProviderSettings,
    egress: EgressClient,
    current: ArcSwapOption<Cached>,
    refresh: tokio::sync::Mutex<()>,
}

impl ClientCredentials {
    pub(crate) fn new(settings: ProviderSettings, egress: EgressClient) -> Self {
        Self {
            settings,
            egress,
            current: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) async fn header(&self) -> Result<HeaderValue, InjectError> {
        if let Some(c) = self.fresh() {
            crate::telemetry::note("cache.hit", true);
            return Ok(c);
        }
        let _one = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed already.
        if let Some(c) = self.fresh() {
            crate::telemetry::note("cache.hit", true);
            return Ok(c);
        }
        crate::telemetry::note("cache.hit", false);
        let token = self.fetch().await?;
        Ok(token)
    }

    fn fresh(&self) -> Option<HeaderValue> {
        let c = self.current.load();
        c.as_ref()
            .filter(|c| Instant::now() < c.fresh_until)
            .map(|c| c.header.clone())
    }

    /// Fetches a token now.
    pub(crate) async fn fetch(&self) -> Result<HeaderValue, InjectError> {
        self.try_fetch()
            .await
            .map_err(|e| InjectError::Unavailable(e.to_string()))
    }

    /// Fetches a token now; the error says why in classes only (used to
    /// validate a connection).
    pub(crate) async fn try_fetch(&self) -> Result<HeaderValue, TokenCallError> {
        let s = &self.settings;
        let mut params = vec![("grant_type", "client_credentials".to_string())];
        if let Some(scope) = s.scope() {
            params.push(("scope", scope));
        }
        if let Some(aud) = &s.audience {
            params.push(("audience", aud.clone()));
        }
        let t = user_token_request(&self.egress, s, &s.token_endpoint, params).await?;
        let header =
            HeaderValue::from_str(&format!("Bearer {}", t.access_token)).map_err(|_| {
                TokenCallError::Network(crate::egress::OutboundFailure::InvalidResponse)
            })?;
        let header = mark_sensitive(header);
        let life = Duration::from_secs(t.expires_in.unwrap_or(300));
        self.current.store(Some(Arc::new(Cached {
            header: header.clone(),
            fresh_until: Instant::now() + life.saturating_sub(MARGIN).max(Duration::from_secs(1)),
        })));
        Ok(header)
    }
}
