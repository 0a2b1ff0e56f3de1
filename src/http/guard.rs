//! HTTP-level protection: the request body's size and read time, the batch size, CORS.

use std::time::Duration;

use async_graphql::BatchRequest;
use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::Format;
use crate::{error::ErrorCode, limits::Limits};

/// A `LIMIT_EXCEEDED` answer naming the limit, as a GraphQL error body.
pub fn limit_response(status: StatusCode, limit: &str, max: u64, message: &str, format: Format) -> Response {
    let body = serde_json::json!({
        "errors": [{
            "message": format!("{message} (limit {limit} = {max})"),
            "extensions": { "code": ErrorCode::LimitExceeded.as_str(), "limit": limit, "max": max },
        }]
    });
    (status, [(header::CONTENT_TYPE, format.content_type())], body.to_string()).into_response()
}

/// Reads the whole body, refusing more than `--max-body-bytes` (HTTP 413, without reading
/// further when `Content-Length` already says so) or taking longer than
/// `--body-read-timeout` (HTTP 408). Returns the request with the body in memory.
pub async fn buffer_body(req: Request, limits: &Limits, format: Format) -> Result<Request, Response> {
    let max = limits.max_body_bytes;
    let too_large = || {
        limit_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "max-body-bytes",
            max as u64,
            "the request body is too large",
            format,
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
        Ok(Err(ReadError::Io)) => Err(super::error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "could not read the request body",
            Some(format),
        )),
        Err(_) => {
            let mut resp = limit_response(
                StatusCode::REQUEST_TIMEOUT,
                "body-read-timeout",
                limits.body_read_timeout.as_secs(),
                "the request body did not arrive in time",
                format,
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
        return Some(limit_response(
            StatusCode::BAD_REQUEST,
            "max-batch",
            limits.max_batch as u64,
            &format!("the batch holds {n} operations"),
            format,
        ));
    }
    // A persisted-query hash stands in for the document (APQ fills it in later).
    let no_query = |r: &async_graphql::Request| {
        r.query.trim().is_empty() && !r.extensions.0.contains_key("persistedQuery")
    };
    batch.iter().any(no_query).then(|| {
        super::error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "the request has no query",
            Some(format),
        )
    })
}

/// CORS for exactly these origins: GET and POST with the headers GraphQL clients send.
pub fn cors_layer(origins: Vec<HeaderValue>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-auth-token"),
        ])
        .max_age(Duration::from_secs(600))
}
