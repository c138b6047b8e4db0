//! The connect link of a WorkOS Pipes connection (seed `003_*`): after
//! `super::start` has checked the link's ticket and user, WorkOS is asked
//! for this user's authorize page (`POST {api}/data-integrations/{provider}/authorize`)
//! and the person is sent there; WorkOS brings them back to [`done`].

use super::{page, ConnectError};
use crate::catalog::{self, live, Connection};
use crate::credentials::workos_pipes::WorkosPipes;
use crate::state::State;
use crate::web::LocalResponse;

/// WorkOS Pipes: WorkOS runs the provider's authorization and keeps the
/// tokens; the gateway only asks it for this user's page and sends the
/// person there (coming back to [`done`]).
pub(super) async fn start(
    state: &State,
    conn: &Connection,
    subject: &str,
    org_id: Option<&str>,
) -> LocalResponse {
    let secrets = match &conn.secret_ref {
        Some(r) => {
            match catalog::secrets::get(state.store.as_ref(), state.sbox.as_deref(), r).await {
                Ok(s) => s,
                Err(_) => return ConnectError::Store.page(),
            }
        }
        None => Default::default(),
    };
    let ctx = live::oauth_context(&state.catalog());
    let pipes = match WorkosPipes::new(conn, &secrets, ctx) {
        Ok(p) => p,
        Err(why) => return ConnectError::Unusable(why).page(),
    };
    let return_to = format!("{}/api/v1/connections/done", state.config.public_url);
    match pipes.authorize_url(subject, org_id, &return_to).await {
        Ok(url) => LocalResponse::redirect(&url),
        Err(e) => {
            tracing::warn!(connection = %conn.id, error = %e, "WorkOS Pipes authorize failed");
            page(
                502,
                "Not connected",
                "WorkOS could not start connecting this account. Try again from your MCP client.",
            )
        }
    }
}

/// Where WorkOS Pipes sends the person back once the account is connected.
pub fn done() -> LocalResponse {
    page(
        200,
        "Connected",
        "You can close this window and retry in your MCP client.",
    )
}
