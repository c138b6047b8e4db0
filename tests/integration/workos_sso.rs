//! `idp.kind = "workos_sso"` (issue 16, item 2): sign-in through the WorkOS
//! SSO API against a hermetic fake built from seed `004_*`'s shapes: the
//! organization picked by e-mail domain, a fixed connection, an error from
//! WorkOS, a replayed code, and a WorkOS URL edited to another connection.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::management::{initialize, mcp};
use crate::oauth::{jwt_claims, REDIRECT};
use crate::support::gateway::{GatewayBuilder, TestGateway};
use crate::support::oauth_client::{
    browser::Page, AuthorizeRequest, ConsentPage, HtmlForm, OAuthClient, Tokens,
};
use crate::support::upstream::TestUpstream;
use crate::support::workos::{self, Person, TestWorkOs};

const KEY_ENV: &str = "TEST_WORKOS_API_KEY";

/// A gateway signing in through `w` with `target` (the `[idp]` keys that
/// pick the organization, connection or provider), and app `notes`.
fn sso_gateway(w: &TestWorkOs, up: &TestUpstream, target: &str, app: &str) -> GatewayBuilder {
    TestGateway::new()
        .protected_app("notes", up)
        .app_toml(app)
        .env(KEY_ENV, workos::API_KEY)
        .raw_toml(&format!(
            "[oauth]\ntoken_mode = \"gateway\"\n\n[idp]\nkind = \"workos_sso\"\nissuer = \"{api}\"\n\
             client_id = \"{id}\"\nclient_secret_env = \"{KEY_ENV}\"\n{target}\n",
            api = w.api(),
            id = workos::CLIENT_ID,
        ))
}

const BY_DOMAIN: &str =
    "organizations_by_domain = { \"acme.com\" = \"org_acme\", \"globex.com\" = \"org_globex\" }";

/// The gateway's redirect to the e-mail page, the page, and its form posted
/// with `email`: what the gateway answers.
async fn submit_email(
    client: &OAuthClient,
    gw: &TestGateway,
    request: &AuthorizeRequest,
    email: &str,
) -> Page {
    let to_page = client.start(gw, request).await;
    assert_eq!(to_page.status, StatusCode::FOUND, "{}", to_page.body);
    let location = to_page.location().unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/api/v1/auth/sso/email?state=", gw.url())),
        "{location}"
    );
    let page = client.browser.follow(&to_page).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let form = HtmlForm::find(&page.body, "sso").unwrap_or_else(|| panic!("{}", page.body));
    let mut fields: Vec<(String, String)> = form
        .fields
        .iter()
        .filter(|(n, _)| n != "email")
        .cloned()
        .collect();
    fields.push(("email".into(), email.into()));
    client
        .browser
        .post_form(&format!("{}{}", gw.url(), form.action.unwrap()), &fields)
        .await
}

/// WorkOS's redirect followed to the gateway's callback: its answer.
async fn via_workos(client: &OAuthClient, to_workos: &Page) -> Page {
    assert_eq!(to_workos.status, StatusCode::FOUND, "{}", to_workos.body);
    let back = client.browser.follow(to_workos).await;
    assert_eq!(
        back.status,
        StatusCode::FOUND,
        "WorkOS answers: {}",
        back.body
    );
    client.browser.follow(&back).await
}

async fn approve_and_exchange(
    client: &OAuthClient,
    gw: &TestGateway,
    request: &AuthorizeRequest,
    page: Page,
) -> Tokens {
    assert_eq!(page.status, StatusCode::OK, "consent page: {}", page.body);
    let form = HtmlForm::find(&page.body, "consent").unwrap_or_else(|| panic!("{}", page.body));
    let back = client.approve(&ConsentPage { page, form }).await;
    Tokens::from_page(
        &client
            .exchange_code(gw, &back["code"], &request.pkce.verifier)
            .await,
    )
}

