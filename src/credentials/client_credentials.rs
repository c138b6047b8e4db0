//! OAuth 2.0 client credentials (RFC 6749 §4.4) for an app's upstream: one
//! token shared by every request, fetched once, reused until shortly before
//! it expires, and refreshed by exactly one request however many arrive
//! together (the others wait for that one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;

use super::oauth::{token_request, ProviderSettings};
use super::{mark_sensitive, InjectError};

/// Refresh this long before the provider's expiry.
const MARGIN: Duration = Duration::from_secs(30);

struct Cached {
    header: HeaderValue,
    fresh_until: Instant,
}

pub struct ClientCredentials {
    settings: ProviderSettings,
    http: reqwest::Client,
    current: ArcSwapOption<Cached>,
    refresh: tokio::sync::Mutex<()>,
}

impl ClientCredentials {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            current: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn header(&self) -> Result<HeaderValue, InjectError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _one = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed already.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let token = self.fetch().await?;
        Ok(token)
    }

    fn fresh(&self) -> Option<HeaderValue> {
        let c = self.current.load();
        c.as_ref()
            .filter(|c| Instant::now() < c.fresh_until)
            .map(|c| c.header.clone())
    }

    /// Fetches a token now (also used to validate a connection).
    pub async fn fetch(&self) -> Result<HeaderValue, InjectError> {
        let s = &self.settings;
        let mut params = vec![("grant_type", "client_credentials".to_string())];
        if let Some(scope) = s.scope() {
            params.push(("scope", scope));
        }
        if let Some(aud) = &s.audience {
            params.push(("audience", aud.clone()));
        }
        let t = token_request(&self.http, s, &s.token_endpoint, params)
            .await
            .map_err(|e| InjectError::Unavailable(e.to_string()))?;
        let header =
            HeaderValue::from_str(&format!("Bearer {}", t.access_token)).map_err(|_| {
                InjectError::Unavailable("the upstream issued an unusable token".into())
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
