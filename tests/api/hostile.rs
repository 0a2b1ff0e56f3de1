//! Hostile input: every request is answered with a clear error or closed cleanly, the server
//! keeps serving, and nothing reaches the upstream.

use std::time::{Duration, Instant};

use dli_graphql::sim::{Fault, SimOptions};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::{TOKEN, TestApp, errors, spawn_app, spawn_app_with};

fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// The server still answers a normal query, and the upstream saw nothing.
async fn assert_healthy_and_untouched(app: &TestApp) {
    let health = app.http.get(format!("http://{}/healthz", app.addr)).send().await.expect("still serving");
    assert_eq!(health.status(), 200);
    assert!(app.sim.requests().is_empty(), "hostile input reached the upstream: {:?}", app.sim.requests());
}

/// Sends raw bytes on a fresh connection and reads until the server closes it (or `wait`).
async fn raw_exchange(app: &TestApp, bytes: &[u8], wait: Duration) -> String {
    let mut conn = TcpStream::connect(app.addr).await.expect("connects");
    conn.write_all(bytes).await.expect("writes");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn alias_bombs_are_refused() {
    let app = spawn_app().await;
    let typenames: Vec<String> = (0..10_000).map(|i| format!("t{i}: __typename")).collect();
    let resp = app.query(&format!("{{ {} }}", typenames.join(" "))).await;
    assert_eq!(code(&resp), "LIMIT_EXCEEDED", "{resp:#}");
    let fields: Vec<String> =
        (0..500).map(|i| format!("c{i}: connections(projectId: \"p\") {{ name }}")).collect();
    let resp = app.query(&format!("{{ {} }}", fields.join(" "))).await;
    assert_eq!(code(&resp), "LIMIT_EXCEEDED", "{resp:#}");
    assert_eq!(resp["errors"][0]["extensions"]["limit"], "max-upstream-fields");
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn deep_queries_are_refused_without_exhausting_the_stack() {
    let app = spawn_app().await;
    let started = Instant::now();
    let braces = format!("{}{}", "{a".repeat(100_000), "}".repeat(100_000));
    let lists =
        format!("{{ connections(projectId: {}\"p\"{}) {{ name }} }}", "[".repeat(20_000), "]".repeat(20_000));
    let fields =
        format!("{{ __schema {{ types {{ {} name {} }} }} }}", "ofType { ".repeat(25), "} ".repeat(25));
    for q in [braces, lists, fields] {
        // Sent in the body, so only the 1 MiB body limit applies before the document limits.
        let resp = app.query(&q).await;
        assert_eq!(code(&resp), "LIMIT_EXCEEDED", "{resp:#}");
    }
    // Deeply nested JSON variables are refused by the JSON parser's own depth limit.
    let deep_json = format!(
        "{{\"query\":\"{{ __typename }}\",\"variables\":{{\"v\":{}1{}}}}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let resp = app
        .http
        .post(app.graphql_url())
        .header("content-type", "application/json")
        .body(deep_json)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(code(&body), "BAD_REQUEST");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn huge_strings_are_refused_and_never_echoed() {
    let app = spawn_app().await;
    let huge = "x".repeat(900_000);
    let resp =
        app.query_vars("query($p: ID!) { connections(projectId: $p) { name } }", json!({ "p": huge })).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT",
        "{}",
        &resp.to_string()[..300.min(resp.to_string().len())]
    );
    assert!(resp.to_string().len() < 2_000, "the huge input was echoed back");
    let resp = app.query(&format!("{{ connections(projectId: \"{huge}\") {{ name }} }}")).await;
    assert_eq!(code(&resp), "LIMIT_EXCEEDED");
    assert!(resp.to_string().len() < 2_000, "the huge input was echoed back");
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn invalid_utf8_is_a_bad_request() {
    let app = spawn_app().await;
    let mut body = b"{\"query\": \"{ connections(projectId: \\\"p".to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(b"\\\") { name } }\"}");
    let resp = app
        .http
        .post(app.graphql_url())
        .header("content-type", "application/json")
        .header("X-Auth-Token", TOKEN)
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 400);
    let json: Value = resp.json().await.expect("json");
    assert_eq!(code(&json), "BAD_REQUEST");
    // In a query string, invalid UTF-8 is decoded lossily and the document fails to parse.
    let get = app
        .http
        .get(format!("{}?query=%7B%20%FF%FE%20%7D", app.graphql_url()))
        .header("Accept", "application/graphql-response+json")
        .send()
        .await
        .expect("answer");
    assert_eq!(get.status(), 400);
    let json: Value = get.json().await.expect("json");
    assert!(!errors(&json).is_empty(), "{json:#}");
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn wrong_variable_types_fail_the_request_not_the_server() {
    let app = spawn_app().await;
    let q = "query($p: ID!, $s: ConnectionState) { connections(projectId: $p, state: $s) { name } }";
    for vars in [
        json!({ "p": { "nested": "object" } }),
        json!({ "p": ["p1"] }),
        json!({ "p": null }),
        json!({}),
        json!({ "p": "p1", "s": "NOT_A_STATE" }),
        json!({ "p": "p1", "s": 3 }),
        json!("not an object"),
    ] {
        let resp = app
            .http
            .post(app.graphql_url())
            .header("Accept", "application/graphql-response+json")
            .header("X-Auth-Token", TOKEN)
            .json(&json!({ "query": q, "variables": vars }))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 400, "{vars}");
        let body: Value = resp.json().await.expect("json");
        assert!(body.get("data").is_none(), "{vars}: {body:#}");
        assert!(!errors(&body).is_empty(), "{vars}: {body:#}");
    }
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn duplicate_operation_names_are_rejected() {
    let app = spawn_app().await;
    let q = "query A { connections(projectId: \"p1\") { name } } query A { connections(projectId: \"p2\") { name } }";
    for op in [json!("A"), Value::Null] {
        let resp = app.post(&json!({ "query": q, "operationName": op })).await.1;
        assert!(!errors(&resp).is_empty(), "{resp:#}");
        assert!(resp.get("data").is_none_or(Value::is_null), "{resp:#}");
    }
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_and_the_connection_closes() {
    let app = spawn_app_with(&["--body-read-timeout", "300ms"], SimOptions::default()).await;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"query\":",
        app.addr
    );
    let started = Instant::now();
    let answer = raw_exchange(&app, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-read-timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the connection was held for {:?}",
        started.elapsed()
    );
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_request_leaves_the_server_serving() {
    let app = spawn_app().await;
    // Mid-body: nothing was executed.
    for _ in 0..20 {
        let mut conn = TcpStream::connect(app.addr).await.expect("connects");
        let head = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"query\":\"{ conn";
        conn.write_all(head.as_bytes()).await.expect("writes");
        drop(conn);
    }
    assert_healthy_and_untouched(&app).await;
    // Mid-answer: the upstream is slow and the client leaves before the response.
    app.sim.set_fault("slow", Fault::delay(Duration::from_millis(300)));
    let body = r#"{"query":"{ connections(projectId: \"slow\") { name } }"}"#;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Auth-Token: {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = TcpStream::connect(app.addr).await.expect("connects");
    conn.write_all(request.as_bytes()).await.expect("writes");
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resp = app.query("{ connections(projectId: \"p1\") { name } }").await;
    assert_eq!(resp["data"]["connections"][0]["name"], "test", "{resp:#}");
}

#[tokio::test]
async fn request_errors_carry_a_stable_code() {
    let app = spawn_app().await;
    for body in [
        json!({ "query": "{ connections(projectId: " }),
        json!({ "query": "{ noSuchField }" }),
        json!({ "query": "query A { __typename } query B { __typename }" }),
        json!({ "query": "{ __typename }", "operationName": "Missing" }),
        json!({ "query": "query($p: ID!) { connections(projectId: $p) { name } }", "variables": { "p": [1] } }),
    ] {
        let (_, resp) = app.post(&body).await;
        let errs = errors(&resp);
        assert!(!errs.is_empty(), "{body}: {resp:#}");
        assert!(errs.iter().all(|e| e["extensions"]["code"] == "BAD_REQUEST"), "{body}: {resp:#}");
    }
    // A body without a query is not a GraphQL request at all: 400 whatever the media type.
    for accept in ["application/json", "application/graphql-response+json"] {
        let resp = app
            .http
            .post(app.graphql_url())
            .header("Accept", accept)
            .json(&json!({ "qeury": "{ __typename }" }))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 400, "{accept}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(code(&body), "BAD_REQUEST");
    }
    assert_healthy_and_untouched(&app).await;
}

#[tokio::test]
async fn a_hostile_document_cannot_be_registered_as_a_persisted_query() {
    use sha2::Digest as _;
    let app = spawn_app().await;
    let deep = format!("{}{}", "{a".repeat(50_000), "}".repeat(50_000));
    let hash = hex::encode(sha2::Sha256::digest(deep.as_bytes()));
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (_, resp) = app.post(&json!({ "query": deep, "extensions": ext })).await;
    assert_eq!(code(&resp), "LIMIT_EXCEEDED", "{resp:#}");
    // It was not stored: the hash alone is still unknown.
    let (_, resp) = app.post(&json!({ "extensions": ext })).await;
    assert_eq!(code(&resp), "PERSISTED_QUERY_NOT_FOUND", "{resp:#}");
    assert_healthy_and_untouched(&app).await;
}
