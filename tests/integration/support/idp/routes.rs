//! The test IdP's HTTP endpoints. Each handler validates its request the way
//! a strict OpenID provider would, so a gateway that sends the wrong thing
//! fails visibly instead of being waved through.

use std::collections::HashMap;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    now, random_token, AuthorizeRecord, CodeGrant, IdpState, IdpUser, RefreshGrant, Shared,
    CLIENT_ID, CLIENT_SECRET,
};

type Params = HashMap<String, String>;
type Reply = Response<Full<Bytes>>;

/// Lifetime of authorization codes and ID tokens, in seconds.
const CODE_TTL: i64 = 60;
const ID_TOKEN_TTL: i64 = 3600;

pub(super) async fn handle(shared: &Shared, request: Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let query = parse(parts.uri.query().unwrap_or("").as_bytes());
    let endpoint = match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/.well-known/openid-configuration") => "discovery",
        (&Method::GET, "/jwks") => "jwks",
        (&Method::GET, "/authorize") => "authorize",
        (&Method::POST, "/token") => "token",
        (&Method::GET, "/userinfo") => "userinfo",
        (&Method::POST, "/introspect") => "introspect",
        (&Method::POST, "/revoke") => "revoke",
        _ => return json_reply(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    };
    let (delay, failing) = {
        let mut state = shared.lock();
        *state.calls.entry(endpoint.to_string()).or_default() += 1;
        (state.delay_ms, state.failing)
    };
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if failing {
        return json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable"}),
        );
    }
    let mut state = shared.lock();
    let issuer = shared.issuer.as_str();
    let form = || parse(&body);
    match endpoint {
        "discovery" => json_reply(StatusCode::OK, discovery(issuer)),
        "jwks" => json_reply(StatusCode::OK, json!({ "keys": [state.key.jwk()] })),
        "authorize" => authorize(&mut state, issuer, &query),
        "token" => with_client(&parts.headers, &form(), |p| token(&mut state, issuer, p)),
        "userinfo" => userinfo(&state, issuer, &parts.headers),
        "introspect" => with_client(&parts.headers, &form(), |p| {
            json_reply(StatusCode::OK, introspect(&state, issuer, p))
        }),
        _ => with_client(&parts.headers, &form(), |p| revoke(&mut state, issuer, p)),
    }
}

fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    })
}

/// Auto-approves a valid request: 302 to `redirect_uri` with `code`, `state` and `iss`.
/// An unknown client or redirect URI is a 400 page; anything else redirects with an error.
fn authorize(state: &mut IdpState, issuer: &str, p: &Params) -> Reply {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID {
        return text_reply(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let redirect_uri = get("redirect_uri");
    let acceptable = match url::Url::parse(&redirect_uri) {
        Ok(url) => url.fragment().is_none() && matches!(url.scheme(), "http" | "https"),
        Err(_) => false,
    };
    if !acceptable
        || !(state.redirect_uris.is_empty() || state.redirect_uris.contains(&redirect_uri))
    {
        return text_reply(StatusCode::BAD_REQUEST, "invalid redirect_uri");
    }
    let record = AuthorizeRecord {
        client_id: get("client_id"),
        redirect_uri: redirect_uri.clone(),
        scope: get("scope"),
        state: get("state"),
        nonce: p.get("nonce").cloned(),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        prompt: p.get("prompt").cloned(),
    };
    state.authorizations.push(record.clone());
    let back = |pairs: &[(&str, &str)]| {
        let mut url = url::Url::parse(&redirect_uri).expect("checked above");
        url.query_pairs_mut()
            .extend_pairs(pairs)
            .append_pair("state", &record.state)
            .append_pair("iss", issuer);
        redirect_reply(url.as_str())
    };
    let error = |code: &str, description: &str| {
        back(&[("error", code), ("error_description", description)])
    };
    if get("response_type") != "code" {
        return error("unsupported_response_type", "response_type must be code");
    }
    if record.state.is_empty() {
        return error("invalid_request", "state is required");
    }
    if !record.scope.split(' ').any(|s| s == "openid") {
        return error("invalid_scope", "scope must include openid");
    }
    if record.code_challenge.is_empty() || record.code_challenge_method != "S256" {
        return error(
            "invalid_request",
            "code_challenge with method S256 is required",
        );
    }
    if std::mem::take(&mut state.deny_next) {
        return error("access_denied", "the user declined");
    }
    let code = random_token();
    let grant = CodeGrant {
        record: record.clone(),
        user: state.user.clone(),
        expires_at: now() + CODE_TTL,
    };
    state
        .users
        .insert(grant.user.sub.clone(), grant.user.clone());
    state.codes.insert(code.clone(), grant);
    back(&[("code", &code)])
}

/// Authenticates the gateway (HTTP Basic or `client_secret_post`) before `then`.
fn with_client(
    headers: &http::HeaderMap,
    p: &Params,
    then: impl FnOnce(&Params) -> Reply,
) -> Reply {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                parse(format!("x={s}").as_bytes())
                    .remove("x")
                    .unwrap_or_default()
            };
            Some((decode(id), decode(secret)))
        });
    let (id, secret) = basic.unwrap_or_else(|| {
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        (get("client_id"), get("client_secret"))
    });
    if id != CLIENT_ID || secret != CLIENT_SECRET {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    then(p)
}

