//! One upstream call per distinct project per request; distinct projects concurrently.

use std::time::{Duration, Instant};

use dli_graphql::sim::Fault;

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn ten_aliases_on_one_project_make_one_upstream_call() {
    let app = spawn_app().await;
    let filters = [
        "",
        "state: ACTIVE",
        "state: CREATING",
        "state: FAILED",
        "state: DELETED",
        "service: \"DWS\"",
        "service: \"RDS\"",
        "state: ACTIVE, service: \"CloudTable\"",
        "state: UNKNOWN",
        "service: \"css\"",
    ];
    let fields: String = filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let args = if f.is_empty() { String::new() } else { format!(", {f}") };
            format!("a{i}: connections(projectId: \"p1\"{args}) {{ connectionId name }}\n")
        })
        .collect();
    let resp = app.query(&format!("{{ {fields} }}")).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"].as_object().map(|o| o.len()), Some(10));
    assert_eq!(app.sim.calls_for("p1"), 1);
    assert_eq!(app.sim.stats().calls, 1);
}

#[tokio::test]
async fn five_projects_are_fetched_concurrently_one_call_each() {
    let app = spawn_app().await;
    let projects = ["p1", "p2", "p3", "p4", "p5"];
    for p in projects {
        app.sim.set_fault(p, Fault::delay(Duration::from_millis(300)));
    }
    let fields: String = projects
        .iter()
        .map(|p| format!("{p}: connections(projectId: \"{p}\") {{ connectionId }} {p}b: connections(projectId: \"{p}\", state: ACTIVE) {{ name }}\n"))
        .collect();
    let started = Instant::now();
    let resp = app.query(&format!("{{ {fields} }}")).await;
    let elapsed = started.elapsed();
    assert!(errors(&resp).is_empty(), "{resp:#}");
    for p in projects {
        assert_eq!(app.sim.calls_for(p), 1, "{p}");
    }
    assert_eq!(app.sim.stats().calls, 5);
    // Sequential calls would take at least 1 500 ms; concurrent ones take ~330 ms on an idle
    // machine. The bound leaves room for a loaded CI machine; the arrival spread below is
    // the sharper proof of overlap (every call holds the simulator for 300 ms).
    assert!(elapsed < Duration::from_millis(900), "took {elapsed:?}");
    let arrivals: Vec<u64> = app.sim.requests().iter().map(|r| r.at_ms).collect();
    let spread = arrivals.iter().max().unwrap_or(&0) - arrivals.iter().min().unwrap_or(&0);
    assert!(spread < 200, "calls did not start together: {arrivals:?}");
}

#[tokio::test]
async fn a_batched_http_request_shares_one_call_per_project() {
    let app = spawn_app().await;
    let body = serde_json::json!([
        { "query": "{ connections(projectId: \"p1\") { name } }" },
        { "query": "{ x: connections(projectId: \"p1\", state: ACTIVE) { name } }" }
    ]);
    let (status, resp) = app.post(&body).await;
    assert_eq!(status, 200);
    assert!(resp[0]["data"]["connections"].is_array() && resp[1]["data"]["x"].is_array(), "{resp:#}");
    assert_eq!(app.sim.calls_for("p1"), 1);
}

#[tokio::test]
async fn separate_requests_do_not_share_data() {
    let app = spawn_app().await;
    app.query("{ connections(projectId: \"p1\") { name } }").await;
    app.query("{ connections(projectId: \"p1\") { name } }").await;
    assert_eq!(app.sim.calls_for("p1"), 2);
}
