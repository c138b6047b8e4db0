//! The connect-your-account confirmation (RFC 6749 §10.12, login CSRF; see
//! `api::connect`): names the gateway account the provider account will
//! serve and the provider, before anything is exchanged or stored. Its form
//! (`confirm_id`, `csrf_token`, `decision` = confirm | cancel, posted to
//! `/api/v1/connections/confirm`) is read by the tests.

use super::{brand_header, esc, Brand, Page};
use crate::web::LocalResponse;

pub(crate) struct View<'a> {
    pub(crate) brand: &'a Brand,
    pub(crate) provider: &'a str,
    pub(crate) connection: &'a str,
    pub(crate) account: &'a str,
    pub(crate) confirm_id: &'a str,
    pub(crate) csrf: &'a str,
}

pub(crate) fn confirm(v: View<'_>) -> LocalResponse {
    let title = format!("Connect your {} account?", v.provider);
    let body = format!(
        "{header}<h1>{title}</h1>\
         <p>Your {provider} account will be used by the gateway account <strong>{account}</strong> \
         for the connection <strong>{name}</strong>: requests that account makes through its MCP clients will act as you at {provider}.</p>\
         <ul class=\"facts\">\
         <li><span class=\"k\">Gateway account</span><strong>{account}</strong></li>\
         <li><span class=\"k\">Provider account to connect</span>{provider}</li>\
         </ul>\
         <div class=\"note warn\" role=\"note\"><p>If this is not your gateway account, or you did not start this just now, choose <strong>Cancel</strong>.</p></div>\
         <form id=\"connect\" method=\"post\" action=\"/api/v1/connections/confirm\">\
         <input type=\"hidden\" name=\"confirm_id\" value=\"{id}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <div class=\"actions\"><button name=\"decision\" value=\"confirm\" type=\"submit\">Confirm</button> \
         <button name=\"decision\" value=\"cancel\" type=\"submit\" class=\"secondary\">Cancel</button></div></form>",
        header = brand_header(v.brand, "Connect an account"),
        title = esc(&title),
        provider = esc(v.provider),
        account = esc(v.account),
        name = esc(v.connection),
        id = esc(v.confirm_id),
        csrf = esc(v.csrf),
    );
    Page {
        status: 200,
        title: &title,
        body,
        brand: Some(v.brand),
    }
    .render()
}
