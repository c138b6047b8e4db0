//! The two error wire formats clients see.
//!
//! - Resource routes (apps, management API) answer with drio's envelope:
//!   `{"error":{"code","message","details","requestId"}}`.
//! - OAuth routes answer with RFC 6749 §5.2 errors: `{"error","error_description"}`.
//!
//! Handlers build these values; the proxy writes them. Nothing here ever
//! includes a token or secret: messages are fixed strings or name fields.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

/// An error on a resource route, rendered as drio's envelope.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

/// drio's error envelope as written on the wire (and in the OpenAPI
/// document, `ErrorEnvelope`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorEnvelope)]
pub(crate) struct Envelope<'a> {
    error: EnvelopeBody<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErrorBody)]
pub(crate) struct EnvelopeBody<'a> {
    code: &'a str,
    message: &'a str,
    /// Always present; `null` or an object naming the problem.
    #[schema(value_type = Option<Object>, required = true)]
    details: &'a Option<Value>,
    request_id: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "Missing or invalid Bearer access token",
        )
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub(crate) fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(422, "validation_error", format!("{field}: {message}"))
            .with_details(serde_json::json!({ "field": field, "reason": message }))
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "service_unavailable", message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(500, "internal_error", "Internal error")
    }

    /// The JSON body, stamped with the request id.
    pub(crate) fn body(&self, request_id: &str) -> Bytes {
        let env = Envelope {
            error: EnvelopeBody {
                code: self.code,
                message: &self.message,
                details: &self.details,
                request_id,
            },
        };
        // Serialising this struct cannot fail: every field is a string or a Value.
        Bytes::from(serde_json::to_vec(&env).unwrap_or_default())
    }
}

/// An RFC 6749 §5.2 error on an OAuth route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub(crate) status: u16,
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

/// RFC 6749 §5.2 (and RFC 7591 §3.2.2) error body (`OAuthError` in the
/// OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OAuthErrorBody)]
pub(crate) struct OAuthBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    pub(crate) fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", d)
    }
    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", d)
    }
    pub(crate) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(401, "invalid_client", d)
    }
    pub(crate) fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_scope", d)
    }
    pub(crate) fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(400, "unsupported_grant_type", d)
    }
    pub(crate) fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_client_metadata", d)
    }
    pub(crate) fn invalid_redirect_uri(d: impl Into<String>) -> Self {
        Self::new(400, "invalid_redirect_uri", d)
    }
    pub(crate) fn server_error(d: impl Into<String>) -> Self {
        Self::new(500, "server_error", d)
    }
    pub(crate) fn temporarily_unavailable(d: impl Into<String>) -> Self {
        Self::new(503, "temporarily_unavailable", d)
    }

    pub(crate) fn body(&self) -> Bytes {
        let b = OAuthBody {
            error: self.error,
            error_description: &self.description,
        };
        Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
    }
}

impl From<crate::util::random::RandomError> for ApiError {
    fn from(_: crate::util::random::RandomError) -> Self {
        ApiError::internal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_seed_shape() {
        let body = ApiError::unauthorized().body("req-1");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "unauthorized", "message": "Missing or invalid Bearer access token", "details": null, "requestId": "req-1"}})
        );
    }

    #[test]
    fn oauth_error_shape() {
        let v: Value = serde_json::from_slice(
            &OAuthError::invalid_request("Missing required field: refresh_token").body(),
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "invalid_request", "error_description": "Missing required field: refresh_token"})
        );
    }
}
