//! The shared state every phase and handler reads: configuration, the live
//! route table, the store, metrics and the outbound HTTP clients, with the
//! few accessors that work on them (the catalog's handles, route rebuilds).
//!
//! Built once at start by [`crate::bootstrap`] (on the gateway's background
//! runtime) and shared by `Arc`; this module only holds it. Handlers never
//! see it: [`State::api`] and [`State::oauth_ctx`] lend each one the small
//! context of handles it uses. Nothing reaches back into the proxy or the
//! bootstrap.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::TokenValidator;
use crate::catalog::live::InjectionCache;
use crate::catalog::reloader::Reloader;
use crate::catalog::route::RouteTable;
use crate::config::Config;
use crate::egress::EgressClient;
use crate::metrics::Metrics;
use crate::secrets::Secret;
use crate::store::vault::Vault;
use crate::store::{Store, StoreError};
use crate::util::clock::Clock;

pub(crate) struct State {
    pub(crate) config: Arc<Config>,
    pub(crate) routes: ArcSwap<RouteTable>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: Arc<Metrics>,
    /// Rate limits on app traffic (see [`crate::limits`]).
    pub(crate) limiter: Arc<crate::limits::Limiter>,
    /// The audit log of MCP calls (see [`crate::audit`]).
    pub(crate) audit: Arc<crate::audit::Auditor>,
    /// Outbound client for the operator's endpoints (identity provider, JWKS,
    /// introspection, config-file apps).
    pub(crate) http: reqwest::Client,
    /// Outbound client for URLs users supply (connection endpoints, API-created
    /// apps): the egress policy applies (see [`crate::egress`]).
    pub(crate) egress: EgressClient,
    /// Bearer validation for apps and the management API.
    pub(crate) auth: Arc<TokenValidator>,
    /// Encryption of stored secrets; None when no key is configured.
    pub(crate) vault: Option<Arc<Vault>>,
    pub(crate) injections: InjectionCache,
    /// Gateway token mode: where token exchanges read the user's IdP token.
    pub(crate) sessions: Option<Arc<dyn crate::credentials::token_exchange::SubjectTokens>>,
    /// The authorization server, when `[oauth]` is configured.
    pub(crate) oauth: Option<Arc<crate::oauth::OAuthServer>>,
    /// Bearer token of the admin listener's write routes (from the variable
    /// named by `listen.admin_token_env`); None turns those routes off.
    pub(crate) admin_token: Option<Secret>,
    /// The wall clock every expiry is judged by (see [`crate::util::clock`]).
    pub(crate) clock: Clock,
    /// The one owner of route rebuilds (see [`crate::catalog::reloader`]).
    pub(crate) reloader: Reloader,
    /// This process's name on the change channel, so it can skip its own
    /// broadcasts (its writes have already asked for a rebuild).
    pub(crate) instance: String,
}

impl State {
    /// The handles the catalog works with.
    pub(crate) fn catalog(&self) -> crate::catalog::live::CatalogCtx<'_> {
        crate::catalog::live::CatalogCtx {
            config: &self.config,
            store: &self.store,
            egress: &self.egress,
            dns: self.reloader.dns(),
            vault: &self.vault,
            clock: &self.clock,
            injections: &self.injections,
            sessions: &self.sessions,
        }
    }

    /// The handles the management API's handlers use.
    pub(crate) fn api(&self) -> crate::api::ApiCtx<'_> {
        crate::api::ApiCtx {
            config: &self.config,
            store: &self.store,
            routes: &self.routes,
            http: &self.http,
            egress: &self.egress,
            auth: &self.auth,
            vault: &self.vault,
            clock: &self.clock,
            catalog: self.catalog(),
            changes: crate::catalog::reloader::Changes {
                reloader: &self.reloader,
                store: self.store.as_ref(),
                instance: &self.instance,
            },
            oauth_enabled: self.oauth.is_some(),
        }
    }

    /// The handles the authorization server's handlers use.
    pub(crate) fn oauth_ctx(&self) -> crate::oauth::OAuthCtx<'_> {
        crate::oauth::OAuthCtx {
            config: &self.config,
            store: &self.store,
            routes: &self.routes,
            http: &self.http,
            auth: &self.auth,
            vault: &self.vault,
            clock: &self.clock,
            oauth: self.oauth.as_deref(),
        }
    }

    /// Builds a route table from the config and the catalog in the store and
    /// makes it live. Called at start (before any other rebuild can run) and
    /// by the reloader task only (both started by [`crate::bootstrap`]): see
    /// [`crate::catalog::reloader`].
    pub(crate) async fn rebuild_routes(&self) -> Result<(), StoreError> {
        let table = crate::catalog::live::build(&self.catalog()).await?;
        self.routes.store(Arc::new(table));
        Ok(())
    }
}
