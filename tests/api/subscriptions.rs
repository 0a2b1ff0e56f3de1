//! Subscriptions (`connectionEvents`) over real sockets: the `graphql-transport-ws` protocol
//! with its close codes, credentials and limits, SSE, the shared pollers (one upstream poll
//! per interval however many subscribers), and the events the simulator's changes cause.

use std::time::Duration;

use dli_graphql::sim::{Fault, SimOptions};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue},
};

use crate::helpers::{TOKEN, TestApp, spawn_app_with};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for any one message before failing.
const WAIT: Duration = Duration::from_secs(10);

const EVENTS: &str = "subscription($p: ID!) { connectionEvents(projectId: $p) { kind changedFields observedAt connection { connectionId name state process queues } } }";

async fn app(args: &[&str]) -> TestApp {
    let mut all = vec!["--watch-interval", "1s"];
    all.extend_from_slice(args);
    spawn_app_with(&all, SimOptions::default()).await
}

fn ws_url(app: &TestApp) -> String {
    format!("ws://{}/graphql", app.addr)
}

/// Opens a socket offering `graphql-transport-ws`, with extra upgrade headers.
async fn connect(app: &TestApp, headers: &[(&'static str, &str)]) -> Ws {
    let mut request = ws_url(app).into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    for (name, value) in headers {
        request.headers_mut().insert(*name, HeaderValue::from_str(value).expect("header"));
    }
    let (ws, resp) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
        Some("graphql-transport-ws")
    );
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into())).await.expect("send");
}

/// The next protocol message (pings and pongs skipped); panics on a close.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time");
        match message.expect("socket open").expect("frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the server closes; returns its close code.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.expect("a close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
        }
    }
}

/// Opens a socket and completes `connection_init` with the test token.
async fn ready(app: &TestApp) -> Ws {
    let mut ws = connect(app, &[]).await;
    send(&mut ws, json!({ "type": "connection_init", "payload": { "X-Auth-Token": TOKEN } })).await;
    assert_eq!(recv(&mut ws).await["type"], "connection_ack");
    ws
}

async fn subscribe(ws: &mut Ws, id: &str, query: &str, variables: Value) {
    send(ws, json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
        .await;
}

/// Reads `next` payloads of `id` up to and including the end-of-snapshot marker.
async fn snapshot(ws: &mut Ws, id: &str) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    loop {
        let message = recv(ws).await;
        assert_eq!(
            (message["id"].as_str(), message["type"].as_str()),
            (Some(id), Some("next")),
            "{message:#}"
        );
        let payload = &message["payload"];
        if payload["extensions"]["snapshotComplete"] == true {
            return (events, payload.clone());
        }
        let event = &payload["data"]["connectionEvents"];
        assert_eq!(event["kind"], "SNAPSHOT", "{payload:#}");
        events.push(event.clone());
    }
}

/// The next event of `id` (skipping nothing: any other message fails the test).
async fn event(ws: &mut Ws, id: &str) -> Value {
    let message = recv(ws).await;
    assert_eq!((message["id"].as_str(), message["type"].as_str()), (Some(id), Some("next")), "{message:#}");
    message["payload"]["data"]["connectionEvents"].clone()
}

/// The next `next` payload of `id`, whole.
async fn payload(ws: &mut Ws, id: &str) -> Value {
    let message = recv(ws).await;
    assert_eq!((message["id"].as_str(), message["type"].as_str()), (Some(id), Some("next")), "{message:#}");
    message["payload"].clone()
}

async fn metrics_text(app: &TestApp) -> String {
    let resp = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics");
    resp.text().await.expect("text")
}

fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn a_subscriber_gets_a_snapshot_an_end_marker_and_then_every_kind_of_change() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p1" })).await;
    let (events, marker) = snapshot(&mut ws, "1").await;
    assert_eq!(events.len(), 12);
    assert_eq!(marker["extensions"]["snapshotSize"], 12);
    assert!(marker.get("data").is_none(), "the marker has no data: {marker:#}");
    assert_eq!(events[0]["connection"]["name"], "test");

    let id = app.sim.create_connection("p1", "watched", "DWS");
    let added = event(&mut ws, "1").await;
    assert_eq!(
        (added["kind"].as_str(), added["connection"]["connectionId"].as_str()),
        (Some("ADDED"), Some(id.as_str()))
    );
    assert_eq!(added["connection"]["state"], "CREATING");

    app.sim.set_process("p1", &id, 0.5);
    let changed = event(&mut ws, "1").await;
    assert_eq!(changed["kind"], "CHANGED");
    assert_eq!(changed["changedFields"], json!(["process"]));
    assert_eq!(changed["connection"]["process"], 0.5);

    app.sim.finish_connection("p1", &id, true);
    let active = event(&mut ws, "1").await;
    assert_eq!(active["changedFields"], json!(["state", "rawState", "process"]));
    assert_eq!(active["connection"]["state"], "ACTIVE");

    app.sim.bind_queue("p1", &id, "queue_x");
    let bound = event(&mut ws, "1").await;
    assert_eq!(
        (bound["changedFields"].clone(), bound["connection"]["queues"].clone()),
        (json!(["queues"]), json!(["queue_x"]))
    );

    app.sim.delete_connection("p1", &id);
    let removed = event(&mut ws, "1").await;
    assert_eq!(
        (removed["kind"].as_str(), removed["connection"]["connectionId"].as_str()),
        (Some("REMOVED"), Some(id.as_str()))
    );
}

#[tokio::test]
async fn connections_that_start_or_stop_matching_the_filters_are_added_or_removed() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    let query = "subscription { connectionEvents(projectId: \"p2\", state: CREATING) { kind connection { connectionId state } } }";
    subscribe(&mut ws, "c", query, json!({})).await;
    let (events, _) = snapshot(&mut ws, "c").await;
    assert!(events.iter().all(|e| e["connection"]["state"] == "CREATING"), "{events:#?}");
    let id = app.sim.create_connection("p2", "new", "RDS");
    assert_eq!(event(&mut ws, "c").await["kind"], "ADDED");
    // Progress within the filter is a change; leaving the filter is a removal.
    app.sim.finish_connection("p2", &id, false);
    let removed = event(&mut ws, "c").await;
    assert_eq!(
        (removed["kind"].as_str(), removed["connection"]["connectionId"].as_str()),
        (Some("REMOVED"), Some(id.as_str()))
    );
    // Back in the filter: added again.
    app.sim.update_connection("p2", &id, json!({ "state": "CREATING" }));
    assert_eq!(event(&mut ws, "c").await["kind"], "ADDED");
}

#[tokio::test]
async fn connection_ids_narrow_the_events_to_those_connections() {
    let app = app(&[]).await;
    let ids = app.sim.connection_ids("p3");
    let mut ws = ready(&app).await;
    let query = "subscription($ids: [ID!]) { connectionEvents(projectId: \"p3\", connectionIds: $ids) { kind connection { connectionId } } }";
    subscribe(&mut ws, "n", query, json!({ "ids": [ids[2]] })).await;
    let (events, marker) = snapshot(&mut ws, "n").await;
    assert_eq!(events.len(), 1);
    assert_eq!(marker["extensions"]["snapshotSize"], 1);
    // A change elsewhere is not seen; one of the watched connection is.
    app.sim.update_connection("p3", &ids[3], json!({ "name": "renamed" }));
    app.sim.update_connection("p3", &ids[2], json!({ "name": "renamed" }));
    let changed = event(&mut ws, "n").await;
    assert_eq!(changed["connection"]["connectionId"], ids[2].as_str());
}

#[tokio::test]
async fn an_empty_snapshot_still_ends_with_the_marker() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    let query =
        "subscription { connectionEvents(projectId: \"p1\", service: \"nothing-like-this\") { kind } }";
    subscribe(&mut ws, "e", query, json!({})).await;
    let (events, marker) = snapshot(&mut ws, "e").await;
    assert!(events.is_empty());
    assert_eq!(marker["extensions"]["snapshotSize"], 0);
}

