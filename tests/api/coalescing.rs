//! Sharing upstream answers across requests: coalescing of concurrent calls, the TTL cache,
//! and that neither ever crosses credential identities.

use std::time::Duration;

use dli_graphql::sim::{Fault, SimOptions};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TOKEN, TestApp, error_at, errors, spawn_app, spawn_app_with};

const QUERY: &str = "{ connections(projectId: \"p1\") { connectionId name } }";
const OTHER_TOKEN: &str = "other-token-93c2aa01";

/// Sends `n` copies of `query` at once, with `token`, and returns the bodies.
async fn concurrently(app: &TestApp, n: usize, token: &str, query: &str) -> Vec<Value> {
    let body = json!({ "query": query });
    let calls = (0..n).map(|_| app.post_with_token(&body, Some(token)));
    join_all(calls)
        .await
        .into_iter()
        .map(|(status, resp)| {
            assert_eq!(status, 200, "{resp:#}");
            resp
        })
        .collect()
}

fn connection_ids(resp: &Value) -> Vec<String> {
    resp["data"]["connections"]
        .as_array()
        .unwrap_or_else(|| panic!("no list in {resp:#}"))
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The value of an unlabelled series in the server's `/metrics`.
async fn metric(app: &TestApp, series: &str) -> u64 {
    let text = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics");
    let text = text.text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

/// The `X-Auth-Token` of every list call the simulator received.
fn tokens_sent(app: &TestApp) -> Vec<String> {
    app.sim.requests().iter().filter_map(|r| r.header("x-auth-token").map(str::to_owned)).collect()
}

#[tokio::test]
async fn concurrent_requests_for_one_project_share_one_upstream_call() {
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(300)));
    // Twenty different documents (operation names differ), so each executes on its own.
    let app = &app;
    let calls = (0..20).map(|i| {
        let body = json!({ "query": format!("query Q{i} {{ connections(projectId: \"p1\") {{ connectionId name }} }}") });
        async move { app.post_with_token(&body, Some(TOKEN)).await }
    });
    let responses: Vec<Value> = join_all(calls).await.into_iter().map(|(_, r)| r).collect();
    let first = connection_ids(&responses[0]);
    assert_eq!(first.len(), 12);
    for resp in &responses {
        assert!(errors(resp).is_empty(), "{resp:#}");
        assert_eq!(connection_ids(resp), first);
    }
    assert_eq!(app.sim.calls_for("p1"), 1);
    // The 19 requests that joined the first one's call are counted as coalesced.
    assert_eq!(metric(app, "dli_graphql_upstream_coalesced_total").await, 19);
    assert_eq!(metric(app, "dli_graphql_shared_executions_total").await, 0);
    assert_eq!(metric(app, "dli_graphql_cache_hits_total").await, 0);
}

#[tokio::test]
async fn identical_concurrent_requests_share_one_execution_and_its_bytes() {
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(300)));
    let body = json!({ "query": QUERY });
    let calls = (0..10).map(|_| async {
        let resp = app
            .http
            .post(app.graphql_url())
            .header("X-Auth-Token", TOKEN)
            .json(&body)
            .send()
            .await
            .expect("answer");
        (resp.status().as_u16(), resp.bytes().await.expect("body"))
    });
    let answers = join_all(calls).await;
    assert!(answers.iter().all(|(status, bytes)| *status == 200 && *bytes == answers[0].1));
    let first: Value = serde_json::from_slice(&answers[0].1).expect("JSON");
    assert_eq!(connection_ids(&first).len(), 12);
    assert_eq!(app.sim.calls_for("p1"), 1);
    assert_eq!(metric(&app, "dli_graphql_shared_executions_total").await, 9);
    // Once it has finished, the same request executes again.
    app.post(&body).await;
    assert_eq!(app.sim.calls_for("p1"), 2);
    assert_eq!(metric(&app, "dli_graphql_shared_executions_total").await, 9);
}

#[tokio::test]
async fn identical_requests_with_different_tokens_never_share_an_execution() {
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(300)));
    let (mine, theirs) =
        tokio::join!(concurrently(&app, 5, TOKEN, QUERY), concurrently(&app, 5, OTHER_TOKEN, QUERY));
    assert!(mine.iter().chain(&theirs).all(|r| errors(r).is_empty()));
    // One execution per identity: four followers each.
    assert_eq!(metric(&app, "dli_graphql_shared_executions_total").await, 8);
    let tokens = tokens_sent(&app);
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens.contains(&TOKEN.to_owned()) && tokens.contains(&OTHER_TOKEN.to_owned()));
}

