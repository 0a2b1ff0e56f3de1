//! What the streaming transports share (WebSocket in [`super::ws`], SSE here): the cap on
//! open streams, the per-operation data, and the JSON of one payload. And the SSE handler:
//! the `graphql-sse` protocol's "distinct connections" mode, `POST /graphql` with
//! `Accept: text/event-stream`, one `next` event per payload, then `complete`.

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
use futures::StreamExt as _;

use super::{AppState, body, encoding::Format};
use crate::{
    error::{ErrorCode, http_error, http_limit_error, with_code},
    graphql::{ProjectLoader, SubscriptionScope},
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
    let loader = Arc::new(ProjectLoader::restricted_data_loader(
        state.shared.clone(),
        credential.clone(),
        allowed.clone(),
    ));
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

/// `POST /graphql` with `Accept: text/event-stream`: one operation, its payloads as `next`
/// events, then a `complete` event; comments keep the stream alive. The stream (and its
/// subscription) ends when the client goes away.
pub(crate) async fn sse(state: AppState, req: Request) -> Response {
    let format = Format::Json;
    let credential = match state.access.credential(req.headers(), &state.service_credential) {
        Ok(credential) => credential,
        Err(denied) => return denied.into_response(format),
    };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "POST bodies must be application/json",
            format.content_type(),
        );
    }
    let req = match body::buffer_body(req, &state.limits, format).await {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    let bytes = match to_bytes(req.into_body(), usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return bad_request("could not read the request body"),
    };
    let request: GraphqlRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(&format!("the body is not a GraphQL request: {e}")),
    };
    if request.query.trim().is_empty() {
        return bad_request("the request has no query");
    }
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

fn bad_request(message: &str) -> Response {
    http_error(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message, Format::Json.content_type())
}