#[tokio::test]
async fn the_organization_comes_from_the_email_domain_and_the_profile_reaches_policies_and_headers()
{
    let (w, up) = (TestWorkOs::start().await, TestUpstream::start().await);
    let mut ada = Person::new("prof_01ADA", "ada@acme.com");
    ada.groups = vec!["engineering".into(), "admins".into()];
    w.set_person(ada);
    let gw = sso_gateway(
        &w,
        &up,
        BY_DOMAIN,
        "access = { mode = \"list\", groups = [\"engineering\"] }\n\
         identity_headers = { subject = \"x-user\", email = \"x-email\", name = \"x-name\", organization = \"x-org\", groups = \"x-groups\" }",
    )
    .start()
    .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let resource = gw.app_url("notes", "/mcp");

    // A domain without single sign-on: the page again, nothing sent to WorkOS.
    let request = client.authorization(&resource);
    let again = submit_email(&client, &gw, &request, "ada@unknown.org").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(
        again.body.contains("not set up for unknown.org"),
        "{}",
        again.body
    );
    assert!(HtmlForm::find(&again.body, "sso").is_some());
    assert!(w.authorizes().is_empty());

    let request = client.authorization(&resource);
    let to_workos = submit_email(&client, &gw, &request, "Ada@ACME.com").await;
    let page = via_workos(&client, &to_workos).await;
    let sent = w.authorizes().pop().unwrap();
    let expected: HashMap<String, String> = [
        ("client_id", workos::CLIENT_ID.to_string()),
        (
            "redirect_uri",
            format!("{}/api/v1/auth/callback", gw.public_url()),
        ),
        ("response_type", "code".into()),
        ("organization", "org_acme".into()),
        ("login_hint", "Ada@ACME.com".into()),
        ("domain_hint", "acme.com".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in &expected {
        assert_eq!(sent.get(k), Some(v), "{k} in {sent:?}");
    }
    assert!(sent.get("state").is_some_and(|s| !s.is_empty()));
    let tokens = approve_and_exchange(&client, &gw, &request, page).await;

    let form = w.token_forms().pop().unwrap();
    assert_eq!(form["client_secret"], workos::API_KEY);
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["client_id"], workos::CLIENT_ID);

    let claims = jwt_claims(&tokens.access_token);
    assert_eq!(claims["sub"], "prof_01ADA");
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(
        claims["email_verified"], true,
        "acme.com maps to org_acme: {claims}"
    );
    assert_eq!(
        claims["groups"],
        serde_json::json!(["engineering", "admins"])
    );

    // In by the `groups` policy; identity in the headers.
    let resp = mcp(&gw, "notes", &tokens.access_token, initialize()).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last_request().unwrap();
    assert_eq!(seen.header("x-user"), Some("prof_01ADA"));
    assert_eq!(seen.header("x-email"), Some("ada@acme.com"));
    assert_eq!(seen.header("x-name"), Some("Ada Lovelace"));
    assert_eq!(seen.header("x-org"), Some("org_acme"));
    assert_eq!(seen.header("x-groups"), Some("engineering,admins"));
    assert!(!seen
        .header("authorization")
        .unwrap_or("")
        .contains("wos_at_"));

    // Bob of the same organization, in no group: no code for this app.
    w.set_person(Person::new("prof_01BOB", "bob@acme.com"));
    let request = client.authorization(&resource);
    let to_workos = submit_email(&client, &gw, &request, "bob@acme.com").await;
    let page = via_workos(&client, &to_workos).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
}

#[tokio::test]
async fn a_fixed_connection_signs_in_directly_and_an_edited_workos_url_is_refused() {
    let (w, up) = (TestWorkOs::start().await, TestUpstream::start().await);
    let gw = sso_gateway(&w, &up, "connection = \"conn_okta_1\"", "")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let resource = gw.app_url("notes", "/mcp");

    // No e-mail page: straight to WorkOS with exactly the connection.
    let request = client.authorization(&resource);
    let page = client.through_idp(&gw, &request).await;
    let sent = w.authorizes().pop().unwrap();
    assert_eq!(
        sent.get("connection").map(String::as_str),
        Some("conn_okta_1")
    );
    assert!(!sent.contains_key("organization") && !sent.contains_key("provider"));
    let tokens = approve_and_exchange(&client, &gw, &request, page).await;
    assert_eq!(jwt_claims(&tokens.access_token)["sub"], "prof_01ADA");
    assert_eq!(
        jwt_claims(&tokens.access_token)["email_verified"],
        false,
        "a fixed connection's IdP may assert any e-mail"
    );
    assert_eq!(
        mcp(&gw, "notes", &tokens.access_token, initialize())
            .await
            .status(),
        200
    );

    // The attack: the same gateway state, the WorkOS URL edited to another
    // connection of the environment (whose IdP asserts what it likes).
    let request = client.authorization(&resource);
    let to_workos = client.start(&gw, &request).await;
    let mut edited = to_workos.location().unwrap();
    let pairs: Vec<(String, String)> = edited
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "connection" {
                "conn_evil".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    edited.query_pairs_mut().clear().extend_pairs(pairs);
    let back = client.browser.get(edited.as_str()).await;
    let page = client.browser.follow(&back).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("another connection"), "{}", page.body);
    assert!(HtmlForm::find(&page.body, "consent").is_none());
}

#[tokio::test]
async fn a_workos_error_is_shown_and_relayed_as_access_denied() {
    let (w, up) = (TestWorkOs::start().await, TestUpstream::start().await);
    let mut gw = sso_gateway(&w, &up, "organization = \"org_acme\"", "")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let resource = gw.app_url("notes", "/mcp");

    w.fail_next(
        "profile_not_allowed_outside_organization",
        "Ada is not in Acme",
    );
    let page = client
        .through_idp(&gw, &client.authorization(&resource))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // WorkOS's code is on the page, its free text is not (a crafted
    // callback link must not put words on the gateway's page).
    assert!(!page.body.contains("Ada is not in Acme"), "{}", page.body);
    assert!(
        page.body
            .contains("profile_not_allowed_outside_organization"),
        "{}",
        page.body
    );
    assert!(page.body.contains("access_denied"), "{}", page.body);
    assert!(w.token_forms().is_empty());

    // A client the operator trusts gets it back as access_denied.
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let trusted = config.replacen(
        "[oauth]\n",
        &format!("[oauth]\ntrusted_clients = [\"{}\"]\n", client.client_id),
        1,
    );
    std::fs::write(gw.config_path(), trusted).unwrap();
    gw.restart().await;
    w.fail_next("connection_invalid", "The connection is inactive");
    let request = client.authorization(&resource);
    let page = client.through_idp(&gw, &request).await;
    let back = client.error_redirect(&page, "access_denied", &request);
    assert!(
        back["error_description"].contains("The connection is inactive"),
        "{back:?}"
    );
}

#[tokio::test]
async fn a_replayed_code_is_refused_with_a_clear_error() {
    let (w, up) = (TestWorkOs::start().await, TestUpstream::start().await);
    let gw = sso_gateway(&w, &up, "provider = \"GoogleOAuth\"", "")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let resource = gw.app_url("notes", "/mcp");

    let first = client.authorization(&resource);
    let to_workos = client.start(&gw, &first).await;
    let back = client.browser.follow(&to_workos).await;
    let used = back.location().unwrap();
    let code: String = used
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into();
    let page = client.browser.follow(&back).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    // The same callback again: the gateway's state is single use.
    let replay = client.browser.get(used.as_str()).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("Sign-in expired"), "{}", replay.body);

    // The used code under a fresh state: WorkOS says invalid_grant.
    let second = client.authorization(&resource);
    let to_workos = client.start(&gw, &second).await;
    let back = client.browser.follow(&to_workos).await;
    let mut swapped = back.location().unwrap();
    let pairs: Vec<(String, String)> = swapped
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                code.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    swapped.query_pairs_mut().clear().extend_pairs(pairs);
    let page = client.browser.get(swapped.as_str()).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(
        page.body
            .contains("expired or was already used (invalid_grant)"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&code),
        "WorkOS's text is not repeated: {}",
        page.body
    );
    let forms = w.token_forms();
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[1]["code"], code);
}