#[tokio::test]
async fn fifty_subscribers_on_one_project_cause_one_poll_per_interval() {
    let app = app(&[]).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let mut ws = ready(&app).await;
        for i in 0..10 {
            subscribe(&mut ws, &i.to_string(), EVENTS, json!({ "p": "shared" })).await;
        }
        sockets.push(ws);
    }
    for ws in &mut sockets {
        let mut markers = 0;
        while markers < 10 {
            let message = recv(ws).await;
            if message["payload"]["extensions"]["snapshotComplete"] == true {
                markers += 1;
            }
        }
    }
    let before = app.sim.calls_for("shared");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let polls = app.sim.calls_for("shared") - before;
    // One poller at a 1 s interval (10% jitter) polls about four times in four seconds;
    // fifty pollers would have made about two hundred calls.
    assert!((3..=5).contains(&polls), "{polls} upstream calls in 4 s");
    let text = metrics_text(&app).await;
    assert_eq!(series(&text, "dli_graphql_watch_pollers"), 1.0);
    assert_eq!(series(&text, "dli_graphql_subscriptions_active"), 50.0);
}

#[tokio::test]
async fn pollers_never_serve_another_credential() {
    let app = app(&[]).await;
    let mut mine = ready(&app).await;
    let mut theirs = connect(&app, &[("x-auth-token", "other-token-1234")]).await;
    send(&mut theirs, json!({ "type": "connection_init" })).await;
    assert_eq!(recv(&mut theirs).await["type"], "connection_ack");
    subscribe(&mut mine, "1", EVENTS, json!({ "p": "p1" })).await;
    subscribe(&mut theirs, "1", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut mine, "1").await;
    snapshot(&mut theirs, "1").await;
    let tokens: std::collections::HashSet<String> =
        app.sim.requests().iter().filter_map(|r| r.header("x-auth-token").map(str::to_owned)).collect();
    assert_eq!(tokens, [TOKEN.to_owned(), "other-token-1234".to_owned()].into());
    assert_eq!(series(&metrics_text(&app).await, "dli_graphql_watch_pollers"), 2.0);
}

#[tokio::test]
async fn the_poller_stops_when_its_last_subscriber_completes_or_disconnects() {
    let app = app(&[]).await;
    let mut a = ready(&app).await;
    let mut b = ready(&app).await;
    subscribe(&mut a, "1", EVENTS, json!({ "p": "p1" })).await;
    subscribe(&mut b, "1", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut a, "1").await;
    snapshot(&mut b, "1").await;
    send(&mut a, json!({ "id": "1", "type": "complete" })).await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = app.sim.calls_for("p1");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.sim.calls_for("p1"), after, "no polls once nobody watches");
    let text = metrics_text(&app).await;
    assert_eq!(series(&text, "dli_graphql_watch_pollers"), 0.0);
    assert_eq!(series(&text, "dli_graphql_subscriptions_active"), 0.0);
}

#[tokio::test]
async fn a_transient_upstream_failure_is_an_error_payload_and_the_subscription_goes_on() {
    let app = app(&["--upstream-max-attempts", "1"]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "t", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "t").await;
    app.sim.set_fault_times("p1", Fault::dli(500, "DLI.0999", "Internal server error"), 1);
    let failed = payload(&mut ws, "t").await;
    assert_eq!(failed["errors"][0]["extensions"]["code"], "UPSTREAM_ERROR", "{failed:#}");
    assert_eq!(failed["errors"][0]["extensions"]["projectId"], "p1");
    let id = app.sim.create_connection("p1", "after-the-failure", "DWS");
    let added = event(&mut ws, "t").await;
    assert_eq!(
        (added["kind"].as_str(), added["connection"]["connectionId"].as_str()),
        (Some("ADDED"), Some(id.as_str()))
    );
}

