//! `OAuthClient`: an MCP client signing in through the gateway's OAuth bridge
//! the way Claude or ChatGPT would, one visible step at a time.
//!
//! ```ignore
//! let client = OAuthClient::register(&gw, "http://127.0.0.1:7777/callback").await;
//! let tokens = client.authorize_and_exchange(&gw, &resource).await;
//! let me = client.me(&gw, &tokens.access_token).await;
//! ```
//!
//! The browser half ([`browser::Browser`]) never follows redirects by itself
//! and keeps its own cookie jar, so each hop (gateway → IdP → gateway callback
//! → consent page → client redirect URI) is checked as it happens. The
//! lower-level steps (`authorization`, `sign_in`, `approve`, `exchange_code`)
//! let failing-input tests stop at the hop they are about.
#![allow(dead_code)]

pub mod browser;

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::gateway::{AppSpec, GatewayBuilder, TestGateway};
use super::idp::{pkce_challenge, TestIdp};
use super::upstream::TestUpstream;
pub use browser::{Browser, HtmlForm, Page};

/// Environment variable the generated gateway config names for the IdP secret.
pub const IDP_SECRET_ENV: &str = "TEST_IDP_SECRET";

/// How the gateway issues tokens to MCP clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// The gateway mints and validates its own tokens.
    Gateway,
    /// Clients receive the IdP's tokens, brokered through the gateway.
    Upstream,
}

impl TokenMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenMode::Gateway => "gateway",
            TokenMode::Upstream => "upstream",
        }
    }
}

impl GatewayBuilder {
    /// Makes the gateway the OAuth authorization server, delegating sign-in to `idp`.
    pub fn oauth(self, idp: &TestIdp, mode: TokenMode) -> Self {
        self.oauth_with(idp, mode, "")
    }

    /// Like [`oauth`](Self::oauth), with extra `[oauth]` keys (one per line).
    pub fn oauth_with(self, idp: &TestIdp, mode: TokenMode, oauth_keys: &str) -> Self {
        // Given to this gateway's process only: tests run in parallel threads
        // of one process, so `std::env::set_var` would race with them.
        self.env(IDP_SECRET_ENV, idp.client_secret())
            .raw_toml(&format!(
            "[oauth]\ntoken_mode = \"{mode}\"\n{oauth_keys}\n\n[idp]\nkind = \"oidc\"\nissuer = \"{issuer}\"\n\
             client_id = \"{client_id}\"\nclient_secret_env = \"{IDP_SECRET_ENV}\"\n",
            mode = mode.as_str(),
            issuer = idp.issuer(),
            client_id = idp.client_id(),
        ))
    }

    /// Adds an app `slug` that requires a bearer token, for a gateway whose
    /// `[oauth]` section the test writes itself.
    pub fn protected_app_for_dev(self, slug: &str, upstream: &TestUpstream) -> Self {
        self.protected_app(slug, upstream)
    }

    /// Adds an app `slug` that requires a bearer token.
    pub fn protected_app(self, slug: &str, upstream: &TestUpstream) -> Self {
        let mut app = AppSpec::new(slug, &upstream.url());
        app.public = false;
        self.app_with(app)
    }
}

/// A PKCE verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = format!("{}-{}", random(), random());
        Pkce {
            challenge: pkce_challenge(&verifier),
            verifier,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// The parameters of one `GET /api/v1/auth/authorize`, editable before it is sent.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub params: Vec<(String, String)>,
    pub state: String,
    pub pkce: Pkce,
    pub redirect_uri: String,
}

impl AuthorizeRequest {
    /// Replaces (or adds) a parameter.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.into(), value.into()));
        self
    }

    /// Leaves a parameter out.
    pub fn without(mut self, key: &str) -> Self {
        self.params.retain(|(k, _)| k != key);
        self
    }

    pub fn url(&self, gw: &TestGateway) -> String {
        let mut url = url::Url::parse(&format!("{}/api/v1/auth/authorize", gw.url())).unwrap();
        url.query_pairs_mut().extend_pairs(&self.params);
        url.into()
    }
}

