//! URL-mode elicitation for "connect your account" (MCP 2025-11-25,
//! `URLElicitationRequiredError`, `-32042`; issue 16 item 4).
//!
//! A client that declared `elicitation: {url: {}}` — in `initialize`, or in
//! `_meta` when stateless — is answered with `-32042` and one URL-mode
//! elicitation when the user has not connected the app's per-user account;
//! any other keeps `-32001` with `connectUrl`. What a session declared is
//! remembered per (app, user, session). The URL is single use and refused
//! to a person signed in as another user.

use serde_json::{json, Value};

use crate::management::{mcp, not_connected, with_provider, Api};
use crate::support::gateway::TestGateway;
use crate::support::idp::TestIdp;
use crate::support::oauth_client::Browser;
use crate::support::provider::{self, TestProvider};
use crate::support::upstream::TestUpstream;
use crate::tenancy_connect::connect_in_browser;

const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";

fn initialize_with(capabilities: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities,
        "clientInfo": {"name": "t", "version": "1"}}})
}

fn call(id: u64, meta: Option<Value>) -> Value {
    let mut params = json!({"name": "echo", "arguments": {"text": "hi"}});
    if let Some(m) = meta {
        params["_meta"] = m;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// A per-user OAuth app every signed-in user may use; returns its slug.
async fn per_user_app(
    gw: &TestGateway,
    idp: &TestIdp,
    up: &TestUpstream,
    p: &TestProvider,
) -> String {
    let ada = Api::as_user(gw, idp, "user_ada");
    let (id, slug) = ada
        .create_app(
            "per-user",
            json!({"upstreamUrl": up.url(), "access": {"mode": "anyone"}}),
        )
        .await;
    let (s, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"name": "Contacts", "config": {
        "type": "oauth", "authorizationEndpoint": p.url("/authorize"), "tokenEndpoint": p.url("/token"),
        "clientId": provider::CLIENT_ID, "clientSecret": provider::CLIENT_SECRET}})).await;
    assert_eq!(s, 201, "{body}");
    slug
}

fn app_token(gw: &TestGateway, idp: &TestIdp, slug: &str, sub: &str) -> String {
    idp.mint_access_token(sub, &gw.app_url(slug, "/mcp"), "", 600)
}