#[tokio::test]
async fn a_refusal_upstream_ends_the_subscription_with_its_code_and_stops_the_poller() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "f", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "f").await;
    app.sim.set_fault(
        "p1",
        Fault::gateway(403, "APIG.0302", "The IAM user is not authorized to access the API"),
    );
    let failed = payload(&mut ws, "f").await;
    assert_eq!(failed["errors"][0]["extensions"]["code"], "FORBIDDEN", "{failed:#}");
    assert_eq!(recv(&mut ws).await, json!({ "id": "f", "type": "complete" }));
    let calls = app.sim.calls_for("p1");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.sim.calls_for("p1"), calls);
    assert_eq!(series(&metrics_text(&app).await, "dli_graphql_watch_pollers"), 0.0);
}

#[tokio::test]
async fn a_project_that_does_not_exist_ends_the_subscription_with_not_found() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "x", EVENTS, json!({ "p": "fault-404" })).await;
    let failed = payload(&mut ws, "x").await;
    assert_eq!(failed["errors"][0]["extensions"]["code"], "NOT_FOUND", "{failed:#}");
    assert_eq!(recv(&mut ws).await, json!({ "id": "x", "type": "complete" }));
}

#[tokio::test]
async fn an_invalid_project_id_is_bad_user_input_without_an_upstream_call() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "b", EVENTS, json!({ "p": "../etc" })).await;
    let failed = payload(&mut ws, "b").await;
    assert_eq!(failed["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{failed:#}");
    assert_eq!(recv(&mut ws).await["type"], "complete");
    assert_eq!(app.sim.stats().calls, 0);
}

// ---- close codes ----

#[tokio::test]
async fn a_message_that_is_not_the_protocol_closes_with_4400() {
    let app = app(&[]).await;
    for bad in [json!("not an object"), json!({ "type": "unknown" }), json!({ "no": "type" })] {
        let mut ws = connect(&app, &[]).await;
        send(&mut ws, bad).await;
        assert_eq!(close_code(&mut ws).await, 4400);
    }
    let mut ws = ready(&app).await;
    send(&mut ws, json!({ "type": "subscribe", "id": "1", "payload": { "query": 42 } })).await;
    assert_eq!(close_code(&mut ws).await, 4400);
    let mut ws = ready(&app).await;
    ws.send(Message::Text("{not json".into())).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 4400);
}

#[tokio::test]
async fn subscribing_before_the_ack_closes_with_4401() {
    let app = app(&[]).await;
    let mut ws = connect(&app, &[]).await;
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p1" })).await;
    assert_eq!(close_code(&mut ws).await, 4401);
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn refused_credentials_close_with_4403_before_the_ack() {
    let app = app(&["--auth-token", "service-token", "--api-keys", "right-key"]).await;
    let mut ws = connect(&app, &[]).await;
    send(&mut ws, json!({ "type": "connection_init", "payload": { "Authorization": "Bearer wrong-key" } }))
        .await;
    assert_eq!(close_code(&mut ws).await, 4403);
    let mut ws = connect(&app, &[]).await;
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(close_code(&mut ws).await, 4403);
    let mut ws = connect(&app, &[("authorization", "Bearer wrong-key")]).await;
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(close_code(&mut ws).await, 4403);
}

#[tokio::test]
async fn no_connection_init_in_time_closes_with_4408() {
    let app = app(&["--ws-init-timeout", "300ms"]).await;
    let mut ws = connect(&app, &[]).await;
    assert_eq!(close_code(&mut ws).await, 4408);
}

#[tokio::test]
async fn a_second_operation_with_a_running_id_closes_with_4409() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "same", EVENTS, json!({ "p": "p1" })).await;
    subscribe(&mut ws, "same", EVENTS, json!({ "p": "p2" })).await;
    assert_eq!(close_code(&mut ws).await, 4409);
}

#[tokio::test]
async fn a_second_connection_init_closes_with_4429() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    send(&mut ws, json!({ "type": "connection_init" })).await;
    assert_eq!(close_code(&mut ws).await, 4429);
}

