//! Tenant boundaries (issue 12): two ordinary users on one gateway, each
//! trying what an attacker would — manage with an app's token, reach the
//! other's app, take a host, pose as an admin, reuse consent for another
//! app. Every test here failed on the gateway before these boundaries.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::oauth::{initialize_status, jwt_claims, REDIRECT};
use crate::support::gateway::{header_str, GatewayBuilder, TestGateway};
use crate::support::idp::{IdpUser, TestIdp};
use crate::support::oauth_client::{HtmlForm, OAuthClient, TokenMode, Tokens};
use crate::support::upstream::TestUpstream;

/// A gateway trusting `idp`'s tokens (`[auth]`), with `extra` TOML.
fn trusting(idp: &TestIdp, extra: &str) -> GatewayBuilder {
    TestGateway::new().raw_toml(&format!(
        "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n\n{extra}\n{LOOPBACK_UPSTREAMS}",
        iss = idp.issuer()
    ))
}

/// Test upstreams listen on loopback, which the API refuses unless allowed.
const LOOPBACK_UPSTREAMS: &str = "[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\"]\n";

/// An access token from `idp` with any claims the test needs.
fn token(idp: &TestIdp, sub: &str, aud: &str, extra: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "iss": idp.issuer(), "sub": sub, "aud": aud, "scope": "openid",
        "client_id": "gw-client", "iat": now, "exp": now + 600, "jti": format!("{sub}-{now}-{aud}"),
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    idp.sign_claims(&claims)
}

/// One user's view of the management API (the management tests' client).
type User<'a> = crate::management::Api<'a>;

/// Creates an app; returns its id and MCP URL.
async fn app(user: &User<'_>, name: &str, config: Value) -> (String, String) {
    let (id, slug) = user.create_app(name, config).await;
    (id, user.gw.app_url(&slug, "/mcp"))
}

fn as_user<'a>(gw: &'a TestGateway, idp: &TestIdp, sub: &str, extra: Value) -> User<'a> {
    User {
        gw,
        token: token(idp, sub, &gw.public_url(), extra),
    }
}

#[tokio::test]
async fn an_apps_token_does_not_manage_the_gateway_and_a_management_token_reaches_no_app() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .oauth(&idp, TokenMode::Gateway)
        .protected_app("notes", &up)
        .start()
        .await;
    let notes = gw.app_url("notes", "/mcp");
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let app_token = client.tokens(&gw, &notes).await.access_token;
    assert_eq!(initialize_status(&gw, &notes, &app_token).await, 200);

    // The attack: an MCP client's token for one app used on the management API.
    for (method, path) in [
        ("GET", "/api/v1/apps"),
        ("POST", "/api/v1/apps"),
        ("GET", "/api/v1/me"),
    ] {
        let resp = gw
            .client()
            .request(method.parse().unwrap(), format!("{}{path}", gw.url()))
            .bearer_auth(&app_token)
            .json(&json!({"name": "x", "upstreamUrl": up.url()}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let challenge = header_str(&resp, "www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains(&format!("not issued for {}", gw.public_url())),
            "the challenge names the management audience: {challenge}"
        );
    }

    // Seed 001: authorize without `resource` → a management token.
    let request = client.authorization("").without("resource");
    let page = client.through_idp(&gw, &request).await;
    let form = HtmlForm::find(&page.body, "consent").unwrap_or_else(|| panic!("{}", page.body));
    assert!(page.body.contains("manage your apps"), "{}", page.body);
    let back = client
        .approve(&crate::support::oauth_client::ConsentPage { page, form })
        .await;
    let mgmt = Tokens::from_page(
        &client
            .exchange_code(&gw, &back["code"], &request.pkce.verifier)
            .await,
    );
    assert_eq!(
        jwt_claims(&mgmt.access_token)["aud"],
        gw.public_url().as_str()
    );
    let apps = gw
        .client()
        .get(format!("{}/api/v1/apps", gw.url()))
        .bearer_auth(&mgmt.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    assert_eq!(
        client.me(&gw, &mgmt.access_token).await.status,
        StatusCode::OK
    );

    // …and that token opens no app (it was `aud = public_url`, which every app used to accept).
    assert_eq!(
        initialize_status(&gw, &notes, &mgmt.access_token).await,
        401
    );
}

#[tokio::test]
async fn consent_to_one_app_is_not_consent_to_another() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .oauth(&idp, TokenMode::Gateway)
        .protected_app("notes", &up)
        .protected_app("crm", &up)
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    client
        .authorize_and_exchange(&gw, &gw.app_url("notes", "/mcp"))
        .await;

    // Same user, same client, notes again: remembered, no page.
    let again = client
        .through_idp(&gw, &client.authorization(&gw.app_url("notes", "/mcp")))
        .await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.body);

    // Another app: the user is asked, no code is issued silently.
    let crm = client
        .through_idp(&gw, &client.authorization(&gw.app_url("crm", "/mcp")))
        .await;
    assert_eq!(
        crm.status,
        StatusCode::OK,
        "asked again for crm: {:?}",
        crm.location()
    );
    assert!(
        crm.body.contains("crm"),
        "the page names the app: {}",
        crm.body
    );
    assert!(HtmlForm::find(&crm.body, "consent").is_some());
}

