//! Upstream credential injection: what the gateway adds to a request so the
//! app's upstream accepts it, after removing the client's own token (MCP
//! authorization spec, "Token Passthrough" is forbidden).
//!
//! An app's default enabled auth connection becomes one [`Injection`] when
//! the route table is built, so the hot path only clones a prepared header:
//! - static kinds: API key in a header (with prefix) or query parameter,
//!   bearer (RFC 6750), basic (RFC 7617);
//! - [`client_credentials`]: RFC 6749 §4.4 tokens, cached until shortly
//!   before expiry and refreshed by one request however many arrive;
//! - [`per_user`]: each user's own delegated upstream tokens;
//! - [`token_exchange`]: RFC 8693 tokens exchanged for the user's own;
//! - [`workos_pipes`]: the user's provider token held by WorkOS Pipes.

use std::sync::Arc;

use base64::Engine;
use http::{HeaderName, HeaderValue};

use crate::auth::Principal;
use crate::catalog::{Connection, ConnectionSecrets};

pub(crate) mod client_credentials;
pub(crate) mod elicitation;
pub(crate) mod oauth;
pub mod per_user;
pub(crate) mod token_exchange;
pub(crate) mod workos_pipes;

pub(crate) use token_exchange::Subject;

/// How requests to one app are credentialed.
pub enum Injection {
    None,
    Header(HeaderName, HeaderValue),
    /// `name` and its already percent-encoded `name=value` pair.
    Query {
        name: String,
        pair: String,
    },
    ClientCredentials(Arc<client_credentials::ClientCredentials>),
    PerUser(Arc<per_user::PerUser>),
    TokenExchange(Arc<token_exchange::TokenExchange>),
    WorkosPipes(Arc<workos_pipes::WorkosPipes>),
}

/// What one request gets, resolved in `request_filter` (where a failure can
/// still be answered) and applied in `upstream_request_filter`.
#[derive(Clone)]
pub(crate) enum Resolved {
    None,
    Header(HeaderName, HeaderValue),
    Query { name: String, pair: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum InjectError {
    /// The user has not connected their upstream account (or it was revoked).
    #[error("connect your account at {connect_url}")]
    NotConnected { connect_url: String },
    #[error("upstream credentials unavailable: {0}")]
    Unavailable(String),
    /// The token service refused this user's exchange (RFC 8693 §2.2.2);
    /// `reason` is its error code from a closed set, never its text.
    #[error("the token service refused the exchange ({reason})")]
    Refused { reason: &'static str },
}

/// Why a connection's settings cannot make credentials. The text is what
/// the management API reports as the connection's `lastError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectionError {
    /// A required field (named as in the API's JSON) is not set.
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("`{0}` is not a header name")]
    BadHeaderName(String),
    #[error("the credential is not a valid header value")]
    BadHeaderValue,
    #[error("set exactly one of headerName or queryParamName")]
    HeaderOrQuery,
    #[error("unknown connection type `{0}`")]
    UnknownKind(String),
    /// A token exchange names no target for its token.
    #[error("set audience or resource")]
    AudienceOrResource,
    /// WorkOS Pipes' `provider` is not a slug (it goes into a URL path).
    #[error("provider is not a provider slug")]
    BadProviderSlug,
    /// WorkOS Pipes knows users by the WorkOS sign-in's subject.
    #[error("WorkOS Pipes needs idp.kind = \"workos_sso\"")]
    NeedsWorkosSso,
}

impl Injection {
    /// Builds the injection for a connection and its decrypted secrets.
    /// Returns the connection's problem as text when it cannot be used.
    pub(crate) fn build(
        conn: &Connection,
        secrets: &ConnectionSecrets,
        ctx: &oauth::OAuthContext,
    ) -> Result<Injection, ConnectionError> {
        let c = &conn.config;
        let header = |name: &str, value: String| -> Result<Injection, ConnectionError> {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConnectionError::BadHeaderName(name.to_string()))?;
            let value =
                HeaderValue::from_str(&value).map_err(|_| ConnectionError::BadHeaderValue)?;
            Ok(Injection::Header(name, mark_sensitive(value)))
        };
        match c.kind.as_str() {
            "api_key" => {
                let key = secrets
                    .api_key
                    .clone()
                    .ok_or(ConnectionError::Missing("apiKey"))?;
                match (&c.header_name, &c.query_param_name) {
                    (Some(h), None) => header(
                        h,
                        format!("{}{key}", c.header_prefix.as_deref().unwrap_or("")),
                    ),
                    (None, Some(q)) => Ok(Injection::Query {
                        name: q.clone(),
                        pair: url::form_urlencoded::Serializer::new(String::new())
                            .append_pair(q, &key)
                            .finish(),
                    }),
                    _ => Err(ConnectionError::HeaderOrQuery),
                }
            }
            "bearer" => header(
                "authorization",
                format!(
                    "Bearer {}",
                    secrets
                        .access_token
                        .as_deref()
                        .ok_or(ConnectionError::Missing("accessToken"))?
                ),
            ),
            "basic" => {
                let user = c
                    .username
                    .as_deref()
                    .ok_or(ConnectionError::Missing("username"))?;
                let pass = secrets.password.as_deref().unwrap_or("");
                let b64 =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                header("authorization", format!("Basic {b64}"))
            }
            "oauth" => {
                let settings = oauth::ProviderSettings::from_connection(conn, secrets)?;
                if c.authorization_endpoint.is_some() {
                    Ok(Injection::PerUser(Arc::new(per_user::PerUser::new(
                        conn,
                        settings,
                        ctx.clone(),
                    ))))
                } else {
                    Ok(Injection::ClientCredentials(Arc::new(
                        client_credentials::ClientCredentials::new(settings, ctx.egress.clone()),
                    )))
                }
            }
            "token_exchange" => Ok(Injection::TokenExchange(Arc::new(
                token_exchange::TokenExchange::new(conn, secrets, ctx.clone())?,
            ))),
            "workos_pipes" => Ok(Injection::WorkosPipes(Arc::new(
                workos_pipes::WorkosPipes::new(conn, secrets, ctx.clone())?,
            ))),
            other => Err(ConnectionError::UnknownKind(other.to_string())),
        }
    }

