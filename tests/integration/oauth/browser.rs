//! What browser-based MCP clients (the MCP Inspector) need: CORS on the
//! OAuth routes for any origin, preflights and exposed MCP headers at apps
//! for the origins they allow, and a consent page whose CSP still lets the
//! approval redirect to the client.

use super::{Bridge, REDIRECT};
use crate::support::oauth_client::{OAuthClient, TokenMode};

const INSPECTOR: &str = "http://localhost:6274";

#[tokio::test]
async fn oauth_routes_answer_cross_origin_browsers() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let http = b.gw.client();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/.well-known/oauth-authorization-server",
    ] {
        let pre = http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", b.gw.url()))
            .header("origin", INSPECTOR)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(pre.status(), 204, "{path}");
        assert_eq!(pre.headers()["access-control-allow-origin"], "*");
        assert!(pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type"));
    }
    let reg = http
        .post(format!("{}/api/v1/auth/register", b.gw.url()))
        .header("origin", INSPECTOR)
        .json(&OAuthClient::metadata(REDIRECT))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    assert_eq!(reg.headers()["access-control-allow-origin"], "*");
    let meta = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/apps/notes/mcp",
            b.gw.url()
        ))
        .header("origin", INSPECTOR)
        .send()
        .await
        .unwrap();
    assert_eq!(meta.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn apps_answer_preflights_and_expose_mcp_headers_to_allowed_origins_only() {
    let b = Bridge::start_with(TokenMode::Gateway, "", |g| g.allowed_origin(INSPECTOR)).await;
    let http = b.gw.client();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, b.resource())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, mcp-protocol-version",
            )
            .send()
    };
    let before = b.upstream.count();
    let ok = preflight(INSPECTOR).await.unwrap();
    assert_eq!(ok.status(), 204, "a preflight needs no token");
    assert_eq!(ok.headers()["access-control-allow-origin"], INSPECTOR);
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    for h in [
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    ] {
        assert!(allowed.contains(h), "{allowed}");
    }
    assert_eq!(
        preflight("https://evil.example.com")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        b.upstream.count(),
        before,
        "preflights never reach the upstream"
    );

    // The 401 challenge is readable by the allowed origin.
    let unauth = http
        .post(b.resource())
        .header("origin", INSPECTOR)
        .body(super::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    assert_eq!(unauth.headers()["access-control-allow-origin"], INSPECTOR);
    assert!(unauth.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("www-authenticate"));

    // A proxied answer exposes Mcp-Session-Id.
    let (_, tokens) = b.signed_in().await;
    let resp = http
        .post(b.resource())
        .header("origin", INSPECTOR)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(&tokens.access_token)
        .body(super::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], INSPECTOR);
    assert!(resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("mcp-session-id"));
    // Without an Origin (a native client) nothing CORS is added.
    let native = http
        .post(b.resource())
        .body(super::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert!(native
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn the_consent_pages_csp_lets_the_approval_redirect_to_the_client() {
    let b = Bridge::start(TokenMode::Gateway).await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    let consent = client
        .sign_in(&b.gw, &client.authorization(&b.resource()))
        .await;
    let csp = consent
        .page
        .header("content-security-policy")
        .expect("CSP")
        .to_string();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:7777;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let native = OAuthClient::register(&b.gw, "com.example.notes:/oauth").await;
    let consent = native
        .sign_in(&b.gw, &native.authorization(&b.resource()))
        .await;
    let csp = consent
        .page
        .header("content-security-policy")
        .unwrap()
        .to_string();
    assert!(
        csp.contains("form-action 'self' com.example.notes:;"),
        "{csp}"
    );
}
