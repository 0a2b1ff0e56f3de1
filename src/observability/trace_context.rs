//! What follows one request from the HTTP layer to the upstream call: its `X-Request-Id`
//! and its tracing span (and so its W3C trace context).
//!
//! The request id rides in a task-local set by the HTTP layer; upstream calls run inside
//! the request's task (or, when shared across requests, in a task spawned with the id and
//! the current span), so the upstream call's span is a child of the operation's and
//! [`upstream_headers`] can send `X-Request-Id` and `traceparent` to DLI.

use std::future::Future;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request id header, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent request id kept; longer ones are replaced by a generated id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: HeaderValue;
}

/// Whether a client-sent `X-Request-Id` is kept: 1–128 characters out of letters, digits
/// and `-_.:+/=~` (UUIDs, ULIDs, hex and base64 ids all fit). Anything else is replaced,
/// so ids are safe to log and to forward.
pub fn is_valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=~".contains(b))
}

/// Axum middleware: drops an `X-Request-Id` that [`is_valid_request_id`] refuses, so the
/// request-id layer behind it generates a fresh one.
pub async fn drop_invalid_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let bad = req.headers().get_all(REQUEST_ID_HEADER).iter().count() > 1
        || req.headers().get(REQUEST_ID_HEADER).is_some_and(|v| !is_valid_request_id(v));
    if bad {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(req).await
}

/// Runs `fut` with `request_id` as the current request's id.
pub async fn with_request_id<F: Future>(request_id: HeaderValue, fut: F) -> F::Output {
    REQUEST_ID.scope(request_id, fut).await
}

/// The current request's id, if any.
pub fn current_request_id() -> Option<HeaderValue> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Headers for an upstream call made in the current context: `X-Request-Id`, and the
/// W3C `traceparent`/`tracestate` of the current span when spans are exported.
pub fn upstream_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut headers));
    if let Some(id) = current_request_id() {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    headers
}

/// Makes `span` a child of the W3C trace context the caller sent, if any, so the service
/// joins the caller's trace.
pub fn continue_remote_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    use opentelemetry::trace::TraceContextExt as _;
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled; then there is nothing to link.
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        for ok in ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "a+b/c=="] {
            assert!(is_valid_request_id(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = HeaderValue::from_str(&"a".repeat(MAX_REQUEST_ID_LEN + 1)).expect("header");
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("a b"),
            HeaderValue::from_static("a\"b"),
            long,
        ] {
            assert!(!is_valid_request_id(&bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_request_id_is_set_only_inside_its_request() {
        let id = HeaderValue::from_static("req-1");
        let seen = with_request_id(id.clone(), async { current_request_id() }).await;
        assert_eq!(seen, Some(HeaderValue::from_static("req-1")));
        assert_eq!(current_request_id(), None);
        let headers = with_request_id(id, async { upstream_headers() }).await;
        assert_eq!(headers.get("x-request-id").map(|v| v.as_bytes()), Some(&b"req-1"[..]));
        // Without an exporter there is no trace context to send.
        assert!(headers.get("traceparent").is_none());
    }
}
