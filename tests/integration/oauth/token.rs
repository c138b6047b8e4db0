//! `POST /api/v1/auth/token`, `/refresh` and `/revoke`, and `GET /api/v1/me`:
//! code binding and single use, client authentication, form and JSON
//! bodies, refresh rotation with reuse detection and a grace window, one
//! upstream refresh however many arrive together, RFC 7009 revocation.

use futures::future::join_all;
use serde_json::json;

use super::{assert_oauth_error, Bridge, REDIRECT};
use crate::support::oauth_client::{send, OAuthClient, Page, TokenMode, Tokens};

async fn post_json(b: &Bridge, path: &str, body: serde_json::Value) -> Page {
    let url = format!("{}{path}", b.gw.url());
    send(b.gw.client().post(&url).json(&body), &url).await
}

#[tokio::test]
async fn a_reused_code_fails_and_revokes_what_its_first_use_issued() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let (request, code) = client.code(&b.gw, &b.resource()).await;
    let first = Tokens::from_page(
        &client
            .exchange_code(&b.gw, &code, &request.pkce.verifier)
            .await,
    );
    assert_eq!(b.app_status(&first.access_token).await, 200);
    let second = client
        .exchange_code(&b.gw, &code, &request.pkce.verifier)
        .await;
    let description = assert_oauth_error(&second, 400, "invalid_grant");
    assert!(description.contains("already used"), "{description}");
    assert_eq!(
        b.app_status(&first.access_token).await,
        401,
        "the first use's access token is revoked"
    );
    assert_oauth_error(
        &client.refresh(&b.gw, &first.refresh_token).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_and_verifier() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let thief = OAuthClient::register(&b.gw, REDIRECT).await;

    let (request, code) = client.code(&b.gw, &b.resource()).await;
    let wrong_verifier = client
        .exchange_code(&b.gw, &code, &format!("{}x", request.pkce.verifier))
        .await;
    assert!(assert_oauth_error(&wrong_verifier, 400, "invalid_grant").contains("PKCE"));

    let (request, code) = client.code(&b.gw, &b.resource()).await;
    let stolen = thief
        .exchange_code(&b.gw, &code, &request.pkce.verifier)
        .await;
    assert!(assert_oauth_error(&stolen, 400, "invalid_grant").contains("another client"));

    let (request, code) = client.code(&b.gw, &b.resource()).await;
    let moved = OAuthClient {
        redirect_uri: "http://127.0.0.1:7777/elsewhere".into(),
        ..thief
    };
    let moved = OAuthClient {
        client_id: client.client_id.clone(),
        ..moved
    };
    let elsewhere = moved
        .exchange_code(&b.gw, &code, &request.pkce.verifier)
        .await;
    assert!(assert_oauth_error(&elsewhere, 400, "invalid_grant").contains("redirect_uri"));

    let unknown = client
        .exchange_code(&b.gw, "not-a-code", &request.pkce.verifier)
        .await;
    assert_oauth_error(&unknown, 400, "invalid_grant");
}

#[tokio::test]
async fn token_requests_missing_fields_or_with_unknown_grants_get_rfc6749_errors() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let token = "/api/v1/auth/token";
    let d = assert_oauth_error(
        &client.token_request(&b.gw, token, &[("code", "x")]).await,
        400,
        "invalid_request",
    );
    assert_eq!(d, "Missing required field: grant_type");
    let d = assert_oauth_error(
        &client
            .token_request(
                &b.gw,
                token,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", "x"),
                    ("redirect_uri", REDIRECT),
                ],
            )
            .await,
        400,
        "invalid_request",
    );
    assert_eq!(d, "Missing required field: code_verifier");
    assert_oauth_error(
        &client
            .token_request(&b.gw, token, &[("grant_type", "password")])
            .await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &client
            .token_request(&b.gw, token, &[("grant_type", "client_credentials")])
            .await,
        400,
        "unsupported_grant_type",
    );
    // The seed's exact refresh error.
    let d = assert_oauth_error(
        &client
            .token_request(&b.gw, "/api/v1/auth/refresh", &[])
            .await,
        400,
        "invalid_request",
    );
    assert_eq!(d, "Missing required field: refresh_token");
    assert_oauth_error(
        &post_json(&b, token, json!(["not", "an", "object"])).await,
        400,
        "invalid_request",
    );
    let nobody = post_json(&b, token, json!({"grant_type": "authorization_code", "code": "x", "code_verifier": "y", "redirect_uri": REDIRECT})).await;
    assert_eq!(
        assert_oauth_error(&nobody, 400, "invalid_request"),
        "Missing required field: client_id"
    );
    let stranger = post_json(&b, token, json!({"grant_type": "authorization_code", "client_id": "nobody", "code": "x", "code_verifier": "y", "redirect_uri": REDIRECT})).await;
    assert_oauth_error(&stranger, 401, "invalid_client");
}

