//! The last `request_filter` step for an app: inspect the body where the
//! app's tool policy or per-user credentials need it, and resolve the
//! upstream credential (MCP authorization spec: the gateway, not the client,
//! authenticates to the upstream).

use pingora::proxy::Session;

use crate::catalog::route::Route;
use crate::credentials::{elicitation, InjectError, Subject};
use crate::errors::ApiError;
use crate::limits::{self, Limiter};
use crate::proxy::ctx::Ctx;
use crate::proxy::jsonrpc;
use crate::state::State;

/// The app-specific steps that need the body or a credential: tool policy
/// and upstream credentials. Returns a refusal to send instead.
///
/// Also gathers the audit event's facts: the body's messages, the JSON-RPC
/// code of a refusal, and when the upstream's part begins.
pub(crate) async fn prepare_upstream(
    session: &mut Session,
    state: &State,
    ctx: &mut Ctx,
    route: &Route,
) -> pingora::Result<Option<crate::web::LocalResponse>> {
    let auditing = state.audit.active();
    let refusal = prepare(session, state, ctx, route, auditing).await?;
    match &refusal {
        Some(r) => ctx.audit.refusal_code = audit_refusal_code(r),
        None => ctx.audit.upstream_started = Some(std::time::Instant::now()),
    }
    Ok(refusal)
}

/// The `error.code` of a JSON-RPC error the gateway answers itself (drio
/// envelopes have a string code and give None).
fn audit_refusal_code(r: &crate::web::LocalResponse) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v.get("jsonrpc")?;
    v.pointer("/error/code")?.as_i64()
}

/// Auditing alone reads a body only when it is declared small enough to be
/// replayed (`Content-Length` ≤ 64 KiB): it must never refuse or stall a
/// request the app would otherwise get. A chunked or larger body is
/// audited without its method.
fn audit_wants_body(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n <= jsonrpc::MAX_INSPECTED_BODY)
}

async fn prepare(
    session: &mut Session,
    state: &State,
    ctx: &mut Ctx,
    route: &Route,
    auditing: bool,
) -> pingora::Result<Option<crate::web::LocalResponse>> {
    let limiter: &Limiter = &state.limiter;
    let per_user = route.injection.per_user();
    // A tool limit or a tool's scopes, like a disabled tool, must not be
    // dodged with a body the gateway cannot read: strict inspection.
    let policy = !route.disabled_tools.is_empty()
        || !route.app.limits.tools.is_empty()
        || !route.app.tool_scopes.is_empty();
    let audit = auditing && audit_wants_body(session);
    let body = match jsonrpc::inspect(session, per_user || policy || audit, policy).await? {
        Ok(jsonrpc::Inspected::Body(b)) => b,
        Ok(jsonrpc::Inspected::Skipped) => None,
        Err(refusal) => return Ok(Some(refusal)),
    };
    if auditing {
        if let Some(b) = &body {
            ctx.audit.messages = crate::audit::event::messages(b, &route.app.audit);
        }
    }
    if let Some(refusal) = body.as_ref().and_then(|b| jsonrpc::check_tools(route, b)) {
        return Ok(Some(refusal));
    }
    if let Some(mut refusal) = body
        .as_ref()
        .and_then(|b| step_up_refusal(route, ctx.principal.as_deref(), b))
    {
        // A browser client on an allowed origin must be able to read the
        // challenge (the proxied path adds these in `response_filter`).
        if let Some(origin) = &ctx.cors_origin {
            refusal
                .headers
                .extend(crate::proxy::cors::app_headers(origin));
        }
        return Ok(Some(refusal));
    }
    if limiter.applies(route) {
        let caller = || super::limited::caller_bucket(session, limiter);
        let principal = ctx.principal.as_deref();
        let enforce = limits::enforce(limiter, route, principal, caller, body.as_ref());
        // Boxed: store round trips, off the path of apps without limits.
        let refusal = Box::pin(enforce).await;
        if let Some(refusal) = refusal {
            let answer = super::limited::response(&refusal, body.as_ref(), &ctx.request_id);
            return Ok(Some(answer));
        }
    }
    let mut span = crate::telemetry::child(
        "credential resolution",
        opentelemetry::trace::SpanKind::Internal,
    );
    crate::telemetry::set(&mut span, "connection.type", route.injection.kind());
    // A static credential (API key, fixed header or query) is a clone, with
    // no future to build or await.
    if let Some(resolved) = route.injection.resolve_static() {
        crate::telemetry::set(&mut span, "outcome", "resolved");
        ctx.credential = Some(resolved);
        return Ok(None);
    }
    let bearer = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .filter(|_| route.injection.reads_bearer())
        .and_then(|v| crate::auth::extract_bearer(Some(v.as_bytes())).ok());
    // Only where the answer can matter: an app with a per-user credential.
    if per_user
        && body
            .as_ref()
            .is_some_and(elicitation::initialize_declares_url_mode)
    {
        // Remembered once the upstream names the session (response_filter).
        ctx.url_elicitation_session = true;
    }
    let who = Subject {
        principal: ctx.principal.as_deref(),
        bearer,
    };
    // Current while resolving: the kinds with a cache note `cache.hit`.
    let cx = span.as_ref().map(crate::telemetry::Child::context);
    // Boxed: each kind's resolution (cache, token endpoint) is a large
    // future that static credentials never need.
    let resolve = Box::pin(route.injection.resolve_for(who));
    let resolved = crate::telemetry::within(cx, resolve).await;
    crate::telemetry::set(
        &mut span,
        "outcome",
        match &resolved {
            Ok(_) => "resolved",
            Err(InjectError::NotConnected { .. }) => "not_connected",
            Err(_) => "error",
        },
    );
    drop(span);
    match resolved {
        Ok(resolved) => {
            ctx.credential = Some(resolved);
            Ok(None)
        }
        Err(InjectError::NotConnected { connect_url }) => {
            let url_mode = match &body {
                Some(b) => Box::pin(wants_url_elicitation(session, state, ctx, route, b)).await,
                None => false,
            };
            let message = format!("Connect your account for this app first: {connect_url}");
            Ok(Some(match &body {
                // MCP 2025-11-25 URL-mode elicitation: the client shows the
                // link to its user itself and may retry after it completes.
                Some(b) if url_mode => jsonrpc::error_response(
                    &jsonrpc::request_id(Some(b)),
                    elicitation::URL_ELICITATION_REQUIRED,
                    "Connect your account for this app first",
                    Some(elicitation::elicitation_data(
                        &connect_url,
                        &format!("Connect your account to use {}", route.app.name),
                    )),
                    200,
                ),
                Some(b) => jsonrpc::error_response(
                    &jsonrpc::request_id(Some(b)),
                    jsonrpc::AUTH_REQUIRED,
                    &message,
                    Some(serde_json::json!({ "connectUrl": connect_url })),
                    200,
                ),
                None => crate::web::LocalResponse::api_error(
                    &ApiError::new(403, "upstream_authorization_required", message)
                        .with_details(serde_json::json!({ "connectUrl": connect_url })),
                    &ctx.request_id,
                ),
            }))
        }
        Err(InjectError::Refused { reason }) => {
            // The reason class only: the token service's text never reaches the client.
            let message = format!("The token service refused this app's credential ({reason})");
            let data = serde_json::json!({ "reason": reason });
            // JSON-RPC 2.0 §5.1: a service that cannot answer is an internal error.
            let code = if reason == "unavailable" {
                -32603
            } else {
                jsonrpc::AUTH_REQUIRED
            };
            Ok(Some(match &body {
                Some(b) => jsonrpc::error_response(
                    &jsonrpc::request_id(Some(b)),
                    code,
                    &message,
                    Some(data),
                    200,
                ),
                None => crate::web::LocalResponse::api_error(
                    &ApiError::new(403, "upstream_authorization_refused", message)
                        .with_details(data),
                    &ctx.request_id,
                ),
            }))
        }
        Err(InjectError::Unavailable(why)) => {
            tracing::warn!(app = %route.app.slug, error = %why, "upstream credentials unavailable");
            Ok(Some(crate::web::LocalResponse::api_error(
                &ApiError::new(
                    502,
                    "upstream_credentials_unavailable",
                    "The gateway could not obtain credentials for this app's upstream",
                ),
                &ctx.request_id,
            )))
        }
    }
}

