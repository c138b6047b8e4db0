//! Client ID Metadata Documents (MCP 2025-11-25 authorization;
//! draft-ietf-oauth-client-id-metadata-document): a `client_id` that is an
//! https URL names a JSON document describing the client. The gateway
//! fetches it (5 s timeout, 64 KiB cap, no redirects), refuses private and
//! loopback addresses unless `oauth.allow_private_cimd` (which also admits
//! plain http, for local development), requires the document's `client_id`
//! to equal its URL, validates it like a registration, and caches it.
//!
//! Addresses are judged by the same classification as every user-supplied
//! URL ([`crate::egress`]: IPv4-mapped, NAT64 and 6to4 forms included).
//! Failed fetches are remembered for a minute, and each host is fetched at
//! most [`PER_HOST_PER_MINUTE`] times a minute: `/authorize` is reachable
//! without signing in, and must not become a way to hammer a third party.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache as Moka;

use super::clients::{self, Client, Metadata};
use crate::errors::OAuthError;

const MAX_DOC: usize = 64 * 1024;

/// Fetches of one host's documents per minute.
const PER_HOST_PER_MINUTE: u32 = 10;

pub(crate) struct Cache {
    found: Moka<String, Arc<Client>>,
    /// Why a document could not be used, for a minute.
    failed: Moka<String, String>,
    /// Fetches per host in the current minute.
    per_host: Moka<String, Arc<AtomicU32>>,
}

impl Default for Cache {
    fn default() -> Self {
        fn minute<V: Clone + Send + Sync + 'static>() -> Moka<String, V> {
            Moka::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build()
        }
        Self {
            found: Moka::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            failed: minute(),
            per_host: minute(),
        }
    }
}

pub(crate) fn is_cimd(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

pub(crate) async fn resolve(
    cache: &Cache,
    http_allowed_private: bool,
    client_id: &str,
    now: u64,
) -> Result<Arc<Client>, OAuthError> {
    if let Some(c) = cache.found.get(client_id).await {
        return Ok(c);
    }
    if let Some(why) = cache.failed.get(client_id).await {
        return Err(OAuthError::invalid_client(why));
    }
    let host = url::Url::parse(client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let count = cache
        .per_host
        .get_with(host, async { Arc::new(AtomicU32::new(0)) })
        .await;
    if count.fetch_add(1, Ordering::Relaxed) >= PER_HOST_PER_MINUTE {
        return Err(OAuthError::temporarily_unavailable(
            "too many client metadata documents fetched from this host; retry in a minute",
        ));
    }
    match fetch(http_allowed_private, client_id, now).await {
        Ok(client) => {
            let client = Arc::new(client);
            cache
                .found
                .insert(client_id.to_string(), client.clone())
                .await;
            Ok(client)
        }
        Err(e) => {
            cache
                .failed
                .insert(client_id.to_string(), e.description.clone())
                .await;
            Err(e)
        }
    }
}

fn public_ip(ip: IpAddr) -> bool {
    crate::egress::classify(ip).is_none()
}

async fn fetch(allow_private: bool, client_id: &str, now: u64) -> Result<Client, OAuthError> {
    let bad = |why: String| {
        OAuthError::invalid_client(format!("client metadata document {client_id}: {why}"))
    };
    let url = url::Url::parse(client_id).map_err(|_| bad("not a URL".into()))?;
    if url.scheme() != "https" && !(allow_private && url.scheme() == "http") {
        return Err(bad("must be an https URL".into()));
    }
    if url.fragment().is_some() || url.path() == "/" || url.username() != "" {
        return Err(bad("must have a path and no fragment or credentials".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad("has no host".into()))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| bad(format!("cannot resolve: {e}")))?
            .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| bad("does not resolve".into()))?;
    if !allow_private && addrs.iter().any(|a| !public_ip(a.ip())) {
        return Err(bad("resolves to a private or loopback address".into()));
    }
    // Pin the checked address so a second DNS answer cannot rebind the fetch.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .resolve(&host, addr)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut resp = http
        .get(url.as_str())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(bad(format!("answered {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_DOC {
            return Err(bad(format!("is larger than {MAX_DOC} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let meta: Metadata = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("is not client metadata JSON: {e}")))?;
    if meta.client_id.as_deref() != Some(client_id) {
        return Err(bad("its client_id does not equal its URL".into()));
    }
    if meta
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return Err(bad(
            "only public clients (token_endpoint_auth_method none) are supported".into(),
        ));
    }
    clients::validate(meta, client_id.to_string(), now).map_err(|e| bad(e.description))
}
