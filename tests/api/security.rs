//! Hostile project ids, credential forwarding, and secrets kept out of logs.

use dli_graphql::sim::{Fault, SimOptions, Simulator};
use serde_json::json;

use crate::helpers::{TOKEN, error_at, spawn_app, trace_logs};

#[tokio::test]
async fn hostile_project_ids_are_rejected_before_any_upstream_request() {
    let app = spawn_app().await;
    let long = "a".repeat(65);
    let hostile =
        ["../x", "a/b", "a?b", "%2e%2e", "", &long, "a\nb", "..", "a b", "a#b", "p1/../p2", "é", "a\u{0}b"];
    for id in hostile {
        let resp = app
            .query_vars("query($p: ID!) { connections(projectId: $p) { name } }", json!({ "p": id }))
            .await;
        assert_eq!(resp["data"], json!({ "connections": null }), "{id:?}: {resp:#}");
        let e = error_at(&resp, "connections");
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{id:?}: {e:#}");
    }
    assert!(app.sim.requests().is_empty(), "hostile ids reached the upstream: {:?}", app.sim.requests());
}

#[tokio::test]
async fn the_project_id_is_exactly_one_path_segment() {
    let app = spawn_app().await;
    app.query("{ connections(projectId: \"0123456789abcdef0123456789ABCDEF_-\") { name } }").await;
    let reqs = app.sim.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v2.0/0123456789abcdef0123456789ABCDEF_-/datasource-connection");
    assert_eq!(reqs[0].query, None);
    assert_eq!(reqs[0].method, "GET");
}

#[tokio::test]
async fn the_callers_token_is_forwarded_as_x_auth_token() {
    let app = spawn_app().await;
    let (_, resp) = app
        .post_with_token(
            &json!({ "query": "{ connections(projectId: \"p1\") { name } }" }),
            Some("caller-own-token-42"),
        )
        .await;
    assert!(resp["data"]["connections"].is_array(), "{resp:#}");
    let reqs = app.sim.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("x-auth-token"), Some("caller-own-token-42"));
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn tokens_never_reach_error_messages() {
    let app = spawn_app().await;
    app.sim.set_fault("denied", Fault::gateway(401, "APIG.0301", "Incorrect IAM authentication information"));
    let body = json!({ "query": "{ connections(projectId: \"denied\") { name } }" });
    let (_, resp) = app.post_with_token(&body, Some(TOKEN)).await;
    assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "UNAUTHENTICATED");
    assert!(!resp.to_string().contains(TOKEN));
}

/// Runs the real binary with `RUST_LOG=trace`, sends requests with a secret token
/// (successes, upstream errors, timeouts), and scans everything it logged.
#[tokio::test]
async fn no_token_appears_in_trace_logs() {
    let secret = "SECRET-token-7f3a9d1e-do-not-log";
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    sim.set_fault("err", Fault::gateway(401, "APIG.0301", "Incorrect IAM authentication information"));
    sim.set_fault("slow", Fault::hang());
    let url = sim.url();
    let exercise = |addr: String| async move {
        let http = reqwest::Client::new();
        for q in [
            "{ connections(projectId: \"p1\") { name } }",
            "{ connections(projectId: \"err\") { name } }",
            "{ connections(projectId: \"slow\") { name } }",
            "{ nope }",
        ] {
            let resp = http
                .post(format!("http://{addr}/graphql"))
                .header("X-Auth-Token", secret)
                .header("Authorization", format!("Bearer {secret}"))
                .json(&json!({ "query": q }))
                .send()
                .await
                .expect("answer");
            assert!(resp.status().is_success() || resp.status().is_client_error());
        }
    };
    let all = trace_logs(&["--endpoint", &url, "--upstream-timeout", "300ms"], &[], exercise).await;
    // The logs must be substantial for the check to mean anything.
    assert!(all.contains("upstream.list_connections"), "no upstream spans logged:\n{all}");
    assert!(all.contains("TRACE") || all.contains("DEBUG"), "trace level not active");
    assert!(!all.contains(secret), "a token leaked into the logs");
    assert!(!all.contains("do-not-log"), "part of a token leaked into the logs");
}
