//! Writing gateway-generated responses (local routes and error envelopes) to
//! the downstream session.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::errors::ApiError;
use crate::web::LocalResponse;

/// Writes a complete response. Returns the status written.
pub async fn write(
    session: &mut Session,
    request_id: &str,
    resp: LocalResponse,
) -> pingora::Result<u16> {
    let mut header = ResponseHeader::build(resp.status, Some(resp.headers.len() + 3))?;
    for (name, value) in resp.headers {
        header.append_header(name, value)?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, resp.body.len())?;
    if let Ok(v) = HeaderValue::from_str(request_id) {
        header.insert_header("x-request-id", v)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(header), head_only || resp.body.is_empty())
        .await?;
    if !head_only && !resp.body.is_empty() {
        session.write_response_body(Some(resp.body), true).await?;
    }
    Ok(resp.status)
}

/// Writes a drio error envelope.
pub async fn error(
    session: &mut Session,
    request_id: &str,
    err: &ApiError,
) -> pingora::Result<u16> {
    write(
        session,
        request_id,
        LocalResponse::api_error(err, request_id),
    )
    .await
}

/// Same as [`error`] with extra headers (e.g. `WWW-Authenticate`).
pub async fn error_with(
    session: &mut Session,
    request_id: &str,
    err: &ApiError,
    extra: impl IntoIterator<Item = (http::HeaderName, HeaderValue)>,
) -> pingora::Result<u16> {
    let mut resp = LocalResponse::api_error(err, request_id);
    resp.headers.extend(extra);
    write(session, request_id, resp).await
}

/// Reads the request body up to `limit` bytes; `None` if it is larger.
pub async fn read_body(session: &mut Session, limit: usize) -> pingora::Result<Option<Bytes>> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}
