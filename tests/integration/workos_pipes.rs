//! WorkOS Pipes as a credential source (issue 16 item 2, seed `003_*`),
//! against the hermetic WorkOS fake: the user's provider token per request
//! (cached, one flight per user), each answer that sends the user to connect
//! (not installed, needs re-authorization, missing scopes) delivered as a
//! URL-mode elicitation or `-32001`, and the connect link through WorkOS's
//! authorize page. With another identity provider the type is refused.

use serde_json::{json, Value};

use crate::management::{initialize, mcp, Api};
use crate::oauth::REDIRECT;
use crate::support::gateway::TestGateway;
use crate::support::idp::TestIdp;
use crate::support::oauth_client::{
    browser::Page, Browser, ConsentPage, HtmlForm, OAuthClient, Tokens,
};
use crate::support::upstream::TestUpstream;
use crate::support::workos::{self, TestWorkOs};
use crate::support::workos_pipes::active;

const KEY_ENV: &str = "TEST_WORKOS_API_KEY";
const ADA: &str = "prof_01ADA";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";

struct Setup {
    w: TestWorkOs,
    up: TestUpstream,
    gw: TestGateway,
    slug: String,
    /// Ada's token for the app.
    token: String,
    /// Ada's management token and the app's id.
    mgmt: String,
    app_id: String,
}

impl Setup {
    /// WorkOS Pipes calls about users (not the connection's own check).
    fn user_calls(&self, action: &str) -> Vec<(Value, String)> {
        self.w
            .pipes_calls(action)
            .into_iter()
            .filter(|(body, _)| body["user_id"] != CHECK_USER)
            .collect()
    }
}

/// The made-up user the gateway asks about to check the API key.
const CHECK_USER: &str = "drio-connection-check";

async fn tokens(client: &OAuthClient, gw: &TestGateway, resource: Option<&str>) -> Tokens {
    let request = match resource {
        Some(r) => client.authorization(r),
        None => client.authorization("").without("resource"),
    };
    let page = client.through_idp(gw, &request).await;
    assert_eq!(page.status, 200, "consent page: {}", page.body);
    let form = HtmlForm::find(&page.body, "consent").unwrap_or_else(|| panic!("{}", page.body));
    let back = client.approve(&ConsentPage { page, form }).await;
    Tokens::from_page(
        &client
            .exchange_code(gw, &back["code"], &request.pkce.verifier)
            .await,
    )
}

/// A gateway signing in with WorkOS SSO (organization `org_acme`), an app
/// whose credential is the `github` Pipe (`organizationScoped`), and Ada's
/// token for it.
async fn setup() -> Setup {
    setup_with("organization = \"org_acme\"", true).await
}

/// As [`setup`], signing in through `target` (`[idp]` keys) with a Pipe that
/// is `organization_scoped` or not.
async fn setup_with(target: &str, organization_scoped: bool) -> Setup {
    let (w, up) = (TestWorkOs::start().await, TestUpstream::start().await);
    let gw = TestGateway::new()
        .env(KEY_ENV, workos::API_KEY)
        .raw_toml(&format!(
            "[oauth]\ntoken_mode = \"gateway\"\n\n[idp]\nkind = \"workos_sso\"\nissuer = \"{api}\"\n\
             client_id = \"{id}\"\nclient_secret_env = \"{KEY_ENV}\"\n{target}\n\n\
             [security]\nallow_upstream_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n",
            api = w.api(),
            id = workos::CLIENT_ID,
        ))
        .start()
        .await;
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let api = Api {
        gw: &gw,
        token: tokens(&client, &gw, None).await.access_token,
    };
    let (id, slug) = api
        .create_app(
            "pipes",
            // Open to anyone signed in: one test has a second user.
            json!({"upstreamUrl": up.url(), "access": {"mode": "anyone"}}),
        )
        .await;
    let (status, body) = api
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": {"type": "workos_pipes", "provider": "github",
                "organizationScoped": organization_scoped, "apiKey": workos::API_KEY}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body.to_string().find(workos::API_KEY).is_none(),
        "write-only: {body}"
    );
    assert_eq!(body["auth"]["status"], "valid", "{body}");
    let token = tokens(&client, &gw, Some(&gw.app_url(&slug, "/mcp")))
        .await
        .access_token;
    let mgmt = api.token.clone();
    Setup {
        w,
        up,
        gw,
        slug,
        token,
        mgmt,
        app_id: id,
    }
}

/// Submits a Pipes confirmation page with `decision` from `browser`.
async fn submit(browser: &Browser, gw: &TestGateway, page: &Page, decision: &str) -> Page {
    let form = HtmlForm::find(&page.body, "connect").expect("the confirmation form");
    let mut fields: Vec<(String, String)> = form
        .fields
        .iter()
        .filter(|(n, _)| n != "decision")
        .cloned()
        .collect();
    fields.push(("decision".into(), decision.into()));
    browser
        .post_form(
            &format!("{}{}", gw.url(), form.action.expect("action")),
            &fields,
        )
        .await
}