/// `/api/v1/me` keeps seed 002's shape for a WorkOS SSO user.
#[tokio::test]
async fn me_keeps_the_seed_shape() {
    let (w, up) = (TestWorkOs::start().await, TestUpstream::start().await);
    let gw = sso_gateway(&w, &up, "organization = \"org_acme\"", "")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let request = client.authorization("").without("resource");
    let page = client.through_idp(&gw, &request).await;
    let tokens = approve_and_exchange(&client, &gw, &request, page).await;
    let me: Value = client.me(&gw, &tokens.access_token).await.json();
    assert_eq!(me["user"]["workosUserId"], "prof_01ADA", "{me}");
    assert_eq!(me["user"]["email"], "ada@acme.com", "{me}");
    assert_eq!(me["user"]["name"], "Ada Lovelace", "{me}");
    let keys: Vec<&String> = me["user"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["email", "image", "name", "scopes", "workosUserId"],
        "{me}"
    );
}

/// Items 2 and 3 together: the WorkOS access token sealed in the session
/// at SSO sign-in is the subject token of a token exchange.
#[tokio::test]
async fn the_workos_access_token_is_the_subject_of_a_token_exchange() {
    use crate::management::Api;
    use crate::support::sts::{self, TestSts};
    let (w, up, s) = (
        TestWorkOs::start().await,
        TestUpstream::start().await,
        TestSts::start().await,
    );
    let gw = sso_gateway(&w, &up, "organization = \"org_acme\"", "")
        .raw_toml("[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let request = client.authorization("").without("resource");
    let page = client.through_idp(&gw, &request).await;
    let mgmt = approve_and_exchange(&client, &gw, &request, page).await;
    let api = Api {
        gw: &gw,
        token: mgmt.access_token.clone(),
    };
    let (id, slug) = api
        .create_app("exchanged", serde_json::json!({"upstreamUrl": up.url()}))
        .await;
    let (status, body) = api
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            serde_json::json!({"config": {"type": "token_exchange", "tokenEndpoint": s.token_url(),
                "audience": sts::AUDIENCE, "clientId": sts::CLIENT_ID, "clientSecret": sts::CLIENT_SECRET}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let request = client.authorization(&gw.app_url(&slug, "/mcp"));
    let page = client.through_idp(&gw, &request).await;
    let tokens = approve_and_exchange(&client, &gw, &request, page).await;
    let resp = mcp(&gw, &slug, &tokens.access_token, initialize()).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // This session's WorkOS token (from the second code WorkOS issued), not
    // the management session's, and never the gateway's own token.
    let form = s.forms().pop().unwrap();
    assert_eq!(form["subject_token"], "wos_at_01CODE2");
    let auth = up
        .last_request()
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(
        auth.starts_with("Bearer xt-opaque:wos_at_01CODE2-"),
        "{auth}"
    );
}
