//! The component schemas of the OpenAPI document: every type an operation
//! names (with what it nests, via `utoipa::ToSchema`), plus the few bodies
//! the handlers read as maps (token and revocation forms, RFC 6749 §4.1.3,
//! RFC 7009 §2.1), described here for clients only.

use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::name;
use crate::api::view;

/// Request body of the token and refresh routes (form or JSON; RFC 6749
/// §4.1.3, §6; RFC 7636 §4.5). Documentation only: the handler reads a map.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    grant_type: String,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    /// `client_secret_post`; or send HTTP Basic (`client_secret_basic`).
    client_secret: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
}

/// Request body of `/revoke` (RFC 7009 §2.1). Documentation only.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct RevokeRequest {
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// A JSON Web Key Set (RFC 7517 §5); the keys are public JWKs.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct Jwks {
    #[schema(value_type = Vec<Object>)]
    keys: Vec<()>,
}

/// An OpenAPI 3.1 document (this one).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct OpenApiDocument {
    openapi: String,
    #[schema(value_type = Object)]
    info: (),
    #[schema(value_type = Object)]
    paths: (),
}

fn add<T: ToSchema>(v: &mut Vec<(String, RefOr<Schema>)>) {
    v.push((name::<T>(), T::schema()));
    T::schemas(v);
}

/// Every schema the operations name, with what they nest.
pub(super) fn schemas() -> Vec<(String, RefOr<Schema>)> {
    use crate::api::{apps, commands, connections};
    use crate::oauth::{clients, metadata, register, revoke, sessions};
    use view::*;
    let mut v = Vec::new();
    add::<crate::errors::Envelope<'static>>(&mut v);
    add::<crate::errors::OAuthBody<'static>>(&mut v);
    add::<MeBody>(&mut v);
    add::<TemplateList>(&mut v);
    add::<OpenApiDocument>(&mut v);
    add::<AppList>(&mut v);
    add::<AppBody>(&mut v);
    add::<apps::CreateApp>(&mut v);
    add::<apps::PatchApp>(&mut v);
    add::<Deleted>(&mut v);
    add::<ConfigBody>(&mut v);
    add::<crate::catalog::AppSettings>(&mut v);
    add::<AuditPage>(&mut v);
    add::<CommandList>(&mut v);
    add::<CommandSwitches>(&mut v);
    add::<commands::PatchCommands>(&mut v);
    add::<AuthList>(&mut v);
    add::<AuthBody>(&mut v);
    add::<connections::WriteConnection>(&mut v);
    add::<metadata::AuthorizationServerMetadata>(&mut v);
    add::<metadata::ProtectedResourceMetadata>(&mut v);
    add::<Jwks>(&mut v);
    add::<clients::Metadata>(&mut v);
    add::<register::Registered>(&mut v);
    add::<sessions::Issued>(&mut v);
    add::<TokenRequest>(&mut v);
    add::<revoke::Revoked>(&mut v);
    add::<RevokeRequest>(&mut v);
    v
}
