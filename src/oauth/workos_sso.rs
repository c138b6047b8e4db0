//! `idp.kind = "workos_sso"`: users sign in through the WorkOS SSO API
//! (seed `004_*`, <https://workos.com/docs/reference/sso>), the enterprise
//! single sign-on of the organization they belong to.
//!
//! - The browser goes to `GET {api}/sso/authorize` with `client_id`,
//!   `redirect_uri` (the gateway's callback), `response_type=code`, `state`
//!   and exactly one of `organization`, `connection` or `provider`. With
//!   `organizations_by_domain`, a small page first asks for the work e-mail
//!   and picks the organization by its domain (sent as `login_hint` and
//!   `domain_hint`).
//! - The callback's code is redeemed at `POST {api}/sso/token` (form:
//!   `client_id`, `client_secret` = the API key, `grant_type`, `code`) for a
//!   `profile` and an `access_token`; the profile becomes the user (subject
//!   = `profile.id`).
//!
//! The profile must come from the configured target: anyone holding a
//! gateway `state` can edit the WorkOS URL to another connection of the
//! same WorkOS environment, whose IdP may assert any e-mail. A profile of
//! another organization, connection or provider is refused, and an e-mail
//! counts as verified only when its domain maps to the very organization
//! that signed the user in.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::authorize::{page, pending_key, Pending};
use super::idp::{IdpError, IdpTokens, User};
use super::{query, with_params, OAuthCtx, OAuthServer};
use crate::config::oauth::{IdpConfig, SsoTarget};
use crate::store::StoreExt;
use crate::web::{LocalRequest, LocalResponse};

/// The page that asks for the work e-mail (organizations by domain).
pub(crate) const EMAIL_PATH: &str = "/api/v1/auth/sso/email";

fn callback(cx: &OAuthCtx<'_>) -> String {
    format!("{}/api/v1/auth/callback", cx.config.public_url)
}

/// `GET {api}/sso/authorize` with the one target parameter and hints.
fn authorize_url(
    cx: &OAuthCtx<'_>,
    cfg: &IdpConfig,
    idp_state: &str,
    target: (&str, &str),
    email: Option<(&str, &str)>,
) -> String {
    let cb = callback(cx);
    let mut params = vec![
        ("client_id", cfg.client_id.as_str()),
        ("redirect_uri", cb.as_str()),
        ("response_type", "code"),
        ("state", idp_state),
        target,
    ];
    if let Some((address, domain)) = email {
        params.push(("login_hint", address));
        params.push(("domain_hint", domain));
    }
    with_params(&format!("{}/sso/authorize", cfg.issuer), &params)
}

/// Where `/authorize` sends the browser: WorkOS, or the e-mail page first.
pub(crate) fn start(cx: &OAuthCtx<'_>, oauth: &OAuthServer, idp_state: &str) -> String {
    let cfg = &oauth.idp.cfg;
    let target = match &cfg.sso {
        Some(SsoTarget::Organization(o)) => ("organization", o.as_str()),
        Some(SsoTarget::Connection(c)) => ("connection", c.as_str()),
        Some(SsoTarget::Provider(p)) => ("provider", p.as_str()),
        Some(SsoTarget::ByDomain(_)) | None => {
            return with_params(
                &format!("{}{EMAIL_PATH}", cx.config.public_url),
                &[("state", idp_state)],
            )
        }
    };
    authorize_url(cx, cfg, idp_state, target, None)
}

/// The e-mail page. Its form's answer redirects to WorkOS, and browsers
/// apply the page's CSP `form-action` to that redirect too (CSP 3): the
/// WorkOS API origin is allowed beside the gateway's own.
fn email_form(
    oauth: &OAuthServer,
    idp_state: &str,
    email: &str,
    problem: Option<&str>,
) -> LocalResponse {
    let page = crate::web::pages::signin::sso_email(EMAIL_PATH, idp_state, email, problem);
    match url::Url::parse(&oauth.idp.cfg.issuer) {
        Ok(u) => page.allow_form_target(&u.origin().ascii_serialization()),
        Err(_) => page,
    }
}

/// The sign-in this `state` names, if it is still waiting (not consumed).
async fn waiting(cx: &OAuthCtx<'_>, idp_state: &str) -> Result<(), LocalResponse> {
    match cx.store.get_json::<Pending>(&pending_key(idp_state)).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(page(
            400,
            "Sign-in expired",
            "This sign-in is unknown, already completed or expired. Start again from your application.",
        )),
        Err(_) => Err(LocalResponse::store_down_page()),
    }
}

/// `GET /api/v1/auth/sso/email?state=…`
pub(crate) async fn email_page(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    let q = query(req);
    let idp_state = q.get("state").map(String::as_str).unwrap_or("");
    if let Err(refusal) = waiting(cx, idp_state).await {
        return refusal;
    }
    email_form(oauth, idp_state, "", None)
}

