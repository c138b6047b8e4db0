//! The upstream identity provider the bridge signs users in with: WorkOS
//! AuthKit (`/oauth2/*` on the AuthKit domain), any OpenID provider (OpenID
//! Connect Discovery 1.0 from its issuer, or explicit endpoints), or the
//! built-in `dev` page.
//!
//! Discovery is fetched lazily and cached, so an IdP that is down at start
//! does not stop the gateway; ID tokens are verified with the IdP's JWKS
//! (OIDC Core §3.1.3.7: signature, `iss`, `aud`, `exp`, `nonce`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::Validation;
use serde::Deserialize;

use crate::auth::jwks::{HttpKeySource, Jwks, JwksSettings, KeyFetchError, KeySource};
use crate::auth::metrics::AuthMetrics;
use crate::config::oauth::{IdpConfig, IdpKind};
use crate::credentials::oauth::{token_request, ProviderSettings, TokenCallError};

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Endpoints {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) revocation_endpoint: Option<String>,
}

/// What the IdP's token endpoint returned.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct IdpTokens {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

/// The signed-in user: the standard OIDC claims the bridge keeps.
pub(crate) use crate::auth::claims::UserInfo as User;

#[derive(Debug, thiserror::Error)]
pub(crate) enum IdpError {
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    #[error("the ID token is invalid: {0}")]
    BadIdToken(String),
}

pub(crate) struct Idp {
    pub(crate) cfg: IdpConfig,
    http: reqwest::Client,
    endpoints: ArcSwapOption<Endpoints>,
    id_keys: Arc<Jwks>,
}

impl Idp {
    /// `metrics` are the process's (exported on `/metrics`): the IdP's key
    /// fetches count in `drio_jwks_refresh_total` with the others.
    pub(crate) fn new(
        cfg: IdpConfig,
        http: reqwest::Client,
        metrics: Arc<AuthMetrics>,
    ) -> Arc<Idp> {
        Arc::new_cyclic(|me: &std::sync::Weak<Idp>| {
            let source: Arc<dyn KeySource> = Arc::new(IdpKeys(me.clone()));
            let settings = JwksSettings {
                refresh_every: Duration::from_secs(300),
                min_refetch_interval: Duration::from_secs(5),
                max_stale: Duration::from_secs(86_400),
            };
            Idp {
                cfg,
                http,
                endpoints: ArcSwapOption::empty(),
                id_keys: Arc::new(Jwks::new(source, settings, metrics)),
            }
        })
    }

    pub(crate) fn is_dev(&self) -> bool {
        self.cfg.kind == IdpKind::Dev
    }

    /// The WorkOS SSO API (see [`super::workos_sso`]): no OIDC endpoints.
    pub(crate) fn is_workos_sso(&self) -> bool {
        self.cfg.kind == IdpKind::WorkOsSso
    }

    /// The IdP's endpoints: configured, or discovered once and cached.
    pub(crate) async fn endpoints(&self) -> Result<Arc<Endpoints>, IdpError> {
        if let Some(e) = self.endpoints.load_full() {
            return Ok(e);
        }
        let c = &self.cfg;
        let e = match (&c.authorization_endpoint, &c.token_endpoint) {
            (Some(a), Some(t)) => Endpoints {
                issuer: c.issuer.clone(),
                authorization_endpoint: a.clone(),
                token_endpoint: t.clone(),
                jwks_uri: c.jwks_uri.clone(),
                userinfo_endpoint: c.userinfo_endpoint.clone(),
                revocation_endpoint: c.revocation_endpoint.clone(),
            },
            _ => {
                let url = format!("{}/.well-known/openid-configuration", c.issuer);
                let _span = idp_span("discovery");
                let resp = self.http.get(&url).send().await.map_err(|e| {
                    IdpError::Unavailable(format!("discovery: {}", e.without_url()))
                })?;
                if !resp.status().is_success() {
                    return Err(IdpError::Unavailable(format!(
                        "discovery answered {}",
                        resp.status()
                    )));
                }
                let mut d: Endpoints = resp.json().await.map_err(|e| {
                    IdpError::Unavailable(format!("discovery: {}", e.without_url()))
                })?;
                // OIDC Discovery §4.3: the document must be the issuer's own,
                // or a look-alike could hand out its keys and endpoints.
                if d.issuer.trim_end_matches('/') != c.issuer.trim_end_matches('/') {
                    return Err(IdpError::Unavailable(format!(
                        "discovery names issuer `{}`, not the configured `{}`",
                        d.issuer, c.issuer
                    )));
                }
                // Explicit settings win over the discovery document.
                d.jwks_uri = c.jwks_uri.clone().or(d.jwks_uri);
                d.userinfo_endpoint = c.userinfo_endpoint.clone().or(d.userinfo_endpoint);
                d.revocation_endpoint = c.revocation_endpoint.clone().or(d.revocation_endpoint);
                d
            }
        };
        let e = Arc::new(e);
        self.endpoints.store(Some(e.clone()));
        Ok(e)
    }

    fn client(&self, token_endpoint: &str) -> ProviderSettings {
        ProviderSettings {
            connection_id: String::new(),
            app_id: String::new(),
            authorization_endpoint: None,
            token_endpoint: token_endpoint.to_string(),
            refresh_url: None,
            client_id: self.cfg.client_id.clone(),
            client_secret: self.cfg.client_secret.clone(),
            scopes: vec![],
            scope_separator: " ".into(),
            audience: None,
            basic_auth: self.cfg.basic_auth,
            json_body: false,
            pkce: true,
            authorization_params: vec![],
        }
    }

