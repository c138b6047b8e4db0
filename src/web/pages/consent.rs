//! The consent page (MCP authorization, "Confused Deputy Problem"; RFC 9700
//! §4.11 and OAuth 2.0 Security BCP on consent): what a person needs to
//! judge a client before it gets a token: which app (name, description,
//! operator), which client (its name, as the client says, and the host its
//! tokens go to, as the gateway verified), what each scope allows in plain
//! words, and which account is signed in.
//!
//! Client-supplied text (`client_name`) is escaped; client-supplied images
//! (`logo_uri`) are never shown: loading one would be a tracking pixel and
//! a request the client chooses from the person's browser. The form's
//! fields (`consent_id`, `csrf_token`, `decision`) and action are read by
//! the interop suite.

use super::{brand_header, esc, Brand, Page};
use crate::web::LocalResponse;

/// What the client will reach with its tokens.
pub(crate) enum Target {
    /// The management API (no resource, or `public_url`).
    Management,
    /// An app behind the gateway: its MCP URL.
    App { url: String },
    /// A resource the gateway knows but not as an app (kept for old routes).
    Other { url: String },
}

/// One requested scope.
pub(crate) struct Scope {
    pub(crate) id: String,
    pub(crate) description: String,
    /// Already approved for this client and resource.
    pub(crate) granted: bool,
}

/// Everything the consent page shows.
pub(crate) struct View<'a> {
    pub(crate) brand: &'a Brand,
    pub(crate) app_description: Option<&'a str>,
    pub(crate) company_url: Option<&'a str>,
    pub(crate) target: Target,
    pub(crate) client_name: Option<&'a str>,
    /// The verified host the tokens go to, and what it is the host of.
    pub(crate) client_host: &'a str,
    pub(crate) host_kind: &'a str,
    /// The host of a client metadata document's URL (its `client_id`).
    pub(crate) metadata_host: Option<&'a str>,
    pub(crate) loopback: bool,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) account: &'a str,
    /// Restarts sign-in (the "Not you?" link), relative to the gateway.
    pub(crate) restart: &'a str,
    pub(crate) consent_id: &'a str,
    pub(crate) csrf: &'a str,
}

pub(crate) fn page(v: View<'_>) -> LocalResponse {
    let client = v.client_name.unwrap_or("An unnamed application");
    let (subtitle, reach) = match &v.target {
        Target::Management => (
            "Gateway management".to_string(),
            "<strong>manage your apps</strong> on this gateway (create, change and delete apps and their connections)".to_string(),
        ),
        Target::App { url } => (
            "MCP app".to_string(),
            format!(
                "use the app <strong>{}</strong> as you (<code>{}</code>)",
                esc(v.brand.name.as_deref().unwrap_or("")),
                esc(url)
            ),
        ),
        Target::Other { url } => ("MCP server".to_string(), format!("use <code>{}</code> as you", esc(url))),
    };
    let mut about = String::new();
    if let Some(d) = v.app_description.filter(|d| !d.trim().is_empty()) {
        about.push_str(&format!("<p class=\"muted\">{}</p>", esc(d)));
    }
    if let Some(u) = v.company_url {
        about.push_str(&format!(
            "<p class=\"muted\">Operated by <a href=\"{u}\" rel=\"noopener noreferrer\" target=\"_blank\">{host}</a></p>",
            u = esc(u),
            host = esc(&url::Url::parse(u)
                .ok()
                .and_then(|p| p.host_str().map(str::to_owned))
                .unwrap_or_default()),
        ));
    }
    let warning = if v.loopback {
        "<div class=\"note warn\" role=\"note\"><p><strong>This application runs on your own computer</strong> (its address is local). \
         Approve only if you started it yourself just now.</p></div>"
    } else {
        ""
    };
    // Incremental consent (MCP authorization 2025-11-25, step-up): what is
    // asked now and what this client already holds are two lists, so the
    // person sees exactly what changes if they allow.
    let item = |s: &Scope, chip: &str| {
        format!(
            "<li data-scope=\"{id}\">{d}{chip}<br><span class=\"id\">{id}</span></li>",
            d = esc(&s.description),
            id = esc(&s.id),
        )
    };
    let asked: String = v
        .scopes
        .iter()
        .filter(|s| !s.granted)
        .map(|s| item(s, ""))
        .collect();
    let held: String = v
        .scopes
        .iter()
        .filter(|s| s.granted)
        .map(|s| item(s, "<span class=\"chip\">already allowed</span>"))
        .collect();
    let scopes = if held.is_empty() {
        format!("<h2 id=\"scopes\">It will be able to</h2><ul class=\"scopes\" id=\"requested-scopes\" aria-labelledby=\"scopes\">{asked}</ul>")
    } else {
        format!(
            "<h2 id=\"scopes\">It asks in addition to</h2><ul class=\"scopes\" id=\"requested-scopes\" aria-labelledby=\"scopes\">{asked}</ul>\
             <h2 id=\"held\">It can already</h2><ul class=\"scopes\" id=\"granted-scopes\" aria-labelledby=\"held\">{held}</ul>"
        )
    };
    let body = format!(
        "{header}{about}\
         <h1>Allow {client} to access your MCP tools?</h1>\
         <p><strong>{client}</strong> wants to {reach}.</p>\
         <ul class=\"facts\">\
         <li><span class=\"k\">Application (as it names itself)</span>{client}</li>\
         <li><span class=\"k\">Its tokens go to ({host_kind})</span><strong>{host}</strong></li>{meta}\
         <li><span class=\"k\">Signed in as</span><strong>{account}</strong> · <a href=\"{restart}\">Not you? Sign in again</a></li>\
         </ul>{warning}\
         {scopes}\
         <p class=\"muted\">Only allow applications you trust. You can be asked again after 90 days.</p>\
         <form id=\"consent\" method=\"post\" action=\"/api/v1/auth/consent\">\
         <input type=\"hidden\" name=\"consent_id\" value=\"{id}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <div class=\"actions\"><button name=\"decision\" value=\"approve\" type=\"submit\">Allow</button> \
         <button name=\"decision\" value=\"deny\" type=\"submit\" class=\"secondary\">Deny</button></div></form>",
        header = brand_header(v.brand, &subtitle),
        client = esc(client),
        host_kind = esc(v.host_kind),
        host = esc(v.client_host),
        meta = v
            .metadata_host
            .map(|h| format!(
                "<li><span class=\"k\">Its details are published by</span><strong>{}</strong></li>",
                esc(h)
            ))
            .unwrap_or_default(),
        account = esc(v.account),
        restart = esc(v.restart),
        id = esc(v.consent_id),
        csrf = esc(v.csrf),
    );
    Page {
        status: 200,
        title: "Allow access?",
        body,
        brand: Some(v.brand),
    }
    .render()
}
