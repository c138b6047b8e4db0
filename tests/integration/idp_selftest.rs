//! Proves the test harness itself: drives `TestIdp` alone, over HTTP, through
//! sign-in, PKCE token exchange, refresh rotation, introspection, revocation
//! and key rotation, and verifies its tokens against its own JWKS. If these
//! fail, gateway test failures say nothing about the gateway.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::idp::{pkce_challenge, IdpUser, TestIdp};

const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-sufficiently-long-pkce-code-verifier-0123456789-abcdefghij";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("HTTP client")
}

/// Visits `/authorize` with PKCE and returns the query of the redirect back to the client.
async fn sign_in(idp: &TestIdp, state: &str) -> HashMap<String, String> {
    let response = browser()
        .get(idp.url("/authorize"))
        .query(&[
            ("client_id", idp.client_id()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", state),
            ("nonce", "nonce-1"),
            ("code_challenge", &pkce_challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Posts a form to `/token` with `client_secret_post` authentication.
async fn token(idp: &TestIdp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = form.to_vec();
    form.extend([
        ("client_id", idp.client_id()),
        ("client_secret", idp.client_secret()),
    ]);
    let response = browser()
        .post(idp.url("/token"))
        .form(&form)
        .send()
        .await
        .expect("token");
    (response.status(), response.json().await.expect("JSON"))
}

async fn exchange(idp: &TestIdp, code: &str, verifier: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", REDIRECT_URI),
    ];
    token(idp, &form).await
}

async fn introspect(idp: &TestIdp, token: &str) -> Value {
    browser()
        .post(idp.url("/introspect"))
        .basic_auth(idp.client_id(), Some(idp.client_secret()))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("JSON")
}

async fn userinfo_status(idp: &TestIdp, access_token: &str) -> StatusCode {
    let response = browser()
        .get(idp.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo");
    response.status()
}

/// Verifies a JWT against the keys the IdP publishes at `/jwks`.
async fn verify_with_published_keys(idp: &TestIdp, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = browser()
        .get(idp.url("/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JWKS JSON");
    let kid = jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("kid");
    let jwk = jwks.find(&kid).expect("token kid is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[idp.issuer()]);
    validation.set_audience(&[audience]);
    let key = DecodingKey::from_jwk(jwk).expect("JWK");
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token verifies against the published JWKS")
        .claims
}

#[tokio::test]
async fn discovery_describes_every_endpoint() {
    let idp = TestIdp::start().await;
    let doc: Value = browser()
        .get(idp.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], idp.issuer());
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/userinfo"),
        ("introspection_endpoint", "/introspect"),
    ] {
        assert_eq!(doc[field], idp.url(path), "{field}");
    }
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(idp.calls("discovery"), 1);
}

#[tokio::test]
async fn sign_in_exchange_refresh_and_verify() {
    let idp = TestIdp::start().await;

    let back = sign_in(&idp, "state-1").await;
    assert_eq!(back["state"], "state-1");
    assert_eq!(back["iss"], idp.issuer());
    let recorded = idp.last_authorize().expect("authorize was recorded");
    assert_eq!(recorded.nonce.as_deref(), Some("nonce-1"));
    assert_eq!(recorded.code_challenge, pkce_challenge(VERIFIER));

    let (status, tokens) = exchange(&idp, &back["code"], VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);

    let id =
        verify_with_published_keys(&idp, tokens["id_token"].as_str().unwrap(), "gw-client").await;
    assert_eq!(id["sub"], "user_test_1");
    assert_eq!(id["email"], "ada@example.com");
    assert_eq!(id["name"], "Ada Lovelace");
    assert_eq!(id["picture"], "https://img.example.com/ada.png");
    assert_eq!(id["nonce"], "nonce-1");
    let access = tokens["access_token"].as_str().unwrap();
    let claims = verify_with_published_keys(&idp, access, "gw-client").await;
    assert_eq!(claims["scope"], "openid profile email");

    // The code is single-use.
    let (status, error) = exchange(&idp, &back["code"], VERIFIER).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Refresh rotates: the new token works once, the old one never again.
    let old_refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = token(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", old_refresh),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_ne!(renewed["refresh_token"], tokens["refresh_token"]);
    let (status, error) = token(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", old_refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    assert_eq!(userinfo_status(&idp, access).await, StatusCode::OK);
    assert_eq!(idp.calls("authorize"), 1);
    assert_eq!(idp.calls("token"), 4);
    assert_eq!(idp.calls("jwks"), 2);
}

#[tokio::test]
async fn token_endpoint_rejects_a_wrong_verifier_and_a_wrong_secret() {
    let idp = TestIdp::start().await;
    let back = sign_in(&idp, "s").await;
    let (status, error) = exchange(
        &idp,
        &back["code"],
        "not-the-verifier-not-the-verifier-not-the-verifier",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");

    let response = browser()
        .post(idp.url("/token"))
        .basic_auth(idp.client_id(), Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn deny_next_relays_access_denied_with_the_state() {
    let idp = TestIdp::start().await;
    idp.deny_next();
    let back = sign_in(&idp, "state-denied").await;
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "state-denied");
    assert!(!back.contains_key("code"));
    // Only the next one.
    assert!(sign_in(&idp, "again").await.contains_key("code"));
}

#[tokio::test]
async fn set_user_changes_who_signs_in() {
    let idp = TestIdp::start().await;
    idp.set_user(IdpUser::new("user_grace", "grace@example.com"));
    let back = sign_in(&idp, "s").await;
    let (_, tokens) = exchange(&idp, &back["code"], VERIFIER).await;
    let id =
        verify_with_published_keys(&idp, tokens["id_token"].as_str().unwrap(), "gw-client").await;
    assert_eq!(
        (id["sub"].as_str(), id["email"].as_str()),
        (Some("user_grace"), Some("grace@example.com"))
    );
}

#[tokio::test]
async fn introspection_and_revocation() {
    let idp = TestIdp::start().await;
    let token = idp.mint_access_token(
        "user_test_1",
        "https://gw.example/apps/a/mcp",
        "openid",
        300,
    );
    let answer = introspect(&idp, &token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], "user_test_1");
    assert_eq!(answer["aud"], "https://gw.example/apps/a/mcp");

    let expired = idp.mint_access_token("user_test_1", "aud", "openid", -60);
    assert_eq!(introspect(&idp, &expired).await["active"], false);

    let revoked = browser()
        .post(idp.url("/revoke"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", "gw-client"),
            ("client_secret", "gw-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(introspect(&idp, &token).await["active"], false);
    assert_eq!(
        userinfo_status(&idp, &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(idp.calls("introspect"), 3);
}

#[tokio::test]
async fn rotate_key_retires_the_old_key() {
    let idp = TestIdp::start().await;
    let before = idp.mint_access_token("user_test_1", "aud", "openid", 300);
    let old_kid = idp.current_kid();
    let new_kid = idp.rotate_key();
    assert_ne!(old_kid, new_kid);
    assert_eq!(idp.jwks()["keys"][0]["kid"], new_kid.as_str());
    assert_eq!(
        userinfo_status(&idp, &before).await,
        StatusCode::UNAUTHORIZED
    );
    let after = idp.mint_access_token("user_test_1", "aud", "openid", 300);
    let claims = verify_with_published_keys(&idp, &after, "aud").await;
    assert_eq!(claims["sub"], "user_test_1");
}

#[tokio::test]
async fn stops_when_dropped() {
    let idp = TestIdp::start().await;
    let addr = idp.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(idp);
    // The abort takes effect when the runtime next polls the accept loop.
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
    }
    panic!("the IdP still accepts connections after drop");
}
