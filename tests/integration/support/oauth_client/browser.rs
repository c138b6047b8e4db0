//! A minimal browser for OAuth redirect dances: it never follows redirects on
//! its own (each hop is a step the test can inspect), and it keeps cookies
//! per host the way a browser would, parsed by hand from `Set-Cookie`.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};

/// One HTTP response, fully read.
#[derive(Debug, Clone)]
pub struct Page {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// Reads a whole response into a page.
    pub async fn read(url: &str, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Page {
            url: url.to_string(),
            status,
            headers,
            body,
        }
    }

    /// The `Location` header, resolved against the page URL.
    pub fn location(&self) -> Option<url::Url> {
        let location = self.headers.get(LOCATION)?.to_str().ok()?;
        url::Url::parse(&self.url).ok()?.join(location).ok()
    }

    /// The query parameters of the `Location` header (empty if there is none).
    pub fn location_query(&self) -> HashMap<String, String> {
        self.location()
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.status, self.url, self.body
            )
        })
    }

    pub fn is_redirect(&self) -> bool {
        self.status.is_redirection() && self.headers.contains_key(LOCATION)
    }
}

/// An HTTP client with a cookie jar and no automatic redirects.
pub struct Browser {
    http: reqwest::Client,
    /// host:port → cookie name → value.
    jar: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("HTTP client");
        Browser {
            http,
            jar: Mutex::new(HashMap::new()),
        }
    }

    /// The underlying client, for requests that need no cookies.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn get(&self, url: &str) -> Page {
        self.send(Method::GET, url, None).await
    }

    /// Posts an `application/x-www-form-urlencoded` body, as an HTML form does.
    pub async fn post_form(&self, url: &str, fields: &[(String, String)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, url, Some(body)).await
    }

    /// Follows `page`'s redirect (one hop).
    pub async fn follow(&self, page: &Page) -> Page {
        let next = page.location().unwrap_or_else(|| {
            panic!(
                "expected a redirect from {}, got {} {}",
                page.url, page.status, page.body
            )
        });
        self.get(next.as_str()).await
    }

    /// Opens a link the gateway handed to an MCP client, as its user does:
    /// when the gateway first asks who the browser is
    /// (`/api/v1/auth/prove`), the sign-in at the identity provider is
    /// followed back to the link. Returns the link's own answer then (or the
    /// page the sign-in stopped at); without that step, the first answer.
    pub async fn open_link(&self, url: &str) -> Page {
        let mut page = self.get(url).await;
        let proving = |p: &Page| {
            p.location()
                .is_some_and(|l| l.path() == "/api/v1/auth/prove")
        };
        if !proving(&page) {
            return page;
        }
        for _ in 0..8 {
            let Some(next) = page.location() else {
                return page;
            };
            let back = next.query_pairs().any(|(k, _)| k == "proof");
            page = self.get(next.as_str()).await;
            if back {
                return page;
            }
        }
        panic!("no way back to the link from {}: {}", page.url, page.status)
    }

    /// A cookie the browser holds for the host of `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let host = host_of(url);
        self.jar.lock().unwrap().get(&host)?.get(name).cloned()
    }

    /// Forgets every cookie (a different browser profile).
    pub fn clear_cookies(&self) {
        self.jar.lock().unwrap().clear();
    }

    async fn send(&self, method: Method, url: &str, form: Option<String>) -> Page {
        let host = host_of(url);
        let mut request = self.http.request(method.clone(), url);
        let cookies = self.cookie_header(&host);
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        if let Some(body) = form {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        self.store_cookies(&host, response.headers());
        let page = Page::read(url, response).await;
        crate::support::openapi::check(
            method.as_str(),
            url,
            page.status.as_u16(),
            page.body.as_bytes(),
        );
        page
    }

    fn cookie_header(&self, host: &str) -> String {
        let jar = self.jar.lock().unwrap();
        jar.get(host)
            .map(|cookies| {
                cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// Applies `Set-Cookie` headers: stores each cookie, or removes it when it is expired.
    fn store_cookies(&self, host: &str, headers: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(host.to_string()).or_default();
        for header in headers.get_all(SET_COOKIE) {
            let Ok(line) = header.to_str() else { continue };
            let mut parts = line.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|attr| {
                let attr = attr.trim().to_ascii_lowercase();
                attr == "max-age=0" || attr.starts_with("max-age=-")
            });
            if expired || value.trim().is_empty() {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }
}

fn host_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The fields of the HTML form with the given `id`: its `action` and every
/// `<input>`/`<button>` with a `name` (value HTML-unescaped).
pub struct HtmlForm {
    pub action: Option<String>,
    pub method: Option<String>,
    pub fields: Vec<(String, String)>,
}

impl HtmlForm {
    /// Finds `<form id="{id}" …>…</form>` in `html`.
    pub fn find(html: &str, id: &str) -> Option<HtmlForm> {
        let mut rest = html;
        while let Some(start) = rest.find("<form") {
            let tail = &rest[start..];
            let open_end = tail.find('>')?;
            let open = &tail[..open_end];
            let end = tail.find("</form>").unwrap_or(tail.len());
            if attribute(open, "id").as_deref() == Some(id) {
                let inner = &tail[open_end..end];
                let mut fields = Vec::new();
                for tag in ["<input", "<button"] {
                    let mut scan = inner;
                    while let Some(at) = scan.find(tag) {
                        let element = &scan[at..];
                        let close = element.find('>').unwrap_or(element.len());
                        let element = &element[..close];
                        if let Some(name) = attribute(element, "name") {
                            fields.push((name, attribute(element, "value").unwrap_or_default()));
                        }
                        scan = &scan[at + close..];
                    }
                }
                return Some(HtmlForm {
                    action: attribute(open, "action"),
                    method: attribute(open, "method"),
                    fields,
                });
            }
            rest = &tail[end..];
        }
        None
    }

    /// The value of the named field (the first, if repeated).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every field with this name (e.g. the values of several `decision` buttons).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The value of `name="…"` (or `'…'`) inside one tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut search = tag;
    loop {
        let at = search.find(name)?;
        let before = search[..at].chars().last();
        let after = &search[at + name.len()..];
        let boundary = matches!(before, Some(c) if c.is_whitespace());
        if let (true, Some(value)) = (boundary, after.trim_start().strip_prefix('=')) {
            let value = value.trim_start();
            let quote = value.chars().next()?;
            let raw = if quote == '"' || quote == '\'' {
                let inner = &value[1..];
                &inner[..inner.find(quote)?]
            } else {
                let end = value
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .unwrap_or(value.len());
                &value[..end]
            };
            return Some(unescape(raw));
        }
        search = &search[at + name.len()..];
    }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
