//! The `dev` identity provider: a sign-in page where a person types an
//! e-mail and continues, for local development with no account anywhere.
//! It only runs when `public_url` is a loopback address (checked when the
//! config is loaded), because it lets anyone be anyone.

use crate::store::keys;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::authorize::page;
use super::{query, random, sha256_hex, with_params, OAuthCtx};
use crate::store::StoreExt;
use crate::web::pages::signin;
use crate::web::{LocalRequest, LocalResponse};

#[derive(Serialize, Deserialize)]
pub(crate) struct DevCode {
    pub(crate) email: String,
}

pub(crate) fn login_page(req: &LocalRequest) -> LocalResponse {
    let q = query(req);
    signin::dev(q.get("state").map(String::as_str).unwrap_or(""), None)
}

pub(crate) async fn submit(cx: &OAuthCtx<'_>, req: &LocalRequest) -> LocalResponse {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let (Some(email), Some(st)) = (form.get("email"), form.get("state")) else {
        return page(400, "Invalid sign-in", "email and state are required.");
    };
    let email = email.trim();
    if email.len() > 254 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return signin::dev(st, Some("Enter an e-mail address like ada@example.com."));
    }
    let Ok(code) = random(32) else {
        return page(
            500,
            "Try again",
            "The gateway cannot generate random values right now.",
        );
    };
    let stored = cx
        .store
        .put_json(
            &keys::dev_code(&sha256_hex(&code)),
            &DevCode {
                email: email.to_string(),
            },
            Some(Duration::from_secs(60)),
        )
        .await;
    if stored.is_err() {
        return LocalResponse::store_down_page();
    }
    let callback = format!("{}/api/v1/auth/callback", cx.config.public_url);
    LocalResponse::redirect(&with_params(&callback, &[("code", &code), ("state", st)]))
}

/// The user a dev code stands for.
pub(crate) async fn redeem(cx: &OAuthCtx<'_>, code: &str) -> Option<super::idp::User> {
    let c: DevCode = cx
        .store
        .take_json(&keys::dev_code(&sha256_hex(code)))
        .await
        .ok()??;
    let email = c.email.to_ascii_lowercase();
    Some(super::idp::User {
        sub: format!("dev_{}", &sha256_hex(&email)[..24]),
        name: email.split('@').next().map(str::to_owned),
        email: Some(email),
        picture: None,
        // Anyone can type any address here: it is never a verified e-mail.
        email_verified: false,
        org_id: None,
        groups: Vec::new(),
    })
}
