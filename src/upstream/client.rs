//! The DLI HTTP client: one instrumented method per endpoint.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use tracing::Instrument;

use super::{
    auth::Credential,
    model::ListResponse,
    resilience::{Resilience, ResilienceOptions},
};
use crate::{
    error::{UpstreamError, sanitize_upstream_text},
    metrics::Metrics,
    project_id::ProjectId,
};

/// Tunables of the upstream client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline for one list call, connect to last body byte.
    pub timeout: Duration,
    /// Largest response body accepted; bigger ones fail as `BAD_UPSTREAM_RESPONSE`.
    pub max_body_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), max_body_bytes: 32 * 1024 * 1024 }
    }
}

/// Client for DLI's datasource-connection API at one base URL.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    pub(super) opts: ClientOptions,
    metrics: Metrics,
    /// Retries, concurrency cap and breaker (see `resilience.rs`); shared by clones.
    pub(super) resilience: Arc<Resilience>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base.as_str()).finish()
    }
}

impl Client {
    /// A client for the DLI endpoint at `base` (e.g. `https://dli.cn-north-4.myhuaweicloud.com`).
    pub fn new(base: Url, opts: ClientOptions) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("dli-graphql/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            // Keep-alive connections are reused (the pool is unbounded per host); HTTP/2 is
            // negotiated by ALPN when DLI offers it over TLS, with a window sized to the link.
            .tcp_keepalive(Duration::from_secs(60))
            .http2_adaptive_window(true)
            .connect_timeout(opts.timeout)
            // The deadline is enforced per call below; a redirect could leave the host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base,
            opts,
            metrics: Metrics::new(),
            resilience: Resilience::new(ResilienceOptions::default()),
        })
    }

    /// This client, counting its calls into `metrics` (a fresh, unexported registry otherwise).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }

    /// The registry this client counts into (for retries, coalescing, cache and circuit state).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The base URL calls go to.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The list URL for `project`: the base plus `v2.0/{project}/datasource-connection`,
    /// the project id pushed as one percent-encoded path segment.
    pub fn list_url(&self, project: &ProjectId) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v2.0").push(project.as_str()).push("datasource-connection");
        }
        url
    }

    /// `GET /v2.0/{project_id}/datasource-connection`: all classic connections of a project.
    pub async fn list_connections(
        &self,
        project: &ProjectId,
        credential: &Credential,
    ) -> Result<Arc<ListResponse>, UpstreamError> {
        let span = tracing::info_span!(
            "upstream.list_connections",
            otel.kind = "client",
            project = %project,
            http.status = tracing::field::Empty,
            error_code = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        // Retries, concurrency cap and breaker, all within `self.opts.timeout`.
        let result = self.list_resilient(project, credential).instrument(span.clone()).await;
        let _enter = span.enter();
        self.record_metrics(&result, started.elapsed());
        match &result {
            Ok(r) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                connections = r.connections.as_ref().map_or(0, Vec::len),
                "upstream call ok"
            ),
            Err(e) => {
                if let UpstreamError::Status { code: Some(c), .. } = e {
                    span.record("error_code", c.as_str());
                }
                tracing::warn!(elapsed_ms = started.elapsed().as_millis() as u64, error = %e, "upstream call failed")
            }
        }
        result
    }

    pub(super) async fn list_once(
        &self,
        project: &ProjectId,
        credential: &Credential,
    ) -> Result<Arc<ListResponse>, UpstreamError> {
        let mut req = self
            .http
            .get(self.list_url(project))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .headers(crate::trace_context::upstream_headers())
            .build()
            .map_err(|e| transport_error(e, self.opts.timeout))?;
        // Signing comes last: it covers the headers set above.
        credential.authorize(&mut req, project).await?;
        let resp = self.http.execute(req).await.map_err(|e| transport_error(e, self.opts.timeout))?;
        let status = resp.status();
        tracing::Span::current().record("http.status", i64::from(status.as_u16()));
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = read_capped(resp, self.opts.max_body_bytes, self.opts.timeout).await?;
        if status.is_success() {
            parse_off_runtime(body).await
        } else {
            Err(status_error(status, &body, retry_after))
        }
    }
}

/// The `Unavailable` kind of a failed connect (the only transport error that is retried).
pub(crate) const CONNECT_FAILED: &str = "connect failed";

impl Client {
    fn record_metrics(&self, result: &Result<Arc<ListResponse>, UpstreamError>, elapsed: Duration) {
        let (outcome, status, code) = match result {
            Ok(_) => ("ok", "2xx".to_owned(), None),
            Err(UpstreamError::Status { status, code, .. }) => {
                ("http_error", status.to_string(), code.as_deref())
            }
            Err(UpstreamError::NotSuccess { .. }) => ("not_success", "2xx".to_owned(), None),
            Err(UpstreamError::Timeout(_)) => ("timeout", "none".to_owned(), None),
            Err(UpstreamError::Unavailable(_)) => ("unavailable", "none".to_owned(), None),
            Err(UpstreamError::CircuitOpen(_)) => ("circuit_open", "none".to_owned(), None),
            Err(UpstreamError::BadResponse(_)) => ("bad_response", "none".to_owned(), None),
            Err(UpstreamError::NoCredentials) => ("no_credentials", "none".to_owned(), None),
            Err(UpstreamError::ProjectNotAllowed) => ("not_allowed", "none".to_owned(), None),
            // Getting an IAM token failed, so DLI itself was never asked.
            Err(UpstreamError::Iam(_)) => ("iam_error", "none".to_owned(), None),
        };
        self.metrics.upstream_call(outcome, &status, code, elapsed);
    }
}