#[tokio::test]
async fn concurrent_requests_with_different_tokens_never_share_a_call() {
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(300)));
    let (a, b) =
        tokio::join!(concurrently(&app, 10, TOKEN, QUERY), concurrently(&app, 10, OTHER_TOKEN, QUERY));
    assert!(a.iter().chain(&b).all(|r| errors(r).is_empty()));
    assert_eq!(app.sim.calls_for("p1"), 2);
    let mut sent = tokens_sent(&app);
    sent.sort();
    assert_eq!(sent, vec![OTHER_TOKEN.to_owned(), TOKEN.to_owned()]);
}

#[tokio::test]
async fn no_coalesce_shares_no_execution_either() {
    let app = spawn_app_with(&["--no-coalesce"], SimOptions::default()).await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(200)));
    concurrently(&app, 5, TOKEN, QUERY).await;
    assert_eq!(app.sim.calls_for("p1"), 5);
    assert_eq!(metric(&app, "dli_graphql_shared_executions_total").await, 0);
}

#[tokio::test]
async fn no_coalesce_sends_every_concurrent_request_upstream() {
    let app = spawn_app_with(&["--no-coalesce"], SimOptions::default()).await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(200)));
    let responses = concurrently(&app, 8, TOKEN, QUERY).await;
    assert!(responses.iter().all(|r| errors(r).is_empty()));
    assert_eq!(app.sim.calls_for("p1"), 8);
}

#[tokio::test]
async fn a_failure_is_shared_while_in_flight_but_not_kept() {
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault { delay_ms: 300, ..Fault::dli(500, "DLI.0999", "Internal server error") });
    let responses = concurrently(&app, 6, TOKEN, QUERY).await;
    for resp in &responses {
        assert_eq!(error_at(resp, "connections")["extensions"]["code"], "UPSTREAM_ERROR", "{resp:#}");
    }
    assert_eq!(app.sim.calls_for("p1"), 1);
    app.sim.clear_faults();
    let resp = app.query(QUERY).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(app.sim.calls_for("p1"), 2);
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_cancel_the_shared_call() {
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(600)));
    let impatient = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": QUERY }))
        .timeout(Duration::from_millis(150))
        .send()
        .await;
    assert!(impatient.is_err(), "the first caller should have timed out");
    // The call it started is still in flight; this request joins it.
    let resp = app.query(QUERY).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(connection_ids(&resp).len(), 12);
    assert_eq!(app.sim.calls_for("p1"), 1);
}

#[tokio::test]
async fn a_cached_answer_is_served_within_the_ttl() {
    let app = spawn_app_with(&["--cache-ttl", "60s"], SimOptions::default()).await;
    let first = app.query(QUERY).await;
    let second = app.query(QUERY).await;
    let third = app.query("{ connections(projectId: \"p1\", state: ACTIVE) { connectionId } }").await;
    assert!(errors(&first).is_empty() && errors(&third).is_empty(), "{first:#} {third:#}");
    assert_eq!(connection_ids(&first), connection_ids(&second));
    assert!(!connection_ids(&third).is_empty());
    assert_eq!(app.sim.calls_for("p1"), 1);
    // Another project is its own entry.
    app.query("{ connections(projectId: \"p2\") { name } }").await;
    assert_eq!(app.sim.calls_for("p2"), 1);
    // Two lookups of p1 were served from the cache; p1's and p2's first lookups missed.
    assert_eq!(metric(&app, "dli_graphql_cache_hits_total").await, 2);
    assert_eq!(metric(&app, "dli_graphql_cache_misses_total").await, 2);
}

