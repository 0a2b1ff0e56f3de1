//! What the streaming transports share (WebSocket in [`super::ws`], SSE here): the cap on
//! open streams, the per-operation data, and the JSON of one payload. And the two streaming
//! `POST` handlers: the `graphql-sse` protocol's "distinct connections" mode (`Accept:
//! text/event-stream`, one `next` event per payload, then `complete`), and Apollo's
//! multipart subscriptions (`Accept: multipart/mixed;subscriptionSpec=1.0`).

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_graphql::{Request as GraphqlRequest, Response as GraphqlResponse, Value};
use axum::{
    body::to_bytes,
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use bytes::Bytes;
use futures::StreamExt as _;

use super::{AppState, body, encoding::Format};
use crate::{
    error::{ErrorCode, http_error, http_limit_error, with_code},
    graphql::{ProjectLoader, SubscriptionScope, subscription::is_marker},
    observability::metrics::{Gauged, Metrics, Transport},
    upstream::Credential,
};

/// The cap on streaming connections (`--max-streams`), shared by every transport.
#[derive(Debug)]
pub struct StreamSlots {
    open: AtomicUsize,
    max: usize,
}

/// One open streaming connection; frees its slot (and its gauge) when dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    _gauge: Gauged,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamSlots {
    /// Room for `max` streams.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { open: AtomicUsize::new(0), max })
    }

    /// A slot, or the HTTP 503 answer when all are taken.
    pub fn acquire(
        self: &Arc<Self>,
        metrics: &Metrics,
        transport: Transport,
    ) -> Result<StreamSlot, Box<Response>> {
        let taken =
            self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1));
        match taken {
            Ok(_) => Ok(StreamSlot { slots: self.clone(), _gauge: metrics.stream_open(transport) }),
            Err(_) => Err(Box::new(http_limit_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "max-streams",
                self.max as u64,
                "this server has as many streaming connections open as it may",
                Format::Json.content_type(),
            ))),
        }
    }
}

/// `request` with what one operation needs: the subscription scope and a DataLoader for
/// queries sent over the stream.
pub fn with_operation_data(
    state: &AppState,
    credential: Option<Credential>,
    request: GraphqlRequest,
) -> GraphqlRequest {
    let allowed = state.access.allowed_projects();
    let loader = Arc::new(ProjectLoader::new(state.shared.clone(), credential.clone(), allowed.clone()));
    request.data(loader).data(SubscriptionScope { credential, allowed, watcher: state.watcher.clone() })
}

/// Whether this is a request-level failure (nothing executed: parse, validation, limits).
pub fn is_request_error(response: &GraphqlResponse) -> bool {
    response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The JSON of one payload: request-level errors get `BAD_REQUEST` unless they carry a
/// code (the schema's request hook does not run for streams), and a payload without data
/// or errors (the end-of-snapshot marker) has no `data` key.
pub fn payload_json(mut response: GraphqlResponse) -> serde_json::Value {
    if is_request_error(&response) {
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|e| with_code(e, ErrorCode::BadRequest))
            .collect();
    }
    let omit_data = response.data == Value::Null && response.errors.is_empty();
    let mut json = serde_json::to_value(&response).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialize a payload");
        serde_json::json!({ "errors": [{ "message": "internal error", "extensions": { "code": ErrorCode::InternalServerError.as_str() } }] })
    });
    if omit_data && let Some(object) = json.as_object_mut() {
        object.remove("data");
    }
    json
}

/// Whether the client asks for an event stream (and not for JSON first).
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| {
        accept
            .split(',')
            .any(|m| m.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream")))
    })
}

/// Whether the client asks for Apollo's multipart subscriptions: a `multipart/mixed`
/// media range with a `subscriptionSpec` parameter (quoted or not, with or without
/// `boundary`), as Apollo Client 3 and 4 send it.
pub fn wants_multipart(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next().is_some_and(|t| t.eq_ignore_ascii_case("multipart/mixed"))
            && parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("subscriptionSpec") && v.trim().trim_matches('"') == "1.0"
                })
            })
    })
}

/// The credential and the operation of a streaming `POST`, or the HTTP answer refusing it.
async fn read_operation(
    state: &AppState,
    req: Request,
) -> Result<(Option<Credential>, GraphqlRequest), Response> {
    let format = Format::Json;
    let credential = state
        .access
        .credential(req.headers(), &state.service_credential)
        .map_err(|d| d.into_response(format))?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        return Err(http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "POST bodies must be application/json",
            format.content_type(),
        ));
    }
    let req = body::buffer_body(req, &state.limits, format).await?;
    let bytes = to_bytes(req.into_body(), usize::MAX)
        .await
        .map_err(|_| bad_request("could not read the request body"))?;
    let request: GraphqlRequest = serde_json::from_slice(&bytes)
        .map_err(|e| bad_request(&format!("the body is not a GraphQL request: {e}")))?;
    if request.query.trim().is_empty() {
        return Err(bad_request("the request has no query"));
    }
    Ok((credential, request))
}

