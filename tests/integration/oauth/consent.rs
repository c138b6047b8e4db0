//! The consent step (MCP authorization, confused-deputy mitigation): shown
//! after sign-in and before a code is issued, naming the client, its
//! redirect host and the scopes; CSRF-protected; remembered per user and
//! client; skipped for configured trusted clients; denial is access_denied.

use super::{Bridge, REDIRECT};
use crate::support::idp::IdpUser;
use crate::support::oauth_client::{OAuthClient, TokenMode};

#[tokio::test]
async fn the_consent_page_names_the_client_host_scopes_and_warns_about_loopback() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let mut m = OAuthClient::metadata(REDIRECT);
    m["client_name"] = serde_json::json!("Notes <Desktop>");
    let local = OAuthClient::register_with(&b.gw, m).await;
    let consent = local
        .sign_in(&b.gw, &local.authorization(&b.resource()))
        .await;
    let html = &consent.page.body;
    assert!(
        html.contains("Notes &lt;Desktop&gt;"),
        "client_name, escaped: {html}"
    );
    assert!(!html.contains("<Desktop>"), "never raw HTML from a client");
    assert!(html.contains("127.0.0.1"), "the redirect host: {html}");
    assert!(
        html.contains("runs on your own computer"),
        "loopback warning: {html}"
    );
    for (scope, says) in [
        ("openid", "Confirm who you are"),
        ("profile", "See your name"),
        ("email", "See your e-mail address"),
    ] {
        assert!(html.contains(says), "{scope} in plain words: {html}");
        assert!(
            html.contains(&format!("<span class=\"id\">{scope}</span>")),
            "{html}"
        );
    }
    assert!(html.contains("ada@example.com"), "who is signed in");

    let web = OAuthClient::register(&b.gw, "https://notes.example.com/oauth/cb").await;
    let consent = web.sign_in(&b.gw, &web.authorization(&b.resource())).await;
    assert!(consent.page.body.contains("notes.example.com"));
    assert!(!consent.page.body.contains("runs on your own computer"));
}

#[tokio::test]
async fn denial_returns_access_denied_and_issues_nothing() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let request = client.authorization(&b.resource());
    let consent = client.sign_in(&b.gw, &request).await;
    client.error_redirect(
        &client.decide(&consent, "deny").await,
        "access_denied",
        &request,
    );
    // A denial is not remembered: the next sign-in asks again.
    client
        .sign_in(&b.gw, &client.authorization(&b.resource()))
        .await;
}

#[tokio::test]
async fn consent_posts_without_the_pages_token_or_cookie_are_refused() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;

    // A forged token in the form.
    let mut consent = client
        .sign_in(&b.gw, &client.authorization(&b.resource()))
        .await;
    for field in consent
        .form
        .fields
        .iter_mut()
        .filter(|(k, _)| k == "csrf_token")
    {
        field.1 = "forged".into();
    }
    let page = client.decide(&consent, "approve").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.location().is_none());

    // The right form posted from another browser (no cookie): a cross-site POST.
    let consent = client
        .sign_in(&b.gw, &client.authorization(&b.resource()))
        .await;
    client.browser.clear_cookies();
    let page = client.decide(&consent, "approve").await;
    assert_eq!(page.status, 403, "{}", page.body);

    // A refused approval is spent: replaying it does not issue a code either.
    let page = client.decide(&consent, "approve").await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("already answered"), "{}", page.body);
    // Missing fields.
    let url = format!("{}/api/v1/auth/consent", b.gw.url());
    let page = client
        .browser
        .post_form(&url, &[("decision".into(), "approve".into())])
        .await;
    assert_eq!(page.status, 400);
}

#[tokio::test]
async fn consent_is_remembered_per_user_and_client() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    client.authorize(&b.gw, &b.resource()).await; // approves once
    let again = client
        .through_idp(&b.gw, &client.authorization(&b.resource()))
        .await;
    let back = client.client_redirect(&again);
    assert!(
        back.contains_key("code"),
        "remembered: straight back with a code: {back:?}"
    );

    // Another client, or another user of the same client, is asked.
    let other = OAuthClient::register(&b.gw, REDIRECT).await;
    other
        .sign_in(&b.gw, &other.authorization(&b.resource()))
        .await;
    b.idp
        .set_user(IdpUser::new("user_grace", "grace@example.com"));
    client
        .sign_in(&b.gw, &client.authorization(&b.resource()))
        .await;
}

#[tokio::test]
async fn trusted_clients_skip_consent() {
    // Register first, then trust that client id in the config and restart
    // (registrations persist across restarts on the embedded store).
    let mut b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let id = client.client_id.clone();
    std::fs::write(
        b.gw.config_path(),
        std::fs::read_to_string(b.gw.config_path())
            .unwrap()
            .replacen(
                "[oauth]\n",
                &format!("[oauth]\ntrusted_clients = [\"{id}\"]\n"),
                1,
            ),
    )
    .unwrap();
    b.gw.restart().await;
    let page = client
        .through_idp(&b.gw, &client.authorization(&b.resource()))
        .await;
    let back = client.client_redirect(&page);
    assert!(
        back.contains_key("code"),
        "a trusted client gets a code without consent: {back:?}"
    );
}