#[tokio::test]
async fn json_bodies_work_for_code_exchange_and_refresh() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let (request, code) = client.code(&b.gw, &b.resource()).await;
    let tokens = Tokens::from_page(
        &post_json(
            &b,
            "/api/v1/auth/token",
            json!({"grant_type": "authorization_code", "client_id": client.client_id, "code": code,
                   "code_verifier": request.pkce.verifier, "redirect_uri": REDIRECT}),
        )
        .await,
    );
    let refreshed = Tokens::from_page(
        &post_json(&b, "/api/v1/auth/refresh", json!({"client_id": client.client_id, "refresh_token": tokens.refresh_token, "redirect_uri": REDIRECT}))
            .await,
    );
    assert_eq!(b.app_status(&refreshed.access_token).await, 200);
}

#[tokio::test]
async fn confidential_clients_must_authenticate() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register_confidential(&b.gw, REDIRECT).await;
    let secret = client.client_secret.clone().unwrap();
    let (request, code) = client.code(&b.gw, &b.resource()).await;

    let wrong = OAuthClient {
        client_secret: Some(format!("{secret}x")),
        ..OAuthClient::register(&b.gw, REDIRECT).await
    };
    let wrong = OAuthClient {
        client_id: client.client_id.clone(),
        ..wrong
    };
    let page = wrong
        .exchange_code(&b.gw, &code, &request.pkce.verifier)
        .await;
    assert_oauth_error(&page, 401, "invalid_client");
    assert!(page
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    let none = OAuthClient {
        client_secret: None,
        ..wrong
    };
    assert_oauth_error(
        &none
            .exchange_code(&b.gw, &code, &request.pkce.verifier)
            .await,
        401,
        "invalid_client",
    );

    // client_secret_basic: credentials in the Authorization header (RFC 6749 §2.3.1).
    let url = format!("{}/api/v1/auth/token", b.gw.url());
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", &request.pkce.verifier),
        ("redirect_uri", REDIRECT),
    ];
    let page = send(
        b.gw.client()
            .post(&url)
            .basic_auth(&client.client_id, Some(&secret))
            .form(&form),
        &url,
    )
    .await;
    let tokens = Tokens::from_page(&page);
    assert_eq!(b.app_status(&tokens.access_token).await, 200);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_ends_the_session() {
    // No grace window, so the reuse below needs no wait (the window itself
    // is tested on an advanced clock: sessions::the_grace_window_follows_the_clock).
    let b = Bridge::start_with(TokenMode::Gateway, "refresh_grace_seconds = 0", |g| g).await;
    let (client, t0) = b.signed_in().await;
    let t1 = Tokens::from_page(&client.refresh(&b.gw, &t0.refresh_token).await);
    let t2 = Tokens::from_page(&client.refresh(&b.gw, &t1.refresh_token).await);
    assert_eq!(b.app_status(&t2.access_token).await, 200);
    // t1 was rotated out: presenting it is reuse; the whole session ends.
    let d = assert_oauth_error(
        &client.refresh(&b.gw, &t1.refresh_token).await,
        400,
        "invalid_grant",
    );
    assert!(d.contains("invalid, expired or revoked"), "{d}");
    assert_oauth_error(
        &client.refresh(&b.gw, &t2.refresh_token).await,
        400,
        "invalid_grant",
    );
    for access in [&t0.access_token, &t1.access_token, &t2.access_token] {
        assert_eq!(
            b.app_status(access).await,
            401,
            "every access token of the session is revoked"
        );
    }
    // Another client cannot use someone's refresh token.
    let (_, mine) = b.signed_in().await;
    let other = OAuthClient::register(&b.gw, REDIRECT).await;
    assert_oauth_error(
        &other.refresh(&b.gw, &mine.refresh_token).await,
        400,
        "invalid_grant",
    );
    let not_registered = OAuthClient {
        redirect_uri: "https://nowhere.example.com/cb".into(),
        ..other
    };
    assert_oauth_error(
        &not_registered.refresh(&b.gw, &mine.refresh_token).await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn concurrent_retries_of_one_refresh_get_the_same_tokens_and_keep_the_session() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let (client, t0) = b.signed_in().await;
    let answers = join_all((0..8).map(|_| client.refresh(&b.gw, &t0.refresh_token))).await;
    let tokens: Vec<Tokens> = answers.iter().map(Tokens::from_page).collect();
    assert!(
        tokens
            .iter()
            .all(|t| t.refresh_token == tokens[0].refresh_token),
        "one rotation, one answer"
    );
    assert_ne!(tokens[0].refresh_token, t0.refresh_token);
    let next = Tokens::from_page(&client.refresh(&b.gw, &tokens[0].refresh_token).await);
    assert_eq!(
        b.app_status(&next.access_token).await,
        200,
        "the session survived the retries"
    );
}

#[tokio::test]
async fn gateway_mode_refreshes_the_upstream_grant_once_for_concurrent_requests() {
    let b = Bridge::start(TokenMode::Gateway).await;
    // The IdP's grant expires as it is issued: the next refresh must renew it.
    b.idp.set_access_token_ttl(0);
    let (client, t0) = b.signed_in().await;
    let before = b.idp.calls("token");
    let answers = join_all((0..10).map(|_| client.refresh(&b.gw, &t0.refresh_token))).await;
    answers
        .iter()
        .for_each(|p| assert_eq!(p.status, 200, "{}", p.body));
    assert_eq!(
        b.idp.calls("token") - before,
        1,
        "one upstream refresh for ten concurrent requests"
    );
}

#[tokio::test]
async fn upstream_mode_refreshes_once_for_concurrent_requests() {
    // A 1 s reuse grace (default 5 s) keeps the refusal step below short.
    let b = Bridge::start_with(TokenMode::Upstream, "refresh_grace_seconds = 1", |g| g).await;
    let (client, t0) = b.signed_in().await;
    let before = b.idp.calls("token");
    let answers = join_all((0..10).map(|_| client.refresh(&b.gw, &t0.refresh_token))).await;
    let tokens: Vec<Tokens> = answers.iter().map(Tokens::from_page).collect();
    assert_eq!(
        b.idp.calls("token") - before,
        1,
        "one upstream refresh for ten concurrent requests"
    );
    assert!(tokens
        .iter()
        .all(|t| t.refresh_token == tokens[0].refresh_token));
    assert_eq!(b.app_status(&tokens[0].access_token).await, 200);
    // The upstream's rotated-out token is refused, relayed as invalid_grant,
    // once the grace answer is gone (a retry within it gets the same tokens).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let page = client.refresh(&b.gw, &t0.refresh_token).await;
        if page.status != 200 {
            break page;
        }
        assert_eq!(
            Tokens::from_page(&page).refresh_token,
            tokens[0].refresh_token,
            "within the grace, a retry gets the same answer"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated-out token is still accepted 10 s later"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_oauth_error(&refused, 400, "invalid_grant");
    assert_eq!(
        b.idp.calls("token") - before,
        2,
        "retries within the grace never reached the IdP; the one after it did"
    );
    // RFC 8707 on refresh: a resource behind the gateway is passed on, any other is refused.
    let rt = tokens[0].refresh_token.as_str();
    let elsewhere = client
        .token_request(
            &b.gw,
            "/api/v1/auth/refresh",
            &[
                ("refresh_token", rt),
                ("resource", "https://elsewhere.example.com/mcp"),
            ],
        )
        .await;
    assert_oauth_error(&elsewhere, 400, "invalid_target");
    let resource = b.resource();
    let named = client
        .token_request(
            &b.gw,
            "/api/v1/auth/refresh",
            &[("refresh_token", rt), ("resource", &resource)],
        )
        .await;
    assert_eq!(
        b.app_status(&Tokens::from_page(&named).access_token).await,
        200
    );
}

#[tokio::test]
async fn revocation_follows_rfc7009() {
    for mode in [TokenMode::Gateway, TokenMode::Upstream] {
        let b = Bridge::start(mode).await;
        let (client, tokens) = b.signed_in().await;
        // A refresh token: refreshing stops working.
        assert_eq!(
            client.revoke(&b.gw, &tokens.refresh_token).await.status,
            200
        );
        assert_oauth_error(
            &client.refresh(&b.gw, &tokens.refresh_token).await,
            400,
            "invalid_grant",
        );
        // An access token: the app refuses it once its own client revokes it.
        let (other_client, other) = b.signed_in().await;
        assert_eq!(b.app_status(&other.access_token).await, 200);
        if mode == TokenMode::Gateway {
            // RFC 7009 §2.1: another client's revocation is answered 200 and ignored.
            assert_eq!(client.revoke(&b.gw, &other.access_token).await.status, 200);
            assert_eq!(
                b.app_status(&other.access_token).await,
                200,
                "not its client"
            );
        }
        assert_eq!(
            other_client.revoke(&b.gw, &other.access_token).await.status,
            200
        );
        assert_eq!(b.app_status(&other.access_token).await, 401, "{mode:?}");
        // Unknown tokens are not an error (RFC 7009 §2.2); a missing one is.
        assert_eq!(client.revoke(&b.gw, "never-issued").await.status, 200);
        let url = format!("{}/api/v1/auth/revoke", b.gw.url());
        let page = send(
            b.gw.client()
                .post(&url)
                .form(&[("client_id", client.client_id.as_str())]),
            &url,
        )
        .await;
        assert_eq!(
            assert_oauth_error(&page, 400, "invalid_request"),
            "Missing required field: token"
        );
    }
}

#[tokio::test]
async fn me_requires_a_valid_token_and_answers_in_the_resource_envelope() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let (client, app_tokens) = b.signed_in().await;
    // `/me` is the management audience's: a token for the gateway itself.
    let tokens = client.tokens(&b.gw, &b.gw.public_url()).await;
    let me = client.me(&b.gw, &tokens.access_token).await;
    assert_eq!(me.status, 200);
    let body = me.json();
    assert_eq!(
        body["user"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["email", "image", "name", "scopes", "workosUserId"],
        "exactly seed 002's fields: {body}"
    );
    for token in [
        "",
        "garbage",
        &format!("{}x", tokens.access_token),
        &app_tokens.access_token,
    ] {
        let page = client.me(&b.gw, token).await;
        assert_eq!(page.status, 401, "{token}: {}", page.body);
        let error = &page.json()["error"];
        assert_eq!(error["code"], "unauthorized", "{}", page.body);
        assert!(error["requestId"].is_string() && error["message"].is_string());
    }
}

#[tokio::test]
async fn signing_keys_rotate_with_an_overlap() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let (client, before) = b.signed_in().await;
    let old_kid = super::jwt_header(&before.access_token)["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let rotate = b.gw.admin_post("/oauth/keys/rotate").send().await.unwrap();
    assert_eq!(rotate.status(), 200);
    let new_kid = rotate.json::<serde_json::Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_kid, old_kid);
    let jwks = crate::support::oauth_client::discovery(&b.gw, "/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str(), old_kid.as_str()],
        "the new key signs, the old one stays published"
    );
    let after = Tokens::from_page(&client.refresh(&b.gw, &before.refresh_token).await);
    assert_eq!(
        super::jwt_header(&after.access_token)["kid"],
        new_kid.as_str()
    );
    assert_eq!(
        b.app_status(&before.access_token).await,
        200,
        "tokens of the previous key verify until they expire"
    );
    assert_eq!(b.app_status(&after.access_token).await, 200);
    // Keys live in the store: a restart keeps them.
    let mut b = b;
    b.gw.restart().await;
    assert_eq!(b.app_status(&after.access_token).await, 200);
}
