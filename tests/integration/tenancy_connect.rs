//! Per-user connect flow bound to the browser that started it (issue 12,
//! row 6; login CSRF, RFC 6749 §10.12 and RFC 9700 §4.7).
//!
//! The attack: Mallory starts connecting her gateway account, stops at the
//! provider's consent, and sends the link to Victor. Before the fix Victor's
//! upstream account ended up stored under Mallory's identity. Now the
//! callback requires the cookie `/connect` set in Mallory's browser, and
//! nothing is stored before a confirmation page (CSRF token + cookie) naming
//! the gateway account and the provider.

use serde_json::{json, Value};

use crate::management::{initialize, mcp, not_connected, with_provider, Api};
use crate::support::gateway::TestGateway;
use crate::support::idp::TestIdp;
use crate::support::oauth_client::{Browser, HtmlForm, Page};
use crate::support::provider::{self, TestProvider};
use crate::support::upstream::TestUpstream;

/// Follows a connect link in `browser` up to the confirmation page and
/// answers it with `decision` (`confirm` or `cancel`); returns the answer.
pub(crate) async fn connect_in_browser(
    browser: &Browser,
    gw: &TestGateway,
    connect_url: &str,
    decision: &str,
) -> Page {
    let confirm_page = to_confirmation(browser, connect_url).await;
    answer(browser, gw, &confirm_page, decision, None).await
}

/// Connect link → provider → callback: the confirmation page.
async fn to_confirmation(browser: &Browser, connect_url: &str) -> Page {
    let to_provider = browser.open_link(connect_url).await;
    assert_eq!(to_provider.status, 302, "{}", to_provider.body);
    let back = browser.follow(&to_provider).await;
    assert_eq!(back.status, 302, "the provider answers: {}", back.body);
    let page = browser.follow(&back).await;
    assert_eq!(page.status, 200, "confirmation page: {}", page.body);
    page
}

/// Submits the confirmation form with `decision`; `csrf` replaces the
/// page's token (Some("") drops it).
async fn answer(
    browser: &Browser,
    gw: &TestGateway,
    page: &Page,
    decision: &str,
    csrf: Option<&str>,
) -> Page {
    let form = HtmlForm::find(&page.body, "connect").expect("the confirmation form");
    assert_eq!(form.method.as_deref(), Some("post"));
    assert_eq!(form.values("decision"), ["confirm", "cancel"]);
    let mut fields: Vec<(String, String)> = form
        .fields
        .iter()
        .filter(|(n, _)| n != "decision" && !(n == "csrf_token" && csrf.is_some()))
        .cloned()
        .collect();
    if let Some(token) = csrf.filter(|t| !t.is_empty()) {
        fields.push(("csrf_token".into(), token.into()));
    }
    fields.push(("decision".into(), decision.into()));
    let action = form.action.expect("form action");
    browser
        .post_form(&format!("{}{action}", gw.url()), &fields)
        .await
}

/// An app owned by Ada with a per-user OAuth connection named `conn_name`;
/// returns its slug and the connection's provider name.
async fn per_user_app(
    gw: &TestGateway,
    idp: &TestIdp,
    up: &TestUpstream,
    p: &TestProvider,
    conn_name: &str,
) -> (String, String) {
    let ada = Api::as_user(gw, idp, "user_ada");
    let (id, slug) = ada
        // Shared with every signed-in user; each connects their own account.
        .create_app(
            "per-user",
            json!({"upstreamUrl": up.url(), "access": {"mode": "anyone"}}),
        )
        .await;
    let (s, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"name": conn_name, "config": {
        "type": "oauth", "authorizationEndpoint": p.url("/authorize"), "tokenEndpoint": p.url("/token"),
        "clientId": provider::CLIENT_ID, "clientSecret": provider::CLIENT_SECRET}})).await;
    assert_eq!(s, 201, "{body}");
    let provider_name = body["auth"]["providerName"]
        .as_str()
        .expect("providerName")
        .to_string();
    (slug, provider_name)
}

fn token_for(gw: &TestGateway, idp: &TestIdp, slug: &str, sub: &str) -> String {
    idp.mint_access_token(sub, &gw.app_url(slug, "/mcp"), "", 600)
}

/// True when `sub`'s MCP call reached the upstream (an account is connected).
async fn is_connected(gw: &TestGateway, slug: &str, token: &str) -> bool {
    let resp = mcp(gw, slug, token, initialize()).await;
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body["error"]["code"] != -32001
}