/// JSON-RPC code of a step-up refusal (implementation-defined server error;
/// the HTTP 403 and its challenge are what clients act on).
const INSUFFICIENT_SCOPE: i64 = -32003;

/// A `tools/call` (or a batch holding one) whose token lacks a scope the
/// tool requires: 403 with the step-up challenge naming every scope needed
/// (see [`crate::config::tool_policy`]); the whole batch is refused.
fn step_up_refusal(
    route: &Route,
    principal: Option<&crate::auth::Principal>,
    body: &serde_json::Value,
) -> Option<crate::web::LocalResponse> {
    use crate::config::tool_policy;
    let held = principal.map_or(&[][..], |p| p.scopes.as_slice());
    let needed = tool_policy::step_up(&route.app.tool_scopes, held, body)?;
    let challenge = tool_policy::challenge(&needed, &route.resource_metadata_url);
    let id = match body {
        serde_json::Value::Array(_) => serde_json::Value::Null,
        one => jsonrpc::request_id(Some(one)),
    };
    let resp = jsonrpc::error_response(
        &id,
        INSUFFICIENT_SCOPE,
        "The access token lacks a scope this tool requires; authorize again with the scopes in WWW-Authenticate",
        Some(serde_json::json!({ "reason": "insufficient_scope", "scope": needed.join(" ") })),
        403,
    );
    Some(match http::HeaderValue::from_str(&challenge) {
        Ok(v) => resp.with_header(http::header::WWW_AUTHENTICATE, v),
        // Unreachable (scope tokens and our own URL are header-safe); the
        // 403 still refuses.
        Err(_) => resp,
    })
}

/// Whether the client declared URL-mode elicitation: in this body
/// (`initialize`, or `_meta` when stateless), or in the `initialize` of the
/// session it names (remembered per app and user).
async fn wants_url_elicitation(
    session: &Session,
    state: &State,
    ctx: &Ctx,
    route: &Route,
    body: &serde_json::Value,
) -> bool {
    if elicitation::declares_url_mode(body) {
        return true;
    }
    let (Some(p), Some(sid)) = (
        ctx.principal.as_deref(),
        session
            .req_header()
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    elicitation::session_declared(state.store.as_ref(), &route.app.id, &p.subject, sid).await
}

/// The `initialize` of this response declared URL-mode elicitation:
/// remember it under the session id the upstream chose. Awaited (once per
/// session): the client's next request may follow at once.
pub(crate) async fn remember_url_elicitation(
    state: &State,
    resp: &pingora::http::ResponseHeader,
    ctx: &Ctx,
) {
    let sid = resp
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok());
    if let (Some(sid), Some(route), Some(p)) = (sid, &ctx.route, &ctx.principal) {
        elicitation::remember_session(state.store.as_ref(), &route.app.id, &p.subject, sid).await;
    }
}