#[tokio::test]
async fn a_cached_answer_is_fetched_again_after_the_ttl() {
    let app = spawn_app_with(&["--cache-ttl", "100ms"], SimOptions::default()).await;
    app.query(QUERY).await;
    assert_eq!(app.sim.calls_for("p1"), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = app.query(QUERY).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(app.sim.calls_for("p1"), 2);
}

#[tokio::test]
async fn upstream_errors_are_not_cached() {
    let app = spawn_app_with(&["--cache-ttl", "60s"], SimOptions::default()).await;
    // A status that is not retried, so each query is exactly one upstream call.
    app.sim.set_fault("p1", Fault::dli(400, "DLI.0999", "server-side system error"));
    for _ in 0..2 {
        let resp = app.query(QUERY).await;
        assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "UPSTREAM_ERROR", "{resp:#}");
    }
    assert_eq!(app.sim.calls_for("p1"), 2);
    app.sim.clear_faults();
    let resp = app.query(QUERY).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(app.sim.calls_for("p1"), 3);
}

#[tokio::test]
async fn the_cache_never_serves_one_token_s_answer_to_another() {
    let app = spawn_app_with(&["--cache-ttl", "60s"], SimOptions::default()).await;
    let calls = |a: &TestApp| a.sim.calls_for("p1");
    app.post_with_token(&json!({ "query": QUERY }), Some(TOKEN)).await;
    assert_eq!(calls(&app), 1);
    let (_, other) = app.post_with_token(&json!({ "query": QUERY }), Some(OTHER_TOKEN)).await;
    assert!(errors(&other).is_empty(), "{other:#}");
    assert_eq!(calls(&app), 2, "a second identity must get its own upstream call");
    // Both identities are now cached, each under its own key.
    app.post_with_token(&json!({ "query": QUERY }), Some(TOKEN)).await;
    app.post_with_token(&json!({ "query": QUERY }), Some(OTHER_TOKEN)).await;
    assert_eq!(calls(&app), 2);
    assert_eq!(tokens_sent(&app), vec![TOKEN.to_owned(), OTHER_TOKEN.to_owned()]);
    // No credentials: nothing from the cache, nothing upstream.
    let (_, none) = app.post_with_token(&json!({ "query": QUERY }), None).await;
    assert_eq!(error_at(&none, "connections")["extensions"]["code"], "UNAUTHENTICATED", "{none:#}");
    assert_eq!(calls(&app), 2);
}

#[tokio::test]
async fn concurrent_detail_and_enhanced_calls_share_one_upstream_call_per_credential() {
    use dli_graphql::sim::Endpoint;
    let query = "{ connection(projectId: \"p1\", connectionId: \"75419c22-7a31-42e4-a3f3-102f6e6895c9\") { name queueStatuses { name } } \
                 enhancedConnections(projectId: \"p1\", first: 2) { edges { node { id } } } }";
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(300)));
    let before = metric(&app, "dli_graphql_upstream_coalesced_total").await;
    let mine = concurrently(&app, 10, TOKEN, query);
    let theirs = concurrently(&app, 10, OTHER_TOKEN, query);
    let (mine, theirs) = futures::join!(mine, theirs);
    for resp in mine.iter().chain(&theirs) {
        assert!(errors(resp).is_empty(), "{resp:#}");
        assert_eq!(resp["data"]["connection"]["name"], "test");
    }
    // One call per credential identity and endpoint; the other requests joined them (these
    // are identical requests, so they share the whole execution: nine per identity).
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 2);
    assert_eq!(app.sim.calls_to(Endpoint::EnhancedList, "p1"), 2);
    assert_eq!(metric(&app, "dli_graphql_shared_executions_total").await, 18);
    assert_eq!(metric(&app, "dli_graphql_upstream_coalesced_total").await - before, 0);
    // Different documents (operation names) execute on their own and coalesce their calls.
    let app = spawn_app().await;
    app.sim.set_fault("p1", Fault::delay(Duration::from_millis(300)));
    let app = &app;
    let calls = (0..10).map(|i| {
        let body = json!({ "query": format!("query Q{i} {query}") });
        async move { app.post_with_token(&body, Some(TOKEN)).await.1 }
    });
    for resp in join_all(calls).await {
        assert!(errors(&resp).is_empty(), "{resp:#}");
    }
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 1);
    assert_eq!(app.sim.calls_to(Endpoint::EnhancedList, "p1"), 1);
    assert_eq!(metric(app, "dli_graphql_upstream_coalesced_total").await, 18);

    let apart = spawn_app_with(&["--no-coalesce"], SimOptions::default()).await;
    apart.sim.set_fault("p1", Fault::delay(Duration::from_millis(100)));
    concurrently(&apart, 5, TOKEN, query).await;
    assert_eq!(apart.sim.calls_to(Endpoint::Show, "p1"), 5);
}
