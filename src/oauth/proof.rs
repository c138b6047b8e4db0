//! Who opened a connect link: the browser signs in at the identity provider
//! before the link does anything.
//!
//! MCP 2025-11-25 URL-mode elicitation (and the connect links of
//! `credentials::per_user`, WorkOS Pipes and token exchange) hand a URL to
//! a client, which shows it to its user. Whoever opens it must be the user
//! it was issued to: a link forwarded, leaked or phished would otherwise
//! connect someone else's upstream account to this user's identity, or the
//! other way round (RFC 9700 §4.7, login CSRF).
//!
//! `GET /api/v1/auth/prove?ticket=T` reads the link's ticket (without using
//! it up) and starts an ordinary sign-in at the IdP (OIDC Core §3.1.2.1; a
//! user with an IdP session passes through without a prompt). The IdP's
//! answer comes back to `/api/v1/auth/callback`, which hands it here: the
//! signed-in subject must equal the ticket's (compared in constant time as
//! SHA-256 digests), else a page says whose link it is not and nothing
//! happens. On a match a one-time proof (120 s) sends the browser back to
//! the link, which now spends its ticket.
//!
//! A link issued for a token service's `interaction_required` also carries
//! the gateway session: the fresh sign-in (with `prompt=consent`) replaces
//! that session's IdP tokens, the subject of the next RFC 8693 exchange.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::authorize::{idp_url, page, pending_key, Pending};
use super::idp::IdpError;
use super::{random, sha256_hex, with_params, OAuthCtx, OAuthServer, PENDING_TTL};
use crate::credentials::per_user::{ticket_key, ConnectTicket, LinkProof};
use crate::store::{keys, StoreExt};
use crate::web::{LocalRequest, LocalResponse};

/// How long the way back to the link stays open after the sign-in.
const PROOF_TTL: Duration = Duration::from_secs(120);

/// What the sign-in must prove, kept in the pending authorization.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct ProofRequest {
    subject_sha256: String,
    ticket: String,
    app_id: String,
    auth_id: String,
    #[serde(default)]
    session_id: Option<String>,
}

/// The path of a connect link (what the proof returns to).
fn link(cx: &OAuthCtx<'_>, app_id: &str, auth_id: &str) -> String {
    format!(
        "{}/api/v1/apps/{app_id}/auth/{auth_id}/connect",
        cx.config.public_url
    )
}

fn expired() -> LocalResponse {
    page(
        400,
        "Link expired",
        "This link is unknown, used or expired. Ask your MCP client to try again for a new one.",
    )
}

/// `GET /api/v1/auth/prove?ticket=…`: starts the sign-in.
pub(crate) async fn start(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    req: &LocalRequest,
) -> LocalResponse {
    let Some(ticket) = super::query(req).remove("ticket") else {
        return expired();
    };
    let tk: ConnectTicket = match cx.store.get_json(&ticket_key(&ticket)).await {
        Ok(Some(t)) => t,
        Ok(None) => return expired(),
        Err(_) => return LocalResponse::store_down_page(),
    };
    let (Ok(idp_state), Ok(nonce), Ok(idp_verifier)) = (random(24), random(16), random(32)) else {
        return page(
            503,
            "Try again",
            "The gateway cannot generate random values right now.",
        );
    };
    let reauth = tk.session_id.is_some();
    let pending = Pending {
        client_id: String::new(),
        redirect_uri: String::new(),
        client_state: None,
        code_challenge: String::new(),
        scope: String::new(),
        resource: None,
        nonce,
        idp_verifier,
        proof: Some(ProofRequest {
            subject_sha256: sha256_hex(&tk.subject),
            ticket,
            app_id: tk.app_id,
            auth_id: tk.auth_id,
            session_id: tk.session_id,
        }),
    };
    if cx
        .store
        .put_json(&pending_key(&idp_state), &pending, Some(PENDING_TTL))
        .await
        .is_err()
    {
        return LocalResponse::store_down_page();
    }
    // The token service asked for the user's interaction: ask the IdP for
    // it (OIDC Core §3.1.2.1 `prompt=consent`) rather than its session.
    let prompt = reauth.then_some("consent");
    match idp_url(cx, oauth, &idp_state, &pending, prompt).await {
        Ok(url) => LocalResponse::redirect(&url),
        Err(_) => page(
            503,
            "Try again",
            "The identity provider cannot be reached right now.",
        ),
    }
}

/// The IdP's answer to a proof sign-in (from `/api/v1/auth/callback`, which
/// has already used up the pending record).
pub(super) async fn callback(
    cx: &OAuthCtx<'_>,
    oauth: &OAuthServer,
    pending: &Pending,
    proof: ProofRequest,
    q: &HashMap<String, String>,
) -> LocalResponse {
    if q.contains_key("error") {
        // The provider's words are not put on the page (a crafted link
        // could carry any).
        return page(
            400,
            "Not signed in",
            "The identity provider did not sign you in. Nothing was connected.",
        );
    }
    let Some(code) = q.get("code") else {
        return page(400, "Not signed in", "The identity provider sent no code.");
    };
    let (user, tokens) = match super::callback::sign_in(cx, oauth, pending, code).await {
        Ok(v) => v,
        Err(IdpError::Unavailable(e)) => {
            tracing::warn!(error = %e, "identity provider unavailable at a link's sign-in");
            return page(
                503,
                "Try again",
                "The identity provider cannot be reached right now.",
            );
        }
        Err(_) => {
            return page(
                403,
                "Not signed in",
                "The identity provider's answer could not be verified. Nothing was connected.",
            )
        }
    };
    let same = sha256_hex(&user.sub)
        .as_bytes()
        .ct_eq(proof.subject_sha256.as_bytes());
    if !bool::from(same) {
        tracing::info!(app = %proof.app_id, "a connect link was opened by another account");
        return page(
            403,
            "Not your link",
            "This link was issued to another account than the one you signed in with. Nothing was connected. Sign in as the account whose MCP client showed the link, or ask your own MCP client for a link.",
        );
    }
    if let Some(sid) = &proof.session_id {
        let Some(tokens) = tokens else {
            return page(
                409,
                "Not signed in again",
                "The identity provider issued no token to exchange.",
            );
        };
        if let Err(e) = super::sessions::replace_upstream(cx, oauth, sid, &user.sub, &tokens).await
        {
            tracing::warn!(error = %e, "could not replace a session's IdP tokens");
            return page(
                409,
                "Not signed in again",
                "Your sign-in at the gateway has ended or changed. Sign in again from your MCP client.",
            );
        }
    }
    let Ok(token) = random(24) else {
        return page(
            503,
            "Try again",
            "The gateway cannot generate random values right now.",
        );
    };
    let record = LinkProof {
        ticket: proof.ticket.clone(),
    };
    if cx
        .store
        .put_json(&keys::link_proof(&token), &record, Some(PROOF_TTL))
        .await
        .is_err()
    {
        return LocalResponse::store_down_page();
    }
    let back = link(cx, &proof.app_id, &proof.auth_id);
    LocalResponse::redirect(&with_params(
        &back,
        &[("ticket", &proof.ticket), ("proof", &token)],
    ))
}
