//! `POST /api/v1/auth/token` (RFC 6749 §4.1.3 and §6, RFC 7636 §4.6) and
//! `POST /api/v1/auth/refresh` (drio's refresh route), accepting form and
//! JSON bodies. Confidential clients authenticate with `client_secret_basic`
//! or `client_secret_post` (constant-time); codes are taken atomically, and
//! a second use of a code fails and revokes what the first use issued.

use crate::store::keys;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::authorize::lookup;
use super::callback::{code_key, CodeGrant};
use super::clients::{match_redirect, Client};
use super::sessions::{self, Issued};
use super::{params, pkce_ok, register, sha256_hex, OAuthCtx, OAuthServer};
use crate::config::oauth::TokenMode;
use crate::errors::OAuthError;
use crate::store::StoreExt;
use crate::web::{LocalRequest, LocalResponse};

/// What the first redemption of a code issued (`used:{sha256(code)}`).
#[derive(Serialize, Deserialize)]
struct Redeemed {
    sid: Option<String>,
    access: Vec<(String, u64)>,
}

fn respond(r: Result<Issued, OAuthError>) -> LocalResponse {
    match r {
        Ok(issued) => LocalResponse::json(200, &issued).no_store(),
        Err(e) => {
            let mut resp = LocalResponse::oauth_error(&e);
            if e.status == 401 {
                resp = resp.with_header(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"drio\""),
                );
            }
            resp
        }
    }
}

pub(crate) async fn token(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    respond(
        async {
            let p = params(req)?;
            match p.get("grant_type").map(String::as_str) {
                None => Err(OAuthError::invalid_request(
                    "Missing required field: grant_type",
                )),
                Some("authorization_code") => code_grant(cx, oauth, req, &p).await,
                Some("refresh_token") => refresh_grant(cx, oauth, req, &p).await,
                Some(other) => Err(OAuthError::unsupported_grant_type(format!(
                    "grant_type `{other}` is not supported"
                ))),
            }
        }
        .await,
    )
}

pub(crate) async fn refresh_route(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    respond(async { refresh_grant(cx, oauth, req, &params(req)?).await }.await)
}

fn missing(p: &HashMap<String, String>, fields: &[&str]) -> Result<(), OAuthError> {
    let absent: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| p.get(*f).is_none_or(|v| v.is_empty()))
        .collect();
    match absent.as_slice() {
        [] => Ok(()),
        [one] => Err(OAuthError::invalid_request(format!(
            "Missing required field: {one}"
        ))),
        many => Err(OAuthError::invalid_request(format!(
            "Missing required fields: {}",
            many.join(", ")
        ))),
    }
}

