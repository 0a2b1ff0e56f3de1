//! Request limits: the defaults let legitimate requests through; every limit refuses with an
//! error that names it, before anything goes upstream.

use dli_graphql::sim::SimOptions;
use serde_json::{Value, json};

use crate::helpers::{TOKEN, TestApp, errors, spawn_app, spawn_app_with};

/// The standard introspection query (graphql-js 16, every option on).
pub const INTROSPECTION: &str = include_str!("introspection.graphql");

/// Asserts `resp` is one `LIMIT_EXCEEDED` error naming `limit`, without data.
fn assert_limit(resp: &Value, limit: &str) {
    let errs = errors(resp);
    assert_eq!(errs.len(), 1, "{resp:#}");
    assert_eq!(errs[0]["extensions"]["code"], "LIMIT_EXCEEDED", "{resp:#}");
    assert_eq!(errs[0]["extensions"]["limit"], limit, "{resp:#}");
    assert!(errs[0]["extensions"]["max"].is_u64(), "{resp:#}");
    let message = errs[0]["message"].as_str().unwrap_or("");
    assert!(message.contains(limit), "the message names the limit: {message}");
    assert!(resp.get("data").is_none_or(Value::is_null), "{resp:#}");
}

/// POSTs with `Accept: application/graphql-response+json`; returns status and body.
async fn post_strict(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.graphql_url())
        .header("Accept", "application/graphql-response+json")
        .header("X-Auth-Token", TOKEN)
        .json(body)
        .send()
        .await
        .expect("answer");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

