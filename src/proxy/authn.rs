//! The authentication step of `request_filter` for protected apps: extract
//! the bearer (RFC 6750 §2.1), validate it through the two-tier cache, check
//! audience (RFC 8707) and scopes, and render refusals as drio's envelope
//! plus the `WWW-Authenticate` challenge the MCP authorization spec requires.

use std::sync::Arc;

use http::{header, HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::auth::{bearer, guard, Principal, TokenError};
use crate::catalog::route::Route;
use crate::errors::ApiError;
use crate::state::State;

pub(crate) async fn authenticate(
    state: &State,
    head: &RequestHeader,
    route: &Route,
) -> Result<Arc<Principal>, TokenError> {
    guard::check(
        &state.auth,
        head.headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        head.uri.query(),
        guard::Policy {
            audiences: &route.audiences,
            scopes: &route.app.required_scopes,
        },
    )
    .await
}

/// Whether the app's access policy lets this caller in (checked after the
/// token, on every request: a policy change applies to tokens already out).
pub(crate) fn may_use(route: &Route, p: &Principal) -> bool {
    route.app.access.allows(crate::config::access::Caller {
        subject: &p.subject,
        email: p.email.as_deref(),
        email_verified: p.email_verified,
        org_id: p.org_id.as_deref(),
        groups: &p.groups,
    })
}

/// The envelope and challenge for a refused request.
pub(crate) fn refusal(
    err: &TokenError,
    route: &Route,
    state: &State,
) -> (ApiError, Option<(HeaderName, HeaderValue)>) {
    let api = match err {
        TokenError::InsufficientScope { required } => ApiError::new(
            403,
            "insufficient_scope",
            "The access token lacks a scope this app requires",
        )
        .with_details(serde_json::json!({ "requiredScopes": required })),
        TokenError::Unavailable(_) => ApiError::unavailable(
            "The identity provider cannot verify the access token right now; retry shortly",
        ),
        TokenError::Malformed(why) => ApiError::new(
            401,
            "unauthorized",
            format!("Malformed authorization: {why}"),
        ),
        TokenError::Missing => ApiError::unauthorized(),
        TokenError::Expired => ApiError::new(401, "unauthorized", "The access token expired"),
        TokenError::Revoked => ApiError::new(401, "unauthorized", "The access token was revoked"),
        TokenError::Audience { expected } => ApiError::new(
            401,
            "unauthorized",
            format!("The access token was not issued for {expected}"),
        ),
        TokenError::Invalid(_) => ApiError::new(
            401,
            "unauthorized",
            "The access token is not valid for this resource",
        ),
    };
    // An app with per-tool scopes names its basic scopes in the 401, so a
    // client does not ask for every tool's scope up front (RFC 9728
    // `scopes_supported` lists them all) but steps up when a tool needs one
    // (MCP authorization 2025-11-25, scope selection and step-up).
    let base;
    let scopes = if route.app.required_scopes.is_empty() && !route.app.tool_scopes.is_empty() {
        base = crate::oauth::metadata::base_scopes(state.oauth.as_deref());
        &base
    } else {
        &route.app.required_scopes
    };
    let challenge = bearer::challenge(err, &route.resource_metadata_url, scopes)
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .map(|v| (header::WWW_AUTHENTICATE, v));
    (api, challenge)
}

/// Writes the principal into the app's configured identity headers, after
/// removing any copy the client sent (a client must not claim an identity).
pub(crate) fn identity_headers(
    upstream: &mut RequestHeader,
    route: &Route,
    principal: Option<&Principal>,
) -> pingora::Result<()> {
    let h = &route.app.identity_headers;
    for name in h.all() {
        upstream.remove_header(name);
    }
    // WSGI and CGI servers read `x_user_id` as `X-User-Id`: a client copy
    // spelled with `_` is as much a forged identity as the real name.
    if h.all().next().is_some() && upstream.headers.keys().any(|k| k.as_str().contains('_')) {
        let forged: Vec<HeaderName> = upstream
            .headers
            .keys()
            .filter(|k| h.all().any(|n| folded_eq(k.as_str(), n.as_str())))
            .cloned()
            .collect();
        for name in forged {
            upstream.remove_header(&name);
        }
    }
    let Some(p) = principal else { return Ok(()) };
    let mut set = |name: &Option<HeaderName>, value: Option<&str>| -> pingora::Result<()> {
        if let (Some(name), Some(value)) = (name, value) {
            // A value that is not a valid header (control characters) is dropped, not forwarded raw.
            if let Ok(v) = HeaderValue::from_str(value) {
                upstream.insert_header(name.clone(), v)?;
            }
        }
        Ok(())
    };
    set(&h.subject, Some(&p.subject))?;
    set(&h.email, p.email.as_deref())?;
    set(&h.name, p.name.as_deref())?;
    set(&h.client_id, p.client_id.as_deref())?;
    set(&h.organization, p.org_id.as_deref())?;
    if h.groups.is_some() && !p.groups.is_empty() {
        set(&h.groups, Some(&p.groups.join(",")))?;
    }
    if h.scopes.is_some() {
        set(&h.scopes, Some(&p.scopes.join(" ")))?;
    }
    Ok(())
}

/// Header names equal once `_` is read as `-` (names are lower-case already).
fn folded_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-') || (x == b'-' && y == b'_'))
}