fn token(state: &mut IdpState, issuer: &str, p: &Params) -> Reply {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let (code, verifier) = (get("code"), get("code_verifier"));
            if code.is_empty() || verifier.is_empty() {
                return bad_request("invalid_request", "code and code_verifier are required");
            }
            let Some(grant) = state.codes.remove(&code) else {
                return bad_request("invalid_grant", "unknown or already used code");
            };
            if grant.expires_at < now() {
                return bad_request("invalid_grant", "code expired");
            }
            if get("redirect_uri") != grant.record.redirect_uri {
                return bad_request("invalid_grant", "redirect_uri does not match");
            }
            if s256(&verifier) != grant.record.code_challenge {
                return bad_request("invalid_grant", "PKCE verification failed");
            }
            let scope = grant.record.scope.clone();
            // RFC 8707: a requested resource becomes the access token's audience.
            let aud = p
                .get("resource")
                .cloned()
                .unwrap_or_else(|| CLIENT_ID.to_string());
            issue(
                state,
                issuer,
                &grant.user,
                &scope,
                grant.record.nonce.as_deref(),
                &aud,
            )
        }
        "refresh_token" => {
            let Some(grant) = state.refresh_tokens.remove(&get("refresh_token")) else {
                return bad_request(
                    "invalid_grant",
                    "unknown, revoked or already used refresh token",
                );
            };
            issue(state, issuer, &grant.user, &grant.scope, None, &grant.aud)
        }
        _ => bad_request("unsupported_grant_type", "grant_type is not supported"),
    }
}

/// The token response: a signed access token, a fresh refresh token and an ID token.
fn issue(
    state: &mut IdpState,
    issuer: &str,
    user: &IdpUser,
    scope: &str,
    nonce: Option<&str>,
    aud: &str,
) -> Reply {
    let ttl = state.access_ttl;
    let access = access_claims(issuer, &user.sub, Some(user.email.clone()), aud, scope, ttl);
    let refresh = random_token();
    state.refresh_tokens.insert(
        refresh.clone(),
        RefreshGrant {
            user: user.clone(),
            scope: scope.to_string(),
            aud: aud.to_string(),
        },
    );
    let mut id_claims = json!({
        "iss": issuer, "aud": CLIENT_ID, "sub": user.sub, "email": user.email,
        "email_verified": true, "name": user.name, "picture": user.picture,
        "iat": now(), "exp": now() + ID_TOKEN_TTL,
    });
    if let Some(nonce) = nonce {
        id_claims["nonce"] = json!(nonce);
    }
    if let Some(serde_json::Value::Object(overrides)) = state.id_token_overrides.take() {
        for (k, v) in overrides {
            id_claims[k] = v;
        }
    }
    let mut reply = json_reply(
        StatusCode::OK,
        json!({
            "access_token": state.key.sign(&access),
            "refresh_token": refresh,
            "id_token": state.key.sign(&id_claims),
            "expires_in": ttl.max(0),
            "token_type": "Bearer",
            "scope": scope,
        }),
    );
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
    reply
}