#[tokio::test]
async fn a_socket_without_the_subprotocol_closes_with_4406() {
    let app = app(&[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&app)).await.expect("upgrade");
    assert_eq!(close_code(&mut ws).await, 4406);
}

// ---- credentials ----

/// The `X-Auth-Token` of the simulator's last list call.
fn last_token(app: &TestApp) -> Option<String> {
    app.sim.requests().iter().rev().find_map(|r| r.header("x-auth-token").map(str::to_owned))
}

async fn first_snapshot_with(app: &TestApp, headers: &[(&'static str, &str)], init: Value) {
    let mut ws = connect(app, headers).await;
    send(&mut ws, json!({ "type": "connection_init", "payload": init })).await;
    assert_eq!(recv(&mut ws).await["type"], "connection_ack");
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "1").await;
}

#[tokio::test]
async fn the_caller_token_comes_from_the_init_payload_in_any_case_or_nested_or_from_the_upgrade() {
    let app = app(&[]).await;
    first_snapshot_with(&app, &[], json!({ "X-Auth-Token": "token-top" })).await;
    assert_eq!(last_token(&app).as_deref(), Some("token-top"));
    first_snapshot_with(&app, &[], json!({ "x-auth-token": "token-lower" })).await;
    assert_eq!(last_token(&app).as_deref(), Some("token-lower"));
    first_snapshot_with(&app, &[], json!({ "headers": { "X-AUTH-TOKEN": "token-nested" } })).await;
    assert_eq!(last_token(&app).as_deref(), Some("token-nested"));
    first_snapshot_with(&app, &[("x-auth-token", "token-upgrade")], json!({})).await;
    assert_eq!(last_token(&app).as_deref(), Some("token-upgrade"));
    // The payload wins over the upgrade request.
    first_snapshot_with(&app, &[("x-auth-token", "token-upgrade")], json!({ "X-Auth-Token": "token-wins" }))
        .await;
    assert_eq!(last_token(&app).as_deref(), Some("token-wins"));
}

#[tokio::test]
async fn an_api_key_in_the_init_payload_or_the_upgrade_admits_the_service_credential() {
    let app = app(&["--auth-token", "service-token", "--api-keys", "right-key"]).await;
    first_snapshot_with(&app, &[], json!({ "Authorization": "Bearer right-key" })).await;
    assert_eq!(last_token(&app).as_deref(), Some("service-token"));
    app.sim.reset();
    first_snapshot_with(&app, &[], json!({ "headers": { "authorization": "Bearer right-key" } })).await;
    assert_eq!(last_token(&app).as_deref(), Some("service-token"));
    app.sim.reset();
    first_snapshot_with(&app, &[("authorization", "Bearer right-key")], Value::Null).await;
    assert_eq!(last_token(&app).as_deref(), Some("service-token"));
}

#[tokio::test]
async fn a_project_outside_the_allowed_list_is_forbidden_without_an_upstream_call() {
    let app = app(&["--allowed-projects", "p1"]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p2" })).await;
    let failed = payload(&mut ws, "1").await;
    assert_eq!(failed["errors"][0]["extensions"]["code"], "FORBIDDEN", "{failed:#}");
    assert_eq!(recv(&mut ws).await["type"], "complete");
    assert_eq!(app.sim.stats().calls, 0);
}

// ---- limits ----

#[tokio::test]
async fn one_subscription_too_many_on_a_socket_gets_an_error_and_the_others_go_on() {
    let app = app(&["--max-subscriptions-per-socket", "2"]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "1").await;
    subscribe(&mut ws, "2", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "2").await;
    subscribe(&mut ws, "3", EVENTS, json!({ "p": "p1" })).await;
    let refused = recv(&mut ws).await;
    assert_eq!((refused["id"].as_str(), refused["type"].as_str()), (Some("3"), Some("error")), "{refused:#}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert_eq!(refused["payload"][0]["extensions"]["limit"], "max-subscriptions-per-socket");
    // Completing one makes room again.
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    subscribe(&mut ws, "4", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "4").await;
}

#[tokio::test]
async fn sockets_beyond_the_limit_are_refused_with_503() {
    let app = app(&["--max-streams", "1"]).await;
    let _first = ready(&app).await;
    let mut request = ws_url(&app).into_client_request().expect("request");
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected a refusal, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test]
async fn watching_more_distinct_projects_than_allowed_is_limit_exceeded() {
    let app = app(&["--max-watched-projects", "1"]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "1").await;
    subscribe(&mut ws, "2", EVENTS, json!({ "p": "p2" })).await;
    let refused = payload(&mut ws, "2").await;
    assert_eq!(refused["errors"][0]["extensions"]["limit"], "max-watched-projects", "{refused:#}");
    assert_eq!(recv(&mut ws).await["type"], "complete");
    // The same project again is fine: it joins the running poller.
    subscribe(&mut ws, "3", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "3").await;
}

#[tokio::test]
async fn query_limits_apply_to_subscription_documents() {
    let app = app(&["--max-depth", "2"]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "d", EVENTS, json!({ "p": "p1" })).await;
    let refused = recv(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused:#}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert_eq!(refused["payload"][0]["extensions"]["limit"], "max-depth");
    let app = self::app(&["--max-upstream-fields", "1"]).await;
    let mut ws = ready(&app).await;
    let two = "subscription { a: connectionEvents(projectId: \"p1\") { kind } b: connectionEvents(projectId: \"p2\") { kind } }";
    subscribe(&mut ws, "u", two, json!({})).await;
    let refused = recv(&mut ws).await;
    assert_eq!(refused["payload"][0]["extensions"]["limit"], "max-upstream-fields", "{refused:#}");
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn a_document_that_does_not_validate_is_an_error_message_with_bad_request() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "v", "subscription { connectionEvents(projectId: \"p1\") { nope } }", json!({})).await;
    let refused = recv(&mut ws).await;
    assert_eq!((refused["id"].as_str(), refused["type"].as_str()), (Some("v"), Some("error")), "{refused:#}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_REQUEST");
}

#[tokio::test]
async fn queries_run_over_the_socket_too() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "q", "{ connections(projectId: \"p1\") { name } }", json!({})).await;
    let answer = payload(&mut ws, "q").await;
    assert_eq!(answer["data"]["connections"].as_array().map(Vec::len), Some(12));
    assert_eq!(recv(&mut ws).await, json!({ "id": "q", "type": "complete" }));
}

// ---- keep-alive ----

#[tokio::test]
async fn the_server_pings_and_closes_a_client_that_stops_answering() {
    let app = app(&["--ws-ping-interval", "1s"]).await;
    let mut ws = ready(&app).await;
    // Reading answers pings (tungstenite replies with pongs): the socket stays open.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(message) = tokio::time::timeout_at(until, ws.next()).await {
        match message.expect("open").expect("frame") {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => panic!("closed although answering: {frame:?}"),
            _ => {}
        }
    }
    assert!(pings >= 2, "{pings} pings");
    // Not reading means not answering: the next ping finds the previous one unanswered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(close_code(&mut ws).await, 1001);
}

