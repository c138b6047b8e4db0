//! The shared state every phase and handler reads: configuration, the live
//! route table, the store, metrics and the outbound HTTP client.
//!
//! Built once at start (on the gateway's background runtime) and shared by
//! `Arc`. Handlers get what they need from here; nothing reaches back into the
//! proxy.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::auth::TokenValidator;
use crate::config::{Config, StorageConfig};
use crate::metrics::Metrics;
use crate::proxy::route::RouteTable;
use crate::store::{self, Store, StoreError};

pub struct State {
    pub config: Arc<Config>,
    pub routes: ArcSwap<RouteTable>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Outbound client for identity providers and upstream token endpoints.
    pub http: reqwest::Client,
    /// Bearer validation for apps and the management API.
    pub auth: Arc<TokenValidator>,
}

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

impl State {
    pub async fn build(config: Config) -> Result<Arc<State>, StartError> {
        let store = open_store(&config.storage).await?;
        let metrics = Arc::new(Metrics::new()?);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drio-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let auth = crate::auth::build::validator(
            &config.auth,
            None,
            None,
            Arc::clone(&store),
            http.clone(),
            &metrics.registry,
        )?;
        auth.spawn_background()
            .await
            .map_err(|source| StartError::Store {
                backend: store.backend(),
                source,
            })?;
        let routes = RouteTable::build(
            &config.public_url,
            &config.auth.audiences,
            config.apps.iter().cloned().map(Arc::new),
        )
        .await;
        Ok(Arc::new(State {
            config: Arc::new(config),
            routes: ArcSwap::from_pointee(routes),
            store,
            metrics,
            http,
            auth,
        }))
    }

    /// Re-resolves upstream host names now and then, so a DNS change reaches
    /// the data plane without a restart.
    pub fn spawn_background(self: &Arc<Self>) {
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                let apps: Vec<_> = state.routes.load().apps().cloned().collect();
                state.routes.store(Arc::new(
                    RouteTable::build(&state.config.public_url, &state.config.auth.audiences, apps)
                        .await,
                ));
            }
        });
    }
}

async fn open_store(cfg: &StorageConfig) -> Result<Arc<dyn Store>, StartError> {
    match cfg {
        StorageConfig::Embedded { path } => {
            store::open::open_embedded(path)
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
