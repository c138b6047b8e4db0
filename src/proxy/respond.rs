//! Writing gateway-generated responses (local routes and error envelopes) to
//! the downstream session.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::errors::ApiError;
use crate::web::LocalResponse;

/// Most request body the gateway reads and discards to keep a connection
/// open after answering without the body (a 401 to a `tools/call`). Past it
/// the connection is closed instead: reading a large upload nobody wants
/// would only cost time.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Reads and discards what is left of a small request body, so the response
/// need not close the connection (Pingora closes it when a response goes out
/// before the request body was read: the next request could not be found).
/// A client waiting for `100 Continue` sends nothing until answered, so its
/// body is not waited for.
async fn drain_small_body(session: &mut Session) -> pingora::Result<()> {
    if session.is_body_done()
        || session
            .req_header()
            .headers
            .contains_key(http::header::EXPECT)
    {
        return Ok(());
    }
    let mut read = 0;
    while read <= DRAIN_LIMIT {
        match session.read_request_body().await? {
            Some(chunk) => read += chunk.len(),
            None => break,
        }
    }
    Ok(())
}

/// Writes a complete response. Returns the status written.
pub(crate) async fn write(
    session: &mut Session,
    request_id: &str,
    resp: LocalResponse,
) -> pingora::Result<u16> {
    // Only worth it while the connection is to be kept (HTTP/1.1, not
    // draining, not after a proxy failure, which closes it anyway).
    if session.response_written().is_none() && session.get_keepalive().is_some() {
        drain_small_body(session).await?;
    }
    let mut header = ResponseHeader::build(resp.status, Some(resp.headers.len() + 3))?;
    for (name, value) in resp.headers {
        header.append_header(name, value)?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, resp.body.len())?;
    if let Ok(v) = HeaderValue::from_str(request_id) {
        header.insert_header(super::forward::X_REQUEST_ID, v)?;
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
pub(crate) async fn error(
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
pub(crate) async fn error_with(
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
pub(crate) async fn read_body(
    session: &mut Session,
    limit: usize,
) -> pingora::Result<Option<Bytes>> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}
