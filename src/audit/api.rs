//! `GET /api/v1/apps/{appId}/audit?cursor=&limit=`: an app's audit events
//! from the store's capped stream, newest first, for the app's owner (and
//! the gateway's admins). Another user's app is 404, as on every app route;
//! a config-file app has no owner, so only admins read its events.

use serde_json::Value;

use crate::api::apps::{load, AppRef};
use crate::api::ApiCtx;
use crate::api::Caller;
use crate::errors::ApiError;
use crate::store::{is_stream_id, keys};
use crate::web::{LocalRequest, LocalResponse};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

pub(crate) async fn list(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
    req: &LocalRequest,
) -> Result<LocalResponse, ApiError> {
    let app_id = match load(cx, user, id).await? {
        AppRef::Stored(r) => r.id,
        AppRef::Config(a) if user.admin => a.id,
        AppRef::Config(_) => return Err(ApiError::not_found("App")),
    };
    let (mut cursor, mut limit) = (None, DEFAULT_LIMIT);
    for (k, v) in url::form_urlencoded::parse(req.query.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "cursor" if v.is_empty() => {}
            "cursor" if is_stream_id(&v) => cursor = Some(v.into_owned()),
            "cursor" => {
                return Err(ApiError::validation(
                    "cursor",
                    "must be a nextCursor this endpoint returned",
                ))
            }
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::validation("limit", format!("must be 1 to {MAX_LIMIT}"))
                    })?
            }
            _ => {}
        }
    }
    let page = cx
        .store
        .stream_page(&keys::audit_stream(&app_id), cursor.as_deref(), limit)
        .await
        .map_err(|e| ApiError::unavailable(format!("store: {e}")))?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|(id, _)| id.clone()))
        .flatten();
    let events: Vec<Value> = page
        .iter()
        .filter_map(|(_, e)| serde_json::from_slice(e).ok())
        .collect();
    Ok(LocalResponse::json(
        200,
        &crate::api::view::AuditPage {
            events,
            next_cursor: next,
        },
    ))
}
