//! The gateway's own routes, declared once: method, path pattern, guard,
//! CORS policy and handler. The proxy's `request_filter` serves every path
//! [`is_local_path`] claims through [`dispatch`]; CORS is decided from the
//! same table ([`cors_for`]); and a test checks that README lists each one.
//!
//! Guards (RFC 6750, RFC 8707, RFC 9700):
//! - [`Guard::Public`]: no credential; the OAuth endpoints authenticate
//!   their client themselves (RFC 6749 §2.3), discovery is public.
//! - [`Guard::Management`]: a bearer token issued for the management
//!   audience (`public_url` or `management.audiences`), via [`crate::auth::guard`].
//! - [`Guard::Browser`]: a page flow; the handler checks its single-use
//!   state or ticket and the cookie it set (CSRF), never a bearer alone.

use http::Method;

use crate::api::{self, Caller};
use crate::errors::{ApiError, OAuthError};
use crate::oauth::{self, OAuthServer};
use crate::state::State;
use crate::web::{LocalRequest, LocalResponse};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    Public,
    Management,
    Browser,
}

/// `GET /api/v1/openapi.json`: the document is generated from this table
/// (`crate::openapi`, a layer above), so the server registers its handler
/// here at start rather than this table importing it.
pub(crate) static OPENAPI: std::sync::OnceLock<fn() -> LocalResponse> = std::sync::OnceLock::new();

/// Which browser origins may read a route's answers (Fetch standard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cors {
    /// Any origin: token-less or bearer routes browser MCP clients call.
    AnyOrigin,
    /// No CORS headers: pages and cookie flows stay same-origin.
    SameOrigin,
}

/// What must be configured for a route to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    OAuth,
    DevIdp,
    /// `idp.kind = "workos_sso"` with `organizations_by_domain`.
    SsoEmail,
}

/// The handler a route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Discovery,
    Register,
    Authorize,
    Callback,
    Prove,
    Consent,
    Token,
    Refresh,
    Revoke,
    DevLoginPage,
    DevLogin,
    SsoEmailPage,
    SsoEmail,
    Me,
    Templates,
    ListApps,
    CreateApp,
    GetApp,
    PatchApp,
    DeleteApp,
    GetConfig,
    PutConfig,
    ListAudit,
    ListCommands,
    PatchCommands,
    ListAuths,
    CreateAuth,
    GetAuth,
    PatchAuth,
    DeleteAuth,
    ConnectStart,
    ConnectCallback,
    ConnectConfirm,
    ConnectDone,
    ConnectPipes,
    Healthz,
    OpenApi,
}

/// One route of the gateway itself.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: Method,
    /// Segments; `{name}` matches one segment, a final `*` any rest.
    pub(crate) path: &'static str,
    pub(crate) guard: Guard,
    pub(crate) cors: Cors,
    needs: Needs,
    pub(crate) handler: Handler,
}

const fn route(
    method: Method,
    path: &'static str,
    guard: Guard,
    cors: Cors,
    needs: Needs,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        guard,
        cors,
        needs,
        handler,
    }
}

use Cors::{AnyOrigin, SameOrigin};
use Guard::{Browser, Management, Public};
use Handler as H;
use Needs::{DevIdp, Nothing, OAuth, SsoEmail};

