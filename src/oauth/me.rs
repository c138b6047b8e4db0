//! `GET /api/v1/me` (seed `002_*`): the signed-in user, from the validated
//! bearer token and the profile stored at sign-in.

use serde_json::json;

use super::idp::User;
use crate::proxy::local::{LocalRequest, LocalResponse};
use crate::state::State;
use crate::store::StoreExt;

pub async fn me(state: &State, req: &LocalRequest) -> LocalResponse {
    let user = match crate::api::caller(state, req).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let p = &user.principal;
    let stored: Option<User> = state
        .store
        .get_json(&format!("user:{}", p.subject))
        .await
        .ok()
        .flatten();
    let stored = stored.unwrap_or_default();
    LocalResponse::json(
        200,
        &json!({ "user": {
            "workosUserId": p.subject,
            "email": p.email.clone().or(stored.email),
            "image": p.picture.clone().or(stored.picture),
            "name": p.name.clone().or(stored.name),
            "scopes": p.scopes,
        }}),
    )
}