/// Claims of an access token, shared by `/token` and `TestIdp::mint_access_token`.
pub(super) fn access_claims(
    issuer: &str,
    sub: &str,
    email: Option<String>,
    aud: &str,
    scope: &str,
    ttl: i64,
) -> Value {
    json!({
        "iss": issuer, "sub": sub, "aud": aud, "scope": scope, "email": email,
        "client_id": CLIENT_ID, "iat": now(), "exp": now() + ttl, "jti": random_token(),
    })
}

/// Claims of a live (signed by the current key, unexpired, unrevoked) access token.
fn live_access_token(state: &IdpState, issuer: &str, token: &str) -> Option<Value> {
    let claims: Value = state.key.verify(token, issuer)?;
    let jti = claims["jti"].as_str().unwrap_or_default();
    (!state.revoked.contains(jti)).then_some(claims)
}

fn userinfo(state: &IdpState, issuer: &str, headers: &http::HeaderMap) -> Reply {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(claims) = live_access_token(state, issuer, bearer) else {
        let mut reply = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "invalid access token",
        );
        let challenge = "Bearer error=\"invalid_token\"".parse().unwrap();
        reply
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
        return reply;
    };
    let sub = claims["sub"].as_str().unwrap_or_default();
    let user = state
        .users
        .get(sub)
        .cloned()
        .unwrap_or_else(|| IdpUser::new(sub, ""));
    json_reply(
        StatusCode::OK,
        json!({
            "sub": user.sub, "email": user.email, "email_verified": true,
            "name": user.name, "picture": user.picture,
        }),
    )
}

/// RFC 7662: access tokens and refresh tokens are active while usable.
fn introspect(state: &IdpState, issuer: &str, p: &Params) -> Value {
    let token = p.get("token").map(String::as_str).unwrap_or_default();
    if let Some(claims) = live_access_token(state, issuer, token) {
        let sub = claims["sub"].as_str().unwrap_or_default();
        let username = state.users.get(sub).map(|u| u.email.clone());
        let mut answer = json!({ "active": true, "token_type": "Bearer", "username": username });
        for key in [
            "sub",
            "scope",
            "client_id",
            "exp",
            "iat",
            "iss",
            "aud",
            "email",
            "jti",
        ] {
            answer[key] = claims[key].clone();
        }
        return answer;
    }
    match state.refresh_tokens.get(token) {
        Some(grant) => json!({
            "active": true, "token_type": "refresh_token", "sub": grant.user.sub,
            "scope": grant.scope, "client_id": CLIENT_ID, "iss": issuer,
        }),
        None => json!({ "active": false }),
    }
}

/// RFC 7009: always 200; the token stops working if it was one of ours.
fn revoke(state: &mut IdpState, issuer: &str, p: &Params) -> Reply {
    let token = p.get("token").map(String::as_str).unwrap_or_default();
    if state.refresh_tokens.remove(token).is_none() {
        if let Some(claims) = live_access_token(state, issuer, token) {
            let jti = claims["jti"].as_str().unwrap_or_default().to_string();
            state.revoked.insert(jti);
        }
    }
    json_reply(StatusCode::OK, json!({}))
}

/// `BASE64URL(SHA256(verifier))`, the PKCE S256 transform.
pub fn s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn parse(bytes: &[u8]) -> Params {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn json_reply(status: StatusCode, body: impl Serialize) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(&body).expect("JSON"),
        )))
        .expect("response")
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    json_reply(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

fn bad_request(error: &str, description: &str) -> Reply {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

fn text_reply(status: StatusCode, text: &str) -> Reply {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text.to_string())))
        .expect("response")
}

fn redirect_reply(location: &str) -> Reply {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .body(Full::new(Bytes::new()))
        .expect("response")
}
