//! Per-tool scopes and step-up authorization (issue 16 item 5; MCP
//! authorization 2025-11-25 "Scope Challenge Handling", RFC 6750 §3.1): a
//! `tools/call` whose token lacks the tool's scope gets 403 with
//! `WWW-Authenticate: Bearer error="insufficient_scope", scope="…",
//! resource_metadata="…"` and never reaches the upstream; the client
//! re-authorizes with the larger scope (the consent page asks only for what
//! is new) and the call passes. The commands API sets the scopes and
//! validates them (RFC 6749 §3.3).

use reqwest::Method;
use serde_json::{json, Value};

use crate::management::{gateway, initialize, mcp, Api};
use crate::oauth::{Bridge, REDIRECT};
use crate::support::gateway::{header_str, AppSpec, Layout, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::oauth_client::{discovery, HtmlForm, OAuthClient, TokenMode};
use crate::support::ports::free_port;
use crate::support::upstream::TestUpstream;

const DELETE_POLICY: &str =
    "[[apps.tools]]\nname = \"delete\"\nrequired_scopes = [\"notes:delete\"]\n";

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

/// Initializes an MCP session at `slug` with `token`; returns its id.
async fn session(gw: &TestGateway, slug: &str, token: &str) -> String {
    let init = mcp(gw, slug, token, initialize()).await;
    assert_eq!(init.status(), 200);
    header_str(&init, "mcp-session-id").expect("a session id")
}

async fn post(
    gw: &TestGateway,
    slug: &str,
    token: &str,
    sid: &str,
    body: Value,
) -> reqwest::Response {
    gw.client()
        .post(gw.app_url(slug, "/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn prm_url(gw: &TestGateway, slug: &str) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/apps/{slug}/mcp",
        gw.public_url()
    )
}

#[tokio::test]
async fn a_tool_call_without_the_tools_scope_gets_the_step_up_challenge_and_passes_after_step_up() {
    let b = Bridge::start_with(TokenMode::Gateway, "", |g| g.app_toml(DELETE_POLICY)).await;
    let gw = &b.gw;

    // Discovery advertises the tool's scope (RFC 9728, RFC 8414) …
    let prm = discovery(gw, "/.well-known/oauth-protected-resource/apps/notes/mcp").await;
    assert!(
        prm["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("notes:delete")),
        "{prm}"
    );
    let asm = discovery(gw, "/.well-known/oauth-authorization-server").await;
    assert!(
        asm["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("notes:delete")),
        "{asm}"
    );
    // … but the 401 names only the basic scopes: a client asks for the
    // tool's scope when it needs it, not at first sign-in.
    let anon = gw
        .client()
        .post(b.resource())
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let c = header_str(&anon, "www-authenticate").unwrap();
    assert!(c.contains("scope=\"openid profile email\""), "{c}");

    let (client, tokens) = b.signed_in().await;
    let sid = session(gw, "notes", &tokens.access_token).await;
    let before = b.upstream.count();

    let refused = post(gw, "notes", &tokens.access_token, &sid, call(7, "delete")).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        header_str(&refused, "www-authenticate").as_deref(),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"email notes:delete openid profile\", resource_metadata=\"{}\"",
                prm_url(gw, "notes")
            )
            .as_str()
        )
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(
        body["error"]["data"]["reason"], "insufficient_scope",
        "{body}"
    );
    // A browser client on an allowed origin can read the challenge.
    let from_browser = gw
        .client()
        .post(gw.app_url("notes", "/mcp"))
        .bearer_auth(&tokens.access_token)
        .header("origin", gw.public_url())
        .header("mcp-session-id", &sid)
        .json(&call(12, "delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(from_browser.status(), 403);
    assert_eq!(
        header_str(&from_browser, "access-control-allow-origin"),
        Some(gw.public_url())
    );
    assert!(header_str(&from_browser, "access-control-expose-headers")
        .is_some_and(|h| h.contains("www-authenticate")));
    // A batch hiding the call is refused as a whole.
    let batch = post(
        gw,
        "notes",
        &tokens.access_token,
        &sid,
        json!([call(8, "read"), call(9, "delete")]),
    )
    .await;
    assert_eq!(batch.status(), 403);
    assert!(header_str(&batch, "www-authenticate")
        .unwrap()
        .contains("notes:delete"));
    assert_eq!(
        b.upstream.count(),
        before,
        "no refused call reached the upstream"
    );
    // Other tools are unaffected.
    let other = post(gw, "notes", &tokens.access_token, &sid, call(10, "read")).await;
    assert_eq!(other.status(), 200);
    assert_eq!(b.upstream.count(), before + 1);

    // Step-up: authorize again with every scope the challenge named. The
    // consent page asks only for the new one and shows the rest as granted.
    let request = client
        .authorization(&b.resource())
        .set("scope", "email notes:delete openid profile");
    let consent = client.sign_in(gw, &request).await;
    let html = &consent.page.body;
    let asked = &html[html
        .find("id=\"requested-scopes\"")
        .expect("requested list")..];
    let asked = &asked[..asked.find("</ul>").unwrap()];
    assert!(asked.contains("data-scope=\"notes:delete\""), "{html}");
    assert!(
        !asked.contains("data-scope=\"openid\""),
        "already granted scopes are not asked again: {html}"
    );
    let granted = &html[html.find("id=\"granted-scopes\"").expect("granted list")..];
    assert!(
        granted.contains("data-scope=\"openid\"") && granted.contains("data-scope=\"profile\""),
        "{html}"
    );
    let back = client.approve(&consent).await;
    let code = back.get("code").expect("a code");
    let page = client.exchange_code(gw, code, &request.pkce.verifier).await;
    let stepped = crate::support::oauth_client::Tokens::from_page(&page);
    let claims = crate::oauth::jwt_claims(&stepped.access_token);
    assert!(
        claims["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "notes:delete"),
        "{claims}"
    );

    let ok = post(gw, "notes", &stepped.access_token, &sid, call(11, "delete")).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["result"]["method"], "tools/call", "{body}");
    assert_eq!(b.upstream.count(), before + 2);

    // Both grants are remembered: the same request now skips consent.
    let again = client
        .authorization(&b.resource())
        .set("scope", "notes:delete openid");
    let page = client.through_idp(gw, &again).await;
    assert!(page.is_redirect(), "consent remembered: {}", page.body);
    assert!(HtmlForm::find(&page.body, "consent").is_none());
}

#[tokio::test]
async fn the_authorize_endpoint_accepts_only_the_requested_apps_tool_scopes() {
    let b = Bridge::start_with(TokenMode::Gateway, "", |g| {
        g.app_toml(DELETE_POLICY)
            .app_with(AppSpec {
                public: false,
                ..AppSpec::new("other", "http://127.0.0.1:9")
            })
            .app_toml("[[apps.tools]]\nname = \"wipe\"\nrequired_scopes = [\"other:wipe\"]\n")
    })
    .await;
    let client = OAuthClient::register(&b.gw, REDIRECT).await;
    // `other`'s tool scope is not a scope of `notes`.
    let request = client
        .authorization(&b.resource())
        .set("scope", "openid other:wipe");
    let page = client.start(&b.gw, &request).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("invalid_scope"), "{}", page.body);
    let request = client
        .authorization(&b.resource())
        .set("scope", "openid notes:delete");
    assert_eq!(client.start(&b.gw, &request).await.status, 302);
}

#[tokio::test]
async fn the_commands_api_sets_and_validates_per_tool_scopes() {
    let idp = TestIdp::start().await;
    let up = TestUpstream::start().await;
    let gw = gateway(&idp).start().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("scoped", json!({"upstreamUrl": up.url()}))
        .await;
    let path = format!("/api/v1/apps/{id}/commands");

    // RFC 6749 §3.3 scope tokens only, named by field (422).
    for bad in [
        json!(["two words"]),
        json!(["quote\""]),
        json!([""]),
        json!(["back\\slash"]),
    ] {
        let (s, body) = ada
            .send(
                Method::PATCH,
                &path,
                Some(json!({"name": "echo", "requiredScopes": bad})),
            )
            .await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(
            body["error"]["details"]["field"], "requiredScopes",
            "{body}"
        );
    }
    let (s, body) = ada
        .send(Method::PATCH, &path, Some(json!({"name": "echo"})))
        .await;
    assert_eq!(s, 422, "a change that changes nothing: {body}");
    let (s, body) = ada
        .put(
            &format!("/api/v1/apps/{id}/config"),
            json!({"upstreamUrl": up.url(), "tools": [{"name": "echo", "requiredScopes": ["a b"]}]}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["field"], "config.tools[0].requiredScopes",
        "{body}"
    );

    let (s, body) = ada
        .send(
            Method::PATCH,
            &path,
            Some(json!({"name": "echo", "requiredScopes": ["tools:echo", "tools:echo"]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["requiredScopes"],
        json!({"echo": ["tools:echo"]}),
        "{body}"
    );
    let (s, body) = ada.get(&path).await;
    assert_eq!(s, 200, "{body}");
    let echo = body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "echo")
        .unwrap();
    assert_eq!(echo["requiredScopes"], json!(["tools:echo"]), "{body}");
    let (_, cfg) = ada.get(&format!("/api/v1/apps/{id}/config")).await;
    assert_eq!(
        cfg["config"]["tools"],
        json!([{"name": "echo", "requiredScopes": ["tools:echo"]}]),
        "{cfg}"
    );

    // The data plane follows the policy without a restart.
    let resource = gw.app_url(&slug, "/mcp");
    let plain = idp.mint_access_token("user_ada", &resource, "openid profile", 600);
    let sid = session(&gw, &slug, &plain).await;
    let before = up.count();
    let refused = post(&gw, &slug, &plain, &sid, call(3, "echo")).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        header_str(&refused, "www-authenticate").as_deref(),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"openid profile tools:echo\", resource_metadata=\"{}\"",
                prm_url(&gw, &slug)
            )
            .as_str()
        )
    );
    assert_eq!(up.count(), before);
    assert_eq!(
        post(&gw, &slug, &plain, &sid, call(4, "stream"))
            .await
            .status(),
        200
    );
    let scoped = idp.mint_access_token("user_ada", &resource, "openid tools:echo", 600);
    assert_eq!(
        post(&gw, &slug, &scoped, &sid, call(5, "echo"))
            .await
            .status(),
        200
    );

    // `[]` removes the requirement.
    let (s, _) = ada
        .send(
            Method::PATCH,
            &path,
            Some(json!({"name": "echo", "requiredScopes": []})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        post(&gw, &slug, &plain, &sid, call(6, "echo"))
            .await
            .status(),
        200
    );
}

#[test]
fn a_public_app_cannot_have_per_tool_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let toml = TestGateway::new()
        .app_with(AppSpec::new("open", "http://127.0.0.1:9"))
        .app_toml(DELETE_POLICY)
        .render(&Layout {
            proxy_port: free_port(),
            admin_port: free_port(),
            dir: dir.path(),
        });
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    // An invalid file exits at once (exit 2); it never starts serving.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drio-gateway"))
        .arg("--config")
        .arg(&path)
        .arg("--validate")
        .env_remove("DRIO_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("tools") && err.contains("public"), "{err}");
}

#[tokio::test]
async fn an_admin_adds_scopes_to_a_config_apps_policy_but_never_removes_the_tomls() {
    let idp = TestIdp::start().await;
    let up = TestUpstream::start().await;
    let gw = gateway(&idp)
        .app_with(AppSpec {
            public: false,
            ..AppSpec::new("ops", &up.url())
        })
        .app_toml("[[apps.tools]]\nname = \"echo\"\nrequired_scopes = [\"ops:echo\"]\n")
        .start()
        .await;
    let path = "/api/v1/apps/app_ops/commands";
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (s, body) = ada
        .send(
            Method::PATCH,
            path,
            Some(json!({"name": "stream", "requiredScopes": ["ops:stream"]})),
        )
        .await;
    assert_eq!(s, 403, "only admins change a config-file app: {body}");

    let admin = Api::as_user(&gw, &idp, "user_admin");
    let (s, body) = admin
        .send(
            Method::PATCH,
            path,
            Some(json!({"commands": [
                {"name": "echo", "requiredScopes": []},
                {"name": "stream", "requiredScopes": ["ops:stream"]}
            ]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["requiredScopes"],
        json!({"echo": ["ops:echo"], "stream": ["ops:stream"]}),
        "the TOML's scope stays: {body}"
    );
    let resource = gw.app_url("ops", "/mcp");
    let token = idp.mint_access_token("user_ada", &resource, "openid", 600);
    let sid = session(&gw, "ops", &token).await;
    for tool in ["echo", "stream"] {
        let r = post(&gw, "ops", &token, &sid, call(1, tool)).await;
        assert_eq!(r.status(), 403, "{tool}");
    }
    let both = idp.mint_access_token("user_ada", &resource, "openid ops:echo ops:stream", 600);
    assert_eq!(
        post(&gw, "ops", &both, &sid, call(2, "stream"))
            .await
            .status(),
        200
    );
}
