//! Start-up: builds every service from the validated [`Config`] — the store,
//! metrics, rate limits, audit, tracing, the outbound HTTP clients, the
//! secrets vault, the authorization server (RFC 6749, RFC 8414) and bearer
//! validation (RFC 6750) — into the shared [`State`], and starts its
//! background tasks (the route reloader and what feeds it).
//!
//! The only module that sees every service at once. It sits just below
//! `server.rs` (its only importer); nothing it builds imports it back
//! (`tests/integration/layering.rs` checks both).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::catalog::live::InjectionCache;
use crate::catalog::reloader::Reloader;
use crate::catalog::route::RouteTable;
use crate::config::{Config, StorageConfig};
use crate::egress::{EgressClient, EgressPolicy};
use crate::metrics::Metrics;
use crate::secrets::Secret;
use crate::state::State;
use crate::store::vault::Vault;
use crate::store::{self, Store, StoreError};
use crate::util::clock::Clock;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the {backend} store: {source}")]
    Store {
        backend: &'static str,
        source: StoreError,
    },
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Other(String),
}

/// Builds the state from the configuration: every service, and a first route
/// table, so the gateway routes from its first request. Background tasks are
/// started separately ([`start_background`]) once the caller is ready.
pub(crate) async fn build(config: Config) -> Result<Arc<State>, StartError> {
    let store = open_store(&config.storage).await?;
    let clock = Clock::system();
    let metrics = Arc::new(Metrics::new()?);
    // One set of token metrics for the validator and the IdP client, on
    // the registry `/metrics` exports.
    let auth_metrics = Arc::new(crate::auth::metrics::AuthMetrics::register(
        &metrics.registry,
    )?);
    let limiter = Arc::new(
        crate::limits::Limiter::new(&config, &metrics.registry)
            .map_err(|e| StartError::Other(e.to_string()))?,
    );
    let audit = Arc::new(
        crate::audit::Auditor::start(&config.audit, &metrics.registry, &store)
            .map_err(|e| StartError::Other(e.to_string()))?,
    );
    crate::telemetry::init(config.tracing.as_ref(), &metrics.registry)
        .map_err(|e| StartError::Other(e.to_string()))?;
    let http = operator_http()?;
    let egress = egress_http(&config)?;
    let admin_token = admin_token(config.listen.admin_token_env.as_deref())?;
    let vault = secret_box(
        &config.secrets_key_env,
        config.oauth.is_some(),
        store.as_ref(),
    )
    .await?;
    let oauth = match &config.oauth {
        Some(cfg) => Some(Arc::new(
            oauth_server(cfg, &store, &vault, &http, auth_metrics.clone(), &clock).await?,
        )),
        None => None,
    };
    let (issuer, keys) = token_source(&config, oauth.as_deref());
    let auth = crate::auth::build::validator(
        &config.auth,
        issuer,
        keys,
        Arc::clone(&store),
        http.clone(),
        auth_metrics,
        clock.clone(),
    )?;
    auth.spawn_background()
        .await
        .map_err(|source| StartError::Store {
            backend: store.backend(),
            source,
        })?;
    let gateway_mode = config
        .oauth
        .as_ref()
        .is_some_and(|o| o.token_mode == crate::config::oauth::TokenMode::Gateway);
    let sessions = crate::oauth::session_tokens::reader(gateway_mode, &store, &vault);
    let state = Arc::new(State {
        config: Arc::new(config),
        routes: ArcSwap::from_pointee(RouteTable::default()),
        store,
        metrics,
        limiter,
        audit,
        http,
        egress,
        auth,
        vault,
        injections: InjectionCache::default(),
        sessions,
        oauth,
        admin_token,
        clock,
        reloader: Reloader::default(),
        instance: crate::catalog::new_id("gw").map_err(|e| StartError::Other(e.to_string()))?,
    });
    state
        .rebuild_routes()
        .await
        .map_err(|source| StartError::Store {
            backend: state.store.backend(),
            source,
        })?;
    Ok(state)
}

/// Starts the reloader task, and keeps it fed: every catalog change
/// broadcast by another instance, and every 30 s so upstream DNS changes
/// are picked up, request a rebuild like a local write does.
pub(crate) async fn start_background(state: &Arc<State>) -> Result<(), StoreError> {
    let mut changes = state
        .store
        .subscribe(crate::catalog::CHANGES_CHANNEL)
        .await?;
    let reloader_state = Arc::clone(state);
    tokio::spawn(async move {
        let s = &reloader_state;
        s.reloader.run(|| s.rebuild_routes()).await;
    });
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        let mut subscribed = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                msg = changes.recv(), if subscribed => match msg {
                    // The timer still keeps the routes current.
                    None => {
                        tracing::warn!("catalog change subscription closed; rebuilding every 30 s only");
                        subscribed = false;
                        continue;
                    }
                    // Our own broadcast: the write already asked.
                    Some(m) if m.as_slice() == state.instance.as_bytes() => continue,
                    Some(_) => {}
                },
            }
            state.reloader.request();
        }
    });
    Ok(())
}

