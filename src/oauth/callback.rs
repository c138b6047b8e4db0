//! `GET /api/v1/auth/callback`: the identity provider's answer. Consumes the
//! pending authorization by state (single use), relays an IdP error to the
//! client, exchanges the code (with the gateway's PKCE verifier), verifies
//! the ID token (OIDC Core §3.1.3.7) or asks userinfo, and then either asks
//! the user's consent or, for trusted or already-approved clients, mints the
//! one-time bridge code (RFC 6749 §4.1.2, with RFC 9207 `iss`).

use crate::store::keys;
use serde::{Deserialize, Serialize};

use super::authorize::{page, pending_key, redirect_error, Pending};
use super::idp::{IdpError, IdpTokens, User};
use super::{
    consent, dev, query, random, sha256_hex, with_params, OAuthCtx, OAuthServer, CODE_TTL,
};
use crate::config::oauth::TokenMode;
use crate::store::StoreExt;
use crate::web::{LocalRequest, LocalResponse};

/// A bridge code (`code:{sha256(code)}`), 60 s, single use.
#[derive(Serialize, Deserialize, Clone)]
pub struct CodeGrant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    pub(crate) scope: String,
    pub(crate) resource: Option<String>,
    pub(crate) user: User,
    /// The IdP's tokens, sealed under the code's key (never stored in clear).
    pub(crate) upstream: Option<super::sessions::Sealed>,
}

pub(crate) fn code_key(code: &str) -> String {
    keys::auth_code(&sha256_hex(code))
}

pub(crate) async fn callback(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    let q = query(req);
    let Some(idp_state) = q.get("state") else {
        return page(
            400,
            "Invalid sign-in",
            "The identity provider's answer carries no state.",
        );
    };
    let pending: Pending = match cx.store.take_json(&pending_key(idp_state)).await {
        Ok(Some(p)) => p,
        Ok(None) => return page(400, "Sign-in expired", "This sign-in is unknown, already completed or expired. Start again from your application."),
        Err(_) => return LocalResponse::store_down_page(),
    };
    if let Some(proof) = pending.proof.clone() {
        return super::proof::callback(cx, oauth, &pending, proof, &q).await;
    }
    // Before sign-in completes no user is known: only a trusted client's
    // errors are redirected (see `authorize::redirects_errors`).
    let redirect = super::authorize::redirects_errors(oauth, &pending.client_id);
    // Only a trusted client gets the provider's own words; a page shows the
    // gateway's (a crafted callback link must not put text on it).
    let relay = |error: &str, description: &str| {
        redirect_error(
            cx,
            &pending.redirect_uri,
            pending.client_state.as_deref(),
            error,
            description,
        )
    };
    let fail = |error: &str, description: &str| {
        if !redirect {
            return super::authorize::error_page(error, description);
        }
        relay(error, description)
    };
    if let (Some(err), true) = (q.get("error"), oauth.idp.is_workos_sso()) {
        // WorkOS's own codes (`connection_invalid`, `profile_not_allowed_outside_organization`, …):
        // shown on the page, relayed to the client as access_denied.
        // The page names WorkOS's code (identifier characters only) but not
        // its free text: a crafted callback link must not put words on the
        // gateway's page. A trusted client still gets the description.
        let code: String = err
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(80)
            .collect();
        if !redirect {
            return super::authorize::error_page(
                "access_denied",
                &format!("WorkOS did not sign you in (WorkOS: {code})"),
            );
        }
        let text: String = q
            .get("error_description")
            .map_or("WorkOS refused the sign-in", String::as_str)
            .chars()
            .take(300)
            .collect();
        return relay("access_denied", &format!("{text} (WorkOS: {code})"));
    }
    if let Some(err) = q.get("error") {
        // Relay only RFC 6749 §4.1.2.1 codes; anything else is access_denied.
        let code = match err.as_str() {
            "access_denied" | "temporarily_unavailable" | "server_error" | "invalid_scope" => {
                err.as_str()
            }
            _ => "access_denied",
        };
        if !redirect {
            return super::authorize::error_page(code, "The identity provider did not sign you in");
        }
        return relay(
            code,
            q.get("error_description")
                .map(String::as_str)
                .unwrap_or("the identity provider refused the sign-in"),
        );
    }
    let Some(code) = q.get("code") else {
        return fail("server_error", "the identity provider returned no code");
    };
    let (user, upstream) = match sign_in(cx, oauth, &pending, code).await {
        Ok(v) => v,
        Err(IdpError::Unavailable(e)) => {
            // The cause goes to the log, not to the person.
            tracing::warn!(error = %e, "identity provider unavailable at the callback");
            return fail(
                "temporarily_unavailable",
                "The identity provider cannot be reached right now",
            );
        }
        Err(e) => return fail("access_denied", &e.to_string()),
    };
    // The profile write and the consent read are independent: one round
    // trip's wait instead of two.
    let user_key = keys::user(&user.sub);
    let (stored, prior) = tokio::join!(
        cx.store.put_json(&user_key, &user, None),
        consent::prior(cx, oauth, &user.sub, &pending)
    );
    if let Err(e) = stored {
        tracing::warn!(error = %e, "could not store the user profile");
    }
    if !may_use(cx, &pending, &user) {
        return page(
            403,
            "No access to this app",
            "Your account is not allowed to use this app. Ask its owner to give you access, or sign in with another account.",
        );
    }
    if prior.given {
        return issue_code(cx, pending, user, upstream).await;
    }
    consent::show(cx, oauth, pending, user, upstream, prior).await
}

