//! Per-request state carried across the proxy phases.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::Principal;
use crate::catalog::route::Route;
use crate::credentials::Resolved;
use crate::metrics::{UpstreamErrorKind, LOCAL_APP, NO_APP};

/// Typed per-request context (Pingora's `CTX`).
pub(crate) struct Ctx {
    pub(crate) request_id: String,
    pub(crate) started: Instant,
    /// The app this request was routed to, if any.
    pub(crate) route: Option<Arc<Route>>,
    /// Path and query to send upstream, computed in `request_filter`.
    pub(crate) upstream_uri: Option<http::Uri>,
    /// Answered by the gateway itself (OAuth, management API, health).
    pub(crate) local: bool,
    /// The response is an SSE stream (counted in `drio_open_streams`).
    pub(crate) streaming: bool,
    pub(crate) upstream_error: Option<UpstreamErrorKind>,
    /// Who the bearer token speaks for (protected apps only).
    pub(crate) principal: Option<Arc<Principal>>,
    /// Upstream credentials resolved for this request.
    pub(crate) credential: Option<Resolved>,
    /// The caller's `Origin`, already checked against the app's allowlist.
    pub(crate) cors_origin: Option<http::HeaderValue>,
    /// An `initialize` that declared URL-mode elicitation: remember it under
    /// the session id of the upstream's answer.
    pub(crate) url_elicitation_session: bool,
    /// What the audit event of this request will say (see [`crate::audit`]).
    pub(crate) audit: crate::audit::Collected,
    /// The request's trace (see [`crate::telemetry`]); None when tracing is
    /// off, so the hot path allocates nothing for it.
    pub(crate) trace: Option<Box<crate::telemetry::RequestTrace>>,
}

impl Ctx {
    pub(crate) fn new() -> Self {
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
    pub(crate) fn app_label(&self) -> &str {
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