/// Every route the gateway answers itself.
pub(crate) static ROUTES: &[Route] = &[
    route(
        Method::GET,
        "/.well-known/oauth-authorization-server",
        Public,
        AnyOrigin,
        OAuth,
        H::Discovery,
    ),
    route(
        Method::GET,
        "/.well-known/oauth-protected-resource",
        Public,
        AnyOrigin,
        Nothing,
        H::Discovery,
    ),
    route(
        Method::GET,
        "/.well-known/oauth-protected-resource/*",
        Public,
        AnyOrigin,
        Nothing,
        H::Discovery,
    ),
    route(
        Method::GET,
        "/.well-known/jwks.json",
        Public,
        AnyOrigin,
        OAuth,
        H::Discovery,
    ),
    route(
        Method::POST,
        "/api/v1/auth/register",
        Public,
        AnyOrigin,
        OAuth,
        H::Register,
    ),
    route(
        Method::GET,
        "/api/v1/auth/authorize",
        Browser,
        SameOrigin,
        OAuth,
        H::Authorize,
    ),
    route(
        Method::GET,
        "/api/v1/auth/callback",
        Browser,
        SameOrigin,
        OAuth,
        H::Callback,
    ),
    route(
        Method::GET,
        "/api/v1/auth/prove",
        Browser,
        SameOrigin,
        OAuth,
        H::Prove,
    ),
    route(
        Method::POST,
        "/api/v1/auth/consent",
        Browser,
        SameOrigin,
        OAuth,
        H::Consent,
    ),
    route(
        Method::POST,
        "/api/v1/auth/token",
        Public,
        AnyOrigin,
        OAuth,
        H::Token,
    ),
    route(
        Method::POST,
        "/api/v1/auth/refresh",
        Public,
        AnyOrigin,
        OAuth,
        H::Refresh,
    ),
    route(
        Method::POST,
        "/api/v1/auth/revoke",
        Public,
        AnyOrigin,
        OAuth,
        H::Revoke,
    ),
    route(
        Method::GET,
        "/api/v1/auth/dev/login",
        Browser,
        SameOrigin,
        DevIdp,
        H::DevLoginPage,
    ),
    route(
        Method::POST,
        "/api/v1/auth/dev/login",
        Browser,
        SameOrigin,
        DevIdp,
        H::DevLogin,
    ),
    route(
        Method::GET,
        "/api/v1/auth/sso/email",
        Browser,
        SameOrigin,
        SsoEmail,
        H::SsoEmailPage,
    ),
    route(
        Method::POST,
        "/api/v1/auth/sso/email",
        Browser,
        SameOrigin,
        SsoEmail,
        H::SsoEmail,
    ),
    route(
        Method::GET,
        "/api/v1/me",
        Management,
        AnyOrigin,
        Nothing,
        H::Me,
    ),
    route(
        Method::GET,
        "/api/v1/openapi.json",
        Public,
        AnyOrigin,
        Nothing,
        H::OpenApi,
    ),
    route(
        Method::GET,
        "/api/v1/templates",
        Public,
        SameOrigin,
        Nothing,
        H::Templates,
    ),
    route(
        Method::GET,
        "/api/v1/apps",
        Management,
        SameOrigin,
        Nothing,
        H::ListApps,
    ),
    route(
        Method::POST,
        "/api/v1/apps",
        Management,
        SameOrigin,
        Nothing,
        H::CreateApp,
    ),
    route(
        Method::GET,
        "/api/v1/apps/{appId}",
        Management,
        SameOrigin,
        Nothing,
        H::GetApp,
    ),
    route(
        Method::PATCH,
        "/api/v1/apps/{appId}",
        Management,
        SameOrigin,
        Nothing,
        H::PatchApp,
    ),
    route(
        Method::DELETE,
        "/api/v1/apps/{appId}",
        Management,
        SameOrigin,
        Nothing,
        H::DeleteApp,
    ),
    route(
        Method::GET,
        "/api/v1/apps/{appId}/config",
        Management,
        SameOrigin,
        Nothing,
        H::GetConfig,
    ),
    route(
        Method::PUT,
        "/api/v1/apps/{appId}/config",
        Management,
        SameOrigin,
        Nothing,
        H::PutConfig,
    ),
    route(
        Method::GET,
        "/api/v1/apps/{appId}/audit",
        Management,
        SameOrigin,
        Nothing,
        H::ListAudit,
    ),
    route(
        Method::GET,
        "/api/v1/apps/{appId}/commands",
        Management,
        SameOrigin,
        Nothing,
        H::ListCommands,
    ),
    route(
        Method::PATCH,
        "/api/v1/apps/{appId}/commands",
        Management,
        SameOrigin,
        Nothing,
        H::PatchCommands,
    ),
    route(
        Method::GET,
        "/api/v1/apps/{appId}/auth",
        Management,
        SameOrigin,
        Nothing,
        H::ListAuths,
    ),
    route(
        Method::POST,
        "/api/v1/apps/{appId}/auth",
        Management,
        SameOrigin,
        Nothing,
        H::CreateAuth,
    ),
    route(
        Method::GET,
        "/api/v1/apps/{appId}/auth/{authId}",
        Management,
        SameOrigin,
        Nothing,
        H::GetAuth,
    ),
    route(
        Method::PATCH,
        "/api/v1/apps/{appId}/auth/{authId}",
        Management,
        SameOrigin,
        Nothing,
        H::PatchAuth,
    ),
    route(
        Method::DELETE,
        "/api/v1/apps/{appId}/auth/{authId}",
        Management,
        SameOrigin,
        Nothing,
        H::DeleteAuth,
    ),
    // A bearer or the one-time ticket of the link the gateway handed out; then a cookie binds the flow.
    route(
        Method::GET,
        "/api/v1/apps/{appId}/auth/{authId}/connect",
        Browser,
        SameOrigin,
        Nothing,
        H::ConnectStart,
    ),
    route(
        Method::GET,
        "/api/v1/connections/callback",
        Browser,
        SameOrigin,
        Nothing,
        H::ConnectCallback,
    ),
    route(
        Method::POST,
        "/api/v1/connections/confirm",
        Browser,
        SameOrigin,
        Nothing,
        H::ConnectConfirm,
    ),
    route(
        Method::GET,
        "/api/v1/connections/done",
        Browser,
        SameOrigin,
        Nothing,
        H::ConnectDone,
    ),
    route(
        Method::POST,
        "/api/v1/connections/pipes",
        Browser,
        SameOrigin,
        Nothing,
        H::ConnectPipes,
    ),
    route(
        Method::GET,
        "/healthz",
        Public,
        SameOrigin,
        Nothing,
        H::Healthz,
    ),
];

