//! The drio OAuth bridge end to end, as an MCP client drives it: discovery →
//! registration → authorize → the IdP → callback → consent → token →
//! `/api/v1/me` → a protected app → refresh (the old refresh token then
//! fails) → revocation. Both token modes, both store backends.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;

use crate::support::oauth_client::{discovery, OAuthClient, TokenMode, Tokens};
use crate::support::redis::RedisServer;

use super::{jwt_claims, Bridge, INITIALIZE, REDIRECT};

/// The whole journey against one gateway; every hop is asserted on the way.
async fn full_flow(mode: TokenMode, redis: Option<&RedisServer>) {
    // No reuse grace, so the "old refresh token is refused" step needs no
    // wait (the window is tested on an advanced clock in oauth::sessions).
    let b = Bridge::start_with(mode, "refresh_grace_seconds = 0", |g| match redis {
        Some(r) => g.redis(r),
        None => g,
    })
    .await;
    let (gw, idp, upstream) = (&b.gw, &b.idp, &b.upstream);
    let resource = b.resource();

    // An MCP client's first request has no token: 401 pointing at the metadata.
    let first = gw
        .client()
        .post(&resource)
        .header("content-type", "application/json")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let challenge = first.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let prm_url = format!(
        "{}/.well-known/oauth-protected-resource/apps/notes/mcp",
        gw.url()
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{prm_url}\"")),
        "{challenge}"
    );

    // RFC 9728 then RFC 8414.
    let prm = discovery(gw, "/.well-known/oauth-protected-resource/apps/notes/mcp").await;
    assert_eq!(prm["resource"], resource.as_str());
    assert_eq!(prm["authorization_servers"][0], gw.public_url().as_str());
    assert_eq!(
        prm["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    let asm = discovery(gw, "/.well-known/oauth-authorization-server").await;
    assert_eq!(asm["issuer"], gw.public_url().as_str());
    assert_eq!(
        asm["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        asm["jwks_uri"].is_string(),
        mode == TokenMode::Gateway,
        "jwks_uri only when the gateway signs: {asm}"
    );

    // Register, sign in, consent, exchange.
    let client = OAuthClient::register(gw, REDIRECT).await;
    assert!(
        client.registration["client_id_issued_at"].is_i64(),
        "{}",
        client.registration
    );
    let tokens = client.authorize_and_exchange(gw, &resource).await;
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.expires_in > 0);
    if mode == TokenMode::Gateway {
        let claims = jwt_claims(&tokens.access_token);
        assert_eq!(claims["iss"], gw.public_url().as_str());
        assert_eq!(
            claims["aud"],
            resource.as_str(),
            "aud is the requested resource (RFC 8707)"
        );
        assert_eq!(claims["sub"], "user_test_1");
        assert!(claims["jti"].is_string() && claims["exp"].is_i64());
        // The refresh token is opaque: `{session id}.{random}` by design,
        // not a JWT (three segments, a JSON header) nor any readable JSON.
        let rt = &tokens.refresh_token;
        let segments: Vec<&str> = rt.split('.').collect();
        assert!(segments.len() <= 2, "refresh token has JWT segments: {rt}");
        assert!(
            jsonwebtoken::decode_header(rt).is_err(),
            "refresh token decodes as a JWT: {rt}"
        );
        for segment in &segments {
            let json = URL_SAFE_NO_PAD
                .decode(segment)
                .ok()
                .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok());
            assert!(json.is_none(), "a refresh token segment is JSON: {rt}");
        }
        assert!(
            segments.last().is_some_and(|secret| secret.len() >= 32),
            "refresh token too short to be unguessable: {rt}"
        );
    } else {
        // Upstream mode hands the client the IdP's own token.
        assert_eq!(
            jwt_claims(&tokens.access_token)["iss"],
            idp.issuer().as_str()
        );
    }

    // /api/v1/me exactly as seed 002, for a management token (`aud` = the
    // gateway); an app's token is not one (issue 12).
    let refused = client.me(gw, &tokens.access_token).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let management = client.tokens(gw, &gw.public_url()).await;
    let me = client.me(gw, &management.access_token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let user = &me.json()["user"];
    assert_eq!(user["workosUserId"], "user_test_1");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["image"], "https://img.example.com/ada.png");
    assert!(user["scopes"].is_array(), "{user}");

    // The token opens the app; the upstream never sees it.
    assert_eq!(b.app_status(&tokens.access_token).await, 200);
    let seen = upstream.last_request().expect("upstream got the call");
    assert_eq!(seen.header("authorization"), None, "no token passthrough");

    // Refresh rotates; the old refresh token is then refused.
    let refreshed = Tokens::from_page(&client.refresh(gw, &tokens.refresh_token).await);
    assert_ne!(refreshed.refresh_token, tokens.refresh_token);
    assert_eq!(b.app_status(&refreshed.access_token).await, 200);
    let reuse = client.refresh(gw, &tokens.refresh_token).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST, "{}", reuse.body);
    assert_eq!(reuse.json()["error"], "invalid_grant");

    // Revocation of the access token stops it at the app.
    let revoked = client.revoke(gw, &refreshed.access_token).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(b.app_status(&refreshed.access_token).await, 401);
}

#[tokio::test]
async fn gateway_mode_on_the_embedded_store() {
    full_flow(TokenMode::Gateway, None).await;
}

#[tokio::test]
async fn gateway_mode_on_redis() {
    let redis = RedisServer::start();
    full_flow(TokenMode::Gateway, Some(&redis)).await;
}

#[tokio::test]
async fn upstream_mode_on_the_embedded_store() {
    full_flow(TokenMode::Upstream, None).await;
}

#[tokio::test]
async fn upstream_mode_on_redis() {
    let redis = RedisServer::start();
    full_flow(TokenMode::Upstream, Some(&redis)).await;
}
