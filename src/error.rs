//! Errors that reach GraphQL clients, and the one place that writes `extensions.code`.
//!
//! Codes are stable SCREAMING_SNAKE strings that clients may branch on ([`ErrorCode`]).
//! Messages are short and human; upstream detail (bodies, transport errors) is logged, not
//! leaked. Every GraphQL error with a code is built here, and so is every HTTP error body
//! ([`http_error`]), so a code cannot be misspelt and every body carries the same headers.

use std::time::Duration;

use async_graphql::{ErrorExtensionValues, ErrorExtensions, ServerError};
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::project_id::{InvalidProjectId, ProjectId};

/// The stable `extensions.code` values this service emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// An argument failed validation; nothing was sent upstream.
    BadUserInput,
    /// No credentials to send upstream, or the upstream rejected them (HTTP 401).
    Unauthenticated,
    /// The upstream refused the caller (HTTP 403).
    Forbidden,
    /// The upstream says the project or resource does not exist.
    NotFound,
    /// The upstream is throttling (HTTP 429).
    RateLimited,
    /// Any other upstream failure status, or a 2xx with `is_success: false`.
    UpstreamError,
    /// No answer within the upstream deadline.
    UpstreamTimeout,
    /// The upstream could not be reached (connect, DNS, TLS).
    UpstreamUnavailable,
    /// A 2xx whose body is not the documented JSON.
    BadUpstreamResponse,
    /// The GraphQL request itself is malformed (parse, JSON, HTTP level).
    BadRequest,
    /// A request limit (size, depth, complexity, fan-out) was exceeded.
    LimitExceeded,
    /// An automatic persisted query hash the server does not know (yet).
    PersistedQueryNotFound,
    /// A persisted query hash sent while automatic persisted queries are off.
    PersistedQueryNotSupported,
    /// A broken invariant inside the service (never caused by input).
    InternalServerError,
    /// The service is at its limit of requests in execution; retry after `Retry-After`.
    Overloaded,
    /// A document that is not in the trusted-documents manifest (enforce mode).
    PersistedQueryNotInList,
}

impl ErrorCode {
    /// The wire form of the code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::RateLimited => "RATE_LIMITED",
            Self::UpstreamError => "UPSTREAM_ERROR",
            Self::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Self::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Self::BadUpstreamResponse => "BAD_UPSTREAM_RESPONSE",
            Self::BadRequest => "BAD_REQUEST",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
            Self::Overloaded => "OVERLOADED",
            Self::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
        }
    }
}

/// Why one upstream list call failed. Shared between all fields of a request that needed
/// the same project (the DataLoader hands out `Arc<UpstreamError>`).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Neither the caller nor the service has credentials to send.
    #[error("no credentials: send the X-Auth-Token header with an IAM token")]
    NoCredentials,
    /// The upstream answered with a non-2xx status.
    #[error("upstream answered HTTP {status}")]
    Status {
        /// HTTP status.
        status: u16,
        /// DLI/APIG `error_code`, when the body had one.
        code: Option<String>,
        /// DLI/APIG `error_msg`, when the body had one (sanitised, truncated).
        message: Option<String>,
        /// Seconds from a `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// A 2xx whose envelope says `is_success: false`.
    #[error("upstream reported is_success=false")]
    NotSuccess {
        /// The envelope's `message` (sanitised, truncated).
        message: Option<String>,
    },
    /// No complete answer within the deadline.
    #[error("no upstream answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or talking to the upstream failed.
    #[error("upstream unreachable: {0}")]
    Unavailable(String),
    /// The body of a 2xx was not the documented JSON.
    #[error("malformed upstream response: {0}")]
    BadResponse(String),
    /// The circuit breaker is open after repeated upstream failures; nothing was sent.
    #[error("circuit breaker open for another {0:?}")]
    CircuitOpen(Duration),
    /// The project is not in this service's allowed list; nothing was sent upstream.
    #[error("project not in the allowed list")]
    ProjectNotAllowed,
    /// IAM did not issue a token for the service's password credentials.
    #[error("IAM token request failed: {0}")]
    Iam(IamFailure),
    /// The service's own call budget toward DLI (`--upstream-rate`) had no room within the
    /// deadline; nothing was sent.
    #[error("upstream call budget spent; next call possible in {retry_after} s")]
    OverBudget {
        /// Whole seconds (rounded up) until a call fits the budget again.
        retry_after: u64,
    },
}

