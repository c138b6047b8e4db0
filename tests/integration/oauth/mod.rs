//! The OAuth authorization server (issue 3): the whole flow in both token
//! modes and both stores, then one failing-input test per validation rule,
//! each checking the status and the error body a client would see.

mod authorize;
mod browser;
mod consent;
mod dev;
mod flow;
mod pages;
mod register;
mod token;

use serde_json::Value;

use crate::support::gateway::{GatewayBuilder, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::oauth_client::{OAuthClient, TokenMode, Tokens};
use crate::support::upstream::TestUpstream;

/// A loopback redirect URI as native MCP clients register it.
pub const REDIRECT: &str = "http://127.0.0.1:7777/callback";

/// An IdP, an upstream and a gateway in front of it with app `notes` protected.
pub struct Bridge {
    pub idp: TestIdp,
    pub upstream: TestUpstream,
    pub gw: TestGateway,
}

impl Bridge {
    pub async fn start(mode: TokenMode) -> Bridge {
        Self::start_with(mode, "", |b| b).await
    }

    /// Like `start`, with extra `[oauth]` keys and any other configuration.
    pub async fn start_with(
        mode: TokenMode,
        oauth_keys: &str,
        edit: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Bridge {
        let idp = TestIdp::start().await;
        let upstream = TestUpstream::start().await;
        let gw = edit(
            TestGateway::new()
                .oauth_with(&idp, mode, oauth_keys)
                .protected_app("notes", &upstream),
        )
        .start()
        .await;
        Bridge { idp, upstream, gw }
    }

    /// A bridge whose config trusts one registered client (registered
    /// first, then named in `oauth.trusted_clients` and the gateway
    /// restarted: registrations persist on the embedded store). Only such a
    /// client gets `/authorize` and callback errors redirected to it.
    pub async fn with_trusted_client(mode: TokenMode) -> (Bridge, OAuthClient) {
        let mut b = Bridge::start(mode).await;
        let client = OAuthClient::register(&b.gw, REDIRECT).await;
        let config = std::fs::read_to_string(b.gw.config_path()).unwrap();
        let trusted = config.replacen(
            "[oauth]\n",
            &format!("[oauth]\ntrusted_clients = [\"{}\"]\n", client.client_id),
            1,
        );
        assert_ne!(config, trusted, "the config has an [oauth] table");
        std::fs::write(b.gw.config_path(), trusted).unwrap();
        b.gw.restart().await;
        (b, client)
    }

    /// The MCP URL of `notes`, which is also its OAuth resource.
    pub fn resource(&self) -> String {
        self.gw.app_url("notes", "/mcp")
    }

    /// A registered public client that went through the whole flow.
    pub async fn signed_in(&self) -> (OAuthClient, Tokens) {
        let client = OAuthClient::register(&self.gw, REDIRECT).await;
        let tokens = client
            .authorize_and_exchange(&self.gw, &self.resource())
            .await;
        (client, tokens)
    }

    /// The status the `notes` app answers an MCP initialize with this token.
    pub async fn app_status(&self, token: &str) -> u16 {
        initialize_status(&self.gw, &self.resource(), token).await
    }
}

/// The status an MCP endpoint behind `gw` answers an initialize with this token.
pub async fn initialize_status(gw: &TestGateway, mcp_url: &str, token: &str) -> u16 {
    gw.client()
        .post(mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .body(INITIALIZE)
        .send()
        .await
        .expect("gateway answers")
        .status()
        .as_u16()
}

pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// The JOSE header of a JWT.
pub fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or_default();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64url"),
    )
    .expect("JSON header")
}

/// The claims of a JWT, unverified (the test only reads them).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Asserts an OAuth error body (`{error, error_description}`) with this status and code.
pub fn assert_oauth_error(
    page: &crate::support::oauth_client::browser::Page,
    status: u16,
    error: &str,
) -> String {
    assert_eq!(
        page.status.as_u16(),
        status,
        "{} answered {}: {}",
        page.url,
        page.status,
        page.body
    );
    let body = page.json();
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"]
        .as_str()
        .unwrap_or_else(|| panic!("no error_description: {body}"));
    assert!(!description.is_empty());
    description.to_string()
}
