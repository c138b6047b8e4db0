//! Error and notice pages: what happened, what the person can do about it,
//! and the request id to quote to support (the `X-Request-Id` of this
//! answer). Only text the gateway wrote appears here: never an upstream's
//! body, a provider's free text or a stack trace (OWASP ASVS 5.0 V16.5).

use super::{esc, request_id, Page};
use crate::web::LocalResponse;

/// What to do, when the caller does not say: by status class.
fn default_todo(status: u16) -> &'static str {
    match status {
        200..=299 => "You can close this window.",
        403 => "If you think you should have access, ask the app's owner or your administrator, and quote the request id below.",
        500..=599 => "Wait a moment and try again. If it keeps happening, contact the gateway's operator and quote the request id below.",
        _ => "Go back to your application and start again. If it keeps happening, contact the gateway's operator and quote the request id below.",
    }
}

/// A page saying `what` happened and `todo` (what to do; a default by
/// status when None). Both are the gateway's own text.
pub(crate) fn page(status: u16, title: &str, what: &str, todo: Option<&str>) -> LocalResponse {
    let kind = match status {
        200..=299 => "ok",
        _ => "bad",
    };
    let todo = todo.unwrap_or_else(|| default_todo(status));
    let rid = request_id()
        .map(|id| format!("<p class=\"rid\">Request id: <code>{}</code></p>", esc(&id)))
        .unwrap_or_default();
    let heading = if kind == "ok" {
        "Done"
    } else {
        "What happened"
    };
    Page {
        status,
        title,
        body: format!(
            "<h1>{t}</h1><div class=\"note {kind}\" role=\"{role}\"><p><strong>{heading}:</strong> {what}</p></div>\
             <h2>What you can do</h2><p>{todo}</p>{rid}",
            t = esc(title),
            role = if kind == "ok" { "status" } else { "alert" },
            what = esc(what),
            todo = esc(todo),
        ),
        brand: None,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_page_escapes_and_shows_the_request_id() {
        let resp = super::super::with_request_id("rid-<1>".into(), async {
            page(400, "Bad <b>", "x <script>", None)
        })
        .await;
        let body = String::from_utf8(resp.body.to_vec()).unwrap();
        assert!(
            body.contains("Request id: <code>rid-&lt;1&gt;</code>"),
            "{body}"
        );
        assert!(body.contains("Bad &lt;b&gt;"));
        assert!(!body.contains("<script>"));
        assert!(body.contains("What you can do"));
    }
}