fn aliases(n: usize, project: impl Fn(usize) -> String) -> String {
    let fields: Vec<String> =
        (0..n).map(|i| format!("a{i}: connections(projectId: \"{}\") {{ name }}", project(i))).collect();
    format!("{{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn the_standard_introspection_query_passes_the_default_limits() {
    let app = spawn_app().await;
    let (status, resp) = post_strict(&app, &json!({ "query": INTROSPECTION })).await;
    assert_eq!(status, 200, "{resp:#}");
    assert!(resp.get("errors").is_none(), "{resp:#}");
    let types = resp["data"]["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "Connection"));
}

#[tokio::test]
async fn a_wide_legitimate_request_passes_the_default_limits() {
    let app = spawn_app().await;
    // 50 fields over 50 projects with every Connection field: the defaults' upper edge.
    let fields: Vec<String> = (0..50)
        .map(|i| format!("a{i}: connections(projectId: \"p{i}\") {{ {} }}", crate::helpers::ALL_FIELDS))
        .collect();
    let resp = app.query(&format!("{{ {} }}", fields.join(" "))).await;
    assert!(resp.get("errors").is_none(), "{resp:#}");
    assert_eq!(app.sim.stats().calls, 50);
}

#[tokio::test]
async fn too_many_upstream_fields_are_refused_before_any_upstream_call() {
    let app = spawn_app_with(&["--max-upstream-fields", "5"], SimOptions::default()).await;
    // Aliases of one project still count: each is a field the client asked for.
    let (status, resp) = post_strict(&app, &json!({ "query": aliases(6, |_| "p1".into()) })).await;
    assert_eq!(status, 400);
    assert_limit(&resp, "max-upstream-fields");
    // Fragments are expanded: 2 spreads of a fragment with 3 fields are 6.
    let q = "{ ...F a: __typename ...F } fragment F on Query { x: connections(projectId: \"p\") { name } \
             y: connections(projectId: \"p\") { name } z: connections(projectId: \"p\") { name } }";
    let resp = app.query(q).await;
    assert_limit(&resp, "max-upstream-fields");
    let ok = app.query(&aliases(5, |_| "p1".into())).await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    assert_eq!(app.sim.stats().calls, 1, "only the accepted request went upstream");
}

#[tokio::test]
async fn too_many_distinct_projects_are_refused_from_arguments_variables_and_representations() {
    let app = spawn_app_with(&["--max-projects", "3"], SimOptions::default()).await;
    let resp = app.query(&aliases(4, |i| format!("p{i}"))).await;
    assert_limit(&resp, "max-projects");
    let resp = app
        .query_vars(
            "query($a: ID!, $b: ID!, $c: ID!, $d: ID! = \"p3\") { a: connections(projectId: $a) { name } \
             b: connections(projectId: $b) { name } c: connections(projectId: $c) { name } \
             d: connections(projectId: $d) { name } }",
            json!({ "a": "p0", "b": "p1", "c": "p2" }),
        )
        .await;
    assert_limit(&resp, "max-projects");
    // A federation gateway's `_entities` batch names projects inside its representations.
    let reps: Vec<Value> = (0..4)
        .map(|i| json!({ "__typename": "Connection", "projectId": format!("p{i}"), "connectionId": "c" }))
        .collect();
    let resp = app
        .query_vars(
            "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
            json!({ "r": reps }),
        )
        .await;
    assert_limit(&resp, "max-projects");
    // Many fields over few projects are fine.
    let ok = app.query(&aliases(9, |i| format!("p{}", i % 3))).await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    assert_eq!(app.sim.stats().calls, 3);
}

#[tokio::test]
async fn depth_and_complexity_limits_name_themselves() {
    let app = spawn_app_with(&["--max-depth", "3", "--max-complexity", "20"], SimOptions::default()).await;
    let resp = app.query("{ __schema { types { fields { type { name } } } } }").await;
    assert_limit(&resp, "max-depth");
    let wide: Vec<String> = (0..21).map(|i| format!("t{i}: __typename")).collect();
    let resp = app.query(&format!("{{ {} }}", wide.join(" "))).await;
    assert_limit(&resp, "max-complexity");
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn query_length_and_token_limits_apply_before_parsing() {
    let app =
        spawn_app_with(&["--max-query-length", "100", "--max-tokens", "10"], SimOptions::default()).await;
    let resp = app.query(&format!("{{ __typename }} #{}", "x".repeat(100))).await;
    assert_limit(&resp, "max-query-length");
    let resp = app.query("{ a b c d e f g h i j }").await;
    assert_limit(&resp, "max-tokens");
    // Invalid documents are counted too: the parser never sees them.
    let resp = app.query("{ ( ( ( ( ( ( ( ( ( ( ( ( ").await;
    assert_limit(&resp, "max-tokens");
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_quickly() {
    let app = spawn_app().await;
    // Each fragment spreads the next one twice: 2^40 fields once expanded.
    let mut q = String::from("{ ...F0 }\n");
    for i in 0..40 {
        q.push_str(&format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1));
    }
    q.push_str("fragment F40 on Query { __typename }\n");
    let started = std::time::Instant::now();
    let resp = app.query(&q).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    let code = &errors(&resp)[0]["extensions"]["code"];
    assert_eq!(code, "LIMIT_EXCEEDED", "{resp:#}");
}

#[tokio::test]
async fn a_batch_larger_than_the_limit_is_refused_whole() {
    let app = spawn_app_with(&["--max-batch", "2"], SimOptions::default()).await;
    let op = json!({ "query": "{ connections(projectId: \"p1\") { name } }" });
    let (status, resp) = app.post(&json!([op, op, op])).await;
    assert_eq!(status, 400);
    assert_limit(&resp, "max-batch");
    let (status, resp) = app.post(&json!([op, op])).await;
    assert_eq!(status, 200);
    assert!(resp.as_array().is_some_and(|a| a.len() == 2), "{resp:#}");
    assert_eq!(app.sim.stats().calls, 1);
}

#[tokio::test]
async fn an_oversized_body_gets_413_with_a_graphql_error() {
    let app = spawn_app_with(&["--max-body-bytes", "1000"], SimOptions::default()).await;
    let big = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(2000)) });
    let (status, resp) = app.post(&big).await;
    assert_eq!(status, 413);
    assert_limit(&resp, "max-body-bytes");
    // Without Content-Length (chunked), the limit holds while reading.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok("{\"query\": \"{ __typename }".into()), Ok(format!("#{}\"}}", "y".repeat(2000)))];
    let resp = app
        .http
        .post(app.graphql_url())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("json");
    assert_limit(&body, "max-body-bytes");
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn the_default_body_limit_is_one_mebibyte() {
    let app = spawn_app().await;
    let padding = 1024 * 1024 - 40;
    let fits = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(padding)) });
    let (status, resp) = app.post(&fits).await;
    // The body fits; the document is then refused by its own (smaller) length limit.
    assert_eq!(status, 200, "{resp:#}");
    assert_limit(&resp, "max-query-length");
    let over = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(1024 * 1024)) });
    let (status, resp) = app.post(&over).await;
    assert_eq!(status, 413);
    assert_limit(&resp, "max-body-bytes");
}