    pub(crate) async fn resolve(
        &self,
        principal: Option<&Principal>,
    ) -> Result<Resolved, InjectError> {
        self.resolve_for(Subject {
            principal,
            bearer: None,
        })
        .await
    }

    /// The connection type, as traces name it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Injection::None => "none",
            Injection::Header(..) => "header",
            Injection::Query { .. } => "query",
            Injection::ClientCredentials(_) => "client_credentials",
            Injection::PerUser(_) => "per_user",
            Injection::TokenExchange(_) => "token_exchange",
            Injection::WorkosPipes(_) => "workos_pipes",
        }
    }

    /// Whether resolving needs the caller (per-user kinds): the proxy then
    /// reads the JSON-RPC body, so a refusal can answer its request id.
    pub(crate) fn per_user(&self) -> bool {
        matches!(
            self,
            Injection::PerUser(_) | Injection::TokenExchange(_) | Injection::WorkosPipes(_)
        )
    }

    /// The credential when it does not depend on the caller or on a token
    /// endpoint (none, a fixed header, a query parameter); None otherwise.
    pub(crate) fn resolve_static(&self) -> Option<Resolved> {
        match self {
            Injection::None => Some(Resolved::None),
            Injection::Header(n, v) => Some(Resolved::Header(n.clone(), v.clone())),
            Injection::Query { name, pair } => Some(Resolved::Query {
                name: name.clone(),
                pair: pair.clone(),
            }),
            _ => None,
        }
    }

    /// Whether resolution may read the caller's own bearer token (token
    /// exchange with the incoming token as the subject); other kinds never
    /// see it, so it is not even extracted for them.
    pub(crate) fn reads_bearer(&self) -> bool {
        matches!(self, Injection::TokenExchange(_))
    }

    /// Like [`Self::resolve`], with the bearer the client presented (the
    /// subject token of a token exchange outside gateway token mode).
    pub(crate) async fn resolve_for(&self, who: Subject<'_>) -> Result<Resolved, InjectError> {
        let principal = who.principal;
        match self {
            // Always Some for these kinds.
            Injection::None | Injection::Header(..) | Injection::Query { .. } => {
                Ok(self.resolve_static().unwrap_or(Resolved::None))
            }
            Injection::ClientCredentials(cc) => Ok(Resolved::Header(
                http::header::AUTHORIZATION,
                cc.header().await?,
            )),
            Injection::PerUser(pu) => Ok(Resolved::Header(
                http::header::AUTHORIZATION,
                pu.header(principal).await?,
            )),
            Injection::TokenExchange(te) => Ok(Resolved::Header(
                http::header::AUTHORIZATION,
                te.header(who).await?,
            )),
            Injection::WorkosPipes(wp) => Ok(Resolved::Header(
                http::header::AUTHORIZATION,
                wp.header(principal).await?,
            )),
        }
    }
}

/// Marks a credential header so HTTP/2 HPACK never indexes it.
pub(crate) fn mark_sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

/// Applies a resolved credential to the upstream request: a header replaces
/// any copy the client sent; a query credential replaces a same-named
/// parameter.
pub(crate) fn apply(
    resolved: &Resolved,
    upstream: &mut pingora::http::RequestHeader,
) -> pingora::Result<()> {
    match resolved {
        Resolved::None => Ok(()),
        Resolved::Header(name, value) => upstream
            .insert_header(name.clone(), value.clone())
            .map(|_| ()),
        Resolved::Query { name, pair } => {
            let uri = &upstream.uri;
            let path = uri.path();
            let mut q: Vec<&str> = uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(name.as_str()))
                .collect();
            q.push(pair);
            let new = format!("{path}?{}", q.join("&"));
            let uri = http::Uri::try_from(new).map_err(|e| {
                pingora::Error::because(
                    pingora::ErrorType::InvalidHTTPHeader,
                    "query credential",
                    e,
                )
            })?;
            upstream.set_uri(uri);
            Ok(())
        }
    }
}
