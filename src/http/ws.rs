//! GraphQL over WebSocket, the `graphql-transport-ws` protocol (the `graphql-ws` library's),
//! on `GET /graphql` with `Upgrade: websocket`.
//!
//! Served in this loop rather than async-graphql-axum's, which closes with 1002/1011 where
//! the protocol asks for its own codes and silently replaces an operation whose id is
//! already running. Each `subscribe` runs the schema's `execute_stream` in its own task.
//!
//! - Credentials: the upgrade request's `X-Auth-Token` and `Authorization` headers, and the
//!   same keys in the `connection_init` payload (top level, any case, or inside a `headers`
//!   object; browsers cannot set WebSocket headers), the payload winning. The HTTP rules
//!   apply ([`super::access`]) before the `connection_ack`.
//! - Close codes: 4400 bad message, 4401 `subscribe` before the ack, 4403 refused
//!   credentials, 4406 without the `graphql-transport-ws` subprotocol, 4408 no
//!   `connection_init` within `--ws-init-timeout`, 4409 an id already running, 4429 a
//!   second `connection_init`; 1001 when a client does not answer the server's ping.
//! - Limits: `--max-streams` sockets (the upgrade is refused with 503), and
//!   `--max-subscriptions-per-socket` running operations (an `error` message for the one
//!   too many). Outgoing messages wait in a short queue: an operation whose client does not
//!   read stops pulling events (its poller keeps only the latest state), and a socket that
//!   cannot take a write within one ping interval is dropped. Memory per socket is bounded.

use std::{collections::HashMap, time::Duration};

use async_graphql::Request as GraphqlRequest;
use axum::{
    extract::{
        FromRequestParts, Request,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{IntoResponse, Response},
};
use futures::{SinkExt as _, StreamExt as _, stream::SplitSink};
use serde_json::{Value, json};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    AppState,
    streams::{StreamSlot, is_request_error, payload_json, with_operation_data},
};
use crate::{
    error::{ErrorCode, limit_error, with_code},
    observability::metrics::Transport,
    upstream::Credential,
};

/// The subprotocol served.
pub const PROTOCOL: &str = "graphql-transport-ws";
/// Outgoing messages queued per socket before senders wait.
const OUT_QUEUE: usize = 32;
/// The socket's read buffer, bytes.
const WS_BUFFER: usize = 4 * 1024;

/// Whether the request asks to upgrade to a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Upgrades the request, unless `--max-streams` sockets are open already.
pub(crate) async fn upgrade(state: AppState, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match state.slots.acquire(&state.metrics, Transport::WebSocket) {
        Ok(slot) => slot,
        Err(resp) => return *resp,
    };
    // tungstenite's buffers default to 128 KiB each way and messages up to 64 MiB; protocol
    // messages are small, and a subscribe is held to the HTTP body limit.
    let max_message = state.limits.max_body_bytes;
    let ws = ws
        .protocols([PROTOCOL])
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(0)
        .max_message_size(max_message)
        .max_frame_size(max_message);
    let negotiated = ws.selected_protocol().is_some();
    let headers = credential_headers(&parts.headers);
    ws.on_upgrade(move |socket| serve(state, socket, headers, negotiated, slot))
}

/// Only the headers credentials come from (nothing else of the upgrade is kept).
fn credential_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [header::AUTHORIZATION, HeaderName::from_static("x-auth-token")] {
        if let Some(v) = from.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out
}