/// The consent page the gateway shows after the IdP signed the user in.
pub struct ConsentPage {
    pub page: Page,
    pub form: HtmlForm,
}

/// A successful token response.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub token_type: String,
    pub raw: Value,
}

impl Tokens {
    /// Reads a 200 token response, failing the test on anything else.
    pub fn from_page(page: &Page) -> Tokens {
        assert_eq!(page.status, StatusCode::OK, "token response: {}", page.body);
        assert_eq!(
            page.header("cache-control"),
            Some("no-store"),
            "token responses are not cacheable"
        );
        let raw = page.json();
        let text = |k: &str| {
            raw[k]
                .as_str()
                .unwrap_or_else(|| panic!("token response lacks {k}: {raw}"))
                .to_string()
        };
        Tokens {
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
            token_type: text("token_type"),
            expires_in: raw["expires_in"].as_i64().expect("expires_in"),
            raw: raw.clone(),
        }
    }
}

/// A registered MCP client with its own browser.
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
    pub registration: Value,
    pub browser: Browser,
}

impl OAuthClient {
    /// Registers a public client (PKCE, no secret) with one redirect URI.
    pub async fn register(gw: &TestGateway, redirect_uri: &str) -> OAuthClient {
        Self::register_with(gw, Self::metadata(redirect_uri)).await
    }

    /// Registers a confidential client that authenticates with `client_secret_post`.
    pub async fn register_confidential(gw: &TestGateway, redirect_uri: &str) -> OAuthClient {
        let mut metadata = Self::metadata(redirect_uri);
        metadata["token_endpoint_auth_method"] = json!("client_secret_post");
        let client = Self::register_with(gw, metadata).await;
        assert!(
            client.client_secret.is_some(),
            "a confidential client gets a secret: {}",
            client.registration
        );
        client
    }