/// True when `path` belongs to the gateway rather than to an app (the hot
/// path asks this first, so it is prefix checks only).
pub(crate) fn is_local_path(path: &str) -> bool {
    path.starts_with("/.well-known/") || path.starts_with("/api/v1/") || path == "/healthz"
}

/// The CORS policy of whatever route `path` names (any method).
pub(crate) fn cors_for(path: &str) -> Cors {
    let any = ROUTES
        .iter()
        .any(|r| r.cors == AnyOrigin && matches(r.path, path).is_some());
    if any {
        AnyOrigin
    } else {
        SameOrigin
    }
}

/// Up to two `{param}` values of a matched path.
type Params<'a> = [&'a str; 2];

/// The values of `pattern`'s parameters in `path`, if it matches.
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Params<'a>> {
    let mut params = [""; 2];
    let mut n = 0;
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some("*"), Some(s)) if !s.is_empty() => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() || n == params.len() {
                    return None;
                }
                params[n] = g;
                n += 1;
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

enum Lookup<'a> {
    Found(&'static Route, Params<'a>),
    WrongMethod,
    NotFound,
}

fn lookup<'a>(method: &Method, path: &'a str) -> Lookup<'a> {
    let mut path_known = false;
    for r in ROUTES {
        if let Some(params) = matches(r.path, path) {
            // HEAD is GET without a body (RFC 9110 §9.3.2).
            if r.method == *method || (*method == Method::HEAD && r.method == Method::GET) {
                return Lookup::Found(r, params);
            }
            path_known = true;
        }
    }
    if path_known {
        Lookup::WrongMethod
    } else {
        Lookup::NotFound
    }
}