/// `POST /api/v1/auth/sso/email` (`state`, `email`): on to the organization
/// of the e-mail's domain.
pub(crate) async fn email_submit(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let idp_state = form.get("state").map(String::as_str).unwrap_or("");
    if let Err(refusal) = waiting(cx, idp_state).await {
        return refusal;
    }
    let email = form.get("email").map(|e| e.trim()).unwrap_or("");
    let again = |problem: &str| email_form(oauth, idp_state, email, Some(problem));
    let domain = match email.rsplit_once('@') {
        Some((local, d)) if !local.is_empty() && !d.is_empty() && email.len() <= 254 => {
            d.to_ascii_lowercase()
        }
        _ => return again("Enter an e-mail address like ada@example.com."),
    };
    let Some(SsoTarget::ByDomain(map)) = &oauth.idp.cfg.sso else {
        return page(
            404,
            "Not found",
            "This gateway signs in without an e-mail first.",
        );
    };
    let Some(org) = map.get(&domain) else {
        return again(&format!(
            "Single sign-on is not set up for {domain}. Use your work e-mail address."
        ));
    };
    LocalResponse::redirect(&authorize_url(
        cx,
        &oauth.idp.cfg,
        idp_state,
        ("organization", org),
        Some((email, &domain)),
    ))
}

/// `POST {api}/sso/token`'s answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    profile: Profile,
}

#[derive(Deserialize)]
struct Profile {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    connection_id: Option<String>,
    #[serde(default)]
    connection_type: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

/// Error codes of `/sso/token` repeated on the error page (a closed set;
/// anything else is named by status).
const TOKEN_ERRORS: [&str; 4] = [
    "invalid_grant",
    "invalid_request",
    "invalid_client",
    "unauthorized",
];

/// Redeems the callback's code (`POST {api}/sso/token`) for the user and
/// the WorkOS access token.
pub(crate) async fn redeem(
    http: &reqwest::Client,
    cfg: &IdpConfig,
    code: &str,
) -> Result<(User, IdpTokens), IdpError> {
    let key = cfg
        .client_secret
        .as_ref()
        .ok_or_else(|| IdpError::Unavailable("no WorkOS API key".into()))?;
    let unavailable = |e: reqwest::Error| IdpError::Unavailable(e.without_url().to_string());
    let resp = http
        .post(format!("{}/sso/token", cfg.issuer))
        .bearer_auth(key.expose())
        .timeout(Duration::from_secs(10))
        .form(&[
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", key.expose()),
            ("grant_type", "authorization_code"),
            ("code", code),
        ])
        .send()
        .await
        .map_err(unavailable)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(unavailable)?;
    if !(200..300).contains(&status) {
        if !(400..500).contains(&status) {
            return Err(IdpError::Unavailable(format!("WorkOS answered {status}")));
        }
        #[derive(Deserialize)]
        struct Refusal {
            #[serde(default)]
            error: Option<String>,
        }
        let code = serde_json::from_slice::<Refusal>(&body)
            .ok()
            .and_then(|r| r.error)
            .and_then(|e| TOKEN_ERRORS.into_iter().find(|k| *k == e));
        return Err(IdpError::Refused(match code {
            Some("invalid_grant") => {
                "the sign-in code is expired or was already used (invalid_grant)".into()
            }
            Some(c) => format!("WorkOS refused the sign-in ({c})"),
            None => format!("WorkOS refused the sign-in (status {status})"),
        }));
    }
    let t: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|_| IdpError::Unavailable("WorkOS sent an unreadable profile".into()))?;
    let user = user_from(cfg, t.profile)?;
    let tokens = IdpTokens {
        access_token: t.access_token,
        refresh_token: None,
        id_token: None,
        expires_in: None,
        scope: None,
    };
    Ok((user, tokens))
}

/// The profile as the gateway's user, if it comes from the configured
/// target (see the module docs).
fn user_from(cfg: &IdpConfig, p: Profile) -> Result<User, IdpError> {
    let refused = |what: &str| {
        IdpError::Refused(format!(
            "WorkOS signed you in through another {what} than this gateway uses"
        ))
    };
    let org = p.organization_id.as_deref();
    match &cfg.sso {
        Some(SsoTarget::Organization(o)) if org != Some(o.as_str()) => {
            return Err(refused("organization"))
        }
        Some(SsoTarget::Connection(c)) if p.connection_id.as_deref() != Some(c.as_str()) => {
            return Err(refused("connection"))
        }
        Some(SsoTarget::Provider(k)) if p.connection_type.as_deref() != Some(k.as_str()) => {
            return Err(refused("provider"))
        }
        Some(SsoTarget::ByDomain(map)) if !org.is_some_and(|o| map.values().any(|v| v == o)) => {
            return Err(refused("organization"))
        }
        _ => {}
    }
    if p.id.is_empty() {
        return Err(IdpError::BadIdToken("no profile id".into()));
    }
    let email = p.email.map(|e| e.trim().to_ascii_lowercase());
    // Verified only when the operator maps the e-mail's domain to the very
    // organization that authenticated the user.
    let email_verified = match (&cfg.sso, &email, org) {
        (Some(SsoTarget::ByDomain(map)), Some(e), Some(o)) => e
            .rsplit_once('@')
            .and_then(|(_, d)| map.get(d))
            .is_some_and(|mapped| mapped == o),
        _ => false,
    };
    let name = [p.first_name, p.last_name]
        .into_iter()
        .flatten()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(User {
        sub: p.id,
        email,
        name: (!name.is_empty()).then_some(name),
        picture: None,
        email_verified,
        org_id: p.organization_id,
        groups: p.groups.unwrap_or_default(),
    })
}