pub(super) async fn sign_in(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    p: &Pending,
    code: &str,
) -> Result<(User, Option<IdpTokens>), IdpError> {
    if oauth.idp.is_dev() {
        let user = dev::redeem(cx, code)
            .await
            .ok_or_else(|| IdpError::Refused("unknown or used sign-in code".into()))?;
        return Ok((user, None));
    }
    if oauth.idp.is_workos_sso() {
        let (user, tokens) = super::workos_sso::redeem(cx.http, &oauth.idp.cfg, code).await?;
        return Ok((user, Some(tokens)));
    }
    let callback = format!("{}/api/v1/auth/callback", cx.config.public_url);
    let resource = (oauth.cfg.token_mode == TokenMode::Upstream)
        .then_some(p.resource.as_deref())
        .flatten();
    let tokens = oauth
        .idp
        .exchange_code(code, &p.idp_verifier, &callback, resource)
        .await?;
    let user = match &tokens.id_token {
        Some(id) => oauth.idp.verify_id_token(id, &p.nonce).await?,
        None => oauth.idp.userinfo(&tokens.access_token).await?,
    };
    if user.sub.is_empty() {
        return Err(IdpError::BadIdToken("no subject".into()));
    }
    Ok((user, Some(tokens)))
}

/// Whether the signed-in user may use the app the authorization is for
/// (the management audience is open to anyone signed in: what they see
/// there is still only their own). No code is issued otherwise.
pub(crate) fn may_use(cx: &OAuthCtx<'_>, p: &Pending, user: &User) -> bool {
    let Some(resource) = p.resource.as_deref() else {
        return true;
    };
    if resource == cx.config.public_url {
        return true;
    }
    let routes = cx.routes.load();
    // A resource that is no longer routed: nothing to grant (fail closed).
    routes.by_resource(resource).is_some_and(|r| {
        r.app.access.allows(crate::config::access::Caller {
            subject: &user.sub,
            email: user.email.as_deref(),
            email_verified: user.email_verified,
            org_id: user.org_id.as_deref(),
            groups: &user.groups,
        })
    })
}

/// Mints the one-time bridge code and sends the browser back to the client.
pub(crate) async fn issue_code(
    cx: &OAuthCtx<'_>,
    p: Pending,
    user: User,
    upstream: Option<IdpTokens>,
) -> LocalResponse {
    // A fresh code, and the IdP's tokens sealed under its key.
    let minted = random(32).and_then(|code| {
        let sealed = upstream
            .as_ref()
            .map(|u| super::sessions::seal(cx, &code_key(&code), u))
            .transpose()?;
        Ok((code, sealed))
    });
    let (code, upstream) = match minted {
        Ok(v) => v,
        Err(e) => {
            return redirect_error(
                cx,
                &p.redirect_uri,
                p.client_state.as_deref(),
                "server_error",
                &e.description,
            )
        }
    };
    let grant = CodeGrant {
        client_id: p.client_id,
        redirect_uri: p.redirect_uri.clone(),
        code_challenge: p.code_challenge,
        scope: p.scope,
        resource: p.resource,
        user,
        upstream,
    };
    if cx
        .store
        .put_json(&code_key(&code), &grant, Some(CODE_TTL))
        .await
        .is_err()
    {
        return redirect_error(
            cx,
            &p.redirect_uri,
            p.client_state.as_deref(),
            "temporarily_unavailable",
            "the gateway cannot store the code",
        );
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &p.client_state {
        params.push(("state", s));
    }
    params.push(("iss", &cx.config.public_url));
    LocalResponse::redirect(&with_params(&p.redirect_uri, &params))
}