#[tokio::test]
async fn protocol_pings_get_pongs() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(recv(&mut ws).await, json!({ "type": "pong" }));
}

// ---- SSE ----

/// Reads SSE events (`event`, `data`) from `body` until `stop` says so.
async fn sse_events(
    resp: reqwest::Response,
    mut stop: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut body = resp.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while !stop(&events) {
        let chunk = tokio::time::timeout(WAIT, body.next()).await.expect("an event in time");
        let Some(chunk) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !event.is_empty() {
                events.push((event, data));
            }
        }
    }
    events
}

async fn sse_post(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.graphql_url())
        .header("accept", "text/event-stream")
        .header("x-auth-token", TOKEN)
        .json(&body)
        .send()
        .await
        .expect("server answers")
}

#[tokio::test]
async fn sse_streams_the_snapshot_and_the_changes_as_next_events() {
    let app = app(&[]).await;
    let resp = sse_post(&app, json!({ "query": EVENTS, "variables": { "p": "p1" } })).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap_or("").starts_with("text/event-stream"));
    let id = {
        let sim = &app.sim;
        let mut created = None;
        let events = sse_events(resp, |events| {
            let marker = events.iter().any(|(_, d)| d.contains("snapshotComplete"));
            if marker && created.is_none() {
                created = Some(sim.create_connection("p1", "over-sse", "CSS"));
            }
            events.iter().any(|(_, d)| d.contains("ADDED"))
        })
        .await;
        assert!(events.iter().all(|(e, _)| e == "next"), "{events:?}");
        let snapshots = events.iter().filter(|(_, d)| d.contains("SNAPSHOT")).count();
        assert_eq!(snapshots, 12);
        let added: Value = serde_json::from_str(&events.last().expect("an event").1).expect("JSON");
        assert_eq!(added["data"]["connectionEvents"]["kind"], "ADDED");
        created
    };
    assert!(id.is_some());
    // The stream was dropped: its poller stops.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(series(&metrics_text(&app).await, "dli_graphql_watch_pollers"), 0.0);
}