/// Why IAM did not issue a token. `Clone`: one failed fetch answers every request that
/// was waiting for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IamFailure {
    /// IAM answered with an error status.
    #[error("IAM answered HTTP {status}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// IAM's `error.code` (or a gateway `error_code`), when the body had one.
        code: Option<String>,
        /// IAM's `error.message` (sanitised, truncated).
        message: Option<String>,
    },
    /// IAM could not be reached, or did not answer in time.
    #[error("IAM unreachable: {0}")]
    Unreachable(&'static str),
    /// IAM answered 2xx without a usable token or expiry.
    #[error("unusable IAM response: {0}")]
    BadResponse(&'static str),
}

impl UpstreamError {
    /// The client-facing code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoCredentials => ErrorCode::Unauthenticated,
            Self::Status { status, code, .. } => match (*status, code.as_deref()) {
                (401, _) => ErrorCode::Unauthenticated,
                (403, _) => ErrorCode::Forbidden,
                (404, _) | (400, Some("DLI.0002" | "DLI.0023")) => ErrorCode::NotFound,
                (429, _) => ErrorCode::RateLimited,
                _ => ErrorCode::UpstreamError,
            },
            Self::NotSuccess { .. } => ErrorCode::UpstreamError,
            Self::Timeout(_) => ErrorCode::UpstreamTimeout,
            Self::Unavailable(_) | Self::CircuitOpen(_) => ErrorCode::UpstreamUnavailable,
            Self::BadResponse(_) => ErrorCode::BadUpstreamResponse,
            Self::ProjectNotAllowed => ErrorCode::Forbidden,
            Self::Iam(IamFailure::Rejected { status: 400..=499, .. }) => ErrorCode::Unauthenticated,
            Self::Iam(IamFailure::Rejected { .. }) => ErrorCode::UpstreamError,
            Self::Iam(IamFailure::Unreachable(_)) => ErrorCode::UpstreamUnavailable,
            Self::Iam(IamFailure::BadResponse(_)) => ErrorCode::BadUpstreamResponse,
            Self::OverBudget { .. } => ErrorCode::RateLimited,
        }
    }

    /// Whether DLI said the object asked for does not exist: HTTP 404, HTTP 400 with
    /// `DLI.0002` or `DLI.0023`, or `DLI.0001` with "not exist" in its message (DLI's answer
    /// for an unknown enhanced connection, "Connection xxx is not exist").
    pub fn is_not_exist(&self) -> bool {
        match self {
            Self::Status { status: 404, .. } => true,
            Self::Status { status: 400, code: Some(code), message, .. } => match code.as_str() {
                "DLI.0002" | "DLI.0023" => true,
                "DLI.0001" => {
                    message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("not exist"))
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The GraphQL error for a field that needed `project`.
    pub fn to_graphql(&self, project: &ProjectId) -> async_graphql::Error {
        let code = self.code();
        let detail = |m: &Option<String>| m.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        let message = match self {
            Self::NoCredentials => self.to_string(),
            Self::Status { status, message, retry_after, .. } => match code {
                ErrorCode::Unauthenticated => format!("DLI rejected the credentials{}", detail(message)),
                ErrorCode::Forbidden => {
                    format!("not allowed to list the connections of project {project}{}", detail(message))
                }
                ErrorCode::NotFound => format!("project {project} not found{}", detail(message)),
                ErrorCode::RateLimited => match retry_after {
                    Some(s) => format!("DLI is rate-limiting requests; retry after {s} s"),
                    None => "DLI is rate-limiting requests; retry later".to_owned(),
                },
                _ => format!("DLI answered HTTP {status}{}", detail(message)),
            },
            Self::NotSuccess { message } => format!("DLI reported a failure{}", detail(message)),
            Self::Timeout(d) => format!("DLI did not answer within {} ms", d.as_millis()),
            Self::Unavailable(_) => "DLI is unreachable".to_owned(),
            Self::BadResponse(_) => "DLI sent a response that is not the documented JSON".to_owned(),
            Self::CircuitOpen(d) => format!(
                "DLI is failing repeatedly; calls are paused for {} s (circuit breaker open)",
                d.as_secs().max(1)
            ),
            Self::ProjectNotAllowed => format!("this service does not serve project {project}"),
            Self::Iam(IamFailure::Rejected { status, message, .. }) => match code {
                ErrorCode::Unauthenticated => {
                    format!("IAM refused the service's credentials{}", detail(message))
                }
                _ => format!("IAM answered HTTP {status}{}", detail(message)),
            },
            Self::Iam(IamFailure::Unreachable(_)) => "IAM is unreachable".to_owned(),
            Self::Iam(IamFailure::BadResponse(_)) => {
                "IAM sent a token response without a usable token".to_owned()
            }
            Self::OverBudget { retry_after } => {
                format!("this service's DLI call budget is spent; retry after {retry_after} s")
            }
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code.as_str());
            ext.set("projectId", project.as_str());
            if let Self::Status { status, code, retry_after, .. } = self {
                ext.set("upstreamStatus", *status);
                if let Some(c) = code {
                    ext.set("upstreamCode", c.as_str());
                }
                if let Some(s) = retry_after {
                    ext.set("retryAfter", *s);
                }
            }
            if let Self::OverBudget { retry_after } = self {
                ext.set("retryAfter", *retry_after);
            }
            if let Self::Iam(IamFailure::Rejected { status, code, .. }) = self {
                ext.set("iamStatus", *status);
                if let Some(c) = code {
                    ext.set("iamCode", c.as_str());
                }
            }
        })
    }
}