    /// Registration metadata as an MCP client sends it.
    pub fn metadata(redirect_uri: &str) -> Value {
        json!({
            "client_name": "Test MCP Client",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
    }

    /// Registers with arbitrary metadata, failing the test unless it succeeds.
    pub async fn register_with(gw: &TestGateway, metadata: Value) -> OAuthClient {
        let page = Self::try_register(gw, &metadata).await;
        assert_eq!(
            page.status,
            StatusCode::CREATED,
            "registration: {}",
            page.body
        );
        let registration = page.json();
        let redirect_uri = metadata["redirect_uris"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        OAuthClient {
            client_id: registration["client_id"]
                .as_str()
                .expect("client_id")
                .to_string(),
            client_secret: registration["client_secret"].as_str().map(String::from),
            redirect_uri,
            registration,
            browser: Browser::new(),
        }
    }

    /// `POST /api/v1/auth/register` with a JSON body, whatever the outcome.
    pub async fn try_register(gw: &TestGateway, metadata: &Value) -> Page {
        let url = format!("{}/api/v1/auth/register", gw.url());
        send(gw.client().post(&url).json(metadata), &url).await
    }

    /// A fresh authorization request for `resource` with new state and PKCE.
    pub fn authorization(&self, resource: &str) -> AuthorizeRequest {
        let pkce = Pkce::new();
        let state = format!("state-{}", random());
        let params = [
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("scope", "openid profile email"),
            ("resource", resource),
        ];
        AuthorizeRequest {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state,
            pkce,
            redirect_uri: self.redirect_uri.clone(),
        }
    }

    /// The gateway's answer to the authorize request, not followed.
    pub async fn start(&self, gw: &TestGateway, request: &AuthorizeRequest) -> Page {
        self.browser.get(&request.url(gw)).await
    }

    /// Authorize → IdP → gateway callback: returns what the callback answered.
    pub async fn through_idp(&self, gw: &TestGateway, request: &AuthorizeRequest) -> Page {
        let to_idp = self.start(gw, request).await;
        assert_eq!(
            to_idp.status,
            StatusCode::FOUND,
            "authorize should redirect to the IdP: {}",
            to_idp.body
        );
        let at_idp = self.browser.follow(&to_idp).await;
        assert_eq!(
            at_idp.status,
            StatusCode::FOUND,
            "the IdP should redirect back: {}",
            at_idp.body
        );
        let callback = at_idp.location().expect("IdP redirect");
        assert!(
            callback
                .as_str()
                .starts_with(&format!("{}/api/v1/auth/callback", gw.url())),
            "the IdP returns to the gateway callback, not to {callback}"
        );
        self.browser.follow(&at_idp).await
    }

    /// Authorize → IdP → callback → the consent page, checked at every hop.
    pub async fn sign_in(&self, gw: &TestGateway, request: &AuthorizeRequest) -> ConsentPage {
        let page = self.through_idp(gw, request).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "callback should show the consent page: {}",
            page.body
        );
        let form = HtmlForm::find(&page.body, "consent")
            .unwrap_or_else(|| panic!("no <form id=\"consent\"> in: {}", page.body));
        for field in ["consent_id", "csrf_token"] {
            assert!(
                form.field(field).is_some_and(|v| !v.is_empty()),
                "consent form lacks {field}"
            );
        }
        ConsentPage { page, form }
    }

    /// Submits the consent form with `decision` ("approve" or "deny"); returns the redirect.
    pub async fn decide(&self, consent: &ConsentPage, decision: &str) -> Page {
        let mut fields: Vec<(String, String)> = consent
            .form
            .fields
            .iter()
            .filter(|(name, _)| name != "decision")
            .cloned()
            .collect();
        assert!(
            consent.form.values("decision").contains(&decision),
            "consent form has no {decision} button: {}",
            consent.page.body
        );
        fields.push(("decision".into(), decision.into()));
        let action = consent.form.action.clone().unwrap_or_default();
        let target = url::Url::parse(&consent.page.url)
            .unwrap()
            .join(&action)
            .unwrap();
        self.browser.post_form(target.as_str(), &fields).await
    }

    /// Approves and returns the query the client's redirect URI receives.
    pub async fn approve(&self, consent: &ConsentPage) -> HashMap<String, String> {
        let page = self.decide(consent, "approve").await;
        self.client_redirect(&page)
    }

    /// Checks that `page` redirects to this client's redirect URI and returns its query.
    pub fn client_redirect(&self, page: &Page) -> HashMap<String, String> {
        assert_eq!(
            page.status,
            StatusCode::FOUND,
            "expected a redirect to the client: {}",
            page.body
        );
        let location = page.location().expect("Location");
        let mut bare = location.clone();
        bare.set_query(None);
        assert_eq!(bare.as_str(), self.redirect_uri, "redirected to {location}");
        page.location_query()
    }

    /// Checks that `page` sends the browser back to this client with `error`
    /// and the request's `state`, and no code; returns the query.
    pub fn error_redirect(
        &self,
        page: &Page,
        error: &str,
        request: &AuthorizeRequest,
    ) -> HashMap<String, String> {
        let back = self.client_redirect(page);
        assert_eq!(
            back.get("error").map(String::as_str),
            Some(error),
            "{back:?}"
        );
        assert_eq!(back.get("state"), Some(&request.state), "{back:?}");
        assert!(!back.contains_key("code"), "{back:?}");
        back
    }

    /// The full browser dance; returns the code (checked against the state) and the request.
    pub async fn authorize(&self, gw: &TestGateway, resource: &str) -> (AuthorizeRequest, String) {
        let request = self.authorization(resource);
        let consent = self.sign_in(gw, &request).await;
        let back = self.approve(&consent).await;
        assert_eq!(
            back.get("state"),
            Some(&request.state),
            "state round-trips: {back:?}"
        );
        assert_eq!(
            back.get("iss"),
            Some(&gw.public_url()),
            "RFC 9207 iss: {back:?}"
        );
        let code = back
            .get("code")
            .unwrap_or_else(|| panic!("no code in {back:?}"));
        (request, code.clone())
    }

    /// A fresh bridge code, approving consent only if the gateway asks for it
    /// (it remembers an approval per user and client).
    pub async fn code(&self, gw: &TestGateway, resource: &str) -> (AuthorizeRequest, String) {
        let request = self.authorization(resource);
        let page = self.through_idp(gw, &request).await;
        let back = if page.status == StatusCode::OK {
            let form = HtmlForm::find(&page.body, "consent")
                .unwrap_or_else(|| panic!("no consent form: {}", page.body));
            self.approve(&ConsentPage { page, form }).await
        } else {
            self.client_redirect(&page)
        };
        assert_eq!(
            back.get("state"),
            Some(&request.state),
            "state round-trips: {back:?}"
        );
        let code = back
            .get("code")
            .unwrap_or_else(|| panic!("no code in {back:?}"))
            .clone();
        (request, code)
    }

    /// A fresh code exchanged for tokens, consent approved if asked.
    pub async fn tokens(&self, gw: &TestGateway, resource: &str) -> Tokens {
        let (request, code) = self.code(gw, resource).await;
        Tokens::from_page(&self.exchange_code(gw, &code, &request.pkce.verifier).await)
    }

    /// Everything from authorize to tokens.
    pub async fn authorize_and_exchange(&self, gw: &TestGateway, resource: &str) -> Tokens {
        let (request, code) = self.authorize(gw, resource).await;
        Tokens::from_page(&self.exchange_code(gw, &code, &request.pkce.verifier).await)
    }

    /// `POST /api/v1/auth/token` (authorization_code) as a form, whatever the outcome.
    pub async fn exchange_code(&self, gw: &TestGateway, code: &str, verifier: &str) -> Page {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", &self.redirect_uri),
        ];
        self.token_request(gw, "/api/v1/auth/token", &form).await
    }

    /// `POST /api/v1/auth/refresh`, whatever the outcome.
    pub async fn refresh(&self, gw: &TestGateway, refresh_token: &str) -> Page {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("redirect_uri", &self.redirect_uri),
        ];
        self.token_request(gw, "/api/v1/auth/refresh", &form).await
    }