#[tokio::test]
async fn an_api_app_is_its_owners_until_its_policy_says_otherwise() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = trusting(&idp, "").start().await;
    let ada = as_user(&gw, &idp, "user_ada", json!({}));
    let (id, mcp) = app(
        &ada,
        "Ada's notes",
        json!({"upstreamUrl": up.url(), "public": false}),
    )
    .await;
    let (s, cfg) = ada
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{id}/config"),
            None,
        )
        .await;
    assert_eq!(
        (s, &cfg["config"]["access"]["mode"]),
        (200, &json!("owner")),
        "{cfg}"
    );

    let call = |sub: &str, extra: Value| {
        let t = token(&idp, sub, &mcp, extra);
        let (gw, mcp) = (&gw, mcp.clone());
        async move { initialize_status(gw, &mcp, &t).await }
    };
    let before = up.count();
    assert_eq!(call("user_ada", json!({})).await, 200);
    // The attack: bob holds a valid token for ada's app URL (any IdP will mint one).
    assert_eq!(call("user_bob", json!({})).await, 403);
    assert_eq!(
        up.count(),
        before + 1,
        "bob's request never reached the upstream"
    );

    let put = |access: Value| {
        let body = json!({"upstreamUrl": up.url(), "public": false, "access": access});
        let ada = &ada;
        let path = format!("/api/v1/apps/{id}/config");
        async move { ada.send(reqwest::Method::PUT, &path, Some(body)).await }
    };
    let (s, b) = put(json!({"mode": "list", "users": ["user_bob"]})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(call("user_bob", json!({})).await, 200);
    assert_eq!(call("user_carol", json!({})).await, 403);

    let (s, b) =
        put(json!({"mode": "list", "emailDomains": ["example.org"], "organizations": ["org_42"]}))
            .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(call("user_bob", json!({})).await, 403, "no longer listed");
    let carol = json!({"email": "carol@example.org", "email_verified": false});
    assert_eq!(
        call("user_carol", carol).await,
        403,
        "an unverified e-mail proves nothing"
    );
    let carol = json!({"email": "carol@example.org", "email_verified": true});
    assert_eq!(call("user_carol", carol).await, 200);
    assert_eq!(call("user_dan", json!({"org_id": "org_42"})).await, 200);
    assert_eq!(call("user_ada", json!({})).await, 200, "the owner always");

    let (s, b) = put(json!({"mode": "list", "emailDomains": ["not a domain"]})).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (422, &json!("validation_error")),
        "{b}"
    );
    let (s, b) = put(json!({"mode": "anyone"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(call("user_erin", json!({})).await, 200);
}

#[tokio::test]
async fn no_code_is_issued_for_an_app_the_user_may_not_use() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .oauth(&idp, TokenMode::Gateway)
        .raw_toml(LOOPBACK_UPSTREAMS)
        .start()
        .await;
    // Ada signs in for the management API and creates an app.
    let ada_client = OAuthClient::register(&gw, REDIRECT).await;
    let mgmt = ada_client.tokens(&gw, &gw.public_url()).await;
    let ada = User {
        gw: &gw,
        token: mgmt.access_token,
    };
    let (_, mcp) = app(
        &ada,
        "Ada's CRM",
        json!({"upstreamUrl": up.url(), "public": false}),
    )
    .await;
    assert_eq!(ada_client.tokens(&gw, &mcp).await.token_type, "Bearer");

    // Bob signs in at the same IdP and asks for ada's app.
    idp.set_user(IdpUser::new("user_bob", "bob@example.com"));
    let bob = OAuthClient::register(&gw, REDIRECT).await;
    let page = bob.through_idp(&gw, &bob.authorization(&mcp)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.location().is_none(), "an error page, not a redirect");
    assert!(!page.body.contains("code="), "{}", page.body);
}

#[tokio::test]
async fn hosts_are_for_admins_and_never_the_gateways_own_or_anothers() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = trusting(&idp, "[management]\nadmins = [\"user_root\"]\n")
        .app("platform", &up)
        .host("platform.test")
        .start()
        .await;
    let ada = as_user(&gw, &idp, "user_ada", json!({}));
    let root = as_user(&gw, &idp, "user_root", json!({}));
    let with_host = |host: &str| json!({"name": format!("h {host}"), "config": {"upstreamUrl": up.url(), "public": true, "host": host}});

    // The attack: an ordinary user routes the gateway's own host (every app's traffic) to themselves.
    let (s, b) = ada.post("/api/v1/apps", with_host("127.0.0.1")).await;
    assert_eq!((s, &b["error"]["code"]), (403, &json!("forbidden")), "{b}");
    let (s, b) = ada.post("/api/v1/apps", with_host("mine.test")).await;
    assert_eq!(s, 403, "{b}");
    // Admins may route hosts, but not the gateway's own nor one already taken.
    let (s, b) = root.post("/api/v1/apps", with_host("127.0.0.1")).await;
    assert_eq!((s, &b["error"]["code"]), (409, &json!("conflict")), "{b}");
    let (s, b) = root.post("/api/v1/apps", with_host("platform.test")).await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = root.post("/api/v1/apps", with_host("a.test")).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = root.post("/api/v1/apps", with_host("A.TEST")).await;
    assert_eq!(s, 409, "{b}");

    // The gateway's own name still routes by path.
    let r = gw
        .client()
        .post(gw.app_url("platform", "/mcp"))
        .header("content-type", "application/json")
        .body(crate::oauth::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.last_request().unwrap().path, "/mcp");
}