/// A `BAD_USER_INPUT` error for an argument: "invalid {argument}: {message}".
pub fn bad_user_input(argument: &str, message: impl std::fmt::Display) -> async_graphql::Error {
    bad_argument(argument, format!("invalid {argument}: {message}"))
}

/// A `BAD_USER_INPUT` error for an argument, with the whole message given.
pub fn bad_argument(argument: &str, message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", ErrorCode::BadUserInput.as_str());
        ext.set("argument", argument);
    })
}

/// A `BAD_USER_INPUT` error for an invalid `projectId` argument.
pub fn invalid_project_id(e: InvalidProjectId) -> async_graphql::Error {
    bad_user_input("projectId", e)
}

/// A `LIMIT_EXCEEDED` field error: the operation used up its `limit` (a flag) of `max`
/// upstream calls of one kind; the field fails, the rest of the operation keeps its data.
pub fn field_limit_error(limit: &str, max: usize, message: impl std::fmt::Display) -> async_graphql::Error {
    let message = format!("{message} (limit {limit} = {max})");
    let limit = limit.to_owned();
    async_graphql::Error::new(message).extend_with(move |_, ext| {
        ext.set("code", ErrorCode::LimitExceeded.as_str());
        ext.set("limit", limit.as_str());
        ext.set("max", max as u64);
    })
}

/// An error for a broken invariant inside the service (never caused by input).
pub fn internal(message: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!("internal error: {message}"))
        .extend_with(|_, ext| ext.set("code", ErrorCode::InternalServerError.as_str()))
}

/// A request-level GraphQL error (no path) with `code`.
pub fn request_error(message: impl Into<String>, code: ErrorCode) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// `e` with `code`, unless it already carries one.
pub fn with_code(mut e: ServerError, code: ErrorCode) -> ServerError {
    let ext = e.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code.as_str());
    }
    e
}

/// Whether `e` carries `code`.
pub fn has_code(e: &ServerError, code: ErrorCode) -> bool {
    e.extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .is_some_and(|c| *c == async_graphql::Value::from(code.as_str()))
}

