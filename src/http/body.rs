//! HTTP-level request limits: the request body's size and read time, the batch size.

use async_graphql::BatchRequest;
use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use futures::StreamExt as _;

use super::encoding::Format;
use crate::{
    config::Limits,
    error::{ErrorCode, http_error, http_limit_error},
};

/// Reads the whole body, refusing more than `--max-body-bytes` (HTTP 413, without reading
/// further when `Content-Length` already says so) or taking longer than
/// `--body-read-timeout` (HTTP 408). Returns the request with the body in memory.
pub async fn buffer_body(req: Request, limits: &Limits, format: Format) -> Result<Request, Response> {
    let max = limits.max_body_bytes;
    let too_large = || {
        http_limit_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "max-body-bytes",
            max as u64,
            "the request body is too large",
            format.content_type(),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let read = async {
        let mut buf = Vec::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ReadError::Io)?;
            if buf.len() + chunk.len() > max {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(buf)) => Ok(Request::from_parts(parts, Body::from(buf))),
        Ok(Err(ReadError::TooLarge)) => Err(too_large()),
        Ok(Err(ReadError::Io)) => Err(http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "could not read the request body",
            format.content_type(),
        )),
        Err(_) => {
            let mut resp = http_limit_error(
                StatusCode::REQUEST_TIMEOUT,
                "body-read-timeout",
                limits.body_read_timeout.as_secs(),
                "the request body did not arrive in time",
                format.content_type(),
            );
            // The rest of the body may never come: do not keep the connection.
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(resp)
        }
    }
}

enum ReadError {
    TooLarge,
    Io,
}

/// Refuses a batch of more than `--max-batch` operations, or a request with neither a query
/// nor a persisted-query hash (not a well-formed GraphQL-over-HTTP request whatever the media
/// type): HTTP 400, nothing executed.
pub fn check_batch(batch: &BatchRequest, limits: &Limits, format: Format) -> Option<Response> {
    let n = batch.iter().count();
    if n > limits.max_batch {
        return Some(http_limit_error(
            StatusCode::BAD_REQUEST,
            "max-batch",
            limits.max_batch as u64,
            &format!("the batch holds {n} operations"),
            format.content_type(),
        ));
    }
    // A persisted-query hash or a trusted document's id stands in for the document (APQ or
    // the trusted-documents list fills it in later).
    let no_query = |r: &async_graphql::Request| {
        r.query.trim().is_empty()
            && !r.extensions.0.contains_key("persistedQuery")
            && !r.extensions.0.contains_key(crate::graphql::trusted_documents::DOCUMENT_ID)
    };
    batch.iter().any(no_query).then(|| {
        http_error(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the request has no query",
            format.content_type(),
        )
    })
}
