//! The authentication step of `request_filter` for protected apps: extract
//! the bearer (RFC 6750 §2.1), validate it through the two-tier cache, check
//! audience (RFC 8707) and scopes, and render refusals as drio's envelope
//! plus the `WWW-Authenticate` challenge the MCP authorization spec requires.

use std::sync::Arc;

use http::{header, HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::auth::{bearer, Audience, Principal, TokenError};
use crate::errors::ApiError;
use crate::proxy::route::Route;
use crate::state::State;

pub async fn authenticate(
    state: &State,
    head: &RequestHeader,
    route: &Route,
) -> Result<Arc<Principal>, TokenError> {
    if head.uri.query().is_some_and(query_carries_token) {
        return Err(TokenError::Malformed(
            "access tokens in the query string are refused",
        ));
    }
    let token = bearer::extract_bearer(
        head.headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    )?;
    state
        .auth
        .validate(
            token,
            Audience::OneOf(&route.audiences),
            &route.app.required_scopes,
        )
        .await
}

/// The envelope and challenge for a refused request.
pub fn refusal(
    err: &TokenError,
    resource_metadata_url: &str,
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
        TokenError::Invalid(_) => ApiError::new(
            401,
            "unauthorized",
            "The access token is not valid for this resource",
        ),
    };
    let challenge = bearer::challenge(err, resource_metadata_url)
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .map(|v| (header::WWW_AUTHENTICATE, v));
    (api, challenge)
}

/// Writes the principal into the app's configured identity headers, after
/// removing any copy the client sent (a client must not claim an identity).
pub fn identity_headers(
    upstream: &mut RequestHeader,
    route: &Route,
    principal: Option<&Principal>,
) -> pingora::Result<()> {
    let h = &route.app.identity_headers;
    for name in h.all() {
        upstream.remove_header(name);
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
    if h.scopes.is_some() {
        set(&h.scopes, Some(&p.scopes.join(" ")))?;
    }
    Ok(())
}

fn query_carries_token(q: &str) -> bool {
    q.split('&').any(|kv| {
        kv.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("access_token"))
    })
}
