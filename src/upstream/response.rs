//! What every upstream answer shares, DLI's or IAM's: a body read under a size cap, and the
//! error bodies seen in front of and inside DLI.

use futures::StreamExt as _;
use serde::Deserialize;

use crate::error::sanitize_upstream_text;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More bytes than allowed (declared or sent).
    TooLarge,
    /// The connection failed while the body was read.
    Read(reqwest::Error),
}

/// Reads the body chunk by chunk and stops as soon as it exceeds `max` bytes (at once when
/// `Content-Length` already says so).
pub(crate) async fn read_capped(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(8 * 1024, |n| n as usize));
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The shapes of error bodies seen in front of and inside DLI and IAM (see the Go SDK's
/// parser): `{error_code, error_msg}`, `{code, message}`, or either nested under `error`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    error_code: Option<serde_json::Value>,
    error_msg: Option<String>,
    code: Option<serde_json::Value>,
    message: Option<String>,
    error: Option<Box<ErrorBody>>,
}

impl ErrorBody {
    fn code_and_message(self) -> (Option<String>, Option<String>) {
        let as_text = |v: serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if self.error_code.is_some() || self.error_msg.is_some() {
            (self.error_code.and_then(as_text), self.error_msg)
        } else if self.code.is_some() || self.message.is_some() {
            (self.code.and_then(as_text), self.message)
        } else if let Some(inner) = self.error {
            inner.code_and_message()
        } else {
            (None, None)
        }
    }
}

/// The error code and message of an error body, sanitised; `None` for what it lacks (or
/// for all of it, when it is not one of the known shapes).
pub(crate) fn error_code_and_message(body: &[u8]) -> (Option<String>, Option<String>) {
    let (code, message) =
        serde_json::from_slice::<ErrorBody>(body).map(ErrorBody::code_and_message).unwrap_or_default();
    (code.as_deref().and_then(sanitize_upstream_text), message.as_deref().and_then(sanitize_upstream_text))
}
