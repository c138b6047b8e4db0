//! `GET /api/v1/auth/authorize` and `GET /api/v1/auth/callback`: errors shown
//! to the user until the client and redirect URI are proven, redirected to
//! the client after; RFC 8252 loopback ports; RFC 8707 resources; the
//! gateway's own PKCE, state and nonce towards the IdP; single-use state.

use serde_json::json;

use super::{jwt_claims, Bridge, REDIRECT};
use crate::support::oauth_client::{OAuthClient, Page, TokenMode};

/// A 400 page shown to the user: no redirect anywhere, and the reason said.
fn assert_shown(page: &Page, says: &str) {
    assert_eq!(page.status, 400, "{}: {}", page.url, page.body);
    assert!(
        page.location().is_none(),
        "must not redirect: {:?}",
        page.location()
    );
    assert!(page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert!(
        page.body.contains(says),
        "the page should say `{says}`: {}",
        page.body
    );
}

#[tokio::test]
async fn errors_before_the_redirect_uri_is_proven_are_shown_not_redirected() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let request = client.authorization(&b.resource());

    assert_shown(
        &client
            .start(&b.gw, &request.clone().without("client_id"))
            .await,
        "client_id is required",
    );
    assert_shown(
        &client
            .start(&b.gw, &request.clone().set("client_id", "no-such-client"))
            .await,
        "unknown client_id",
    );
    for other in [
        "https://attacker.example.com/callback",
        "http://127.0.0.1:7777/other",
        "http://localhost:7777/callback",
    ] {
        let page = client
            .start(&b.gw, &request.clone().set("redirect_uri", other))
            .await;
        assert_shown(&page, "does not match");
    }
    // With several registered URIs the client must say which.
    let mut m = OAuthClient::metadata(REDIRECT);
    m["redirect_uris"] = json!([REDIRECT, "https://app.example.com/cb"]);
    let multi = OAuthClient::register_with(&b.gw, m).await;
    let page = multi
        .start(
            &b.gw,
            &multi.authorization(&b.resource()).without("redirect_uri"),
        )
        .await;
    assert_shown(&page, "redirect_uri is required");
    assert_eq!(b.idp.calls("authorize"), 0, "nothing reached the IdP");
}

#[tokio::test]
async fn errors_after_the_redirect_uri_is_proven_go_back_to_a_trusted_client() {
    let (b, client) = Bridge::with_trusted_client(TokenMode::Gateway).await;
    let base = client.authorization(&b.resource());
    let cases = [
        (
            base.clone().set("response_type", "token"),
            "unsupported_response_type",
            "response_type",
        ),
        (
            base.clone().without("code_challenge"),
            "invalid_request",
            "code_challenge",
        ),
        (
            base.clone().set("code_challenge_method", "plain"),
            "invalid_request",
            "S256",
        ),
        (
            base.clone().without("code_challenge_method"),
            "invalid_request",
            "S256",
        ),
        (
            base.clone().set("scope", "openid admin"),
            "invalid_scope",
            "admin",
        ),
        (
            base.clone()
                .set("resource", "https://elsewhere.example.com/mcp"),
            "invalid_target",
            "resource",
        ),
        (
            base.clone()
                .set("resource", &format!("{}/apps/nope/mcp", b.gw.url())),
            "invalid_target",
            "resource",
        ),
    ];
    for (request, error, mentions) in cases {
        let back = client.error_redirect(&client.start(&b.gw, &request).await, error, &request);
        assert!(back["error_description"].contains(mentions), "{back:?}");
        assert_eq!(
            back.get("iss"),
            Some(&b.gw.public_url()),
            "RFC 9207 iss on errors too"
        );
    }
    assert_eq!(b.idp.calls("authorize"), 0);
}

#[tokio::test]
async fn loopback_redirects_match_on_any_port() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let mut other_port = OAuthClient {
        redirect_uri: "http://127.0.0.1:45123/callback".into(),
        ..client
    };
    let (request, code) = other_port.code(&b.gw, &b.resource()).await;
    let tokens = other_port
        .exchange_code(&b.gw, &code, &request.pkce.verifier)
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    // The code is bound to the port actually used.
    other_port.redirect_uri = REDIRECT.into();
    let (request, code) = other_port.code(&b.gw, &b.resource()).await;
    let with_other = OAuthClient {
        redirect_uri: "http://127.0.0.1:45124/callback".into(),
        ..other_port
    };
    let refused = with_other
        .exchange_code(&b.gw, &code, &request.pkce.verifier)
        .await;
    super::assert_oauth_error(&refused, 400, "invalid_grant");
}

