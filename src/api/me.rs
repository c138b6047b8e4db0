//! `GET /api/v1/me` (seed `002_*`): the signed-in user, from the validated
//! bearer token and the profile the OAuth server stored at sign-in (the
//! IdP's userinfo claims, OIDC Core §5.3.2, under `store::keys::user`).

use super::view::{MeBody, MeUser};
use super::{ApiCtx, Caller};
use crate::auth::claims::UserInfo;
use crate::store::keys;
use crate::store::StoreExt;
use crate::web::LocalResponse;

/// For a caller the management guard admitted (see [`crate::routes`]).
pub(crate) async fn me(cx: &ApiCtx<'_>, user: &Caller) -> LocalResponse {
    let p = &user.principal;
    let stored: Option<UserInfo> = cx
        .store
        .get_json(&keys::user(&p.subject))
        .await
        .ok()
        .flatten();
    let stored = stored.unwrap_or_default();
    LocalResponse::json(
        200,
        &MeBody {
            user: MeUser {
                workos_user_id: p.subject.clone(),
                email: p.email.clone().or(stored.email),
                image: p.picture.clone().or(stored.picture),
                name: p.name.clone().or(stored.name),
                scopes: p.scopes.clone(),
            },
        },
    )
}
