//! The one bearer guard (RFC 6750 §2.1, RFC 8707, MCP authorization spec):
//! every protected route — an app's MCP endpoint, the management API,
//! `/api/v1/me` — validates its caller here, under a per-route [`Policy`]
//! that names the audiences it accepts and the scopes it requires.
//!
//! A token is only ever good for the audience it was issued to: an app's
//! MCP URL for that app, the gateway's own URL (`public_url`) for the
//! management API. Tokens in query strings are refused everywhere
//! (RFC 6750 §2.3; they leak into logs and caches).

use std::sync::Arc;

use super::{bearer, Principal, TokenError, TokenValidator};

/// What a protected route accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy<'a> {
    /// Accepted `aud` values; the first is the one named in refusals.
    pub(crate) audiences: &'a [String],
    /// Scopes the token must all carry.
    pub(crate) scopes: &'a [String],
}

/// Validates the request's bearer under `policy`.
pub(crate) async fn check(
    validator: &TokenValidator,
    authorization: Option<&[u8]>,
    query: Option<&str>,
    policy: Policy<'_>,
) -> Result<Arc<Principal>, TokenError> {
    if query.is_some_and(query_carries_token) {
        return Err(TokenError::Malformed(
            "access tokens in the query string are refused",
        ));
    }
    let credential = bearer::credential(authorization)?;
    validator
        .validate_credential(
            credential,
            super::Audience::OneOf(policy.audiences),
            policy.scopes,
        )
        .await
}

/// True when a query string carries an `access_token` parameter (any case).
/// `pub` for the fuzz targets (fuzz/fuzz_targets/bearer.rs).
pub fn query_carries_token(q: &str) -> bool {
    q.split('&').any(|kv| {
        kv.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("access_token"))
    })
}

#[cfg(test)]
mod tests {
    use super::query_carries_token;

    #[test]
    fn finds_tokens_in_queries() {
        assert!(query_carries_token("a=1&ACCESS_TOKEN=x"));
        assert!(query_carries_token("access_token"));
        assert!(!query_carries_token("token=x&access=1"));
    }
}