/// A `LIMIT_EXCEEDED` error naming the flag (`limit`, e.g. `max-tokens`) and its value.
pub fn limit_error(limit: &str, max: usize, message: impl std::fmt::Display) -> ServerError {
    let mut err = ServerError::new(format!("{message} (limit {limit} = {max})"), None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", ErrorCode::LimitExceeded.as_str());
    ext.set("limit", limit);
    ext.set("max", max as u64);
    err.extensions = Some(ext);
    err
}

/// A field-level `LIMIT_EXCEEDED` error (for a resolver), naming the flag and its value.
pub fn limit_field_error(limit: &str, max: usize, message: impl std::fmt::Display) -> async_graphql::Error {
    async_graphql::Error::new(format!("{message} (limit {limit} = {max})")).extend_with(|_, ext| {
        ext.set("code", ErrorCode::LimitExceeded.as_str());
        ext.set("limit", limit);
        ext.set("max", max as u64);
    })
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    message: &'a str,
    extensions: BodyExtensions<'a>,
}

#[derive(Serialize)]
struct BodyExtensions<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

/// An HTTP-level failure (nothing executed), answered as a GraphQL error body of
/// `content_type`, never stored by caches.
pub fn http_error(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    content_type: &'static str,
) -> Response {
    write_error_body(
        status,
        content_type,
        message,
        BodyExtensions { code: code.as_str(), limit: None, max: None, retry_after: None },
    )
}

/// An HTTP-level refusal the client may retry (`OVERLOADED`, `RATE_LIMITED`): the status, a
/// `Retry-After` header and `extensions.retryAfter`, both in whole seconds (at least 1).
pub fn http_retry_error(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    retry_after: Duration,
    content_type: &'static str,
) -> Response {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let secs = secs.max(1);
    let ext = BodyExtensions { code: code.as_str(), limit: None, max: None, retry_after: Some(secs) };
    let mut resp = write_error_body(status, content_type, message, ext);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// An HTTP-level `LIMIT_EXCEEDED` answer naming the limit's flag and its value.
pub fn http_limit_error(
    status: StatusCode,
    limit: &str,
    max: u64,
    message: &str,
    content_type: &'static str,
) -> Response {
    let message = format!("{message} (limit {limit} = {max})");
    let ext = BodyExtensions {
        code: ErrorCode::LimitExceeded.as_str(),
        limit: Some(limit),
        max: Some(max),
        retry_after: None,
    };
    write_error_body(status, content_type, &message, ext)
}

/// The JSON of a one-error GraphQL response with `code`, for answers built outside axum's
/// response type.
pub fn error_body(code: ErrorCode, message: &str) -> Vec<u8> {
    error_json(message, BodyExtensions { code: code.as_str(), limit: None, max: None, retry_after: None })
}

fn error_json(message: &str, extensions: BodyExtensions<'_>) -> Vec<u8> {
    let body = ErrorBody { errors: [ErrorEntry { message, extensions }] };
    // Serializing strings and numbers cannot fail; an empty body would still carry the status.
    serde_json::to_vec(&body).unwrap_or_default()
}

fn write_error_body(
    status: StatusCode,
    content_type: &'static str,
    message: &str,
    extensions: BodyExtensions<'_>,
) -> Response {
    let body = error_json(message, extensions);
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        body,
    )
        .into_response()
}

/// Makes upstream text safe to show: printable characters only, at most 200 of them.
pub fn sanitize_upstream_text(s: &str) -> Option<String> {
    let cleaned: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    let trimmed = cleaned.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str) -> UpstreamError {
        UpstreamError::Status { status, code: Some(code.into()), message: None, retry_after: None }
    }

    #[test]
    fn maps_the_documented_statuses() {
        assert_eq!(status(401, "APIG.0301").code(), ErrorCode::Unauthenticated);
        assert_eq!(status(401, "APIG.0307").code(), ErrorCode::Unauthenticated);
        assert_eq!(status(403, "APIG.0302").code(), ErrorCode::Forbidden);
        assert_eq!(status(404, "APIG.0101").code(), ErrorCode::NotFound);
        assert_eq!(status(400, "DLI.0002").code(), ErrorCode::NotFound);
        assert_eq!(status(400, "DLI.0023").code(), ErrorCode::NotFound);
        assert_eq!(status(400, "DLI.0999").code(), ErrorCode::UpstreamError);
        assert_eq!(status(429, "APIG.0308").code(), ErrorCode::RateLimited);
        assert_eq!(status(500, "DLI.0999").code(), ErrorCode::UpstreamError);
        assert_eq!(status(502, "APIG.0201").code(), ErrorCode::UpstreamError);
    }

    #[test]
    fn recognises_dli_answers_that_an_object_does_not_exist() {
        let with_message = |code: &str, message: &str| UpstreamError::Status {
            status: 400,
            code: Some(code.into()),
            message: Some(message.into()),
            retry_after: None,
        };
        assert!(status(404, "APIG.0101").is_not_exist());
        assert!(status(400, "DLI.0002").is_not_exist());
        assert!(with_message("DLI.0001", "Connection abc is not exist").is_not_exist());
        assert!(!with_message("DLI.0001", "limit must be a number").is_not_exist());
        assert!(!status(500, "DLI.0002").is_not_exist());
        assert!(!status(429, "APIG.0308").is_not_exist());
    }

    #[test]
    fn iam_failures_and_refused_projects_map_to_their_codes() {
        let rejected = |status| {
            UpstreamError::Iam(IamFailure::Rejected { status, code: None, message: Some("wrong".into()) })
        };
        assert_eq!(rejected(401).code(), ErrorCode::Unauthenticated);
        assert_eq!(rejected(403).code(), ErrorCode::Unauthenticated);
        assert_eq!(rejected(503).code(), ErrorCode::UpstreamError);
        assert_eq!(UpstreamError::Iam(IamFailure::Unreachable("x")).code(), ErrorCode::UpstreamUnavailable);
        assert_eq!(UpstreamError::Iam(IamFailure::BadResponse("x")).code(), ErrorCode::BadUpstreamResponse);
        assert_eq!(UpstreamError::ProjectNotAllowed.code(), ErrorCode::Forbidden);
        assert_eq!(UpstreamError::OverBudget { retry_after: 1 }.code(), ErrorCode::RateLimited);
        let p = ProjectId::parse("p1").expect("valid");
        assert_eq!(rejected(401).to_graphql(&p).message, "IAM refused the service's credentials: wrong");
    }

    #[test]
    fn sanitizes_control_characters_and_length() {
        assert_eq!(sanitize_upstream_text("a\nb\u{7}"), Some("a b".into()));
        assert_eq!(sanitize_upstream_text(" \n "), None);
        assert_eq!(sanitize_upstream_text(&"x".repeat(500)).map(|s| s.len()), Some(200));
    }
}
