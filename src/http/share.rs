//! Identical concurrent requests share one execution and its encoded answer.
//!
//! Two GraphQL requests with the same credential identity, the same response format and the
//! same bytes (the POST body, or the GET query string) that are in flight at the same time
//! would read the same coalesced upstream fetches and so produce the same answer, byte for
//! byte. The first one executes; the others wait for its encoded response. Nothing outlives
//! the execution: a request that arrives after it finished executes again. Requests of
//! different identities never share (the identity is part of the key), and with
//! `--no-coalesce` nothing is shared, since then each request must make its own calls.
//!
//! The execution runs in its own task, so a leader that goes away does not cancel it for the
//! requests that joined it.

use std::{collections::HashMap, future::Future, sync::Arc};

use axum::{
    body::Bytes,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use futures::{
    FutureExt as _,
    future::{BoxFuture, Shared},
};
use parking_lot::Mutex;
use tracing::Instrument as _;

use super::encoding::Format;
use crate::{
    error::{self, ErrorCode},
    upstream::CredentialIdentity,
};

/// An encoded GraphQL response, cheap to hand to every request that shared it.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The `Cache-Control`.
    pub cache_control: HeaderValue,
    /// The JSON body.
    pub body: Bytes,
}

impl Encoded {
    /// A response with this status, headers and body.
    pub fn to_response(&self) -> Response {
        let mut resp = (self.status, self.body.clone()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        resp.headers_mut().insert(header::CACHE_CONTROL, self.cache_control.clone());
        resp
    }
}

/// What makes two requests' answers identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    identity: Option<CredentialIdentity>,
    format: Format,
    get: bool,
    request: Bytes,
}

impl Key {
    /// The key of a request made with `identity` (none: no credentials at all), answered in
    /// `format`, whose GraphQL request is `request` (the body, or the GET query string).
    pub fn new(
        identity: Option<CredentialIdentity>,
        format: Format,
        method: &Method,
        request: Bytes,
    ) -> Self {
        Self { identity, format, get: method == Method::GET, request }
    }
}

type Flight = Shared<BoxFuture<'static, Arc<Encoded>>>;

/// The executions in flight, by key.
#[derive(Default)]
pub(crate) struct Executions {
    in_flight: Mutex<HashMap<Key, (u64, Flight)>>,
    serial: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Executions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executions").field("in_flight", &self.in_flight.lock().len()).finish()
    }
}

impl Executions {
    /// The answer of `key`: the execution already in flight for it (calling `joined`), or
    /// `execute` run now in its own task.
    pub async fn run<F>(self: &Arc<Self>, key: Key, execute: F, joined: impl FnOnce()) -> Arc<Encoded>
    where
        F: Future<Output = Encoded> + Send + 'static,
    {
        let flight = {
            let mut in_flight = self.in_flight.lock();
            if let Some((_, flight)) = in_flight.get(&key) {
                joined();
                flight.clone()
            } else {
                let serial = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let this = Arc::clone(self);
                let leave_key = key.clone();
                // The execution keeps the span (and so the request id in logs and the trace) of
                // the request that started it.
                let execute = execute.in_current_span();
                let task = tokio::spawn(async move {
                    let encoded = Arc::new(execute.await);
                    let mut in_flight = this.in_flight.lock();
                    if in_flight.get(&leave_key).is_some_and(|(s, _)| *s == serial) {
                        in_flight.remove(&leave_key);
                    }
                    encoded
                });
                let format = key.format;
                let flight = async move {
                    task.await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "a shared execution failed");
                        Arc::new(internal_error(format))
                    })
                }
                .boxed()
                .shared();
                in_flight.insert(key, (serial, flight.clone()));
                flight
            }
        };
        flight.await
    }
}

/// The answer when an execution could not finish or encode (a bug, never input).
pub(crate) fn internal_error(format: Format) -> Encoded {
    Encoded {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        content_type: format.content_type(),
        cache_control: HeaderValue::from_static("private, no-store"),
        body: error::error_body(ErrorCode::InternalServerError, "internal error").into(),
    }
}
