//! The DLI HTTP client: one instrumented method per endpoint.

use std::{sync::Arc, time::Duration};

use reqwest::{StatusCode, Url, header};
use tracing::Instrument;

use super::{
    auth::Credential,
    model::ListResponse,
    rate_limit::RateLimiter,
    response::{self, BodyError},
    retry::{CONNECT_FAILED, Resilience, ResilienceOptions},
    shared_state::FleetStore,
};
use crate::{
    config::UpstreamOptions,
    error::{UpstreamError, sanitize_upstream_text},
    observability::{
        metrics::{CircuitState, Metrics},
        trace_context,
    },
    project_id::ProjectId,
};

/// Client for DLI's datasource-connection API at one base URL.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// Deadline for one call, connect to last body byte, retries included.
    timeout: Duration,
    /// Largest response body accepted; bigger ones fail as `BAD_UPSTREAM_RESPONSE`.
    max_body_bytes: usize,
    metrics: Metrics,
    /// Retries, concurrency cap and breaker (see `retry.rs`); shared by clones.
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base.as_str()).finish()
    }
}

impl Client {
    /// A client for the DLI endpoint at `base` (e.g. `https://dli.cn-north-4.myhuaweicloud.com`).
    /// The deadline and body cap come from `opts`; its endpoint and region are not read.
    pub fn new(base: Url, opts: &UpstreamOptions) -> Result<Self, reqwest::Error> {
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
            timeout: opts.timeout,
            max_body_bytes: opts.max_body_bytes,
            metrics: Metrics::new(),
            resilience: Resilience::new(ResilienceOptions::default(), None),
        })
    }

    /// Replaces the retry, budget, concurrency and breaker settings (fresh state). The
    /// `--upstream-rate` budget lives in `store` (shared by the fleet) when one is given,
    /// and in this process otherwise or while Redis is down; it counts into this client's
    /// metrics, so call [`Client::with_metrics`] first.
    #[must_use]
    pub fn with_resilience(mut self, opts: ResilienceOptions, store: Option<FleetStore>) -> Self {
        let budget =
            opts.budget().map(|(rate, burst)| RateLimiter::new(rate, burst, store, self.metrics.clone()));
        self.resilience = Resilience::new(opts, budget);
        self
    }

    /// The circuit breaker's state now.
    pub fn circuit_state(&self) -> CircuitState {
        self.resilience.circuit_state()
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
        // Retries, call budget, concurrency cap and breaker, all within `self.timeout`.
        let identity = credential.identity();
        let result = self
            .resilience
            .run(self.timeout, &self.metrics, &identity, || self.list_once(project, credential))
            .instrument(span.clone())
            .await;
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
                if let UpstreamError::Status { status: 401, .. } = e {
                    // Revoked or expired early: a cached IAM token is dropped for the next call.
                    credential.rejected(project);
                }
                tracing::warn!(elapsed_ms = started.elapsed().as_millis() as u64, error = %e, "upstream call failed")
            }
        }
        result
    }

    async fn list_once(
        &self,
        project: &ProjectId,
        credential: &Credential,
    ) -> Result<Arc<ListResponse>, UpstreamError> {
        let mut req = self
            .http
            .get(self.list_url(project))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .headers(trace_context::upstream_headers())
            .build()
            .map_err(|e| transport_error(e, self.timeout))?;
        // Signing comes last: it covers the headers set above.
        credential.authorize(&mut req, project).await?;
        let resp = self.http.execute(req).await.map_err(|e| transport_error(e, self.timeout))?;
        let status = resp.status();
        tracing::Span::current().record("http.status", i64::from(status.as_u16()));
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = read_capped(resp, self.max_body_bytes, self.timeout).await?;
        if status.is_success() {
            parse_off_runtime(body).await
        } else {
            Err(status_error(status, &body, retry_after))
        }
    }
}

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
            // The service's own budget said no; DLI was never asked.
            Err(UpstreamError::OverBudget { .. }) => ("over_budget", "none".to_owned(), None),
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

/// Reads the body, failing as `BAD_UPSTREAM_RESPONSE` once it exceeds `max`.
async fn read_capped(
    resp: reqwest::Response,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    response::read_capped(resp, max).await.map_err(|e| match e {
        BodyError::TooLarge => UpstreamError::BadResponse(format!("body larger than {max} bytes")),
        BodyError::Read(e) => transport_error(e, timeout),
    })
}

/// Bodies at least this large are parsed on tokio's blocking pool.
const BLOCKING_PARSE_BYTES: usize = 512 * 1024;

/// [`parse_list`], moved off the async workers for large bodies: a list of thousands of
/// connections takes milliseconds to parse, which would stall every other request
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
    // than `from_slice`'s check of every string (docs/performance.md has the figures).
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

fn status_error(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> UpstreamError {
    let (code, message) = response::error_code_and_message(body);
    UpstreamError::Status { status: status.as_u16(), code, message, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(Url::parse(base).expect("url"), &UpstreamOptions::default()).expect("client")
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
