//! RFC 8693 token exchange as an upstream credential (issue 16, item 3):
//! against a fake STS that checks the grant type, the subject token type
//! and the audience. Each user's request reaches the upstream with a token
//! exchanged for that user's own; exchanges are cached and single-flight per
//! (connection, user); an STS refusal is a JSON-RPC error naming the reason
//! class and never the STS's text; the STS URL obeys the egress policy.

use serde_json::{json, Value};

use crate::management::{gateway, initialize, mcp, Api};
use crate::oauth::REDIRECT;
use crate::support::gateway::TestGateway;
use crate::support::idp::{IdpUser, TestIdp};
use crate::support::oauth_client::{HtmlForm, OAuthClient, TokenMode, Tokens};
use crate::support::sts::{self, TestSts};
use crate::support::upstream::TestUpstream;

fn exchange_config(s: &TestSts) -> Value {
    json!({"type": "token_exchange", "tokenEndpoint": s.token_url(), "audience": sts::AUDIENCE,
           "resource": "https://api.example.com/v1", "scopes": ["contacts.read"],
           "clientId": sts::CLIENT_ID, "clientSecret": sts::CLIENT_SECRET})
}

/// An app shared with every signed-in user, credentialed by token exchange.
async fn exchange_app(api: &Api<'_>, up: &TestUpstream, s: &TestSts) -> String {
    let (id, slug) = api
        .create_app(
            "exchanged",
            json!({"upstreamUrl": up.url(), "access": {"mode": "anyone"}}),
        )
        .await;
    let (status, body) = api
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": exchange_config(s)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["auth"]["config"]["type"], "token_exchange", "{body}");
    assert_eq!(body["auth"]["status"], "valid", "{body}");
    assert!(!body.to_string().contains(sts::CLIENT_SECRET), "{body}");
    slug
}

fn app_token(gw: &TestGateway, idp: &TestIdp, slug: &str, sub: &str) -> String {
    idp.mint_access_token(sub, &gw.app_url(slug, "/mcp"), "", 600)
}

/// The `Authorization` the upstream received on its last request.
fn upstream_auth(up: &TestUpstream) -> String {
    up.last_request()
        .and_then(|r| r.header("authorization").map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn each_user_reaches_the_upstream_with_their_own_exchanged_token() {
    let (idp, up, s) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestSts::start().await,
    );
    let gw = gateway(&idp).start().await;
    let slug = exchange_app(&Api::as_user(&gw, &idp, "user_ada"), &up, &s).await;
    let checks = s.calls();

    let ada = app_token(&gw, &idp, &slug, "user_ada");
    let resp = mcp(&gw, &slug, &ada, initialize()).await;
    assert_eq!(resp.status(), 200);
    let auth = upstream_auth(&up);
    assert!(auth.starts_with("Bearer xt-user_ada-"), "{auth}");

    let form = s.forms().pop().unwrap();
    let f = |k: &str| form.get(k).map(String::as_str);
    assert_eq!(
        f("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
    );
    assert_eq!(
        f("subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(
        f("subject_token"),
        Some(ada.as_str()),
        "outside gateway mode the subject token is the client's bearer"
    );
    assert_eq!(f("audience"), Some(sts::AUDIENCE));
    assert_eq!(f("resource"), Some("https://api.example.com/v1"));
    assert_eq!(f("scope"), Some("contacts.read"));
    assert_eq!(
        f("requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );

    let bob = app_token(&gw, &idp, &slug, "user_bob");
    assert_eq!(mcp(&gw, &slug, &bob, initialize()).await.status(), 200);
    let auth_bob = upstream_auth(&up);
    assert!(auth_bob.starts_with("Bearer xt-user_bob-"), "{auth_bob}");
    assert_ne!(auth, auth_bob);
    assert_eq!(s.calls(), checks + 2, "one exchange per user");

    // Ada's next request gets her cached token, not Bob's.
    assert_eq!(mcp(&gw, &slug, &ada, initialize()).await.status(), 200);
    assert_eq!(upstream_auth(&up), auth);
    assert_eq!(s.calls(), checks + 2);
}

#[tokio::test]
async fn one_exchange_serves_many_concurrent_requests_of_a_user() {
    let (idp, up, s) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestSts::start().await,
    );
    let gw = gateway(&idp).start().await;
    let slug = exchange_app(&Api::as_user(&gw, &idp, "user_ada"), &up, &s).await;
    let checks = s.calls();
    s.set_delay_ms(300);
    let ada = app_token(&gw, &idp, &slug, "user_ada");
    let calls = (0..8).map(|_| mcp(&gw, &slug, &ada, initialize()));
    for resp in futures::future::join_all(calls).await {
        assert_eq!(resp.status(), 200);
    }
    for _ in 0..4 {
        assert_eq!(mcp(&gw, &slug, &ada, initialize()).await.status(), 200);
    }
    assert_eq!(s.calls(), checks + 1, "12 requests, one exchange");
    let tokens: std::collections::HashSet<String> = up
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
}

#[tokio::test]
async fn a_refused_exchange_is_a_jsonrpc_error_with_the_reason_class_only() {
    let (idp, up, s) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestSts::start().await,
    );
    let gw = gateway(&idp).start().await;
    let slug = exchange_app(&Api::as_user(&gw, &idp, "user_ada"), &up, &s).await;
    let ada = app_token(&gw, &idp, &slug, "user_ada");
    let before = up.count();

    for (sts_error, reason, code) in [
        ("interaction_required", "interaction_required", -32001),
        ("invalid_grant", "invalid_grant", -32001),
        // Not a standard code: named by class, its text never repeated.
        ("user_locked_by_policy_engine", "refused", -32001),
    ] {
        s.refuse_with(Some(sts_error));
        let resp = mcp(&gw, &slug, &ada, initialize()).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(!text.contains(sts::LEAKY_DETAIL), "{text}");
        assert!(!text.contains("blocked"), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["id"], 1, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["data"]["reason"], reason, "{body}");
    }
    assert_eq!(up.count(), before, "nothing reached the upstream");

    // Refusals are not cached: once the STS agrees, the user gets through.
    s.refuse_with(None);
    assert_eq!(mcp(&gw, &slug, &ada, initialize()).await.status(), 200);
    assert!(upstream_auth(&up).starts_with("Bearer xt-user_ada-"));
    assert_eq!(up.count(), before + 1);
}

#[tokio::test]
async fn an_sts_that_is_down_is_unavailable_not_a_leak() {
    let (idp, up, s) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestSts::start().await,
    );
    let gw = gateway(&idp).start().await;
    let slug = exchange_app(&Api::as_user(&gw, &idp, "user_ada"), &up, &s).await;
    let ada = app_token(&gw, &idp, &slug, "user_ada");
    drop(s);
    let body: Value = mcp(&gw, &slug, &ada, initialize())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], -32603, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "unavailable", "{body}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn token_exchange_connections_are_validated_and_obey_the_egress_policy() {
    let (idp, s) = (TestIdp::start().await, TestSts::start().await);
    let gw = gateway(&idp).start().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, _) = ada
        .create_app("x", json!({"upstreamUrl": "http://127.0.0.1:9/"}))
        .await;
    let path = format!("/api/v1/apps/{id}/auth");
    for (edit, field) in [
        (
            json!({"audience": null, "resource": null}),
            "config.audience",
        ),
        (json!({"tokenEndpoint": null}), "config.tokenEndpoint"),
        (
            json!({"tokenEndpoint": "ftp://sts/token"}),
            "config.tokenEndpoint",
        ),
        (json!({"clientId": null}), "config.clientId"),
        (json!({"resource": "not a uri"}), "config.resource"),
        (
            json!({"requestedTokenType": "jwt"}),
            "config.requestedTokenType",
        ),
        (
            json!({"authorizationEndpoint": "https://sts/authorize"}),
            "config.authorizationEndpoint",
        ),
    ] {
        let mut config = exchange_config(&s);
        for (k, v) in edit.as_object().unwrap() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        let (status, body) = ada.post(&path, json!({ "config": config })).await;
        assert_eq!(status, 422, "{edit}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
    }

    // Only the upstream's address is allowed: an STS on another loopback
    // address is refused by class, at creation and on every request.
    let (up, far) = (
        TestUpstream::start().await,
        TestSts::start_on("127.0.0.2").await,
    );
    let strict = TestGateway::new()
        .raw_toml(&format!(
            "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n\n\
             [security]\nallow_upstream_cidrs = [\"127.0.0.1/32\"]\n",
            iss = idp.issuer()
        ))
        .start()
        .await;
    let ada = Api::as_user(&strict, &idp, "user_ada");
    let (id, slug) = ada
        .create_app(
            "y",
            json!({"upstreamUrl": up.url(), "access": {"mode": "anyone"}}),
        )
        .await;
    let (status, body) = ada
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": exchange_config(&far)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["auth"]["status"], "invalid", "{body}");
    assert_eq!(
        body["auth"]["lastError"], "the token endpoint failed: forbidden address (loopback)",
        "{body}"
    );
    let token = app_token(&strict, &idp, &slug, "user_ada");
    let body: Value = mcp(&strict, &slug, &token, initialize())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["data"]["reason"], "unavailable", "{body}");
    assert_eq!(far.calls(), 0, "the STS was never contacted");
    assert_eq!(up.count(), 0);
}