/// Answers a request for one of the gateway's own routes.
pub(crate) async fn dispatch(state: &State, req: &LocalRequest) -> LocalResponse {
    let oauth_area = req.path.starts_with("/api/v1/auth/");
    let (route, params) = match lookup(&req.method, &req.path) {
        Lookup::Found(r, p) if available(state, r) => (r, p),
        Lookup::Found(..) | Lookup::NotFound if oauth_area => return unknown_oauth_route(),
        Lookup::WrongMethod if oauth_area => return unknown_oauth_route(),
        Lookup::WrongMethod => {
            let e = ApiError::new(
                405,
                "method_not_allowed",
                "Method not allowed on this route",
            );
            return LocalResponse::api_error(&e, &req.request_id);
        }
        Lookup::Found(..) | Lookup::NotFound => {
            return LocalResponse::api_error(&ApiError::not_found("Route"), &req.request_id)
        }
    };
    let caller = match route.guard {
        Guard::Management => match api::caller(&state.api(), req).await {
            Ok(c) => Some(c),
            Err(refusal) => return refusal,
        },
        Guard::Public | Guard::Browser => None,
    };
    // Pages show the request id (web::pages::message); scoped once here.
    crate::web::pages::with_request_id(req.request_id.clone(), async {
        match (state.oauth.as_deref(), caller) {
            (_, Some(user)) => managed(state, req, route.handler, &user, params).await,
            (oauth, None) => open(state, oauth, req, route.handler, params).await,
        }
    })
    .await
}

fn available(state: &State, r: &Route) -> bool {
    match r.needs {
        Needs::Nothing => true,
        Needs::OAuth => state.oauth.is_some(),
        Needs::DevIdp => state.oauth.as_ref().is_some_and(|o| o.idp.is_dev()),
        Needs::SsoEmail => state.oauth.as_ref().is_some_and(|o| {
            matches!(
                o.idp.cfg.sso,
                Some(crate::config::oauth::SsoTarget::ByDomain(_))
            )
        }),
    }
}

fn unknown_oauth_route() -> LocalResponse {
    LocalResponse::oauth_error(&OAuthError::new(
        404,
        "invalid_request",
        "unknown OAuth route or method",
    ))
}

/// Routes behind the management guard.
async fn managed(
    state: &State,
    req: &LocalRequest,
    handler: Handler,
    user: &Caller,
    [id, auth]: Params<'_>,
) -> LocalResponse {
    use api::{apps, commands, connections};
    let cx = &state.api();
    if handler == H::Me {
        return api::me::me(cx, user).await;
    }
    let result = async {
        match handler {
            H::ListApps => apps::list(cx, user).await,
            H::CreateApp => apps::create(cx, user, api::body(req)?).await,
            H::GetApp => apps::get(cx, user, id).await,
            H::PatchApp => apps::patch(cx, user, id, api::body(req)?).await,
            H::DeleteApp => apps::delete(cx, user, id).await,
            H::GetConfig => apps::get_config(cx, user, id).await,
            H::PutConfig => apps::put_config(cx, user, id, api::body(req)?).await,
            H::ListAudit => crate::audit::api::list(cx, user, id, req).await,
            H::ListCommands => commands::list(cx, user, id).await,
            H::PatchCommands => commands::patch(cx, user, id, api::body(req)?).await,
            H::ListAuths => connections::list(cx, user, id).await,
            H::CreateAuth => connections::create(cx, user, id, api::body(req)?).await,
            H::GetAuth => connections::get(cx, user, id, auth).await,
            H::PatchAuth => connections::patch(cx, user, id, auth, api::body(req)?).await,
            H::DeleteAuth => connections::delete(cx, user, id, auth).await,
            _ => Err(ApiError::internal()),
        }
    }
    .await;
    result.unwrap_or_else(|e| LocalResponse::api_error(&e, &req.request_id))
}

