//! The admin listener's write routes (`POST /oauth/keys/rotate`,
//! `POST /tokens/revoke`) need the bearer token named by
//! `listen.admin_token_env` (issue 12): without it anyone who can reach the
//! listener could rotate keys or revoke tokens. Read-only routes stay open.

use serde_json::json;

use crate::support::gateway::{TestGateway, ADMIN_TOKEN_ENV, TEST_ADMIN_TOKEN};

const WRITE_ROUTES: [&str; 2] = ["/oauth/keys/rotate", "/tokens/revoke"];

async fn post(gw: &TestGateway, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .client()
        .post(format!("{}{path}", gw.admin_url()))
        .json(&json!({ "token": "some-token" }));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("admin request")
}

#[tokio::test]
async fn write_routes_need_the_admin_token() {
    let gw = TestGateway::new().start().await;
    for path in WRITE_ROUTES {
        for auth in [
            None,
            Some("Bearer wrong-token-wrong-token".to_string()),
            Some(format!("Bearer {TEST_ADMIN_TOKEN}x")),
            Some(format!("Basic {TEST_ADMIN_TOKEN}")),
            Some("Bearer".to_string()),
        ] {
            let resp = post(&gw, path, auth.as_deref()).await;
            assert_eq!(resp.status(), 401, "{path} with {auth:?}");
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
        }
    }
    // The right token passes: revoke works; rotate reaches its own check
    // (this gateway does not sign tokens, so 409).
    let bearer = format!("Bearer {TEST_ADMIN_TOKEN}");
    let resp = post(&gw, "/tokens/revoke", Some(&bearer)).await;
    assert_eq!(resp.status(), 200);
    let resp = post(&gw, "/oauth/keys/rotate", Some(&bearer)).await;
    assert_eq!(resp.status(), 409);
    let resp = gw.admin_post("/oauth/keys/rotate").send().await.unwrap();
    assert_eq!(resp.status(), 409);
    // Probes and scrapers need no token.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let resp = gw
            .client()
            .get(format!("{}{path}", gw.admin_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn without_a_configured_token_the_write_routes_are_off() {
    let gw = TestGateway::new().without_admin_token().start().await;
    let bearer = format!("Bearer {TEST_ADMIN_TOKEN}");
    for path in WRITE_ROUTES {
        assert_eq!(post(&gw, path, None).await.status(), 404, "{path}");
        assert_eq!(post(&gw, path, Some(&bearer)).await.status(), 404, "{path}");
    }
    let resp = gw
        .client()
        .get(format!("{}/metrics", gw.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_named_but_unset_token_variable_stops_the_start() {
    let mut gw = TestGateway::new().start().await;
    gw.set_env(ADMIN_TOKEN_ENV, None);
    let (code, log) = gw.restart_expecting_exit().await;
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains(ADMIN_TOKEN_ENV), "{log}");
    gw.set_env(ADMIN_TOKEN_ENV, Some("short"));
    let (code, log) = gw.restart_expecting_exit().await;
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("at least 16 characters"), "{log}");
    assert!(!log.contains("short\""), "{log}");
}
