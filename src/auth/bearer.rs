//! Bearer extraction and challenges (RFC 6750 §2.1 and §3; MCP authorization
//! spec "Protected Resource Metadata Discovery").
//!
//! Only the `Authorization: Bearer` header is accepted: tokens in query
//! strings or bodies leak into logs and caches (RFC 6750 §2.3, MCP spec).

use super::TokenError;

/// RFC 6750 §2.1 b64token bytes: ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" (and trailing "="). Comparisons without branches, so the check
/// of a token several hundred bytes long (every protected request) runs 16
/// or 32 bytes per step instead of one table load per byte.
#[inline(always)]
fn b64token_byte(b: u8) -> bool {
    // `| 0x20` maps exactly 'A'..='Z' and 'a'..='z' onto 'a'..='z'.
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
        | (b == b'=')
}

/// Every byte is a b64token byte: whole blocks without early exit (the
/// compiler vectorises them), stopping at the first bad block.
fn all_b64token(token: &[u8]) -> bool {
    token
        .chunks(64)
        .all(|block| block.iter().fold(true, |ok, &b| ok & b64token_byte(b)))
}

/// The token in an `Authorization` header value.
pub fn extract_bearer(authorization: Option<&[u8]>) -> Result<&str, TokenError> {
    b64token(credential(authorization)?)
}

/// The credential of an `Authorization: Bearer` value: the scheme checked
/// and the spaces around it trimmed, its bytes not checked yet. The guard
/// looks a token up by its hash first and checks its grammar with
/// [`b64token`] only on a cache miss: a token found in the cache was
/// checked when it was put there (same hash, same bytes), and the check of
/// a several-hundred-byte token is a good part of a cache hit's cost.
pub(crate) fn credential(authorization: Option<&[u8]>) -> Result<&[u8], TokenError> {
    let raw = authorization.ok_or(TokenError::Missing)?;
    let space = raw
        .iter()
        .position(|&b| b == b' ')
        .ok_or(TokenError::Malformed("expected `Bearer <token>`"))?;
    let (scheme, token) = (&raw[..space], &raw[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(TokenError::Malformed("only the Bearer scheme is accepted"));
    }
    let start = token.iter().position(|&b| b != b' ').unwrap_or(token.len());
    let end = token
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    let token = &token[start..end];
    if token.is_empty() {
        return Err(TokenError::Malformed("bearer token is not a b64token"));
    }
    Ok(token)
}

/// A credential that is one RFC 6750 token68: no spaces or commas, and
/// every byte ASCII, so it is text.
pub(crate) fn b64token(token: &[u8]) -> Result<&str, TokenError> {
    if token.is_empty() || !all_b64token(token) {
        return Err(TokenError::Malformed("bearer token is not a b64token"));
    }
    std::str::from_utf8(token).map_err(|_| TokenError::Malformed("bearer token is not a b64token"))
}

/// The `WWW-Authenticate` value for a refusal, or None when none applies
/// (503: the token was not judged). `scopes` are every scope the operation
/// needs; a 401 names them too, so a client asks for all of them at once
/// (MCP authorization 2025-11-25, RFC 6750 §3).
pub(crate) fn challenge(
    err: &TokenError,
    resource_metadata: &str,
    scopes: &[String],
) -> Option<String> {
    let mut out = format!("Bearer resource_metadata=\"{resource_metadata}\"");
    let needed = match err {
        TokenError::InsufficientScope { required } => required.as_slice(),
        _ => scopes,
    };
    if !needed.is_empty() {
        out.push_str(", scope=\"");
        out.push_str(&needed.join(" "));
        out.push('"');
    }
    let code = match err {
        TokenError::Unavailable(_) => return None,
        TokenError::Missing => return Some(out),
        other => other.oauth_code()?,
    };
    out.push_str(", error=\"");
    out.push_str(code);
    out.push('"');
    let description = match err {
        TokenError::Malformed(d) => d,
        TokenError::Expired => "The access token expired",
        TokenError::Revoked => "The access token was revoked",
        TokenError::InsufficientScope { .. } => "The access token lacks a required scope",
        TokenError::Audience { expected } => {
            // Our own URLs only (config), never client input: safe in a quoted-string.
            out.push_str(", error_description=\"The access token was not issued for ");
            out.push_str(expected);
            out.push('"');
            return Some(out);
        }
        _ => "The access token is not valid for this resource",
    };
    out.push_str(", error_description=\"");
    out.push_str(description);
    out.push('"');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branchless test agrees with RFC 6750's grammar on every byte, and
    /// a bad byte is found in any position of a long token (first, in a
    /// middle block, in the short tail block).
    #[test]
    fn b64token_bytes_match_the_grammar() {
        for b in 0..=255u8 {
            let spec = b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
            assert_eq!(b64token_byte(b), spec, "byte {b:#04x}");
        }
        let good = vec![b'a'; 700];
        assert!(all_b64token(&good));
        for at in [0, 63, 64, 400, 699] {
            for bad in [b' ', b',', b'"', 0x80, 0xff, b'@', b'[', b'`', b'{'] {
                let mut t = good.clone();
                t[at] = bad;
                assert!(!all_b64token(&t), "byte {bad:#04x} at {at}");
            }
        }
    }

    #[test]
    fn extracts_only_well_formed_bearer_tokens() {
        assert_eq!(
            extract_bearer(Some(b"Bearer abc.def-ghi")),
            Ok("abc.def-ghi")
        );
        assert_eq!(extract_bearer(Some(b"bearer abc")), Ok("abc"));
        assert_eq!(extract_bearer(None), Err(TokenError::Missing));
        assert!(matches!(
            extract_bearer(Some(b"Basic dXNlcjpwYXNz")),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            extract_bearer(Some(b"Bearer")),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            extract_bearer(Some(b"Bearer a b")),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            extract_bearer(Some(b"Bearer a,b")),
            Err(TokenError::Malformed(_))
        ));
        assert_eq!(extract_bearer(Some(b"Bearer   abc= ")), Ok("abc="));
        for bad in [
            &b"Bearer ab\xffc"[..],
            b"Bearer \xc3\xa9",
            b"B\xe9arer abc",
            b"Bearer  ",
        ] {
            assert!(
                matches!(extract_bearer(Some(bad)), Err(TokenError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn challenges_follow_rfc6750() {
        let rm = "https://gw/.well-known/oauth-protected-resource/apps/a/mcp";
        assert_eq!(
            challenge(&TokenError::Missing, rm, &[]).unwrap(),
            format!("Bearer resource_metadata=\"{rm}\"")
        );
        let c = challenge(&TokenError::Expired, rm, &[]).unwrap();
        assert!(c.contains("error=\"invalid_token\""), "{c}");
        let c = challenge(
            &TokenError::InsufficientScope {
                required: vec!["a".into(), "b".into()],
            },
            rm,
            &[],
        )
        .unwrap();
        assert!(
            c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"a b\""),
            "{c}"
        );
        assert!(challenge(&TokenError::Unavailable("x".into()), rm, &[]).is_none());
        // A 401 names every scope the app needs, so one sign-in asks for all.
        let c = challenge(
            &TokenError::Missing,
            rm,
            &["notes:read".into(), "notes:write".into()],
        )
        .unwrap();
        assert!(c.contains("scope=\"notes:read notes:write\""), "{c}");
    }
}