/// Gateway token mode: the client holds the gateway's token; the subject
/// token is the IdP access token sealed in the user's session.
#[tokio::test]
async fn in_gateway_mode_the_subject_token_is_the_sessions_idp_token() {
    let (idp, up, s) = (
        TestIdp::start().await,
        TestUpstream::start().await,
        TestSts::start().await,
    );
    idp.set_user(IdpUser::new("user_gina", "gina@example.com"));
    let gw = TestGateway::new()
        .oauth(&idp, TokenMode::Gateway)
        .raw_toml("[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    // A management token (no `resource`), then Gina's app and its connection.
    let request = client.authorization("").without("resource");
    let page = client.through_idp(&gw, &request).await;
    let form = HtmlForm::find(&page.body, "consent").unwrap_or_else(|| panic!("{}", page.body));
    let back = client
        .approve(&crate::support::oauth_client::ConsentPage { page, form })
        .await;
    let mgmt = Tokens::from_page(
        &client
            .exchange_code(&gw, &back["code"], &request.pkce.verifier)
            .await,
    );
    let api = Api {
        gw: &gw,
        token: mgmt.access_token.clone(),
    };
    let slug = exchange_app(&api, &up, &s).await;

    let tokens = client
        .authorize_and_exchange(&gw, &gw.app_url(&slug, "/mcp"))
        .await;
    let checks = s.calls();
    let resp = mcp(&gw, &slug, &tokens.access_token, initialize()).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert!(upstream_auth(&up).starts_with("Bearer xt-user_gina-"));
    assert_eq!(s.calls(), checks + 1);
    let subject = s.forms().pop().unwrap()["subject_token"].clone();
    assert_ne!(
        subject, tokens.access_token,
        "the gateway's own token never goes to the STS"
    );
    assert_eq!(sts::jwt_sub(&subject).as_deref(), Some("user_gina"));
    assert_eq!(
        crate::oauth::jwt_claims(&subject)["iss"],
        idp.issuer().as_str(),
        "the IdP's access token, from the session"
    );
}
