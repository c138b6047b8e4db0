//! `TestIdp`: a real OpenID provider for the gateway to delegate sign-in to.
//!
//! It is an HTTP server on `127.0.0.1:0` inside the test process, speaking
//! the parts of OpenID Connect and OAuth 2.0 the gateway uses: discovery, an
//! auto-approving `/authorize` (with PKCE S256), `/token` for authorization
//! codes and rotating refresh tokens, `/jwks`, `/userinfo`, `/introspect`
//! (RFC 7662) and `/revoke` (RFC 7009). Tokens are RS256 JWTs signed with a
//! fresh RSA-2048 key. Tests steer it (`set_user`, `deny_next`,
//! `rotate_key`) and inspect it (`calls`, `last_authorize`); it stops when
//! dropped.
//!
//! ```ignore
//! let idp = TestIdp::start().await;
//! // ... point the gateway's `[idp] issuer` at `idp.issuer()` ...
//! assert_eq!(idp.calls("token"), 1);
//! ```
#![allow(dead_code)]

pub mod keys;
mod routes;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use keys::SigningKey;

/// `BASE64URL(SHA256(verifier))`: the PKCE S256 code challenge of a verifier.
pub use routes::s256 as pkce_challenge;

/// The only client the IdP knows: the gateway.
pub const CLIENT_ID: &str = "gw-client";
pub const CLIENT_SECRET: &str = "gw-secret";

/// The person who signs in at the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpUser {
    pub sub: String,
    pub email: String,
    pub name: String,
    pub picture: String,
}

impl Default for IdpUser {
    fn default() -> Self {
        IdpUser {
            sub: "user_test_1".into(),
            email: "ada@example.com".into(),
            name: "Ada Lovelace".into(),
            picture: "https://img.example.com/ada.png".into(),
        }
    }
}

impl IdpUser {
    /// A user with the given subject and e-mail, and a name and picture derived from them.
    pub fn new(sub: &str, email: &str) -> IdpUser {
        IdpUser {
            sub: sub.into(),
            email: email.into(),
            name: email.split('@').next().unwrap_or(sub).into(),
            picture: format!("https://img.example.com/{sub}.png"),
        }
    }
}

/// What the gateway sent to `/authorize`, as the IdP received it.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub code_challenge_method: String,
    /// OIDC Core §3.1.2.1 `prompt`, when sent.
    pub prompt: Option<String>,
}

/// A running test identity provider.
pub struct TestIdp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// State shared between the handle and the server.
struct Shared {
    issuer: String,
    state: Mutex<IdpState>,
}

/// An issued, not yet redeemed authorization code.
struct CodeGrant {
    record: AuthorizeRecord,
    user: IdpUser,
    expires_at: i64,
}

/// What a live refresh token stands for.
#[derive(Clone)]
struct RefreshGrant {
    user: IdpUser,
    scope: String,
    aud: String,
}

struct IdpState {
    key: SigningKey,
    key_serial: u32,
    user: IdpUser,
    /// Every user that ever signed in (or was minted a token), by `sub`, for `/userinfo`.
    users: HashMap<String, IdpUser>,
    access_ttl: i64,
    deny_next: bool,
    /// Redirect URIs `/authorize` accepts; empty accepts any absolute URL without a fragment.
    redirect_uris: Vec<String>,
    codes: HashMap<String, CodeGrant>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    /// `jti`s of revoked access tokens.
    revoked: HashSet<String>,
    calls: HashMap<String, usize>,
    authorizations: Vec<AuthorizeRecord>,
    /// Added latency before every answer, in milliseconds.
    delay_ms: u64,
    /// Answer every request with 503, as an IdP in an outage would.
    failing: bool,
    /// Claims merged into the next ID token (to forge a bad one).
    id_token_overrides: Option<serde_json::Value>,
}

