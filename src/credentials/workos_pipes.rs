//! WorkOS Pipes as an upstream credential (seed `003_*`, WorkOS "Pipes"
//! API): each user's request carries the access token WorkOS holds for that
//! user's connected account at a third-party provider.
//!
//! - `POST {api}/data-integrations/{provider}/token` with
//!   `{"user_id", "organization_id"}` and the WorkOS API key as bearer
//!   answers `{"active": true, "access_token": {"access_token",
//!   "expires_at", "scopes", "missing_scopes"}}` or `{"active": false,
//!   "error": "not_installed" | "needs_reauthorization"}`.
//! - Not installed, needs re-authorization, or `missing_scopes` not empty:
//!   the user must connect. They get the gateway's single-use connect link
//!   (bound to them, see `api::connect`), which asks
//!   `POST {api}/data-integrations/{provider}/authorize` with `{"user_id",
//!   "organization_id", "return_to"}` for WorkOS's `{"url"}` only when
//!   opened, and redirects there.
//!
//! `user_id` is the subject WorkOS gave the gateway at sign-in
//! (`idp.kind = "workos_sso"`: the profile id); `organization_id` is the
//! organization of that sign-in when the connection is `organizationScoped`.
//! `{api}` is the sign-in's WorkOS API base (`idp.issuer`): operator
//! configuration, not a user's URL, so it is not subject to the egress
//! policy. Tokens are cached per (connection, user) until `expires_at`
//! minus a margin, with one flight per (connection, user) as in
//! [`super::token_exchange`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderValue;
use moka::future::Cache;
use serde::Deserialize;
use serde_json::{json, Value};

use super::oauth::OAuthContext;
use super::{mark_sensitive, InjectError};
use crate::auth::Principal;
use crate::catalog::{Connection, ConnectionSecrets};

/// Ask WorkOS again this long before its token expires.
const MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when WorkOS states no `expires_at`.
const DEFAULT_LIFE: Duration = Duration::from_secs(300);

/// Why a Pipes call could not give a token (never WorkOS's text).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PipesError {
    #[error("the user must connect ({0})")]
    MustConnect(&'static str),
    #[error("the connection needs the user's organization, and the sign-in named none")]
    NoOrganization,
    #[error("WorkOS could not be reached ({0})")]
    Network(&'static str),
    #[error("WorkOS answered with status {0}")]
    Status(u16),
    #[error("WorkOS answered with an unexpected body")]
    Invalid,
}

struct Fetched {
    header: HeaderValue,
    fresh_until: Instant,
}

pub struct WorkosPipes {
    app_id: String,
    connection_id: String,
    provider: String,
    organization_scoped: bool,
    api: String,
    api_key: String,
    ctx: OAuthContext,
    local: Cache<String, Arc<Fetched>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    active: bool,
    #[serde(default)]
    access_token: Option<PipesToken>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct PipesToken {
    access_token: String,
    #[serde(default)]
    expires_at: Option<Value>,
    #[serde(default)]
    missing_scopes: Vec<String>,
}

/// The client for WorkOS's API: no redirects, bounded waits.
fn http() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("drio-gateway/", env!("CARGO_PKG_VERSION")))
                .build()
                .ok()
        })
        .as_ref()
}

/// `expires_at` as WorkOS may state it: RFC 3339 text, Unix seconds, or null.
fn life(expires_at: Option<&Value>) -> Duration {
    let now = chrono::Utc::now().timestamp();
    let at = match expires_at {
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp()),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    match at {
        Some(at) => Duration::from_secs(u64::try_from(at - now).unwrap_or(0)),
        None => DEFAULT_LIFE,
    }
}

/// The WorkOS API base when the gateway signs users in with WorkOS SSO.
pub(crate) fn api_base(config: &crate::config::Config) -> Option<String> {
    let idp = &config.oauth.as_ref()?.idp;
    (idp.kind == crate::config::oauth::IdpKind::WorkOsSso).then(|| idp.issuer.clone())
}

