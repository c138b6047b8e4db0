//! Per-request state carried across the proxy phases.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Principal;
use crate::catalog::route::Route;
use crate::credentials::Resolved;
use crate::metrics::{UpstreamErrorKind, LOCAL_APP, NO_APP};

/// Typed per-request context (Pingora's `CTX`).
pub struct Ctx {
    pub request_id: String,
    pub started: Instant,
    /// The app this request was routed to, if any.
    pub route: Option<Arc<Route>>,
    /// Path and query to send upstream, computed in `request_filter`.
    pub upstream_uri: Option<http::Uri>,
    /// Answered by the gateway itself (OAuth, management API, health).
    pub local: bool,
    /// The response is an SSE stream (counted in `drio_open_streams`).
    pub streaming: bool,
    pub upstream_error: Option<UpstreamErrorKind>,
    /// Who the bearer token speaks for (protected apps only).
    pub principal: Option<Arc<Principal>>,
    /// Upstream credentials resolved for this request.
    pub credential: Option<Resolved>,
    /// The caller's `Origin`, already checked against the app's allowlist.
    pub cors_origin: Option<http::HeaderValue>,
    /// An `initialize` that declared URL-mode elicitation: remember it under
    /// the session id of the upstream's answer.
    pub url_elicitation_session: bool,
    /// What the audit event of this request will say (see [`crate::audit`]).
    pub audit: crate::audit::Collected,
    /// The request's trace (see [`crate::telemetry`]); None when tracing is
    /// off, so the hot path allocates nothing for it.
    pub(crate) trace: Option<Box<crate::telemetry::RequestTrace>>,
}

impl Ctx {
    pub fn new() -> Self {
        Self {
            request_id: String::new(),
            started: Instant::now(),
            route: None,
            upstream_uri: None,
            local: false,
            streaming: false,
            upstream_error: None,
            principal: None,
            cors_origin: None,
            credential: None,
            url_elicitation_session: false,
            audit: Default::default(),
            trace: None,
        }
    }

    /// The `app` metric label: a configured slug or a fixed marker.
    pub fn app_label(&self) -> &str {
        match (&self.route, self.local) {
            (Some(r), _) => &r.app.slug,
            (None, true) => LOCAL_APP,
            (None, false) => NO_APP,
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Self::new()
    }
}