fn call(id: u64, url_mode: bool) -> Value {
    let mut params = json!({"name": "echo", "arguments": {"text": "hi"}});
    if url_mode {
        params["_meta"] = json!({ META_CAPS: {"elicitation": {"url": {}}} });
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

async fn answer(s: &Setup, body: Value) -> Value {
    let resp = mcp(&s.gw, &s.slug, &s.token, body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The connect URL of a `-32001` answer.
fn connect_url(body: &Value) -> String {
    assert_eq!(body["error"]["code"], -32001, "{body}");
    body["error"]["data"]["connectUrl"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_user_without_the_pipe_connects_through_workos_and_then_gets_its_token() {
    let s = setup().await;

    // Not installed: a URL-mode client gets -32042, another -32001.
    let elicited = answer(&s, call(2, true)).await;
    assert_eq!(elicited["error"]["code"], -32042, "{elicited}");
    let url = elicited["error"]["data"]["elicitations"][0]["url"]
        .as_str()
        .unwrap();
    assert!(url.contains("/connect?ticket="), "{url}");
    let url = connect_url(&answer(&s, call(3, false)).await);
    let (sent, auth) = s.user_calls("token").pop().unwrap();
    assert_eq!(sent, json!({"user_id": ADA, "organization_id": "org_acme"}));
    assert_eq!(auth, format!("Bearer {}", workos::API_KEY));
    assert_eq!(s.up.count(), 0);

    // The link: a confirmation page naming the account, Confirm → WorkOS's
    // page (installs) → back to the gateway.
    let browser = Browser::new();
    let confirm_page = browser.open_link(&url).await;
    assert_eq!(confirm_page.status, 200, "{}", confirm_page.body);
    assert!(
        confirm_page.body.contains("ada@acme.com") && confirm_page.body.contains("github"),
        "{}",
        confirm_page.body
    );
    assert!(
        s.user_calls("authorize").is_empty(),
        "WorkOS is asked only after Confirm"
    );
    let to_workos = submit(&browser, &s.gw, &confirm_page, "confirm").await;
    assert_eq!(to_workos.status, 302, "{}", to_workos.body);
    let (sent, _) = s.user_calls("authorize").pop().unwrap();
    assert_eq!(sent["user_id"], ADA);
    assert_eq!(sent["organization_id"], "org_acme");
    assert_eq!(
        sent["return_to"],
        format!("{}/api/v1/connections/done", s.gw.url())
    );
    let back = browser.follow(&to_workos).await;
    assert_eq!(back.status, 302, "{}", back.body);
    let done = browser.follow(&back).await;
    assert_eq!(done.status, 200, "{}", done.body);
    // Single use.
    assert_eq!(browser.open_link(&url).await.status, 400);

    // Now the call reaches the upstream with Ada's provider token, and the
    // next one reuses it (cached until expires_at minus the margin).
    let calls = s.user_calls("token").len();
    let ok = answer(&s, initialize()).await;
    assert!(ok.get("error").is_none(), "{ok}");
    let auth =
        s.up.last_request()
            .unwrap()
            .header("authorization")
            .unwrap()
            .to_string();
    assert_eq!(auth, format!("Bearer pipes_at_{ADA}_1"));
    answer(&s, initialize()).await;
    assert_eq!(s.user_calls("token").len(), calls + 1, "one WorkOS call");
}

#[tokio::test]
async fn reauthorization_and_missing_scopes_send_the_user_to_connect() {
    let s = setup().await;
    s.w.pipes_answer(
        ADA,
        json!({"active": false, "error": "needs_reauthorization"}),
    );
    connect_url(&answer(&s, call(2, false)).await);
    let elicited = answer(&s, call(3, true)).await;
    assert_eq!(elicited["error"]["code"], -32042, "{elicited}");

    s.w.pipes_answer(ADA, active("tok_partial", 3600, &["repo"]));
    connect_url(&answer(&s, call(4, false)).await);
    assert_eq!(s.up.count(), 0, "a token lacking scopes is never used");

    s.w.pipes_answer(ADA, active("tok_full", 3600, &[]));
    let ok = answer(&s, initialize()).await;
    assert!(ok.get("error").is_none(), "{ok}");
    assert_eq!(
        s.up.last_request().unwrap().header("authorization"),
        Some("Bearer tok_full")
    );
}

/// The provider-token cache is per user: Grace, on the same app after Ada's
/// token is cached, reaches the upstream with her own token, never Ada's,
/// and Ada keeps hers. One WorkOS call each.
#[tokio::test]
async fn each_user_reaches_the_upstream_with_their_own_pipes_token() {
    const GRACE: &str = "prof_01GRACE";
    let s = setup().await;
    s.w.pipes_answer(ADA, active("tok_ada", 3600, &[]));
    s.w.pipes_answer(GRACE, active("tok_grace", 3600, &[]));
    let upstream_auth = || {
        s.up.last_request()
            .unwrap()
            .header("authorization")
            .map(str::to_string)
    };
    assert!(answer(&s, initialize()).await.get("error").is_none());
    assert_eq!(upstream_auth().as_deref(), Some("Bearer tok_ada"));

    s.w.set_person(workos::Person::new(GRACE, "grace@acme.com"));
    let client = OAuthClient::register(&s.gw, REDIRECT).await;
    let grace = tokens(&client, &s.gw, Some(&s.gw.app_url(&s.slug, "/mcp")))
        .await
        .access_token;
    let resp = mcp(&s.gw, &s.slug, &grace, initialize()).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("error").is_none(), "{body}");
    assert_eq!(upstream_auth().as_deref(), Some("Bearer tok_grace"));

    assert!(answer(&s, initialize()).await.get("error").is_none());
    assert_eq!(upstream_auth().as_deref(), Some("Bearer tok_ada"));
    let users: Vec<Value> = s
        .user_calls("token")
        .into_iter()
        .map(|(body, _)| body["user_id"].clone())
        .collect();
    assert_eq!(users, vec![json!(ADA), json!(GRACE)], "one call per user");
}

#[tokio::test]
async fn concurrent_requests_share_one_workos_call() {
    let s = setup().await;
    s.w.pipes_answer(ADA, active("tok_shared", 3600, &[]));
    s.w.pipes_delay_ms(300);
    let all =
        futures::future::join_all((0..8).map(|_| mcp(&s.gw, &s.slug, &s.token, initialize())))
            .await;
    for r in all {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(s.user_calls("token").len(), 1, "single flight");
}

#[tokio::test]
async fn another_identity_provider_cannot_use_workos_pipes() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let gw = crate::management::gateway(&idp).start().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, _) = ada.create_app("p", json!({"upstreamUrl": up.url()})).await;
    let (status, body) = ada
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": {"type": "workos_pipes", "provider": "github", "apiKey": "k"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_error", "{body}");
    assert!(body.to_string().contains("config.type"), "{body}");
    // The shape is checked too: the provider slug is a path segment.
    let (status, body) = ada
        .post(
            &format!("/api/v1/apps/{id}/auth"),
            json!({"config": {"type": "workos_pipes", "provider": "../sso/token", "apiKey": "k"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("config.provider"), "{body}");
}

#[tokio::test]
async fn the_organization_is_sent_only_when_scoped_and_required_then() {
    // Signed in through a provider (no organization in the profile).
    let s = setup_with("provider = \"GoogleOAuth\"", true).await;
    let refused = answer(&s, call(2, false)).await;
    assert_eq!(refused["error"]["code"], -32001, "{refused}");
    assert_eq!(
        refused["error"]["data"]["reason"], "no_organization",
        "{refused}"
    );
    assert!(
        s.user_calls("token").is_empty(),
        "WorkOS is not asked without one"
    );

    let s = setup_with("provider = \"GoogleOAuth\"", false).await;
    s.w.pipes_answer(ADA, active("tok_personal", 3600, &[]));
    let ok = answer(&s, initialize()).await;
    assert!(ok.get("error").is_none(), "{ok}");
    let (sent, _) = s.user_calls("token").pop().unwrap();
    assert_eq!(sent, json!({"user_id": ADA, "organization_id": null}));
}

#[tokio::test]
async fn a_pipes_link_sent_to_someone_else_connects_nobody() {
    let s = setup().await;
    let url = connect_url(&answer(&s, call(2, false)).await);
    // Mallory opened her link, and sends the page's form to Victor: his
    // browser lacks the cookie bound to it, so WorkOS is never asked.
    let page = Browser::new().open_link(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let refused = submit(&Browser::new(), &s.gw, &page, "confirm").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // Cancel asks WorkOS nothing either; and each page is single use.
    let url = connect_url(&answer(&s, call(3, false)).await);
    let browser = Browser::new();
    let page = browser.open_link(&url).await;
    let cancelled = submit(&browser, &s.gw, &page, "cancel").await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(submit(&browser, &s.gw, &page, "confirm").await.status, 400);
    assert!(
        s.user_calls("authorize").is_empty(),
        "WorkOS was never asked"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_reported_on_the_connection_not_echoed() {
    let s = setup().await;
    let api = Api {
        gw: &s.gw,
        token: s.mgmt.clone(),
    };
    let wrong = "sk_test_not_the_key_9876";
    let (status, body) = api
        .post(
            &format!("/api/v1/apps/{}/auth", s.app_id),
            json!({"name": "Wrong key", "config": {"type": "workos_pipes", "provider": "github",
                "apiKey": wrong}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["auth"]["status"], "invalid", "{body}");
    assert_eq!(
        body["auth"]["lastError"], "WorkOS refused the API key",
        "{body}"
    );
    assert!(!body.to_string().contains(wrong), "write-only: {body}");
    let (_, auth) = s.w.pipes_calls("token").pop().unwrap();
    assert_eq!(auth, format!("Bearer {wrong}"), "the key was really tried");
}