    /// Posts to a token endpoint with this client's credentials added.
    pub async fn token_request(&self, gw: &TestGateway, path: &str, form: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        form.push(("client_id", &self.client_id));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let url = format!("{}{path}", gw.url());
        send(gw.client().post(&url).form(&form), &url).await
    }

    /// RFC 7009 revocation at the endpoint the gateway advertises.
    pub async fn revoke(&self, gw: &TestGateway, token: &str) -> Page {
        let metadata = discovery(gw, "/.well-known/oauth-authorization-server").await;
        let endpoint = metadata["revocation_endpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("no revocation_endpoint in {metadata}"))
            .to_string();
        let mut form = vec![("token", token), ("client_id", self.client_id.as_str())];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        send(gw.client().post(&endpoint).form(&form), &endpoint).await
    }

    /// `GET /api/v1/me` with a bearer token.
    pub async fn me(&self, gw: &TestGateway, access_token: &str) -> Page {
        let url = format!("{}/api/v1/me", gw.url());
        send(gw.client().get(&url).bearer_auth(access_token), &url).await
    }
}

/// A discovery document, which must be served as 200 JSON.
pub async fn discovery(gw: &TestGateway, path: &str) -> Value {
    let url = format!("{}{path}", gw.url());
    let page = send(gw.client().get(&url), &url).await;
    assert_eq!(page.status, StatusCode::OK, "GET {path}: {}", page.body);
    page.json()
}

/// Sends a request and reads the whole response.
/// The response is checked against the OpenAPI document (`support::openapi`).
pub async fn send(request: reqwest::RequestBuilder, url: &str) -> Page {
    let (client, request) = request.build_split();
    let request = request.unwrap_or_else(|e| panic!("{url}: {e}"));
    let method = request.method().clone();
    let response =
        tokio::time::timeout(std::time::Duration::from_secs(10), client.execute(request))
            .await
            .unwrap_or_else(|_| panic!("{url}: no response within 10 s"))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    let page = Page::read(url, response).await;
    super::openapi::check(
        method.as_str(),
        url,
        page.status.as_u16(),
        page.body.as_bytes(),
    );
    page
}

/// 16 random bytes, hex.
fn random() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    hex::encode(bytes)
}
