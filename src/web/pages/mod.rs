//! The pages a person sees: dev sign-in and the SSO e-mail step
//! ([`signin`]), consent ([`consent`]), errors and notices ([`message`]) and
//! the connect-your-account confirmation ([`connect`]), in one layout with
//! one stylesheet compiled into the binary (`style.css`).
//!
//! Security (OWASP ASVS 5.0 V3, CSP Level 3): every value that did not come
//! from this crate is escaped ([`esc`]); pages load nothing from elsewhere:
//! `default-src 'none'`, styles only by the SHA-256 of each inline `<style>`
//! block (no `'unsafe-inline'`, so a `style` attribute injected by a
//! client-supplied value would not apply either), no script at all, images
//! only from an app's configured logo source (`data:` or a listed https
//! origin, see [`branding`]), and no framing (`frame-ancestors 'none'`,
//! `X-Frame-Options: DENY`, RFC 7034).
//!
//! Accessibility (WCAG 2.2 AA): one `<main>`, a `<h1>` per page, a label on
//! every control, visible focus, 4.5:1 text contrast in light and dark
//! (`prefers-color-scheme`), and a layout that works down to 320 px.
//!
//! Templates are plain Rust functions rather than a template engine: the
//! pages are few and small, and this keeps the build free of another
//! proc-macro crate on a machine where compile time is scarce; escaping is
//! explicit at each interpolation and tested per page.

pub(crate) mod branding;
pub(crate) mod connect;
pub(crate) mod consent;
pub(crate) mod message;
pub(crate) mod signin;

use std::future::Future;

use base64::Engine;
use http::HeaderValue;
use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};

use super::LocalResponse;
use branding::Branding;

const STYLE: &str = include_str!("style.css");

/// `'sha256-…'` of the stylesheet, computed once.
static STYLE_HASH: Lazy<String> = Lazy::new(|| csp_hash(STYLE));

fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

tokio::task_local! {
    /// The id of the request being answered. The proxy assigns one per
    /// request (`X-Request-Id`) and `routes::dispatch` scopes it here, so an
    /// error page deep in a flow can show it without every helper taking the
    /// request.
    static REQUEST_ID: String;
}

/// Runs `f` with `id` as the request id the pages show.
pub(crate) async fn with_request_id<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The current request's id, if a page is rendered inside [`with_request_id`].
pub(crate) fn request_id() -> Option<String> {
    REQUEST_ID
        .try_with(Clone::clone)
        .ok()
        .filter(|s| !s.is_empty())
}

/// Text made safe for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    super::escape_html(s)
}

/// An app's branding as a page shows it, resolved against the operator's
/// allowed logo hosts at render time.
#[derive(Default)]
pub(crate) struct Brand {
    /// Shown name of the app (display name, else its name).
    pub(crate) name: Option<String>,
    /// `(src, CSP img-src source)` of a logo that passes the rules now.
    pub(crate) logo: Option<(String, String)>,
    /// Accent and its text colour.
    pub(crate) accent: Option<(String, &'static str)>,
}

impl Brand {
    pub(crate) fn of(app_name: &str, b: Option<&Branding>, logo_hosts: &[String]) -> Brand {
        let Some(b) = b else {
            return Brand {
                name: Some(app_name.to_string()),
                ..Brand::default()
            };
        };
        Brand {
            name: Some(
                b.display_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(app_name)
                    .to_string(),
            ),
            logo: b.logo_url.as_ref().and_then(|l| {
                branding::logo_source(l, logo_hosts)
                    .ok()
                    .map(|src| (l.clone(), src))
            }),
            accent: b.accent_color.as_deref().and_then(branding::accent_pair),
        }
    }
}

/// One page: a title (plain text), its markup (built with [`esc`]) and an
/// optional app brand.
pub(crate) struct Page<'a> {
    pub(crate) status: u16,
    pub(crate) title: &'a str,
    pub(crate) body: String,
    pub(crate) brand: Option<&'a Brand>,
}

impl Page<'_> {
    pub(crate) fn render(self) -> LocalResponse {
        let mut styles = vec![STYLE_HASH.clone()];
        let accent_style = self
            .brand
            .and_then(|b| b.accent.as_ref())
            .map(|(bg, fg)| format!(":root{{--accent:{bg};--accent-fg:{fg}}}"));
        if let Some(s) = &accent_style {
            styles.push(csp_hash(s));
        }
        let img = self
            .brand
            .and_then(|b| b.logo.as_ref())
            .map(|(_, source)| format!(" img-src {source};"))
            .unwrap_or_default();
        let csp = format!(
            "default-src 'none'; style-src {};{img} form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            styles.join(" ")
        );
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <meta name=\"referrer\" content=\"no-referrer\">\
             <title>{title}</title><style>{STYLE}</style>{accent}</head>\
             <body><main>{body}</main>\
             <footer>Secured by the drio gateway</footer></body></html>",
            title = esc(self.title),
            accent = accent_style
                .map(|s| format!("<style>{s}</style>"))
                .unwrap_or_default(),
            body = self.body,
        );
        let mut resp = LocalResponse::html(self.status, html);
        if let Ok(v) = HeaderValue::from_str(&csp) {
            for (name, value) in resp.headers.iter_mut() {
                if name.as_str() == "content-security-policy" {
                    *value = v.clone();
                }
            }
        }
        resp
    }
}

/// The header of a branded page: logo (or initial) and name.
pub(crate) fn brand_header(brand: &Brand, subtitle: &str) -> String {
    let name = brand.name.as_deref().unwrap_or("drio gateway");
    let mark = match &brand.logo {
        // The logo is decorative: the name is next to it.
        Some((src, _)) => format!("<img src=\"{}\" alt=\"\">", esc(src)),
        None => format!(
            "<span class=\"mark\" aria-hidden=\"true\">{}</span>",
            esc(&name
                .chars()
                .next()
                .unwrap_or('d')
                .to_uppercase()
                .to_string())
        ),
    };
    format!(
        "<header class=\"brand\">{mark}<div class=\"who\"><strong>{}</strong><span>{}</span></div></header>",
        esc(name),
        esc(subtitle)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csp(resp: &LocalResponse) -> String {
        resp.headers
            .iter()
            .find(|(n, _)| n.as_str() == "content-security-policy")
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .unwrap()
    }

    #[test]
    fn the_csp_allows_exactly_the_pages_styles_and_logo() {
        let brand = Brand {
            name: Some("Notes".into()),
            logo: Some((
                "https://cdn.example.com/l.png".into(),
                "https://cdn.example.com".into(),
            )),
            accent: branding::accent_pair("#aa3300"),
        };
        let resp = Page {
            status: 200,
            title: "t",
            body: String::new(),
            brand: Some(&brand),
        }
        .render();
        let policy = csp(&resp);
        assert!(policy.contains(&*STYLE_HASH), "{policy}");
        assert!(
            policy.contains(&csp_hash(":root{--accent:#aa3300;--accent-fg:#ffffff}")),
            "{policy}"
        );
        assert!(
            policy.contains("img-src https://cdn.example.com;"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(!policy.contains("script"), "{policy}");
        let plain = Page {
            status: 200,
            title: "t",
            body: String::new(),
            brand: None,
        }
        .render();
        assert!(!csp(&plain).contains("img-src"));
    }
}