/// Client authentication (RFC 6749 §2.3): public clients name themselves;
/// confidential ones prove their secret.
pub(super) async fn authenticate(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
    p: &HashMap<String, String>,
) -> Result<Arc<Client>, OAuthError> {
    let basic = req
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(i, s)| (form_decode(i), form_decode(s)))
        });
    let (id, secret) = match basic {
        Some((i, s)) => (i, Some(s)),
        None => (
            p.get("client_id").cloned().unwrap_or_default(),
            p.get("client_secret").cloned(),
        ),
    };
    if id.is_empty() {
        return Err(OAuthError::invalid_request(
            "Missing required field: client_id",
        ));
    }
    let client = lookup(cx, oauth, &id).await.map_err(|e| {
        if e.status == 503 {
            e
        } else {
            OAuthError::invalid_client("unknown client")
        }
    })?;
    if let Some(hash) = &client.secret_hash {
        let given = secret.as_deref().map(sha256_hex).unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
    }
    Ok(client)
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn code_grant(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
    p: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    missing(p, &["client_id", "code", "code_verifier", "redirect_uri"]).or_else(|e| {
        // client_secret_basic carries client_id in the header instead.
        if req.header("authorization").is_some() {
            missing(p, &["code", "code_verifier", "redirect_uri"])
        } else {
            Err(e)
        }
    })?;
    let client = authenticate(cx, oauth, req, p).await?;
    let code = &p["code"];
    let store_err =
        |e: crate::store::StoreError| OAuthError::temporarily_unavailable(format!("store: {e}"));
    let used_key = keys::used_code(&sha256_hex(code));
    let Some(grant) = cx
        .store
        .take_json::<CodeGrant>(&code_key(code))
        .await
        .map_err(store_err)?
    else {
        // A replayed code: whatever its first use issued is revoked (RFC 6749 §4.1.2).
        if let Some(r) = cx
            .store
            .take_json::<Redeemed>(&used_key)
            .await
            .map_err(store_err)?
        {
            tracing::warn!(client_id = %client.client_id, "authorization code reuse: revoking what it issued");
            if let Some(sid) = r.sid {
                sessions::revoke(cx, oauth, &sid).await?;
            }
            sessions::revoke_access(cx, &r.access).await?;
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; the tokens it issued are revoked",
            ));
        }
        return Err(OAuthError::invalid_grant(
            "the authorization code is invalid or expired",
        ));
    };
    if grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if grant.redirect_uri != p["redirect_uri"] {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    if !pkce_ok(&p["code_verifier"], &grant.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "PKCE verification failed (code_verifier)",
        ));
    }
    let upstream = match &grant.upstream {
        Some(sealed) => Some(
            sessions::open::<super::idp::IdpTokens>(cx, &code_key(code), sealed).ok_or_else(
                || OAuthError::server_error("the code's upstream tokens cannot be opened"),
            )?,
        ),
        None => None,
    };
    let (issued, redeemed) = match oauth.cfg.token_mode {
        TokenMode::Gateway => {
            let (s, issued) = sessions::create(
                cx,
                oauth,
                &client.client_id,
                grant.user,
                grant.scope,
                grant.resource,
                upstream,
            )
            .await?;
            (
                issued,
                Redeemed {
                    sid: Some(s.sid.clone()),
                    access: s.access.clone(),
                },
            )
        }
        TokenMode::Upstream => {
            let up = upstream
                .ok_or_else(|| OAuthError::server_error("no upstream tokens for this code"))?;
            let exp = oauth.clock.now_secs() + up.expires_in.unwrap_or(3600);
            let access = vec![(sha256_hex(&up.access_token), exp)];
            (
                upstream_issued(up, Some(grant.scope)),
                Redeemed { sid: None, access },
            )
        }
    };
    // Independent writes: one round trip's wait instead of two.
    let remember_use = cx
        .store
        .put_json(&used_key, &redeemed, Some(Duration::from_secs(600)));
    let extend = async {
        if !super::cimd::is_cimd(&client.client_id) {
            // Use extends a registration's life.
            let _ = register::save(cx, oauth, &client).await;
        }
    };
    let _ = tokio::join!(remember_use, extend);
    Ok(issued)
}

pub(super) fn upstream_issued(up: super::idp::IdpTokens, fallback_scope: Option<String>) -> Issued {
    Issued {
        access_token: up.access_token,
        refresh_token: up.refresh_token,
        expires_in: up.expires_in.unwrap_or(3600),
        token_type: "Bearer".into(),
        scope: up.scope.or(fallback_scope),
    }
}

async fn refresh_grant(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
    p: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    missing(p, &["refresh_token"])?;
    let client = authenticate(cx, oauth, req, p).await?;
    if let Some(r) = p.get("redirect_uri") {
        if match_redirect(&client, r).is_none() {
            return Err(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            ));
        }
    }
    if let Some(scope) = p.get("scope") {
        // Narrowing is allowed (RFC 6749 §6); widening is not, and is checked by the session.
        // The session's resource is not known here: any app's scope passes
        // this syntax check; the session never widens (sessions::refresh).
        let routes = cx.routes.load();
        let known = |s: &str| {
            oauth.scopes_supported().iter().any(|x| x == s)
                || routes.apps().any(|a| {
                    a.required_scopes.iter().any(|x| x == s)
                        || a.tool_scopes.values().flatten().any(|x| x == s)
                })
        };
        if scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .any(|s| !known(s))
        {
            return Err(OAuthError::invalid_scope("scope is not supported"));
        }
    }
    match oauth.cfg.token_mode {
        TokenMode::Gateway => {
            Ok(sessions::refresh(cx, oauth, &client.client_id, &p["refresh_token"]).await?)
        }
        TokenMode::Upstream => {
            // RFC 8707 §2.2: the client may name the resource again so the
            // IdP issues a token for it (audience-restricted JWTs).
            let resource = match p.get("resource") {
                Some(r) => Some(super::authorize::canonical_resource(cx, r).ok_or_else(|| {
                    OAuthError::new(
                        400,
                        "invalid_target",
                        "resource is not an MCP server behind this gateway",
                    )
                })?),
                None => None,
            };
            super::upstream_refresh::refresh(
                cx,
                oauth,
                &client.client_id,
                &p["refresh_token"],
                resource.as_deref(),
            )
            .await
        }
    }
}