#[tokio::test]
async fn a_link_finished_in_another_browser_connects_nobody() {
    let (idp, up, p, gw) = with_provider().await;
    let (slug, _) = per_user_app(&gw, &idp, &up, &p, "Contacts").await;
    let mallory = token_for(&gw, &idp, &slug, "user_mallory");
    let victor = token_for(&gw, &idp, &slug, "user_victor");
    let token_calls = p.calls("token");

    // Mallory starts, and stops at the provider: she keeps its URL.
    let mallory_browser = Browser::new();
    let link = not_connected(&gw, &slug, &mallory).await;
    let to_provider = mallory_browser.get(&link).await;
    assert_eq!(to_provider.status, 302);
    let provider_url = to_provider.location().unwrap().to_string();

    // Victor opens it with no cookie of the gateway's: refused.
    let victor_browser = Browser::new();
    let back = victor_browser.get(&provider_url).await;
    let callback_url = back.location().expect("the provider redirects").to_string();
    let refused = victor_browser.follow(&back).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("another browser"), "{}", refused.body);
    // The flow is consumed: not even Mallory's own browser can finish it now.
    let replay = mallory_browser.get(&callback_url).await;
    assert_eq!(replay.status, 400, "single use: {}", replay.body);

    // Again, Victor holding a cookie of his own flow (another cookie).
    let link = not_connected(&gw, &slug, &mallory).await;
    let provider_url = mallory_browser
        .get(&link)
        .await
        .location()
        .unwrap()
        .to_string();
    let own = not_connected(&gw, &slug, &victor).await;
    assert_eq!(
        victor_browser.get(&own).await.status,
        302,
        "Victor's cookie"
    );
    let back = victor_browser.get(&provider_url).await;
    let refused = victor_browser.follow(&back).await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    assert_eq!(p.calls("token"), token_calls, "no code was exchanged");
    assert!(
        !is_connected(&gw, &slug, &mallory).await,
        "Mallory has no account"
    );
    assert!(
        !is_connected(&gw, &slug, &victor).await,
        "Victor has no account"
    );
}

#[tokio::test]
async fn the_confirmation_names_the_account_and_needs_its_csrf_token() {
    let (idp, up, p, gw) = with_provider().await;
    let (slug, provider_name) = per_user_app(&gw, &idp, &up, &p, "<script>alert(1)</script>").await;
    let ada = token_for(&gw, &idp, &slug, "user_ada");
    let token_calls = p.calls("token");
    let browser = Browser::new();

    // The page names the gateway account and the provider, escaped.
    let link = not_connected(&gw, &slug, &ada).await;
    let page = to_confirmation(&browser, &link).await;
    assert!(page.body.contains("user_ada"), "{}", page.body);
    assert!(page.body.contains(&provider_name), "{}", page.body);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;"), "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("frame-ancestors 'none'")));

    // A wrong token: 403, and the page cannot be answered again.
    let wrong = answer(&browser, &gw, &page, "confirm", Some("forged")).await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let again = answer(&browser, &gw, &page, "confirm", None).await;
    assert_eq!(again.status, 400, "single use: {}", again.body);

    // No token at all: 403.
    let link = not_connected(&gw, &slug, &ada).await;
    let page = to_confirmation(&browser, &link).await;
    let missing = answer(&browser, &gw, &page, "confirm", Some("")).await;
    assert_eq!(missing.status, 403, "{}", missing.body);

    // The right token from a browser without the cookie: 403.
    let link = not_connected(&gw, &slug, &ada).await;
    let page = to_confirmation(&browser, &link).await;
    let elsewhere = Browser::new();
    let no_cookie = answer(&elsewhere, &gw, &page, "confirm", None).await;
    assert_eq!(no_cookie.status, 403, "{}", no_cookie.body);

    assert_eq!(p.calls("token"), token_calls, "no code was exchanged");
    assert!(!is_connected(&gw, &slug, &ada).await);

    // The honest answer still works.
    let link = not_connected(&gw, &slug, &ada).await;
    let done = connect_in_browser(&browser, &gw, &link, "confirm").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(is_connected(&gw, &slug, &ada).await);
}

#[tokio::test]
async fn cancel_stores_nothing() {
    let (idp, up, p, gw) = with_provider().await;
    let (slug, _) = per_user_app(&gw, &idp, &up, &p, "Contacts").await;
    let ada = token_for(&gw, &idp, &slug, "user_ada");
    let token_calls = p.calls("token");
    let browser = Browser::new();
    let link = not_connected(&gw, &slug, &ada).await;
    let page = connect_in_browser(&browser, &gw, &link, "cancel").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Nothing was connected"), "{}", page.body);
    assert_eq!(p.calls("token"), token_calls, "no code was exchanged");
    assert!(!is_connected(&gw, &slug, &ada).await);
    assert!(
        browser.cookie(&gw.url(), "drio-connect").is_none(),
        "the binding cookie is cleared"
    );
}
