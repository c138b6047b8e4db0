//! The pages people see (issue 18), checked without a browser: consent that
//! a person can judge (app, description, operator, plain-language scopes,
//! the client's verified host, already-granted scopes, "not you?"), inert
//! client-supplied text and logos, branding from the config file and the
//! management API (validated, escaped), and error pages that give the
//! request id and nothing a provider wrote. `tests/browser` runs the same
//! pages in Chromium.

use base64::Engine;
use serde_json::json;

use super::{Bridge, REDIRECT};
use crate::support::gateway::header_str;
use crate::support::oauth_client::{HtmlForm, OAuthClient, TokenMode, Tokens};

const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'Evil";

fn png_data_uri() -> String {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend([0u8; 24]);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// A bridge whose `notes` app has a description, branding and a described scope.
async fn branded_bridge(branding: &str) -> Bridge {
    Bridge::start_with(
        TokenMode::Gateway,
        "scopes = [\"notes:write\"]\nscope_descriptions = { \"notes:write\" = \"Create and change your notes\" }",
        |b| {
            b.app_toml(&format!(
                "description = \"Team notes <shared>\"\nbranding = {branding}"
            ))
            .raw_toml("[pages]\nlogo_hosts = [\"cdn.example.com\"]\n")
        },
    )
    .await
}

#[tokio::test]
async fn consent_shows_the_app_its_operator_plain_scopes_and_the_clients_host() {
    let b = branded_bridge(
        "{ display_name = \"Acme <Notes>\", accent_color = \"#AA3300\", company_url = \"https://acme.example.com/about\", logo_url = \"https://cdn.example.com/acme.png\" }",
    )
    .await;
    let client = OAuthClient::register(&b.gw, "https://notes-client.example.net/oauth/cb").await;
    let request = client
        .authorization(&b.resource())
        .set("scope", "openid email offline_access notes:write");
    let consent = client.sign_in(&b.gw, &request).await;
    let html = &consent.page.body;
    for says in [
        "Acme &lt;Notes&gt;",             // display name, escaped
        "Team notes &lt;shared&gt;",      // description, escaped
        "https://acme.example.com/about", // operator's company URL
        "acme.example.com",
        "notes-client.example.net", // the verified host of the redirect URI
        "See your e-mail address",  // plain-language scopes
        "Keep access while you are away",
        "Create and change your notes", // configured description
        "Confirm who you are",
        "Not you? Sign in again",
        "src=\"https://cdn.example.com/acme.png\"",
    ] {
        assert!(html.contains(says), "consent should show `{says}`: {html}");
    }
    assert!(
        !html.contains("<Notes>") && !html.contains("<shared>"),
        "{html}"
    );
    let csp = consent
        .page
        .header("content-security-policy")
        .unwrap_or_default();
    assert!(csp.contains("img-src https://cdn.example.com;"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script"),
        "{csp}"
    );
    assert!(csp.contains("style-src 'sha256-"), "{csp}");

    // "Not you?" restarts sign-in with the same request.
    let restart = html
        .split("<a href=\"")
        .map(|s| {
            s.split('"')
                .next()
                .unwrap_or_default()
                .replace("&amp;", "&")
        })
        .find(|h| h.starts_with("/api/v1/auth/authorize?"))
        .unwrap_or_else(|| panic!("no restart link: {html}"));
    let again = client
        .browser
        .get(&format!("{}{restart}", b.gw.url()))
        .await;
    assert_eq!(again.status, 302, "{}", again.body);
    assert!(again
        .location()
        .is_some_and(|l| l.as_str().starts_with(&b.idp.issuer())));
    assert_eq!(
        again.location_query().get("prompt").map(String::as_str),
        Some("login"),
        "a fresh sign-in at the IdP, not its current session"
    );

    // Approve; a wider request then shows what was granted as such.
    let back = client.approve(&consent).await;
    assert!(back.contains_key("code"), "{back:?}");
    let wider = client
        .authorization(&b.resource())
        .set("scope", "openid email offline_access notes:write profile");
    let consent = client.sign_in(&b.gw, &wider).await;
    let granted = consent.page.body.matches("already allowed").count();
    assert_eq!(granted, 4, "{}", consent.page.body);
}

#[tokio::test]
async fn a_hostile_client_name_and_logo_uri_stay_inert() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let mut m = OAuthClient::metadata(REDIRECT);
    m["client_name"] = json!(HOSTILE);
    m["logo_uri"] = json!("https://tracker.example.org/pixel.png");
    m["client_uri"] = json!("https://tracker.example.org/");
    let client = OAuthClient::register_with(&b.gw, m).await;
    let consent = client
        .sign_in(&b.gw, &client.authorization(&b.resource()))
        .await;
    let html = &consent.page.body;
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;Evil"),
        "{html}"
    );
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        !html.contains("tracker.example.org"),
        "the client's logo is never loaded: {html}"
    );
    assert!(
        !html.contains("<img"),
        "no image at all without app branding: {html}"
    );
    let csp = consent
        .page
        .header("content-security-policy")
        .unwrap_or_default();
    assert!(
        !csp.contains("img-src"),
        "images are refused by the CSP: {csp}"
    );
    assert!(!csp.contains("script-src"), "{csp}");
    // The form stays machine-readable.
    let form = HtmlForm::find(html, "consent").unwrap();
    assert_eq!(form.action.as_deref(), Some("/api/v1/auth/consent"));
    assert_eq!(form.values("decision"), vec!["approve", "deny"]);
}