#[tokio::test]
async fn admins_are_named_by_subject_or_by_a_verified_email() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = trusting(
        &idp,
        "[management]\nadmins = [\"boss@example.com\", \"user_root\"]\n",
    )
    .start()
    .await;
    let ada = as_user(&gw, &idp, "user_ada", json!({}));
    let (id, _) = app(
        &ada,
        "Ada's",
        json!({"upstreamUrl": up.url(), "public": true}),
    )
    .await;
    let sees = |sub: &str, extra: Value| {
        let u = as_user(&gw, &idp, sub, extra);
        let path = format!("/api/v1/apps/{id}");
        async move { u.send(reqwest::Method::GET, &path, None).await.0 }
    };
    // The attack: the admin's address typed at a provider that does not verify it.
    assert_eq!(
        sees("user_eve", json!({"email": "boss@example.com"})).await,
        404
    );
    assert_eq!(
        sees(
            "user_eve",
            json!({"email": "boss@example.com", "email_verified": false})
        )
        .await,
        404
    );
    assert_eq!(
        sees(
            "user_eve",
            json!({"email": "boss@example.com", "email_verified": "false"})
        )
        .await,
        404
    );
    assert_eq!(
        sees(
            "user_boss",
            json!({"email": "boss@example.com", "email_verified": true})
        )
        .await,
        200
    );
    assert_eq!(sees("user_root", json!({})).await, 200);
    assert_eq!(sees("user_bob", json!({})).await, 404);
}