fn transport_error(e: reqwest::Error, timeout: Duration) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout(timeout)
    } else {
        // Only the error kind is kept: reqwest's Display can include the URL.
        let kind = if e.is_connect() {
            CONNECT_FAILED
        } else if e.is_body() || e.is_decode() {
            "body read failed"
        } else {
            "request failed"
        };
        tracing::debug!(error = %e.without_url(), "upstream transport error");
        UpstreamError::Unavailable(kind.to_owned())
    }
}

/// Reads the body chunk by chunk and stops as soon as it exceeds `max`.
async fn read_capped(
    resp: reqwest::Response,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(UpstreamError::BadResponse(format!("body larger than {max} bytes")));
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(8 * 1024, |n| n as usize));
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(e, timeout))?;
        if body.len() + chunk.len() > max {
            return Err(UpstreamError::BadResponse(format!("body larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Bodies at least this large are parsed on tokio's blocking pool.
const BLOCKING_PARSE_BYTES: usize = 512 * 1024;

/// [`parse_list`], moved off the async workers for large bodies: a list of 20,000
/// connections takes tens of milliseconds to parse, which would stall every other request
/// scheduled on the same worker.
async fn parse_off_runtime(body: Vec<u8>) -> Result<Arc<ListResponse>, UpstreamError> {
    if body.len() < BLOCKING_PARSE_BYTES {
        return parse_list(&body);
    }
    tokio::task::spawn_blocking(move || parse_list(&body))
        .await
        .unwrap_or_else(|_| Err(UpstreamError::BadResponse("the parse did not finish".to_owned())))
}

/// Parses a 2xx body into the envelope, rejecting anything that is not the documented JSON.
pub fn parse_list(body: &[u8]) -> Result<Arc<ListResponse>, UpstreamError> {
    // One UTF-8 check over the whole body, then a parse that needs none per string: faster
    // than `from_slice`'s check of every string (26 -> 22 ms for a 7 MB list of 20,000).
    let text = std::str::from_utf8(body).map_err(|e| UpstreamError::BadResponse(e.to_string()))?;
    let parsed: ListResponse =
        serde_json::from_str(text).map_err(|e| UpstreamError::BadResponse(e.to_string()))?;
    if parsed.is_success == Some(false) {
        return Err(UpstreamError::NotSuccess {
            message: parsed.message.as_deref().and_then(sanitize_upstream_text),
        });
    }
    if parsed.connections.is_none() {
        return Err(UpstreamError::BadResponse("no `connections` array".to_owned()));
    }
    Ok(Arc::new(parsed))
}

/// The shapes of error bodies seen in front of and inside DLI (see the Go SDK's parser):
/// `{error_code, error_msg}`, `{code, message}`, or either nested under `error`.
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

fn status_error(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> UpstreamError {
    let (code, message) =
        serde_json::from_slice::<ErrorBody>(body).map(ErrorBody::code_and_message).unwrap_or_default();
    UpstreamError::Status {
        status: status.as_u16(),
        code: code.as_deref().and_then(sanitize_upstream_text),
        message: message.as_deref().and_then(sanitize_upstream_text),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(Url::parse(base).expect("url"), ClientOptions::default()).expect("client")
    }

    #[test]
    fn list_url_has_exactly_one_project_segment() {
        let p = ProjectId::parse("abc_DEF-1").expect("valid");
        assert_eq!(
            client("https://dli.cn-north-4.myhuaweicloud.com").list_url(&p).as_str(),
            "https://dli.cn-north-4.myhuaweicloud.com/v2.0/abc_DEF-1/datasource-connection"
        );
        assert_eq!(
            client("http://127.0.0.1:9/prefix/?q=1#f").list_url(&p).as_str(),
            "http://127.0.0.1:9/prefix/v2.0/abc_DEF-1/datasource-connection"
        );
    }

    #[test]
    fn parses_every_error_body_shape() {
        let dli = status_error(
            StatusCode::BAD_REQUEST,
            br#"{"error_code":"DLI.0002","error_msg":"no such project"}"#,
            None,
        );
        assert!(matches!(dli, UpstreamError::Status { status: 400, ref code, ref message, .. }
            if code.as_deref() == Some("DLI.0002") && message.as_deref() == Some("no such project")));
        let iam =
            status_error(StatusCode::UNAUTHORIZED, br#"{"error":{"code":401,"message":"wrong"}}"#, None);
        assert!(matches!(iam, UpstreamError::Status { ref code, .. } if code.as_deref() == Some("401")));
        let garbage = status_error(StatusCode::BAD_GATEWAY, b"<html>", Some(3));
        assert!(matches!(
            garbage,
            UpstreamError::Status { status: 502, code: None, message: None, retry_after: Some(3) }
        ));
    }

    #[test]
    fn is_success_false_on_2xx_is_a_failure() {
        let e = parse_list(br#"{"is_success":false,"message":"boom","connections":[]}"#);
        assert!(matches!(e, Err(UpstreamError::NotSuccess { message: Some(ref m) }) if m == "boom"));
        assert!(matches!(parse_list(b"{}"), Err(UpstreamError::BadResponse(_))));
        // serde accepts a struct as an array; without `connections` it is still refused.
        assert!(matches!(parse_list(b"[]"), Err(UpstreamError::BadResponse(_))));
        assert!(matches!(parse_list(b"{\"connections\":[{"), Err(UpstreamError::BadResponse(_))));
    }
}
