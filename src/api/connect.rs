//! A user connecting their own upstream account (per-user OAuth, RFC 6749
//! §4.1 with PKCE S256, RFC 7636):
//! `GET /api/v1/apps/{appId}/auth/{authId}/connect` (bearer, or the
//! single-use `ticket` of the link the gateway handed out) redirects to the
//! upstream's authorization endpoint; `GET /api/v1/connections/callback`
//! exchanges the code and stores the user's tokens encrypted.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::apps;
use crate::catalog::{self, live, Connection};
use crate::credentials::oauth::{user_token_request, ProviderSettings};
use crate::credentials::per_user::{
    save_tokens, ticket_key, tokens_key, ConnectTicket, UserTokens,
};
use crate::proxy::local::{LocalRequest, LocalResponse};
use crate::state::State;
use crate::store::StoreExt;

#[derive(Serialize, Deserialize)]
struct Pending {
    subject: String,
    app_id: String,
    auth_id: String,
    verifier: String,
}

fn query(req: &LocalRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn page(status: u16, title: &str, text: &str) -> LocalResponse {
    LocalResponse::message_page(status, title, text)
}

pub async fn start(
    state: &State,
    req: &LocalRequest,
    app_id: &str,
    auth_id: &str,
) -> LocalResponse {
    let subject = match query(req, "ticket") {
        Some(t) => match state.store.take_json::<ConnectTicket>(&ticket_key(&t)).await {
            Ok(Some(tk)) if tk.app_id == app_id && tk.auth_id == auth_id => tk.subject,
            Ok(_) => return page(400, "Link expired", "This connect link is unknown, used or expired. Ask your MCP client to try again for a new one."),
            Err(_) => return LocalResponse::store_down_page(),
        },
        None => match super::caller(state, req).await {
            Ok(user) => match apps::load(state, &user, app_id).await {
                Ok(_) => user.subject().to_string(),
                Err(e) => return LocalResponse::api_error(&e, &req.request_id),
            },
            Err(resp) => return resp,
        },
    };
    let conn: Connection = match state
        .store
        .get_json(&catalog::conn_key(app_id, auth_id))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return page(404, "Not found", "This connection does not exist."),
        Err(_) => return LocalResponse::store_down_page(),
    };
    let settings = match provider(state, &conn).await {
        Ok(s) => s,
        Err(why) => return page(409, "Connection not usable", &why),
    };
    let Some(authorize) = settings.authorization_endpoint.clone() else {
        return page(
            409,
            "Connection not usable",
            "This connection has no authorization endpoint.",
        );
    };
    let verifier = random_b64(32);
    let state_token = random_b64(24);
    let pending = Pending {
        subject,
        app_id: app_id.into(),
        auth_id: auth_id.into(),
        verifier: verifier.clone(),
    };
    if state
        .store
        .put_json(
            &format!("uconnect:{state_token}"),
            &pending,
            Some(Duration::from_secs(600)),
        )
        .await
        .is_err()
    {
        return LocalResponse::store_down_page();
    }
    let Ok(mut url) = url::Url::parse(&authorize) else {
        return page(
            409,
            "Connection not usable",
            "The authorization endpoint is not a URL.",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &callback_url(state))
            .append_pair("state", &state_token);
        if settings.pkce {
            q.append_pair(
                "code_challenge",
                &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256");
        }
        if let Some(scope) = settings.scope() {
            q.append_pair("scope", &scope);
        }
        if let Some(aud) = &settings.audience {
            q.append_pair("audience", aud);
        }
        for (k, v) in &settings.authorization_params {
            q.append_pair(k, v);
        }
    }
    LocalResponse::redirect(url.as_str())
}

pub async fn callback(state: &State, req: &LocalRequest) -> LocalResponse {
    let Some(state_token) = query(req, "state") else {
        return page(
            400,
            "Missing state",
            "This callback carries no state parameter.",
        );
    };
    let pending: Pending = match state.store.take_json(&format!("uconnect:{state_token}")).await {
        Ok(Some(p)) => p,
        Ok(None) => return page(400, "Link expired", "This sign-in is unknown, already completed or expired. Start again from your MCP client."),
        Err(_) => return LocalResponse::store_down_page(),
    };
    if let Some(err) = query(req, "error") {
        let desc = query(req, "error_description").unwrap_or_default();
        return page(
            400,
            "Not connected",
            &format!("The provider answered {err}. {desc}"),
        );
    }
    let Some(code) = query(req, "code") else {
        return page(400, "Not connected", "The provider sent no code.");
    };
    let conn: Connection = match state
        .store
        .get_json(&catalog::conn_key(&pending.app_id, &pending.auth_id))
        .await
    {
        Ok(Some(c)) => c,
        _ => return page(404, "Not found", "This connection no longer exists."),
    };
    let settings = match provider(state, &conn).await {
        Ok(s) => s,
        Err(why) => return page(409, "Connection not usable", &why),
    };
    let mut params = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", callback_url(state)),
    ];
    if settings.pkce {
        params.push(("code_verifier", pending.verifier));
    }
    let tokens = match user_token_request(
        &state.egress,
        &settings,
        &settings.token_endpoint,
        params,
    )
    .await
    {
        Ok(t) => UserTokens::from_response(t, None),
        Err(e) => {
            return page(
                502,
                "Not connected",
                &format!("The token exchange failed: {e}"),
            )
        }
    };
    let ctx = live::oauth_context(state);
    match save_tokens(&ctx, &tokens_key(&pending.auth_id, &pending.subject), &tokens).await {
        Ok(()) => page(200, "Connected", &format!("Your {} account is connected. You can close this window and retry in your MCP client.", conn.provider_name)),
        Err(e) => page(503, "Not connected", &format!("The tokens could not be stored: {e}")),
    }
}

async fn provider(state: &State, conn: &Connection) -> Result<ProviderSettings, String> {
    let secrets = match &conn.secret_ref {
        Some(r) => catalog::secrets::get(state.store.as_ref(), state.sbox.as_deref(), r)
            .await
            .map_err(|e| e.message)?,
        None => Default::default(),
    };
    ProviderSettings::from_connection(conn, &secrets)
}

fn callback_url(state: &State) -> String {
    format!("{}/api/v1/connections/callback", state.config.public_url)
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = aws_lc_rs::rand::fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}