#[tokio::test]
async fn sse_ends_a_query_with_complete() {
    let app = app(&[]).await;
    let resp = sse_post(&app, json!({ "query": "{ connections(projectId: \"p1\") { name } }" })).await;
    let events = sse_events(resp, |events| events.iter().any(|(e, _)| e == "complete")).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "next");
    assert_eq!(events[1].0, "complete");
}

#[tokio::test]
async fn sse_refuses_a_missing_api_key_with_401() {
    let app = app(&["--auth-token", "service-token", "--api-keys", "right-key"]).await;
    let resp = app
        .http
        .post(app.graphql_url())
        .header("accept", "text/event-stream")
        .json(&json!({ "query": EVENTS, "variables": { "p": "p1" } }))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
}

// ---- metrics ----

#[tokio::test]
async fn metrics_count_sockets_subscriptions_pollers_events_and_polls() {
    let app = app(&[]).await;
    let mut ws = ready(&app).await;
    subscribe(&mut ws, "1", EVENTS, json!({ "p": "p1" })).await;
    snapshot(&mut ws, "1").await;
    let text = metrics_text(&app).await;
    assert_eq!(series(&text, "dli_graphql_streams_open{transport=\"websocket\"}"), 1.0);
    assert_eq!(series(&text, "dli_graphql_subscriptions_active"), 1.0);
    assert_eq!(series(&text, "dli_graphql_watch_pollers"), 1.0);
    assert_eq!(series(&text, "dli_graphql_subscription_events_total{kind=\"SNAPSHOT\"}"), 12.0);
    assert_eq!(series(&text, "dli_graphql_subscription_events_total{kind=\"marker\"}"), 1.0);
    assert!(series(&text, "dli_graphql_watch_polls_total{outcome=\"ok\"}") >= 1.0);
    drop(ws);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = metrics_text(&app).await;
    assert_eq!(series(&text, "dli_graphql_streams_open{transport=\"websocket\"}"), 0.0);
    assert_eq!(series(&text, "dli_graphql_subscriptions_active"), 0.0);
}

// ---- multipart (Apollo Client) ----

/// The Accept headers Apollo Client sends (4.x, 3.x) and variants of their parameters.
const MULTIPART_ACCEPTS: &[&str] = &[
    "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9",
    "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json",
    "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\",application/json",
    "multipart/mixed;subscriptionSpec=\"1.0\"",
    "multipart/mixed; subscriptionSpec=1.0",
];

/// Reads the body until `stop` holds for what arrived so far; returns it.
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    stop: impl Fn(&str) -> bool,
) {
    while !stop(text) {
        let chunk = tokio::time::timeout(WAIT, body.next()).await.expect("a part in time");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("body open").expect("chunk")));
    }
}