    async fn token(&self, params: Vec<(&str, String)>) -> Result<IdpTokens, IdpError> {
        let e = self.endpoints().await?;
        let s = self.client(&e.token_endpoint);
        let mut span = idp_span("token");
        let resp = token_request(&self.http, &s, &e.token_endpoint, params)
            .await
            .inspect_err(|_| {
                if let Some(s) = &mut span {
                    s.error("token request failed");
                }
            })
            .map_err(|err| match err {
                TokenCallError::Refused { status, error } => IdpError::Refused(
                    error.map_or_else(|| format!("http_{status}"), str::to_string),
                ),
                TokenCallError::Network(n) => IdpError::Unavailable(n.to_string()),
            })?;
        Ok(IdpTokens {
            access_token: resp.access_token,
            refresh_token: resp.refresh_token,
            id_token: resp.id_token,
            expires_in: resp.expires_in,
            scope: resp.scope,
        })
    }

    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        resource: Option<&str>,
    ) -> Result<IdpTokens, IdpError> {
        let mut p = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        if let Some(r) = resource {
            p.push(("resource", r.to_string()));
        }
        self.token(p).await
    }

    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        resource: Option<&str>,
    ) -> Result<IdpTokens, IdpError> {
        let mut p = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.to_string()),
        ];
        if let Some(r) = resource {
            p.push(("resource", r.to_string()));
        }
        self.token(p).await
    }

    /// Verifies an ID token and returns its user (OIDC Core §3.1.3.7).
    pub(crate) async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<User, IdpError> {
        let bad = |m: &str| IdpError::BadIdToken(m.to_string());
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| bad("malformed header"))?;
        if matches!(
            header.alg,
            jsonwebtoken::Algorithm::HS256
                | jsonwebtoken::Algorithm::HS384
                | jsonwebtoken::Algorithm::HS512
        ) {
            return Err(bad("symmetric algorithms are not accepted"));
        }
        let key = self
            .id_keys
            .key_for(header.kid.as_deref(), header.alg)
            .await
            .map_err(|e| bad(&e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.endpoints().await?.issuer]);
        v.set_audience(&[&self.cfg.client_id]);
        v.leeway = 60;
        #[derive(Deserialize)]
        struct IdClaims {
            #[serde(flatten)]
            user: User,
            #[serde(default)]
            nonce: Option<String>,
            #[serde(default)]
            azp: Option<String>,
            #[serde(default)]
            aud: serde_json::Value,
        }
        let data = jsonwebtoken::decode::<IdClaims>(id_token, &key.key, &v)
            .map_err(|e| bad(&e.to_string()))?;
        if data.claims.nonce.as_deref() != Some(nonce) {
            return Err(bad("nonce mismatch"));
        }
        // OIDC Core §3.1.3.7 (4, 5): with several audiences the token must
        // name the party it was issued to, and that party must be us.
        let several = data.claims.aud.as_array().is_some_and(|a| a.len() > 1);
        match data.claims.azp.as_deref() {
            Some(azp) if azp != self.cfg.client_id => return Err(bad("azp is another client")),
            None if several => return Err(bad("several audiences but no azp")),
            _ => {}
        }
        Ok(data.claims.user)
    }

    pub(crate) async fn userinfo(&self, access_token: &str) -> Result<User, IdpError> {
        let e = self.endpoints().await?;
        let url = e
            .userinfo_endpoint
            .as_ref()
            .ok_or_else(|| IdpError::Refused("no userinfo endpoint".into()))?;
        let mut span = idp_span("userinfo");
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| IdpError::Unavailable(e.without_url().to_string()))?;
        crate::telemetry::set(
            &mut span,
            "http.response.status_code",
            i64::from(resp.status().as_u16()),
        );
        if !resp.status().is_success() {
            return Err(IdpError::Refused(format!(
                "userinfo answered {}",
                resp.status()
            )));
        }
        resp.json()
            .await
            .map_err(|e| IdpError::Unavailable(e.without_url().to_string()))
    }

    /// Best effort (RFC 7009): the IdP forgets a token the gateway revoked.
    pub(crate) async fn revoke(&self, token: &str) {
        // WorkOS SSO issues no refresh tokens and has no revocation endpoint.
        if self.is_workos_sso() {
            return;
        }
        let Ok(e) = self.endpoints().await else {
            return;
        };
        let Some(url) = &e.revocation_endpoint else {
            return;
        };
        let mut form = vec![
            ("token", token.to_string()),
            ("client_id", self.cfg.client_id.clone()),
        ];
        if let Some(s) = &self.cfg.client_secret {
            form.push(("client_secret", s.expose().to_string()));
        }
        let _ = self.http.post(url).form(&form).send().await;
    }
}

/// A client span for one call to the identity provider (None unless the
/// current request is traced).
fn idp_span(operation: &'static str) -> Option<crate::telemetry::Child> {
    let mut span = crate::telemetry::child("idp", opentelemetry::trace::SpanKind::Client);
    crate::telemetry::set(&mut span, "idp.operation", operation);
    span
}

/// The IdP's JWKS, located through discovery when not configured.
pub(crate) struct IdpKeys(pub std::sync::Weak<Idp>);

#[async_trait]
impl KeySource for IdpKeys {
    async fn fetch(&self) -> Result<JwkSet, KeyFetchError> {
        let discovery = |m: &str| KeyFetchError::Discovery(m.to_string());
        let idp = self
            .0
            .upgrade()
            .ok_or_else(|| discovery("identity provider gone"))?;
        let e = idp
            .endpoints()
            .await
            .map_err(|e| KeyFetchError::Discovery(e.to_string()))?;
        let url = e
            .jwks_uri
            .clone()
            .ok_or_else(|| discovery("the identity provider publishes no jwks_uri"))?;
        HttpKeySource {
            url,
            http: idp.http.clone(),
        }
        .fetch()
        .await
    }
}
