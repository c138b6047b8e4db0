//! The gateway's own HTTP surface, without Pingora: the request a local
//! route handler sees ([`LocalRequest`]: headers plus a size-capped body)
//! and the answer it gives ([`LocalResponse`]), with the one place where
//! domain errors become HTTP (drio's envelope, RFC 6749 §5.2 errors) and
//! where pages get their security headers (CSP, `X-Frame-Options`, no-store).

pub(crate) mod client_addr;
pub(crate) mod pages;

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;

use crate::errors::{ApiError, OAuthError};

/// Largest request body a local route accepts (OAuth forms, management JSON).
pub(crate) const MAX_LOCAL_BODY: usize = 1024 * 1024;

pub struct LocalRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client_ip: Option<IpAddr>,
    pub request_id: String,
}

impl LocalRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of cookie `name`, across every `Cookie` header (RFC 6265 §5.4).
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug)]
pub struct LocalResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

impl LocalResponse {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            )],
            body: body.into(),
        }
    }

    pub(crate) fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, "application/json", body),
            Err(_) => Self::api_error(&ApiError::internal(), ""),
        }
    }

    pub(crate) fn api_error(err: &ApiError, request_id: &str) -> Self {
        Self::new(err.status, "application/json", err.body(request_id))
    }

    /// An RFC 6749 error; token responses are never cacheable (§5.1).
    pub(crate) fn oauth_error(err: &OAuthError) -> Self {
        Self::new(err.status, "application/json", err.body()).no_store()
    }

    pub(crate) fn html(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
            .with_header(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"))
            .with_header(
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static("default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
            )
            .no_store()
    }

    /// A page telling a person what happened, what to do and the request
    /// id (see [`pages::message`]); `text` is the gateway's own words.
    pub(crate) fn message_page(status: u16, title: &str, text: &str) -> Self {
        pages::message::page(status, title, text, None)
    }

    /// The page shown when the store cannot be reached mid-flow.
    pub(crate) fn store_down_page() -> Self {
        pages::message::page(
            503,
            "Try again",
            "The gateway cannot reach its store right now.",
            Some("Wait a moment, then start again from your application. If it keeps happening, contact the gateway's operator and quote the request id below."),
        )
    }

    /// Lets this page's forms end up at `source` too. Browsers apply
    /// `form-action` to the redirects after a submission (CSP 3), and the
    /// consent form's answer redirects to the client.
    pub(crate) fn allow_form_target(mut self, source: &str) -> Self {
        for (name, value) in self.headers.iter_mut() {
            if name.as_str() != "content-security-policy" {
                continue;
            }
            let csp = value.to_str().unwrap_or_default().replacen(
                "form-action 'self'",
                &format!("form-action 'self' {source}"),
                1,
            );
            if let Ok(v) = HeaderValue::from_str(&csp) {
                *value = v;
            }
        }
        self
    }

    /// A 302 to `location`; returns 500 if the location is not a valid header.
    pub(crate) fn redirect(location: &str) -> Self {
        match HeaderValue::from_str(location) {
            Ok(v) => Self::new(302, "text/plain; charset=utf-8", Bytes::new())
                .with_header(http::header::LOCATION, v)
                .no_store(),
            Err(_) => Self::api_error(&ApiError::internal(), ""),
        }
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn no_store(self) -> Self {
        self.with_header(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )
        .with_header(http::header::PRAGMA, HeaderValue::from_static("no-cache"))
    }
}

/// Text made safe for HTML element content and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
