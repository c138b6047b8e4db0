//! The last `request_filter` step for an app: inspect the body where the
//! app's tool policy or per-user credentials need it, and resolve the
//! upstream credential (MCP authorization spec: the gateway, not the client,
//! authenticates to the upstream).

use pingora::proxy::Session;

use crate::audit::Auditor;
use crate::catalog::route::Route;
use crate::credentials::{InjectError, Subject};
use crate::errors::ApiError;
use crate::limits::{self, Limiter};
use crate::proxy::ctx::Ctx;
use crate::proxy::jsonrpc;

/// The app-specific steps that need the body or a credential: tool policy
/// and upstream credentials. Returns a refusal to send instead.
///
/// Also gathers the audit event's facts: the body's messages, the JSON-RPC
/// code of a refusal, and when the upstream's part begins.
pub async fn prepare_upstream(
    session: &mut Session,
    ctx: &mut Ctx,
    route: &Route,
    limiter: &Limiter,
    auditor: &Auditor,
) -> pingora::Result<Option<crate::web::LocalResponse>> {
    let refusal = prepare(session, ctx, route, limiter, auditor.active()).await?;
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
    ctx: &mut Ctx,
    route: &Route,
    limiter: &Limiter,
    auditing: bool,
) -> pingora::Result<Option<crate::web::LocalResponse>> {
    let per_user = route.injection.per_user();
    // A tool limit, like a disabled tool, must not be dodged with a body
    // the gateway cannot read: strict inspection.
    let policy = !route.disabled_tools.is_empty() || !route.app.limits.tools.is_empty();
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
    if limiter.applies(route) {
        let caller = || limits::caller_bucket(session, limiter);
        let principal = ctx.principal.as_deref();
        let refusal = limits::enforce(
            limiter,
            route,
            principal,
            caller,
            body.as_ref(),
            &ctx.request_id,
        );
        if let Some(refusal) = refusal.await {
            return Ok(Some(refusal));
        }
    }
    let bearer = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| crate::auth::extract_bearer(Some(v.as_bytes())).ok());
    let who = Subject {
        principal: ctx.principal.as_deref(),
        bearer,
    };
    match route.injection.resolve_for(who).await {
        Ok(resolved) => {
            ctx.credential = Some(resolved);
            Ok(None)
        }
        Err(InjectError::NotConnected { connect_url }) => {
            let message = format!("Connect your account for this app first: {connect_url}");
            let data = serde_json::json!({ "connectUrl": connect_url });
            Ok(Some(match &body {
                Some(b) => jsonrpc::error_response(
                    &jsonrpc::request_id(Some(b)),
                    jsonrpc::AUTH_REQUIRED,
                    &message,
                    Some(data),
                    200,
                ),
                None => crate::web::LocalResponse::api_error(
                    &ApiError::new(403, "upstream_authorization_required", message)
                        .with_details(data),
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
