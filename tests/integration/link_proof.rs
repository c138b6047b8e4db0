//! Links handed to MCP clients are bound to their user (issue 16 item 4;
//! MCP 2025-11-25 URL-mode elicitation; RFC 9700 §4.7).
//!
//! The attack: Ada's MCP client shows her a connect link; it leaks (a
//! forwarded chat, a shared screen) and Mallory opens it. Before, the
//! single-use ticket was the only check: Mallory's upstream account would be
//! connected under Ada's gateway identity (Ada's calls then act as Mallory)
//! or Mallory could spend Ada's link. Now the browser signs in at the
//! identity provider first (`/api/v1/auth/prove`); another account gets
//! "Not your link", nothing reaches the provider, and Ada's link still works.
//!
//! And a token service answering `interaction_required` gets the user a
//! sign-in-again link: the fresh sign-in (`prompt=consent`) replaces the IdP
//! token of their gateway session, the subject of the next exchange.

use serde_json::{json, Value};

use crate::management::{initialize, mcp, Api};
use crate::oauth::REDIRECT;
use crate::support::gateway::TestGateway;
use crate::support::idp::{IdpUser, TestIdp};
use crate::support::oauth_client::{Browser, OAuthClient, TokenMode, Tokens};
use crate::support::provider::{self, TestProvider};
use crate::support::sts::{self, TestSts};
use crate::support::upstream::TestUpstream;
use crate::tenancy_connect::connect_in_browser;

const ADA: &str = "user_ada";

/// A gateway in gateway token mode, Ada signed in at the IdP, her client
/// registered, and her management API handle.
struct Setup {
    idp: TestIdp,
    up: TestUpstream,
    gw: TestGateway,
    client: OAuthClient,
    mgmt: Tokens,
}

async fn setup() -> Setup {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    idp.set_user(IdpUser::new(ADA, "ada@example.com"));
    let gw = TestGateway::new()
        .oauth(&idp, TokenMode::Gateway)
        .raw_toml("[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n")
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let mgmt = client.authorize_and_exchange(&gw, &gw.public_url()).await;
    Setup {
        idp,
        up,
        gw,
        client,
        mgmt,
    }
}