#[tokio::test]
async fn resources_are_compared_as_canonical_uris() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let shouty = b.resource().replace("http://", "HTTP://") + "/";
    let tokens = client.tokens(&b.gw, &shouty).await;
    assert_eq!(
        jwt_claims(&tokens.access_token)["aud"],
        b.resource().as_str()
    );
    assert_eq!(b.app_status(&tokens.access_token).await, 200);
}

#[tokio::test]
async fn the_idp_gets_the_gateways_own_callback_pkce_state_and_nonce() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let request = client.authorization(&b.resource());
    let to_idp = client.start(&b.gw, &request).await;
    assert_eq!(to_idp.status, 302, "{}", to_idp.body);
    assert!(to_idp
        .location()
        .unwrap()
        .as_str()
        .starts_with(&b.idp.url("/authorize")));
    client.browser.follow(&to_idp).await;
    let seen = b.idp.last_authorize().expect("the IdP was asked");
    assert_eq!(
        seen.redirect_uri,
        format!("{}/api/v1/auth/callback", b.gw.url())
    );
    assert_eq!(seen.client_id, b.idp.client_id());
    assert_eq!(seen.code_challenge_method, "S256");
    assert_ne!(
        seen.code_challenge, request.pkce.challenge,
        "the gateway's own PKCE, not the client's"
    );
    assert_ne!(seen.state, request.state, "the gateway's own state");
    assert!(
        seen.nonce.as_deref().is_some_and(|n| n.len() >= 16),
        "{seen:?}"
    );
    assert!(seen.scope.split(' ').any(|s| s == "openid"));
}

#[tokio::test]
async fn callback_state_is_single_use_and_unknown_state_is_a_clear_page() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let request = client.authorization(&b.resource());
    let to_idp = client.start(&b.gw, &request).await;
    let at_idp = client.browser.follow(&to_idp).await;
    let callback = at_idp.location().unwrap().to_string();
    let first = client.browser.get(&callback).await;
    assert_eq!(first.status, 200, "consent page: {}", first.body);
    assert_shown(&client.browser.get(&callback).await, "already completed");
    let forged = format!("{}/api/v1/auth/callback?code=x&state=forged", b.gw.url());
    assert_shown(&client.browser.get(&forged).await, "unknown");
    assert_shown(
        &client
            .browser
            .get(&format!("{}/api/v1/auth/callback?code=x", b.gw.url()))
            .await,
        "no state",
    );
}

#[tokio::test]
async fn an_idp_refusal_is_relayed_to_a_trusted_client_with_its_state() {
    // A trusted client: only its errors are redirected (issue 13 row 7).
    let (b, client) = Bridge::with_trusted_client(TokenMode::Gateway).await;
    b.idp.deny_next();
    let request = client.authorization(&b.resource());
    client.error_redirect(
        &client.through_idp(&b.gw, &request).await,
        "access_denied",
        &request,
    );
}

#[tokio::test]
async fn an_idp_outage_at_the_code_exchange_is_temporarily_unavailable() {
    // A trusted client: only its errors are redirected (issue 13 row 7).
    let (b, client) = Bridge::with_trusted_client(TokenMode::Gateway).await;
    let request = client.authorization(&b.resource());
    let to_idp = client.start(&b.gw, &request).await;
    let at_idp = client.browser.follow(&to_idp).await;
    b.idp.set_failing(true);
    client.error_redirect(
        &client.browser.follow(&at_idp).await,
        "temporarily_unavailable",
        &request,
    );
    b.idp.set_failing(false);
    // It recovers by itself.
    client.tokens(&b.gw, &b.resource()).await;
}

#[tokio::test]
async fn a_bad_id_token_fails_the_sign_in() {
    // A trusted client: only its errors are redirected (issue 13 row 7).
    let (b, client) = Bridge::with_trusted_client(TokenMode::Gateway).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // `why`: what the error description must name (case-insensitive).
    for (tamper, why) in [
        (json!({"nonce": "replayed"}), "nonce"),
        (json!({"aud": "someone-else"}), "audience"),
        (json!({"iss": "https://impostor.example.com"}), "issuer"),
        (json!({"exp": now - 600}), "expired"),
    ] {
        b.idp.tamper_next_id_token(tamper.clone());
        let request = client.authorization(&b.resource());
        let page = client.through_idp(&b.gw, &request).await;
        let back = client.error_redirect(&page, "access_denied", &request);
        assert!(
            back["error_description"].to_lowercase().contains(why),
            "the description names the bad {why}: {back:?}"
        );
    }
    // An untampered one still works.
    client.tokens(&b.gw, &b.resource()).await;
}