/// Posts `body` with extra headers; returns the JSON-RPC answer.
async fn rpc(
    gw: &TestGateway,
    slug: &str,
    token: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Value {
    let mut req = gw
        .client()
        .post(gw.app_url(slug, "/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Checks a `-32042` answer to request `id`; returns its URL.
fn elicitation_url(body: &Value, id: u64) -> String {
    assert_eq!(body["id"], id, "{body}");
    assert_eq!(body["error"]["code"], -32042, "{body}");
    let all = body["error"]["data"]["elicitations"]
        .as_array()
        .expect("elicitations");
    assert_eq!(all.len(), 1, "{body}");
    let e = &all[0];
    assert_eq!(e["mode"], "url", "{body}");
    assert!(
        e["elicitationId"].as_str().is_some_and(|i| !i.is_empty()),
        "{body}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let url = e["url"].as_str().expect("url").to_string();
    assert!(url.contains("/connect?ticket="), "{url}");
    url
}

#[tokio::test]
async fn url_mode_clients_get_an_elicitation_and_others_the_connect_error() {
    let (idp, up, p, gw) = with_provider().await;
    let slug = per_user_app(&gw, &idp, &up, &p).await;
    let ada = app_token(&gw, &idp, &slug, "user_ada");

    // No capability: today's -32001 with connectUrl.
    not_connected(&gw, &slug, &ada).await;
    let form_only = rpc(
        &gw,
        &slug,
        &ada,
        &initialize_with(json!({"elicitation": {"form": {}}})),
        &[],
    )
    .await;
    assert_eq!(form_only["error"]["code"], -32001, "{form_only}");
    let plain_call = rpc(&gw, &slug, &ada, &call(2, None), &[]).await;
    assert_eq!(plain_call["error"]["code"], -32001, "{plain_call}");

    // Declared in initialize, and stateless in _meta: -32042.
    let init = rpc(
        &gw,
        &slug,
        &ada,
        &initialize_with(json!({"elicitation": {"url": {}}})),
        &[],
    )
    .await;
    elicitation_url(&init, 1);
    let meta = json!({ META_CAPS: {"elicitation": {"url": {}}},
        "io.modelcontextprotocol/protocolVersion": "2026-07-28" });
    let stateless = rpc(
        &gw,
        &slug,
        &ada,
        &call(7, Some(meta)),
        &[("mcp-protocol-version", "2026-07-28")],
    )
    .await;
    let url = elicitation_url(&stateless, 7);
    assert_eq!(up.count(), 0, "nothing reached the upstream");

    // The URL connects Ada; the retried call reaches the upstream.
    let done = connect_in_browser(&Browser::new(), &gw, &url, "confirm").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let resp = mcp(
        &gw,
        &slug,
        &ada,
        initialize_with(json!({"elicitation": {"url": {}}})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("error").is_none(), "{body}");
    let seen = up.last_request().expect("the upstream was called");
    assert!(
        seen.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer at-")),
        "the user's token is injected"
    );

    // Single use: the same URL again is refused.
    let again = Browser::new().get(&url).await;
    assert_eq!(again.status, 400, "{}", again.body);
}

#[tokio::test]
async fn a_sessions_declaration_is_remembered_for_that_user_only() {
    let (idp, up, p, gw) = with_provider().await;
    // Tokens that are never fresh: every request refreshes, so revoking the
    // grant at the provider disconnects Ada on her next request.
    p.set_expires_in(10);
    let slug = per_user_app(&gw, &idp, &up, &p).await;
    let (ada, bob) = (
        app_token(&gw, &idp, &slug, "user_ada"),
        app_token(&gw, &idp, &slug, "user_bob"),
    );
    let link = not_connected(&gw, &slug, &ada).await;
    assert_eq!(
        connect_in_browser(&Browser::new(), &gw, &link, "confirm")
            .await
            .status,
        200
    );

    let resp = mcp(
        &gw,
        &slug,
        &ada,
        initialize_with(json!({"elicitation": {"url": {}}})),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .expect("a session")
        .to_str()
        .unwrap()
        .to_string();
    let resp = mcp(&gw, &slug, &ada, initialize_with(json!({}))).await;
    let other_sid = resp
        .headers()
        .get("mcp-session-id")
        .expect("a session")
        .to_str()
        .unwrap()
        .to_string();

    p.revoke_all_grants();
    // Ada's declaring session: -32042, without the capability in the request.
    let in_session = rpc(
        &gw,
        &slug,
        &ada,
        &call(3, None),
        &[("mcp-session-id", &sid)],
    )
    .await;
    elicitation_url(&in_session, 3);
    // Her session that did not declare it, and Bob replaying her id: -32001.
    let undeclared = rpc(
        &gw,
        &slug,
        &ada,
        &call(4, None),
        &[("mcp-session-id", &other_sid)],
    )
    .await;
    assert_eq!(undeclared["error"]["code"], -32001, "{undeclared}");
    let replayed = rpc(
        &gw,
        &slug,
        &bob,
        &call(5, None),
        &[("mcp-session-id", &sid)],
    )
    .await;
    assert_eq!(replayed["error"]["code"], -32001, "{replayed}");
}

#[tokio::test]
async fn an_elicitation_url_opened_as_another_user_connects_nobody() {
    let (idp, up, p, gw) = with_provider().await;
    let slug = per_user_app(&gw, &idp, &up, &p).await;
    let ada = app_token(&gw, &idp, &slug, "user_ada");
    let init = initialize_with(json!({"elicitation": {"url": {}}}));
    let token_calls = p.calls("token");

    // Bob, signed in (his management token), opens Ada's link: refused.
    let url = elicitation_url(&rpc(&gw, &slug, &ada, &init, &[]).await, 1);
    let bob = Api::as_user(&gw, &idp, "user_bob");
    let resp = gw
        .client()
        .get(&url)
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let text = resp.text().await.unwrap();
    assert!(text.contains("another gateway account"), "{text}");
    // The link is spent: not even Ada can use it now.
    let again = Browser::new().get(&url).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(p.calls("token"), token_calls, "nothing was exchanged");

    // Ada, signed in as herself, may open a new one.
    let url = elicitation_url(&rpc(&gw, &slug, &ada, &init, &[]).await, 1);
    let ada_mgmt = Api::as_user(&gw, &idp, "user_ada");
    let resp = gw
        .client()
        .get(&url)
        .bearer_auth(&ada_mgmt.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "to the provider");
}
