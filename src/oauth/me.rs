//! `GET /api/v1/me` (seed `002_*`): the signed-in user, from the validated
//! bearer token and the profile stored at sign-in.

use crate::store::keys;
use serde_json::json;

use super::idp::User;
use crate::state::State;
use crate::store::StoreExt;
use crate::web::LocalResponse;

/// For a caller the management guard admitted (see [`crate::routes`]).
pub async fn me(state: &State, user: &crate::api::Caller) -> LocalResponse {
    let p = &user.principal;
    let stored: Option<User> = state
        .store
        .get_json(&keys::user(&p.subject))
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
