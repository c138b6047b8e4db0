//! The `dev` identity provider: the built-in sign-in page of the quick start,
//! where a person types an e-mail and continues.

use crate::support::gateway::TestGateway;
use crate::support::oauth_client::{HtmlForm, OAuthClient, Tokens};
use crate::support::upstream::TestUpstream;

use super::REDIRECT;

#[tokio::test]
async fn a_person_signs_in_with_an_email_on_the_dev_page() {
    let upstream = TestUpstream::start().await;
    let gw = TestGateway::new()
        .protected_app_for_dev("notes", &upstream)
        .raw_toml("[oauth]\ntoken_mode = \"gateway\"\n\n[idp]\nkind = \"dev\"\n")
        .start()
        .await;
    let resource = gw.app_url("notes", "/mcp");
    let client = OAuthClient::register(&gw, REDIRECT).await;
    let request = client.authorization(&resource);
    let to_login = client.start(&gw, &request).await;
    assert_eq!(to_login.status, 302, "{}", to_login.body);
    let login = client.browser.follow(&to_login).await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("Development sign-in"), "{}", login.body);
    let form_state = login
        .body
        .split("name=\"state\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("state field")
        .to_string();
    let url = format!("{}/api/v1/auth/dev/login", gw.url());

    // A bad e-mail is refused on the page.
    let bad = client
        .browser
        .post_form(
            &url,
            &[
                ("state".into(), form_state.clone()),
                ("email".into(), "not-an-email".into()),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    let signed = client
        .browser
        .post_form(
            &url,
            &[
                ("state".into(), form_state),
                ("email".into(), "Grace@Example.com".into()),
            ],
        )
        .await;
    assert_eq!(signed.status, 302, "{}", signed.body);
    let consent_page = client.browser.follow(&signed).await;
    let form = HtmlForm::find(&consent_page.body, "consent")
        .unwrap_or_else(|| panic!("consent: {}", consent_page.body));
    let back = client
        .approve(&crate::support::oauth_client::ConsentPage {
            page: consent_page,
            form,
        })
        .await;
    let tokens = Tokens::from_page(
        &client
            .exchange_code(&gw, &back["code"], &request.pkce.verifier)
            .await,
    );
    let claims = super::jwt_claims(&tokens.access_token);
    assert_eq!(claims["email"], "grace@example.com", "{claims}");
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|s| s.starts_with("dev_")),
        "{claims}"
    );
    // Anyone can type any address on this page: it never counts as verified
    // (so it can never match an admin's or a policy's e-mail).
    assert_eq!(claims["email_verified"], false, "{claims}");
    let status = super::initialize_status(&gw, &resource, &tokens.access_token).await;
    assert_eq!(status, 200);
}