/// `POST /graphql` with `Accept: text/event-stream`: one operation, its payloads as `next`
/// events, then a `complete` event; comments keep the stream alive. The stream (and its
/// subscription) ends when the client goes away.
pub(crate) async fn sse(state: AppState, req: Request) -> Response {
    let (credential, request) = match read_operation(&state, req).await {
        Ok(read) => read,
        Err(resp) => return resp,
    };
    let slot = match state.slots.acquire(&state.metrics, Transport::Sse) {
        Ok(slot) => slot,
        Err(resp) => return *resp,
    };
    let request = with_operation_data(&state, credential, request);
    let payloads = state.schema.execute_stream(request).map(move |response| {
        // The slot lives as long as the stream.
        let _ = &slot;
        Ok::<_, Infallible>(Event::default().event("next").data(payload_json(response).to_string()))
    });
    let events =
        payloads.chain(futures::stream::once(async { Ok(Event::default().event("complete").data("")) }));
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.subscriptions.stream_keep_alive))
        .into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    resp
}

/// The multipart boundary, and what closes each part at once (Apollo Client hands a part
/// to the application only when the delimiter after it has arrived).
const DELIMITER: &str = "\r\n--graphql";
const PART_HEADERS: &str = "\r\ncontent-type: application/json; charset=utf-8\r\n\r\n";

/// One multipart part: headers, `json`, and the delimiter that closes it.
fn part(json: &serde_json::Value) -> Bytes {
    Bytes::from(format!("{PART_HEADERS}{json}{DELIMITER}"))
}

/// `POST /graphql` accepting `multipart/mixed;subscriptionSpec=1.0` (Apollo Client's
/// multipart subscriptions): each payload is a part `{"payload": ...}` closed by the
/// delimiter as soon as it is written, `{}` parts keep the stream alive, and the close
/// delimiter ends it. The end-of-snapshot marker is not sent here: Apollo Client would
/// write its data-less result into its cache.
pub(crate) async fn multipart(state: AppState, req: Request) -> Response {
    let (credential, request) = match read_operation(&state, req).await {
        Ok(read) => read,
        Err(resp) => return resp,
    };
    let slot = match state.slots.acquire(&state.metrics, Transport::Multipart) {
        Ok(slot) => slot,
        Err(resp) => return *resp,
    };
    let request = with_operation_data(&state, credential, request);
    let payloads = state.schema.execute_stream(request).filter(|r| std::future::ready(!is_marker(r)));
    let keep_alive = state.subscriptions.stream_keep_alive;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let parts = futures::stream::unfold(Some((payloads, heartbeat, slot)), |open| async move {
        let (mut payloads, mut heartbeat, slot) = open?;
        tokio::select! {
            response = payloads.next() => match response {
                Some(response) => {
                    heartbeat.reset();
                    let part = part(&serde_json::json!({ "payload": payload_json(response) }));
                    Some((part, Some((payloads, heartbeat, slot))))
                }
                None => Some((Bytes::from_static(b"--\r\n"), None)),
            },
            _ = heartbeat.tick() => Some((part(&serde_json::json!({})), Some((payloads, heartbeat, slot)))),
        }
    });
    let body = futures::stream::once(async { Bytes::from_static(DELIMITER.as_bytes()) })
        .chain(parts)
        .map(Ok::<_, Infallible>);
    let mut resp = Response::new(axum::body::Body::from_stream(body));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\""),
    );
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    resp
}

fn bad_request(message: &str) -> Response {
    http_error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message, Format::Json.content_type())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, header::HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn multipart_is_recognised_in_every_spelling_apollo_uses_and_nothing_else() {
        for yes in [
            "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9",
            "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json",
            "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"",
            "multipart/mixed;subscriptionSpec=\"1.0\"",
            "application/json, Multipart/Mixed; subscriptionspec=1.0",
        ] {
            assert!(wants_multipart(&accept(yes)), "{yes}");
        }
        for no in
            ["application/json", "multipart/mixed", "multipart/mixed;deferSpec=20220824", "text/event-stream"]
        {
            assert!(!wants_multipart(&accept(no)), "{no}");
        }
        assert!(wants_event_stream(&accept("text/event-stream")));
        assert!(!wants_event_stream(&accept("application/json")));
    }
}