#[tokio::test]
async fn a_cached_document_is_checked_again_on_every_request() {
    let app = spawn_app_with(&["--max-projects", "2"], SimOptions::default()).await;
    let q = "query($a: ID!, $b: ID!) { a: connections(projectId: $a) { name } b: connections(projectId: $b) { name } }";
    // Same text each time, so from the second request on its parse comes from the cache;
    // the project count depends on the variables and is checked each time.
    let ok = app.query_vars(q, json!({ "a": "p0", "b": "p1" })).await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    let q3 = "query($a: ID!, $b: ID!) { a: connections(projectId: $a) { name } \
              b: connections(projectId: $b) { name } c: connections(projectId: \"p2\") { name } }";
    for _ in 0..2 {
        assert_limit(&app.query_vars(q3, json!({ "a": "p0", "b": "p1" })).await, "max-projects");
    }
    let calls = app.sim.stats().calls;
    let again = app.query_vars(q, json!({ "a": "p0", "b": "p1" })).await;
    assert!(again.get("errors").is_none(), "{again:#}");
    assert_eq!(app.sim.stats().calls, calls + 2, "the cached document runs like a fresh one");
    // The text limits are applied to every request's text, parsed before or not.
    let app = spawn_app_with(&["--max-tokens", "20"], SimOptions::default()).await;
    for _ in 0..2 {
        assert_limit(&app.query(&aliases(3, |_| "p1".into())).await, "max-tokens");
    }
}

#[tokio::test]
async fn a_validated_operation_is_held_to_every_limit_each_time_it_comes_back() {
    let app = spawn_app_with(
        &["--max-depth", "3", "--max-complexity", "20", "--max-upstream-fields", "2"],
        SimOptions::default(),
    )
    .await;
    let deep = "{ __schema { types { fields { type { name } } } } }";
    let wide: Vec<String> = (0..21).map(|i| format!("t{i}: __typename")).collect();
    let wide = format!("{{ {} }}", wide.join(" "));
    let fan_out = aliases(3, |_| "p1".into());
    // Without variables a document's validation is kept after the first time: the same
    // texts must still be refused, every time, by the limit that refused them first.
    for _ in 0..3 {
        assert_limit(&app.query(deep).await, "max-depth");
        assert_limit(&app.query(&wide).await, "max-complexity");
        assert_limit(&app.query(&fan_out).await, "max-upstream-fields");
    }
    assert_eq!(app.sim.stats().calls, 0);
    // An operation that passed keeps passing, and runs like a fresh one each time.
    let ok = "{ connections(projectId: \"p1\") { name } }";
    for n in 1..=3 {
        let resp = app.query(ok).await;
        assert!(resp.get("errors").is_none(), "{resp:#}");
        assert_eq!(app.sim.stats().calls, n);
    }
    // Invalid variables for a document that validated before are still a request error.
    let q = "query($s: ConnectionState) { connections(projectId: \"p1\", state: $s) { name } }";
    assert!(app.query_vars(q, json!({ "s": "ACTIVE" })).await.get("errors").is_none());
    for _ in 0..2 {
        let resp = app.query_vars(q, json!({ "s": "NOT_A_STATE" })).await;
        assert_eq!(errors(&resp)[0]["extensions"]["code"], "BAD_REQUEST", "{resp:#}");
        assert!(resp.get("data").is_none_or(Value::is_null), "{resp:#}");
    }
    // Two operations in one document are kept apart by their names.
    let two = "query A { a: __typename } query B { b: __typename }";
    for _ in 0..2 {
        let a = app.post(&json!({ "query": two, "operationName": "A" })).await.1;
        assert_eq!(a, json!({ "data": { "a": "Query" } }));
        let b = app.post(&json!({ "query": two, "operationName": "B" })).await.1;
        assert_eq!(b, json!({ "data": { "b": "Query" } }));
        let none = app.post(&json!({ "query": two })).await.1;
        assert_eq!(errors(&none)[0]["extensions"]["code"], "BAD_REQUEST", "{none:#}");
    }
}

#[tokio::test]
async fn introspection_stays_refused_for_a_document_seen_before() {
    let app = spawn_app_with(&["--disable-introspection"], SimOptions::default()).await;
    for _ in 0..3 {
        let resp = app.query("{ __schema { queryType { name } } }").await;
        assert_eq!(errors(&resp)[0]["extensions"]["code"], "BAD_REQUEST", "{resp:#}");
        assert!(resp.get("data").is_none_or(Value::is_null), "{resp:#}");
    }
}