/// Public and browser routes.
async fn open(
    state: &State,
    oauth: Option<&OAuthServer>,
    req: &LocalRequest,
    handler: Handler,
    [id, auth]: Params<'_>,
) -> LocalResponse {
    use oauth::{authorize, callback, consent, dev, metadata, register, revoke, token};
    let (api_cx, cx) = (&state.api(), &state.oauth_ctx());
    let not_found = || LocalResponse::api_error(&ApiError::not_found("Route"), &req.request_id);
    match (handler, oauth) {
        (H::Discovery, _) => metadata::dispatch(cx, req).await.unwrap_or_else(not_found),
        (H::Templates, _) => api::templates::list(),
        (H::OpenApi, _) => OPENAPI.get().map_or_else(not_found, |serve| serve()),
        (H::ConnectStart, _) => api::connect::start(api_cx, req, id, auth).await,
        (H::ConnectCallback, _) => api::connect::callback(api_cx, req).await,
        (H::ConnectConfirm, _) => api::connect::confirm(api_cx, req).await,
        (H::ConnectDone, _) => api::connect::done(),
        (H::ConnectPipes, _) => api::connect::pipes_confirm(api_cx, req).await,
        (H::Healthz, _) => LocalResponse::json(200, &serde_json::json!({"status": "ok"})),
        (H::Register, Some(o)) => register::register(cx, o, req).await,
        (H::Authorize, Some(o)) => authorize::authorize(cx, o, req).await,
        (H::Callback, Some(o)) => callback::callback(cx, o, req).await,
        (H::Prove, Some(o)) => oauth::proof::start(cx, o, req).await,
        (H::Consent, Some(o)) => consent::decide(cx, o, req).await,
        (H::Token, Some(o)) => token::token(cx, o, req).await,
        (H::Refresh, Some(o)) => token::refresh_route(cx, o, req).await,
        (H::Revoke, Some(o)) => revoke::revoke(cx, o, req).await,
        (H::DevLoginPage, Some(_)) => dev::login_page(req),
        (H::DevLogin, Some(_)) => dev::submit(cx, req).await,
        (H::SsoEmailPage, Some(o)) => oauth::workos_sso::email_page(cx, o, req).await,
        (H::SsoEmail, Some(o)) => oauth::workos_sso::email_submit(cx, o, req).await,
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert_eq!(
            matches(
                "/api/v1/apps/{appId}/auth/{authId}",
                "/api/v1/apps/a1/auth/b2"
            ),
            Some(["a1", "b2"])
        );
        assert!(matches("/api/v1/apps/{appId}", "/api/v1/apps/").is_none());
        assert!(matches("/api/v1/apps/{appId}", "/api/v1/apps/a/b").is_none());
        assert!(matches("/api/v1/apps", "/api/v1/appsx").is_none());
        assert!(matches(
            "/.well-known/oauth-protected-resource/*",
            "/.well-known/oauth-protected-resource/apps/x/mcp"
        )
        .is_some());
        assert!(matches(
            "/.well-known/oauth-protected-resource/*",
            "/.well-known/oauth-protected-resource/"
        )
        .is_none());
    }

    #[test]
    fn every_route_is_local_unique_and_guarded_as_its_area_needs() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(is_local_path(r.path.trim_end_matches('*')), "{}", r.path);
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|o| o.method == r.method && o.path == r.path),
                "declared twice: {} {}",
                r.method,
                r.path
            );
            // The management API never answers without its guard.
            if r.path.starts_with("/api/v1/apps") && !r.path.ends_with("/connect") {
                assert_eq!(r.guard, Guard::Management, "{} {}", r.method, r.path);
            }
            // Cookie flows never answer other origins.
            if r.guard == Guard::Browser {
                assert_eq!(r.cors, Cors::SameOrigin, "{} {}", r.method, r.path);
            }
        }
        assert!(matches!(
            lookup(&Method::DELETE, "/api/v1/apps"),
            Lookup::WrongMethod
        ));
        assert!(matches!(
            lookup(&Method::GET, "/api/v1/nope"),
            Lookup::NotFound
        ));
        assert!(matches!(
            lookup(&Method::HEAD, "/healthz"),
            Lookup::Found(..)
        ));
        assert_eq!(cors_for("/api/v1/auth/token"), Cors::AnyOrigin);
        assert_eq!(cors_for("/api/v1/auth/consent"), Cors::SameOrigin);
    }

    #[test]
    fn readme_lists_every_route() {
        let readme = include_str!("../README.md");
        let mut missing = Vec::new();
        for r in ROUTES {
            // README writes `GET/POST /api/v1/apps` and `…/oauth-protected-resource[/apps/{slug}/mcp]`.
            let path = r.path.trim_end_matches("/*");
            let listed = readme.lines().any(|line| {
                line.contains(r.method.as_str())
                    && line.split(['`', ' ', '[', ',']).any(|w| w == path)
            });
            if !listed {
                missing.push(format!("{} {}", r.method, r.path));
            }
        }
        assert!(missing.is_empty(), "README does not list: {missing:#?}");
    }
}