impl Setup {
    fn api(&self) -> Api<'_> {
        Api {
            gw: &self.gw,
            token: self.mgmt.access_token.clone(),
        }
    }

    /// An app every signed-in user may use, with connection `config`;
    /// returns its slug.
    async fn app_with(&self, config: Value) -> String {
        let api = self.api();
        let (id, slug) = api
            .create_app(
                "linked",
                json!({"upstreamUrl": self.up.url(), "access": {"mode": "anyone"}}),
            )
            .await;
        let (s, body) = api
            .post(
                &format!("/api/v1/apps/{id}/auth"),
                json!({ "config": config }),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        slug
    }

    /// Ada's token for the app.
    async fn app_token(&self, slug: &str) -> String {
        self.client
            .authorize_and_exchange(&self.gw, &self.gw.app_url(slug, "/mcp"))
            .await
            .access_token
    }

    /// An MCP initialize's JSON-RPC answer.
    async fn initialize(&self, slug: &str, token: &str) -> Value {
        let resp = mcp(&self.gw, slug, token, initialize()).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

/// The connect URL of a `-32001` "connect your account" answer.
fn connect_url(answer: &Value) -> String {
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    answer["error"]["data"]["connectUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string()
}

#[tokio::test]
async fn a_connect_link_opened_by_another_account_connects_nobody_and_its_user_still_can() {
    let s = setup().await;
    let p = TestProvider::start().await;
    let slug = s
        .app_with(
            json!({"type": "oauth", "authorizationEndpoint": p.url("/authorize"),
            "tokenEndpoint": p.url("/token"), "clientId": provider::CLIENT_ID,
            "clientSecret": provider::CLIENT_SECRET}),
        )
        .await;
    let token = s.app_token(&slug).await;
    let url = connect_url(&s.initialize(&slug, &token).await);
    assert!(url.contains("/connect?ticket="), "{url}");

    // Mallory opens Ada's link: the IdP signs her in as herself.
    s.idp
        .set_user(IdpUser::new("user_mallory", "mallory@example.com"));
    let mallory = Browser::new().open_link(&url).await;
    assert_eq!(mallory.status, 403, "{}", mallory.body);
    assert!(mallory.body.contains("Not your link"), "{}", mallory.body);
    assert_eq!(p.calls("authorize"), 0, "the provider was never asked");
    assert_eq!(
        s.idp.last_authorize().and_then(|a| a.prompt),
        None,
        "a plain sign-in: a user with an IdP session passes through"
    );

    // Ada opens it: signed in as herself, the link goes on to the provider.
    s.idp.set_user(IdpUser::new(ADA, "ada@example.com"));
    let browser = Browser::new();
    let done = connect_in_browser(&browser, &s.gw, &url, "confirm").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let after = s.initialize(&slug, &token).await;
    assert!(after.get("error").is_none(), "{after}");
    assert_eq!(
        s.up.last_request()
            .and_then(|r| r.header("authorization").map(str::to_string))
            .as_deref()
            .map(|a| a.starts_with("Bearer ")),
        Some(true)
    );

    // Spent: the same link opens nothing, for Ada too.
    let again = Browser::new().open_link(&url).await;
    assert_eq!(again.status, 400, "{}", again.body);
}

#[tokio::test]
async fn a_proof_opens_only_the_link_it_was_made_for() {
    let s = setup().await;
    let p = TestProvider::start().await;
    let slug = s
        .app_with(
            json!({"type": "oauth", "authorizationEndpoint": p.url("/authorize"),
            "tokenEndpoint": p.url("/token"), "clientId": provider::CLIENT_ID,
            "clientSecret": provider::CLIENT_SECRET}),
        )
        .await;
    let token = s.app_token(&slug).await;
    let first = connect_url(&s.initialize(&slug, &token).await);
    let second = connect_url(&s.initialize(&slug, &token).await);

    // Ada proves herself for the first link, and the proof is replayed on
    // the second one (and on the first one again).
    let browser = Browser::new();
    let mut page = browser.get(&first).await;
    let mut with_proof = None;
    for _ in 0..8 {
        let next = page.location().expect("a redirect");
        if next.query_pairs().any(|(k, _)| k == "proof") {
            with_proof = Some(next);
            break;
        }
        page = browser.get(next.as_str()).await;
    }
    let back = with_proof.expect("the way back to the link");
    let proof: String = back
        .query_pairs()
        .find(|(k, _)| k == "proof")
        .unwrap()
        .1
        .into_owned();
    let replayed = browser.get(&format!("{second}&proof={proof}")).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    // The proof is spent even by the refused attempt, and the first link
    // still asks who opens it.
    let first_again = browser.get(back.as_str()).await;
    assert_eq!(first_again.status, 400, "{}", first_again.body);
    assert_eq!(p.calls("authorize"), 0);
}

#[tokio::test]
async fn interaction_required_gets_a_sign_in_again_link_that_renews_the_subject_token() {
    let s = setup().await;
    let sts = TestSts::start().await;
    let slug = s
        .app_with(
            json!({"type": "token_exchange", "tokenEndpoint": sts.token_url(),
            "audience": sts::AUDIENCE, "clientId": sts::CLIENT_ID,
            "clientSecret": sts::CLIENT_SECRET}),
        )
        .await;
    let token = s.app_token(&slug).await;

    // The STS wants Ada to act at the IdP first.
    sts.refuse_with(Some("interaction_required"));
    let url = connect_url(&s.initialize(&slug, &token).await);
    let before = sts.forms().pop().unwrap()["subject_token"].clone();

    // Mallory cannot use it …
    s.idp
        .set_user(IdpUser::new("user_mallory", "mallory@example.com"));
    let mallory = Browser::new().open_link(&url).await;
    assert_eq!(mallory.status, 403, "{}", mallory.body);
    // … Ada signs in again, asked for consent.
    s.idp.set_user(IdpUser::new(ADA, "ada@example.com"));
    sts.refuse_with(None);
    let page = Browser::new().open_link(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Signed in again"), "{}", page.body);
    assert_eq!(
        s.idp.last_authorize().and_then(|a| a.prompt).as_deref(),
        Some("consent")
    );

    // The retried call succeeds, exchanged with the new IdP token.
    let after = s.initialize(&slug, &token).await;
    assert!(after.get("error").is_none(), "{after}");
    let renewed = sts.forms().pop().unwrap()["subject_token"].clone();
    assert_ne!(renewed, before, "the session's IdP token was replaced");
    assert_eq!(sts::jwt_sub(&renewed).as_deref(), Some(ADA));
}