/// The upgrade's credential headers, overridden by those of the `connection_init` payload.
fn init_headers(upgrade: &HeaderMap, payload: &serde_json::Map<String, Value>) -> HeaderMap {
    let mut headers = upgrade.clone();
    let mut take = |object: &serde_json::Map<String, Value>| {
        for (key, value) in object {
            let name = if key.eq_ignore_ascii_case("x-auth-token") {
                HeaderName::from_static("x-auth-token")
            } else if key.eq_ignore_ascii_case("authorization") {
                header::AUTHORIZATION
            } else {
                continue;
            };
            if let Some(v) = value.as_str().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
    };
    if let Some(nested) =
        payload.iter().find(|(k, _)| k.eq_ignore_ascii_case("headers")).and_then(|(_, v)| v.as_object())
    {
        take(nested);
    }
    take(payload);
    headers
}

/// How a socket ends.
struct Close(u16, &'static str);

/// What one socket holds while it is open.
struct Socket {
    state: AppState,
    upgrade_headers: HeaderMap,
    out: mpsc::Sender<Message>,
    done: mpsc::UnboundedSender<String>,
    /// `Some` once acknowledged: the credential its operations act with.
    acked: Option<Option<Credential>>,
    initialising: bool,
    operations: HashMap<String, JoinHandle<()>>,
}

async fn serve(
    state: AppState,
    socket: WebSocket,
    upgrade_headers: HeaderMap,
    negotiated: bool,
    _slot: StreamSlot,
) {
    let opts = state.subscriptions;
    let (sink, mut incoming) = socket.split();
    let (out, out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let writer = tokio::spawn(write(sink, out_rx, opts.ws_ping_interval));
    let (done, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut socket = Socket {
        state,
        upgrade_headers,
        out,
        done,
        acked: None,
        initialising: false,
        operations: HashMap::new(),
    };
    let init_deadline = tokio::time::sleep(opts.ws_init_timeout);
    tokio::pin!(init_deadline);
    let start = tokio::time::Instant::now() + opts.ws_ping_interval;
    let mut ping = tokio::time::interval_at(start, opts.ws_ping_interval);
    let mut awaiting_pong = false;
    let close = if !negotiated {
        Some(Close(4406, "Subprotocol not acceptable"))
    } else {
        loop {
            tokio::select! {
                () = &mut init_deadline, if socket.acked.is_none() => {
                    break Some(Close(4408, "Connection initialisation timeout"));
                }
                _ = ping.tick() => {
                    if awaiting_pong {
                        tracing::info!("closing a WebSocket that did not answer a ping");
                        break Some(Close(1001, "ping timeout"));
                    }
                    awaiting_pong = true;
                    if socket.out.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                }
                Some(id) = done_rx.recv() => {
                    socket.operations.remove(&id);
                }
                () = socket.out.closed() => break None,
                message = incoming.next() => {
                    let Some(Ok(message)) = message else { break None };
                    awaiting_pong = false;
                    let closing = match message {
                        Message::Text(text) => socket.handle(&text).await,
                        Message::Binary(_) => Some(Close(4400, "Binary messages are not supported")),
                        Message::Close(_) => break None,
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if closing.is_some() {
                        break closing;
                    }
                }
            }
        }
    };
    for (_, op) in socket.operations.drain() {
        op.abort();
    }
    if let Some(Close(code, reason)) = close {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = socket.out.send(Message::Close(Some(frame))).await;
    }
    drop(socket);
    // The writer ends after the close frame, or within its write timeout.
    let _ = writer.await;
}

/// Sends queued messages; stops on a close frame, a failed write, or a write the client
/// does not take within `timeout` (it stopped reading).
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    timeout: Duration,
) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(timeout, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break,
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::info!("dropping a WebSocket whose client stopped reading");
                return;
            }
        }
    }
    let _ = tokio::time::timeout(timeout, sink.close()).await;
}

impl Socket {
    async fn send(&self, message: Value) {
        let _ = self.out.send(Message::Text(message.to_string().into())).await;
    }

    /// Handles one text message; `Some` closes the socket.
    async fn handle(&mut self, text: &str) -> Option<Close> {
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
            return Some(Close(4400, "Invalid message received"));
        };
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return Some(Close(4400, "Invalid message received"));
        };
        match kind {
            "connection_init" => self.init(message.get("payload")).await,
            "ping" => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = message.get("payload").filter(|p| p.is_object()) {
                    pong["payload"] = payload.clone();
                }
                self.send(pong).await;
                None
            }
            "pong" => None,
            "subscribe" => self.subscribe(&message).await,
            "complete" => {
                let Some(id) = message.get("id").and_then(Value::as_str) else {
                    return Some(Close(4400, "Invalid message received"));
                };
                if let Some(op) = self.operations.remove(id) {
                    op.abort();
                }
                None
            }
            _ => Some(Close(4400, "Invalid message received")),
        }
    }

    async fn init(&mut self, payload: Option<&Value>) -> Option<Close> {
        if self.initialising || self.acked.is_some() {
            return Some(Close(4429, "Too many initialisation requests"));
        }
        self.initialising = true;
        let empty = serde_json::Map::new();
        let payload = match payload {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Some(Close(4400, "Invalid message received")),
        };
        let headers = init_headers(&self.upgrade_headers, payload);
        match self.state.access.credential(&headers, &self.state.service_credential) {
            Ok(credential) => {
                self.acked = Some(credential);
                self.send(json!({ "type": "connection_ack" })).await;
                None
            }
            Err(_) => Some(Close(4403, "Forbidden")),
        }
    }

    async fn subscribe(&mut self, message: &serde_json::Map<String, Value>) -> Option<Close> {
        let Some(credential) = self.acked.clone() else {
            return Some(Close(4401, "Unauthorized"));
        };
        let id = match message.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return Some(Close(4400, "Invalid message received")),
        };
        let request = match message.get("payload").cloned().map(serde_json::from_value::<GraphqlRequest>) {
            Some(Ok(request)) => request,
            _ => return Some(Close(4400, "Invalid message received")),
        };
        if self.operations.contains_key(&id) {
            return Some(Close(4409, "Subscriber for this id already exists"));
        }
        let max = self.state.subscriptions.max_subscriptions_per_socket;
        if self.operations.len() >= max {
            let error = limit_error(
                "max-subscriptions-per-socket",
                max,
                "this socket runs as many operations as it may",
            );
            self.send(json!({ "id": id, "type": "error", "payload": [error] })).await;
            return None;
        }
        let request = with_operation_data(&self.state, credential, request);
        let stream = self.state.schema.execute_stream(request);
        let out = self.out.clone();
        let done = self.done.clone();
        let op_id = id.clone();
        let task = tokio::spawn(async move {
            run(op_id.clone(), stream, out).await;
            let _ = done.send(op_id);
        });
        self.operations.insert(id, task);
        None
    }
}