#[tokio::test]
async fn error_pages_say_what_to_do_give_the_request_id_and_no_provider_text() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let url = format!("{}/api/v1/auth/authorize?client_id=nope", b.gw.url());
    let resp = b.gw.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let rid = header_str(&resp, "x-request-id").expect("request id header");
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(&format!("Request id: <code>{rid}</code>")),
        "{html}"
    );
    assert!(html.contains("What you can do"), "{html}");

    // A crafted callback link cannot put a provider's (or anyone's) words on the page.
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let to_idp = client
        .start(&b.gw, &client.authorization(&b.resource()))
        .await;
    let state = to_idp.location_query()["state"].clone();
    let cb = format!(
        "{}/api/v1/auth/callback?state={state}&error=access_denied&error_description=Call+555-0100+to+unlock",
        b.gw.url()
    );
    let page = client.browser.get(&cb).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(!page.body.contains("555-0100"), "{}", page.body);
    assert!(page.body.contains("access_denied"), "{}", page.body);
    assert!(page.body.contains("Request id: <code>"), "{}", page.body);
}

/// `drio-gateway --validate` on `toml`: its stderr (it binds nothing).
fn validate_toml(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drio-gateway"))
        .arg("--config")
        .arg(&path)
        .arg("--validate")
        .env_remove("DRIO_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{toml}");
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn config_branding_is_validated_naming_the_key() {
    for (branding, key) in [
        ("{ accent_color = \"red\" }", "branding.accent_color"),
        (
            "{ logo_url = \"https://evil.example.org/x.png\" }",
            "branding.logo_url",
        ),
        (
            "{ logo_url = \"data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=\" }",
            "branding.logo_url",
        ),
        (
            "{ company_url = \"javascript:alert(1)\" }",
            "branding.company_url",
        ),
    ] {
        let out = validate_toml(&format!(
            "public_url = \"http://127.0.0.1:1\"\n[listen]\nproxy = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [pages]\nlogo_hosts = [\"cdn.example.com\"]\n\
             [[apps]]\nid = \"a\"\nslug = \"a\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\nbranding = {branding}\n"
        ));
        assert!(out.contains(&format!("apps[0].{key}")), "{branding}: {out}");
    }
}

#[tokio::test]
async fn api_branding_is_validated_shown_and_rendered_escaped_on_consent() {
    let b = Bridge::start_with(TokenMode::Gateway, "", |g| {
        g.raw_toml("[pages]\nlogo_hosts = [\"cdn.example.com\"]\n[security]\nallow_upstream_cidrs = [\"127.0.0.0/8\"]\n")
    })
    .await;
    // A management token through the gateway's own sign-in (no resource).
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let request = client.authorization("").without("resource");
    let page = client.through_idp(&b.gw, &request).await;
    let form = HtmlForm::find(&page.body, "consent").unwrap_or_else(|| panic!("{}", page.body));
    let back = client
        .approve(&crate::support::oauth_client::ConsentPage { page, form })
        .await;
    let mgmt = Tokens::from_page(
        &client
            .exchange_code(&b.gw, &back["code"], &request.pkce.verifier)
            .await,
    );
    let api = crate::management::Api {
        gw: &b.gw,
        token: mgmt.access_token.clone(),
    };
    let upstream = b.upstream.url();
    for (branding, field) in [
        (json!({"accentColor": "#12345"}), "branding.accentColor"),
        (
            json!({"accentColor": "#123456;background:url(x)"}),
            "branding.accentColor",
        ),
        (
            json!({"logoUrl": "http://cdn.example.com/l.png"}),
            "branding.logoUrl",
        ),
        (
            json!({"logoUrl": "https://elsewhere.example.com/l.png"}),
            "branding.logoUrl",
        ),
        (
            json!({"logoUrl": "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"}),
            "branding.logoUrl",
        ),
        (
            json!({"logoUrl": format!("data:image/png;base64,{}", "A".repeat(50_000))}),
            "branding.logoUrl",
        ),
        (json!({"displayName": ""}), "branding.displayName"),
        (
            json!({"companyUrl": "http://acme.example.com"}),
            "branding.companyUrl",
        ),
    ] {
        let (status, body) = api
            .post(
                "/api/v1/apps",
                json!({"name": "Bad", "upstreamUrl": upstream, "branding": branding}),
            )
            .await;
        assert_eq!(status, 422, "{branding}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
    }
    let (status, body) = api
        .post(
            "/api/v1/apps",
            json!({
                "name": "Wiki", "upstreamUrl": upstream, "description": "Docs <b>",
                "branding": {"displayName": HOSTILE, "accentColor": "#0F7B3C", "logoUrl": png_data_uri()},
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["app"]["branding"]["accentColor"], "#0f7b3c", "{body}");
    let id = body["app"]["id"].as_str().unwrap().to_string();
    let slug = body["app"]["slug"].as_str().unwrap().to_string();
    let (_, got) = api.get(&format!("/api/v1/apps/{id}")).await;
    assert_eq!(got["app"]["branding"]["displayName"], HOSTILE, "{got}");
    // PATCH validates too, and replaces.
    let (status, body) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/apps/{id}"),
            Some(json!({"branding": {"accentColor": "blue"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "branding.accentColor");

    // The owner opens the app to everyone, then a user sees its consent page.
    let (status, body) = api
        .put(
            &format!("/api/v1/apps/{id}/config"),
            json!({"upstreamUrl": upstream, "access": {"mode": "anyone"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user = OAuthClient::register(&b.gw, REDIRECT).await;
    let consent = user
        .sign_in(&b.gw, &user.authorization(&b.gw.app_url(&slug, "/mcp")))
        .await;
    let html = &consent.page.body;
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("Docs &lt;b&gt;"), "{html}");
    assert!(html.contains("<img src=\"data:image/png;base64,"), "{html}");
    let csp = consent
        .page
        .header("content-security-policy")
        .unwrap_or_default();
    assert!(csp.contains("img-src data:;"), "{csp}");
}