/// Whether a provider slug is safe in a URL path segment.
pub(crate) fn valid_provider_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl WorkosPipes {
    pub(crate) fn new(
        conn: &Connection,
        secrets: &ConnectionSecrets,
        ctx: OAuthContext,
    ) -> Result<Self, super::ConnectionError> {
        use super::ConnectionError;
        let c = &conn.config;
        let provider = c
            .provider
            .clone()
            .ok_or(ConnectionError::Missing("provider"))?;
        if !valid_provider_slug(&provider) {
            return Err(ConnectionError::BadProviderSlug);
        }
        let api = ctx
            .workos_api
            .clone()
            .ok_or(ConnectionError::NeedsWorkosSso)?;
        Ok(Self {
            app_id: conn.app_id.clone(),
            connection_id: conn.id.clone(),
            provider,
            organization_scoped: c.organization_scoped.unwrap_or(false),
            api,
            api_key: secrets
                .api_key
                .clone()
                .ok_or(ConnectionError::Missing("apiKey"))?,
            ctx,
            local: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        })
    }

    pub(crate) async fn header(
        &self,
        principal: Option<&Principal>,
    ) -> Result<HeaderValue, InjectError> {
        let Some(p) = principal else {
            return Err(self.not_connected(None).await);
        };
        // This connection's own cache, so the user is the whole key: a hit
        // neither hashes nor allocates.
        if let Some(e) = self.local.get(p.subject.as_str()).await {
            if Instant::now() < e.fresh_until {
                crate::telemetry::note("cache.hit", true);
                return Ok(e.header.clone());
            }
            self.local.invalidate(p.subject.as_str()).await;
        }
        crate::telemetry::note("cache.hit", false);
        match self
            .local
            .try_get_with(p.subject.clone(), self.fetch(p))
            .await
        {
            Ok(got) => Ok(got.header.clone()),
            Err(e) => Err(match &*e {
                PipesError::MustConnect(_) => self.not_connected(Some(p)).await,
                PipesError::NoOrganization => InjectError::Refused {
                    reason: "no_organization",
                },
                other => {
                    tracing::warn!(connection = %self.connection_id, error = %other, "WorkOS Pipes token failed");
                    InjectError::Unavailable(other.to_string())
                }
            }),
        }
    }

    /// The gateway's connect link for this user (see the module docs).
    async fn not_connected(&self, p: Option<&Principal>) -> InjectError {
        InjectError::NotConnected {
            connect_url: super::per_user::issue_connect_url(
                &self.ctx,
                &self.app_id,
                &self.connection_id,
                p,
            )
            .await,
        }
    }

    fn body(&self, user_id: &str, org_id: Option<&str>) -> Result<Value, PipesError> {
        let org = if self.organization_scoped {
            Some(org_id.ok_or(PipesError::NoOrganization)?)
        } else {
            None
        };
        Ok(json!({ "user_id": user_id, "organization_id": org }))
    }

    async fn call(&self, action: &str, body: &Value) -> Result<Value, PipesError> {
        let http = http().ok_or(PipesError::Network("client"))?;
        let url = format!(
            "{}/data-integrations/{}/{action}",
            self.api.trim_end_matches('/'),
            self.provider
        );
        let resp = http
            .post(url)
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .map_err(|e| PipesError::Network(if e.is_timeout() { "timeout" } else { "connect" }))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(PipesError::Status(status));
        }
        resp.json().await.map_err(|_| PipesError::Invalid)
    }

    async fn fetch(&self, p: &Principal) -> Result<Arc<Fetched>, PipesError> {
        let answer: TokenAnswer = serde_json::from_value(
            self.call("token", &self.body(&p.subject, p.org_id.as_deref())?)
                .await?,
        )
        .map_err(|_| PipesError::Invalid)?;
        let token = match (answer.active, answer.access_token) {
            (true, Some(t)) if t.missing_scopes.is_empty() => t,
            (true, Some(_)) => return Err(PipesError::MustConnect("missing_scopes")),
            (true, None) => return Err(PipesError::Invalid),
            (false, _) => {
                return Err(PipesError::MustConnect(match answer.error.as_deref() {
                    Some("needs_reauthorization") => "needs_reauthorization",
                    _ => "not_installed",
                }))
            }
        };
        let header = HeaderValue::from_str(&format!("Bearer {}", token.access_token))
            .map(mark_sensitive)
            .map_err(|_| PipesError::Invalid)?;
        let life = life(token.expires_at.as_ref());
        Ok(Arc::new(Fetched {
            header,
            fresh_until: Instant::now() + life.saturating_sub(MARGIN).max(Duration::from_secs(1)),
        }))
    }

    /// Whether WorkOS accepts the API key, for the connection's `status`:
    /// a token question about a user that does not exist. WorkOS then says
    /// nothing is installed (or refuses the made-up user); only 401/403
    /// mean the key is wrong.
    pub(crate) async fn check(&self) -> Result<(), PipesError> {
        let body = json!({ "user_id": "drio-connection-check" });
        match self.call("token", &body).await {
            Ok(_) | Err(PipesError::Status(400 | 404 | 422)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// WorkOS's page where the user installs or re-authorizes the
    /// provider; the person comes back to `return_to`.
    pub(crate) async fn authorize_url(
        &self,
        user_id: &str,
        org_id: Option<&str>,
        return_to: &str,
    ) -> Result<String, PipesError> {
        let mut body = self.body(user_id, org_id)?;
        body["return_to"] = json!(return_to);
        let answer = self.call("authorize", &body).await?;
        let url = answer["url"].as_str().ok_or(PipesError::Invalid)?;
        // Only a web page: never a scheme that runs in the gateway's page.
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(url.to_string()),
            _ => Err(PipesError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_in_every_form_workos_may_use() {
        let soon = chrono::Utc::now() + chrono::Duration::seconds(600);
        let l = life(Some(&json!(soon.to_rfc3339())));
        assert!(l > Duration::from_secs(590) && l <= Duration::from_secs(600));
        let l = life(Some(&json!(soon.timestamp())));
        assert!(l > Duration::from_secs(590) && l <= Duration::from_secs(600));
        assert_eq!(life(Some(&json!("yesterday"))), DEFAULT_LIFE);
        assert_eq!(life(None), DEFAULT_LIFE);
        assert_eq!(life(Some(&json!(0))), Duration::ZERO);
    }

    #[test]
    fn provider_slugs_stay_in_their_path_segment() {
        assert!(valid_provider_slug("github"));
        assert!(valid_provider_slug("google-calendar_2"));
        for bad in ["", "../token", "a/b", "a?b", "a b", "é"] {
            assert!(!valid_provider_slug(bad), "{bad}");
        }
    }
}
