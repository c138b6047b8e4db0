//! The management API (`/api/v1/apps…`, `/api/v1/templates`): apps, their
//! config and commands, and upstream auth connections, in the shapes of
//! seed `002_*`, with drio's error envelope on every failure.
//!
//! Every route but the template list requires a bearer token (RFC 6750),
//! validated by the same two-tier cache as the data plane. Apps belong to
//! the user who created them; another user gets 404 so existence does not
//! leak. Configured admins see every app.
//!
//! Handlers take an [`ApiCtx`]: the handles they use, lent for one request
//! by `State::api` (the only place that assembles one).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use arc_swap::ArcSwap;

use crate::auth::{bearer, guard, Principal, TokenError, TokenValidator};
use crate::catalog::live::CatalogCtx;
use crate::catalog::reloader::Changes;
use crate::catalog::route::RouteTable;
use crate::config::Config;
use crate::egress::EgressClient;
use crate::errors::ApiError;
use crate::store::vault::Vault;
use crate::store::Store;
use crate::util::clock::Clock;
use crate::web::{LocalRequest, LocalResponse};

pub(crate) mod apps;
pub(crate) mod commands;
pub mod connect;
pub(crate) mod connections;
pub(crate) mod me;
pub(crate) mod templates;
pub(crate) mod view;

/// What the management API's handlers use, borrowed for one request.
pub(crate) struct ApiCtx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) store: &'a Arc<dyn Store>,
    /// The live route table (an app's upstream, for its tool list).
    pub(crate) routes: &'a ArcSwap<RouteTable>,
    /// Outbound client for the operator's endpoints (config-file apps).
    pub(crate) http: &'a reqwest::Client,
    /// Outbound client for URLs users supply: the egress policy applies.
    pub(crate) egress: &'a EgressClient,
    /// Bearer validation for the management guard.
    pub(crate) auth: &'a TokenValidator,
    pub(crate) vault: &'a Option<Arc<Vault>>,
    pub(crate) clock: &'a Clock,
    /// The catalog's handles (stored apps, connections, credentials).
    pub(crate) catalog: CatalogCtx<'a>,
    /// Announces a catalog write (see [`ApiCtx::catalog_changed`]).
    pub(crate) changes: Changes<'a>,
    /// The authorization server runs (`[oauth]`), so a browser can prove who
    /// it is there (`oauth::proof`).
    pub(crate) oauth_enabled: bool,
}

impl ApiCtx<'_> {
    /// Called after a catalog write is stored; returns once this instance
    /// routes by it (bounded; see [`Changes::announce`]).
    pub(crate) async fn catalog_changed(&self) {
        self.changes.announce().await;
    }
}

/// The authenticated user of a management request.
pub(crate) struct Caller {
    pub(crate) principal: Arc<Principal>,
    pub(crate) admin: bool,
}

impl Caller {
    pub(crate) fn subject(&self) -> &str {
        &self.principal.subject
    }
}

/// The management API's guard: a bearer issued for the management audience
/// (`public_url` or `management.audiences`), never an app's token.
pub(crate) async fn caller(cx: &ApiCtx<'_>, req: &LocalRequest) -> Result<Caller, LocalResponse> {
    let refuse = |e: TokenError| {
        let (status, code, message) = match &e {
            TokenError::Unavailable(_) => (
                503,
                "service_unavailable",
                "The access token cannot be verified right now".to_string(),
            ),
            TokenError::Audience { expected } => (
                401,
                "unauthorized",
                format!("The access token was not issued for {expected}; request one for it"),
            ),
            _ => (
                401,
                "unauthorized",
                "Missing or invalid Bearer access token".to_string(),
            ),
        };
        let mut resp =
            LocalResponse::api_error(&ApiError::new(status, code, message), &req.request_id);
        let metadata = format!(
            "{}/.well-known/oauth-protected-resource",
            cx.config.public_url
        );
        if let Some(c) =
            bearer::challenge(&e, &metadata, &[]).and_then(|c| http::HeaderValue::from_str(&c).ok())
        {
            resp = resp.with_header(http::header::WWW_AUTHENTICATE, c);
        }
        resp
    };
    let principal = guard::check(
        cx.auth,
        req.headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        req.query.as_deref(),
        guard::Policy {
            audiences: &cx.config.management_audiences,
            scopes: &[],
        },
    )
    .await
    .map_err(refuse)?;
    let admin = is_admin(&cx.config.admins, &principal);
    Ok(Caller { principal, admin })
}

/// Admins are named by subject, or by e-mail only when the identity
/// provider verified it: an unverified address can be typed by anyone.
pub(crate) fn is_admin(admins: &[String], p: &Principal) -> bool {
    admins
        .iter()
        .any(|a| *a == p.subject || (p.email_verified && p.email.as_deref() == Some(a.as_str())))
}

/// Parses a JSON body; a bad body is 400 naming the problem.
pub(crate) fn body<T: DeserializeOwned>(req: &LocalRequest) -> Result<T, ApiError> {
    if req.body.is_empty() {
        return serde_json::from_value(Value::Object(Default::default()))
            .map_err(|e| ApiError::bad_request(format!("a JSON body is required: {e}")));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Connection secrets' errors in the management API's envelope (the one
/// place they become HTTP; the messages are the ones the API always gave).
impl From<crate::catalog::secrets::SecretsError> for ApiError {
    fn from(e: crate::catalog::secrets::SecretsError) -> Self {
        use crate::catalog::secrets::SecretsError as E;
        match e {
            E::NoKey => ApiError::new(503, "secrets_unavailable", e.to_string()),
            E::Unreadable => ApiError::new(500, "secret_unreadable", e.to_string()),
            E::Store(s) => store_err(s),
            E::Encoding => ApiError::internal(),
        }
    }
}

fn store_err(e: crate::store::StoreError) -> ApiError {
    ApiError::unavailable(format!("store: {e}"))
}
