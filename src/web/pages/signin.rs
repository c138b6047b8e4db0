//! Sign-in pages: the `dev` provider's e-mail page and the e-mail /
//! organization step of enterprise SSO (issue 16; ready for its handler).
//! Field names and form actions are part of the interface: the interop
//! suite and the integration tests post these forms (`state`, `email`;
//! `POST /api/v1/auth/dev/login`).

use super::{esc, Page};
use crate::web::LocalResponse;

/// The dev provider's sign-in page; `state` is the pending authorization's.
pub(crate) fn dev(state: &str, error: Option<&str>) -> LocalResponse {
    let (status, alert, invalid) = match error {
        Some(e) => (
            400,
            format!(
                "<div class=\"note bad\" role=\"alert\" id=\"email-error\"><p>{}</p></div>",
                esc(e)
            ),
            " aria-invalid=\"true\" aria-describedby=\"email-error\"",
        ),
        None => (200, String::new(), ""),
    };
    Page {
        status,
        title: "Sign in (development)",
        body: format!(
            "<h1>Sign in</h1>\
             <div class=\"note warn\"><p><strong>Development sign-in:</strong> any e-mail address is accepted. \
             Never expose this gateway beyond your machine.</p></div>{alert}\
             <form method=\"post\" action=\"/api/v1/auth/dev/login\">\
             <input type=\"hidden\" name=\"state\" value=\"{state}\">\
             <label for=\"email\">E-mail address</label>\
             <input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"email\" required autofocus{invalid}>\
             <div class=\"actions\"><button type=\"submit\">Continue</button></div></form>",
            state = esc(state),
        ),
        brand: None,
    }
    .render()
}

/// The first step of enterprise SSO: the person's work e-mail, from which
/// the gateway finds their organization's identity provider. Posts
/// `state` and `email` to `action`.
pub(crate) fn sso_email(
    action: &str,
    state: &str,
    email: &str,
    error: Option<&str>,
) -> LocalResponse {
    let alert = error
        .map(|e| {
            format!(
                "<div class=\"note bad\" role=\"alert\" id=\"email-error\"><p>{}</p></div>",
                esc(e)
            )
        })
        .unwrap_or_default();
    let invalid = if error.is_some() {
        " aria-invalid=\"true\" aria-describedby=\"email-error\""
    } else {
        " aria-describedby=\"email-help\""
    };
    Page {
        status: if error.is_some() { 400 } else { 200 },
        title: "Sign in with your organization",
        body: format!(
            "<h1>Sign in with your organization</h1>{alert}\
             <form id=\"sso\" method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"state\" value=\"{state}\">\
             <label for=\"email\">Work e-mail address</label>\
             <input type=\"email\" id=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"email\" required autofocus{invalid}>\
             <p class=\"muted\" id=\"email-help\">We use its domain to send you to your organization's sign-in.</p>\
             <div class=\"actions\"><button type=\"submit\">Continue</button></div></form>",
            action = esc(action),
            state = esc(state),
            email = esc(email),
        ),
        brand: None,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: LocalResponse) -> String {
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    #[test]
    fn the_dev_form_keeps_its_fields_and_escapes_state() {
        let html = body(dev("a\"><script>", None));
        assert!(html.contains("action=\"/api/v1/auth/dev/login\""));
        assert!(
            html.contains("name=\"state\" value=\"a&quot;&gt;&lt;script&gt;\""),
            "{html}"
        );
        assert!(html.contains("name=\"email\""));
        assert!(html.contains("<label for=\"email\">"));
        let html = body(sso_email("/sso", "s", "a@b\"c", Some("Unknown <org>")));
        assert!(html.contains("Unknown &lt;org&gt;"));
    }
}