/// Outbound client for the operator's endpoints (identity provider, JWKS,
/// introspection, config-file apps): bounded, and never following redirects.
fn operator_http() -> Result<reqwest::Client, StartError> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("drio-gateway/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Outbound client for URLs users supply, under the egress policy.
fn egress_http(config: &Config) -> Result<EgressClient, StartError> {
    Ok(EgressClient::new(Arc::new(EgressPolicy::new(
        config.allow_upstream_cidrs.clone(),
    )))?)
}

async fn oauth_server(
    cfg: &crate::config::oauth::OAuthConfig,
    store: &Arc<dyn Store>,
    vault: &Option<Arc<Vault>>,
    http: &reqwest::Client,
    auth_metrics: Arc<crate::auth::metrics::AuthMetrics>,
    clock: &Clock,
) -> Result<crate::oauth::OAuthServer, StartError> {
    use crate::config::oauth::TokenMode;
    let keys = match cfg.token_mode {
        TokenMode::Gateway => Some(Arc::new(
            crate::oauth::signing::Keyring::load_or_create(
                store.clone(),
                vault.clone(),
                cfg.es256,
                clock.clone(),
            )
            .await
            .map_err(|e| StartError::Other(format!("signing keys: {e}")))?,
        )),
        TokenMode::Upstream => None,
    };
    Ok(crate::oauth::OAuthServer {
        cfg: cfg.clone(),
        idp: crate::oauth::idp::Idp::new(cfg.idp.clone(), http.clone(), auth_metrics),
        keys,
        cimd: Default::default(),
        clock: clock.clone(),
    })
}

/// Which tokens bearer validation trusts: the gateway's own (gateway token
/// mode), the IdP's (upstream mode, unless `[auth]` says otherwise), or
/// whatever `[auth]` configures.
fn token_source(
    config: &Config,
    oauth: Option<&crate::oauth::OAuthServer>,
) -> (
    Option<String>,
    Option<Arc<dyn crate::auth::jwks::KeySource>>,
) {
    let Some(o) = oauth else { return (None, None) };
    if let Some(keys) = &o.keys {
        return (
            Some(config.public_url.clone()),
            Some(keys.clone() as Arc<dyn crate::auth::jwks::KeySource>),
        );
    }
    if config.auth.jwks_uri.is_some() || config.auth.introspection.is_some() {
        return (None, None);
    }
    let source = Arc::new(crate::oauth::idp::IdpKeys(Arc::downgrade(&o.idp)));
    (
        Some(o.idp.cfg.issuer.clone()),
        Some(source as Arc<dyn crate::auth::jwks::KeySource>),
    )
}

/// The admin token, when `listen.admin_token_env` names a variable. A named
/// but unset (or short) variable stops the start: the operator asked for the
/// routes, and a guessable token on them would be worse than none.
fn admin_token(env: Option<&str>) -> Result<Option<Secret>, StartError> {
    let Some(name) = env else { return Ok(None) };
    match Secret::from_env(name) {
        Some(t) if t.expose().len() >= 16 => Ok(Some(t)),
        Some(_) => Err(StartError::Other(format!(
            "listen.admin_token_env: {name} must hold at least 16 characters"
        ))),
        None => Err(StartError::Other(format!(
            "listen.admin_token_env: environment variable {name} is not set"
        ))),
    }
}

/// The secrets key, if configured. Without one the gateway refuses to start
/// when encrypted secrets are already stored (it could not use them), and
/// whenever `[oauth]` is configured: the authorization server stores signing
/// keys and identity-provider tokens, which are never written in clear.
async fn secret_box(
    env: &str,
    oauth: bool,
    store: &dyn Store,
) -> Result<Option<Arc<Vault>>, StartError> {
    match std::env::var(env).ok().filter(|v| !v.is_empty()) {
        Some(key) => Vault::from_base64(&key)
            .map(|b| Some(Arc::new(b)))
            .map_err(|e| StartError::Other(format!("{env}: {e}"))),
        None if oauth => Err(StartError::Other(format!(
            "[oauth] requires a secrets key: {env} is not set. Signing keys and identity-provider tokens are stored sealed with it; create one with `head -c 32 /dev/urandom | base64`, keep it, and export {env}=<that value> on every instance"
        ))),
        None => {
            let stored =
                store
                    .scan_prefix(crate::store::keys::SECRETS, 1)
                    .await
                    .map_err(|source| StartError::Store {
                        backend: store.backend(),
                        source,
                    })?;
            if stored.is_empty() {
                Ok(None)
            } else {
                Err(StartError::Other(format!(
                    "the store holds encrypted secrets but {env} is not set: set it to the key they were written with"
                )))
            }
        }
    }
}

async fn open_store(cfg: &StorageConfig) -> Result<Arc<dyn Store>, StartError> {
    match cfg {
        StorageConfig::Embedded { path, cache_bytes } => {
            store::open::open_embedded_with_cache(path, *cache_bytes)
                .await
                .map_err(|source| StartError::Store {
                    backend: "embedded",
                    source,
                })
        }
        StorageConfig::Redis {
            url,
            key_prefix,
            timeout,
        } => store::open::open_redis(url, key_prefix, *timeout)
            .await
            .map_err(|source| StartError::Store {
                backend: "redis",
                source,
            }),
    }
}