#[tokio::test]
async fn multipart_subscriptions_answer_every_accept_variant_apollo_client_sends() {
    let app = app(&[]).await;
    for accept in MULTIPART_ACCEPTS {
        let resp = app
            .http
            .post(app.graphql_url())
            .header("accept", *accept)
            .header("x-auth-token", TOKEN)
            .json(&json!({ "query": EVENTS, "variables": { "p": "p1" } }))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200, "{accept}");
        assert_eq!(
            resp.headers()["content-type"],
            "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"",
            "{accept}"
        );
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        read_until(&mut body, &mut text, |t| {
            t.matches("SNAPSHOT").count() == 12 && t.ends_with("\r\n--graphql")
        })
        .await;
        let parts: Vec<&str> = text.split("\r\n--graphql").filter(|p| !p.is_empty()).collect();
        assert_eq!(parts.len(), 12, "{accept}: one part per event, no marker");
        for p in parts {
            let (headers, json) = p.split_once("\r\n\r\n").expect("headers and body");
            assert!(headers.to_ascii_lowercase().contains("content-type: application/json"), "{headers}");
            let part: Value = serde_json::from_str(json).expect("JSON part");
            assert_eq!(part["payload"]["data"]["connectionEvents"]["kind"], "SNAPSHOT");
        }
    }
}

#[tokio::test]
async fn each_multipart_part_is_closed_by_the_delimiter_as_soon_as_it_is_written() {
    // The keep-alive (15 s) is longer than the wait for a part: a change must arrive with
    // its closing delimiter, not with the next heartbeat.
    let app = app(&[]).await;
    let resp = app
        .http
        .post(app.graphql_url())
        .header("accept", MULTIPART_ACCEPTS[0])
        .header("x-auth-token", TOKEN)
        .json(&json!({ "query": EVENTS, "variables": { "p": "p1" } }))
        .send()
        .await
        .expect("answer");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    read_until(&mut body, &mut text, |t| t.matches("SNAPSHOT").count() == 12 && t.ends_with("\r\n--graphql"))
        .await;
    let id = app.sim.create_connection("p1", "over-multipart", "DWS");
    text.clear();
    read_until(&mut body, &mut text, |t| t.contains("ADDED") && t.ends_with("\r\n--graphql")).await;
    let (_, json) = text.trim_end_matches("\r\n--graphql").split_once("\r\n\r\n").expect("one part");
    let part: Value = serde_json::from_str(json).expect("JSON part");
    assert_eq!(part["payload"]["data"]["connectionEvents"]["connection"]["connectionId"], id.as_str());
    assert_eq!(series(&metrics_text(&app).await, "dli_graphql_streams_open{transport=\"multipart\"}"), 1.0);
}

#[tokio::test]
async fn a_multipart_query_ends_with_the_close_delimiter_and_heartbeats_are_empty_parts() {
    let app = app(&["--stream-keep-alive", "1s"]).await;
    let resp = app
        .http
        .post(app.graphql_url())
        .header("accept", MULTIPART_ACCEPTS[1])
        .header("x-auth-token", TOKEN)
        .json(&json!({ "query": "{ connections(projectId: \"p1\") { name } }" }))
        .send()
        .await
        .expect("answer");
    let text = resp.text().await.expect("whole body");
    assert!(text.starts_with("\r\n--graphql\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n--graphql--\r\n"), "{text:?}");
    // A quiet subscription gets `{}` parts.
    let resp = app
        .http
        .post(app.graphql_url())
        .header("accept", MULTIPART_ACCEPTS[1])
        .header("x-auth-token", TOKEN)
        .json(&json!({ "query": EVENTS, "variables": { "p": "p4" } }))
        .send()
        .await
        .expect("answer");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    read_until(&mut body, &mut text, |t| t.contains("\r\n\r\n{}\r\n--graphql")).await;
}