/// Sends one operation's payloads as `next` messages, then `complete`; a request that
/// fails before executing gets one `error` message instead.
async fn run(
    id: String,
    mut stream: futures::stream::BoxStream<'static, async_graphql::Response>,
    out: mpsc::Sender<Message>,
) {
    let text = |v: Value| Message::Text(v.to_string().into());
    let mut first = true;
    while let Some(response) = stream.next().await {
        if first && is_request_error(&response) {
            let errors: Vec<_> =
                response.errors.into_iter().map(|e| with_code(e, ErrorCode::BadRequest)).collect();
            let _ = out.send(text(json!({ "id": id, "type": "error", "payload": errors }))).await;
            return;
        }
        first = false;
        let message = json!({ "id": id, "type": "next", "payload": payload_json(response) });
        if out.send(text(message)).await.is_err() {
            return;
        }
    }
    let _ = out.send(text(json!({ "id": id, "type": "complete" }))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    #[test]
    fn init_payload_credentials_win_in_any_case_and_nested() {
        let mut upgrade = HeaderMap::new();
        upgrade.insert("x-auth-token", HeaderValue::from_static("from-upgrade"));
        let h = init_headers(&upgrade, &payload(json!({})));
        assert_eq!(h.get("x-auth-token").and_then(|v| v.to_str().ok()), Some("from-upgrade"));
        let h = init_headers(&upgrade, &payload(json!({ "X-AUTH-TOKEN": "top" })));
        assert_eq!(h.get("x-auth-token").and_then(|v| v.to_str().ok()), Some("top"));
        let h = init_headers(&upgrade, &payload(json!({ "Headers": { "Authorization": "Bearer k" } })));
        assert_eq!(h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()), Some("Bearer k"));
        // The top level wins over the nested object; non-strings are ignored.
        let h = init_headers(
            &HeaderMap::new(),
            &payload(
                json!({ "headers": { "x-auth-token": "nested" }, "x-auth-token": "top", "authorization": 7 }),
            ),
        );
        assert_eq!(h.get("x-auth-token").and_then(|v| v.to_str().ok()), Some("top"));
        assert!(h.get(header::AUTHORIZATION).is_none());
    }
}