impl TestIdp {
    /// Starts an IdP on a free loopback port, signing in the default user (Ada).
    pub async fn start() -> TestIdp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test IdP");
        let addr = listener.local_addr().expect("test IdP address");
        let user = IdpUser::default();
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            state: Mutex::new(IdpState {
                key: SigningKey::generate("idp-key-1"),
                key_serial: 1,
                users: HashMap::from([(user.sub.clone(), user.clone())]),
                user,
                access_ttl: 3600,
                deny_next: false,
                redirect_uris: Vec::new(),
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                revoked: HashSet::new(),
                calls: HashMap::new(),
                authorizations: Vec::new(),
                delay_ms: 0,
                failing: false,
                id_token_overrides: None,
            }),
        });
        let server = {
            let shared = shared.clone();
            super::http_server::spawn(listener, move |request| {
                let shared = shared.clone();
                async move { routes::handle(&shared, request).await }
            })
        };
        TestIdp {
            addr,
            shared,
            server,
        }
    }

    /// The issuer identifier, which is also the base URL: `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// An absolute URL on the IdP, e.g. `idp.url("/jwks")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.issuer)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn client_id(&self) -> &'static str {
        CLIENT_ID
    }

    pub fn client_secret(&self) -> &'static str {
        CLIENT_SECRET
    }

    /// Who signs in from now on.
    pub fn set_user(&self, user: IdpUser) {
        let mut state = self.shared.lock();
        state.users.insert(user.sub.clone(), user.clone());
        state.user = user;
    }

    /// Refresh tokens the IdP has issued and not yet seen used or revoked.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.shared.lock().refresh_tokens.keys().cloned().collect()
    }

    pub fn user(&self) -> IdpUser {
        self.shared.lock().user.clone()
    }

    /// The next `/authorize` answers `error=access_denied` instead of a code.
    pub fn deny_next(&self) {
        self.shared.lock().deny_next = true;
    }

    /// Lifetime in seconds of access tokens issued from now on (negative: already expired).
    pub fn set_access_token_ttl(&self, seconds: i64) {
        self.shared.lock().access_ttl = seconds;
    }

    /// Accept only these redirect URIs at `/authorize` (by default any absolute URL is accepted).
    pub fn require_redirect_uris(&self, uris: &[&str]) {
        self.shared.lock().redirect_uris = uris.iter().map(|u| u.to_string()).collect();
    }

    /// How many requests reached an endpoint: `"discovery"`, `"jwks"`, `"authorize"`,
    /// `"token"`, `"userinfo"`, `"introspect"` or `"revoke"`.
    pub fn calls(&self, endpoint: &str) -> usize {
        self.shared.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// The most recent `/authorize` request that passed client and redirect URI checks.
    pub fn last_authorize(&self) -> Option<AuthorizeRecord> {
        self.shared.lock().authorizations.last().cloned()
    }

    /// Signs an access token as `/token` would, for bearer-validation tests.
    /// `ttl` is in seconds; a negative `ttl` mints an already expired token.
    pub fn mint_access_token(&self, sub: &str, aud: &str, scope: &str, ttl: i64) -> String {
        let state = self.shared.lock();
        let email = state.users.get(sub).map(|u| u.email.clone());
        let claims = routes::access_claims(&self.shared.issuer, sub, email, aud, scope, ttl);
        state.key.sign(&claims)
    }

    /// Replaces the signing key: new tokens carry a new `kid`, `/jwks` publishes only the
    /// new key, and tokens signed with the old one no longer verify. Returns the new `kid`.
    pub fn rotate_key(&self) -> String {
        let mut state = self.shared.lock();
        state.key_serial += 1;
        state.key = SigningKey::generate(format!("idp-key-{}", state.key_serial));
        state.key.kid.clone()
    }

    /// Signs arbitrary claims with the current key (for tokens `/token` would never issue).
    pub fn sign_claims(&self, claims: &serde_json::Value) -> String {
        self.shared.lock().key.sign(claims)
    }

    /// Delays every answer by `ms` milliseconds (to make concurrent callers overlap).
    pub fn set_delay_ms(&self, ms: u64) {
        self.shared.lock().delay_ms = ms;
    }

    /// The next ID token carries these claims instead (e.g. a wrong `nonce`).
    pub fn tamper_next_id_token(&self, overrides: serde_json::Value) {
        self.shared.lock().id_token_overrides = Some(overrides);
    }

    /// While set, every endpoint answers 503.
    pub fn set_failing(&self, failing: bool) {
        self.shared.lock().failing = failing;
    }

    /// The `kid` of the current signing key.
    pub fn current_kid(&self) -> String {
        self.shared.lock().key.kid.clone()
    }

    /// The JWKS document, as served at `/jwks`.
    pub fn jwks(&self) -> serde_json::Value {
        json!({ "keys": [self.shared.lock().key.jwk()] })
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.server.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, IdpState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// 32 random bytes, base64url: codes and refresh tokens.
fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
