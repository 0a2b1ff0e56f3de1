//! Every row of the error table, each next to a healthy field that keeps its data.

use std::time::{Duration, Instant};

use dli_graphql::sim::{Fault, SimOptions};
use serde_json::{Value, json};

use crate::helpers::{error_at, errors, spawn_app, spawn_app_with};

/// Queries a failing project beside a healthy one; returns the failing field's error.
async fn fail_beside_ok(app: &crate::helpers::TestApp, project: &str) -> Value {
    let resp = app
        .query(&format!(
            "{{ bad: connections(projectId: \"{project}\") {{ name }} good: connections(projectId: \"ok\") {{ name }} }}"
        ))
        .await;
    assert_eq!(resp["data"].get("bad"), Some(&Value::Null), "{resp:#}");
    assert!(
        resp["data"]["good"].as_array().is_some_and(|a| !a.is_empty()),
        "healthy field lost its data: {resp:#}"
    );
    assert_eq!(errors(&resp).len(), 1, "{resp:#}");
    let e = error_at(&resp, "bad").clone();
    assert_eq!(e["path"], json!(["bad"]));
    assert_eq!(e["extensions"]["projectId"], project);
    e
}

#[tokio::test]
async fn upstream_statuses_map_to_stable_codes() {
    let app = spawn_app().await;
    let rows: Vec<(&str, Fault, &str, u16, &str)> = vec![
        (
            "u401",
            Fault::gateway(401, "APIG.0301", "Incorrect IAM authentication information"),
            "UNAUTHENTICATED",
            401,
            "APIG.0301",
        ),
        (
            "u401b",
            Fault::gateway(401, "APIG.0307", "The token must be updated"),
            "UNAUTHENTICATED",
            401,
            "APIG.0307",
        ),
        ("u403", Fault::gateway(403, "APIG.0302", "not authorized"), "FORBIDDEN", 403, "APIG.0302"),
        ("u404", Fault::gateway(404, "APIG.0101", "API not found"), "NOT_FOUND", 404, "APIG.0101"),
        (
            "u400a",
            Fault::dli(400, "DLI.0002", "There is no project named u400a"),
            "NOT_FOUND",
            400,
            "DLI.0002",
        ),
        ("u400b", Fault::dli(400, "DLI.0023", "resource not found"), "NOT_FOUND", 400, "DLI.0023"),
        ("u400c", Fault::dli(400, "DLI.0999", "server-side system error"), "UPSTREAM_ERROR", 400, "DLI.0999"),
        ("u500", Fault::dli(500, "DLI.0999", "Internal error"), "UPSTREAM_ERROR", 500, "DLI.0999"),
        ("u502", Fault::gateway(502, "APIG.0201", "Backend unavailable"), "UPSTREAM_ERROR", 502, "APIG.0201"),
    ];
    for (project, fault, code, status, upstream_code) in rows {
        app.sim.set_fault(project, fault);
        let e = fail_beside_ok(&app, project).await;
        assert_eq!(e["extensions"]["code"], code, "{project}: {e:#}");
        assert_eq!(e["extensions"]["upstreamStatus"], status, "{project}: {e:#}");
        assert_eq!(e["extensions"]["upstreamCode"], upstream_code, "{project}: {e:#}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty() && m.len() < 300), "{e:#}");
    }
}

#[tokio::test]
async fn throttling_is_rate_limited_with_retry_after() {
    let app = spawn_app().await;
    app.sim.set_fault("busy", Fault::throttled(7));
    let e = fail_beside_ok(&app, "busy").await;
    assert_eq!(e["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(e["extensions"]["upstreamStatus"], 429);
    assert_eq!(e["extensions"]["upstreamCode"], "APIG.0308");
    assert_eq!(e["extensions"]["retryAfter"], 7);
}

#[tokio::test]
async fn is_success_false_on_200_is_an_upstream_error() {
    let app = spawn_app().await;
    app.sim.set_fault("nope", Fault::not_success("quota check failed"));
    let e = fail_beside_ok(&app, "nope").await;
    assert_eq!(e["extensions"]["code"], "UPSTREAM_ERROR");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("quota check failed")), "{e:#}");
}

#[tokio::test]
async fn garbage_bodies_are_bad_upstream_responses() {
    let app = spawn_app().await;
    for (project, body) in [
        ("g1", "{\"is_success\": true, \"connections\": [{\"name\": "),
        ("g2", "<html>502 Bad Gateway</html>"),
        ("g3", "{\"is_success\": true}"),
        ("g4", "{\"connections\": [{\"name\": 42}]}"),
        ("g5", ""),
    ] {
        app.sim.set_fault(project, Fault::body(body));
        let e = fail_beside_ok(&app, project).await;
        assert_eq!(e["extensions"]["code"], "BAD_UPSTREAM_RESPONSE", "{project}: {e:#}");
    }
}

#[tokio::test]
async fn a_silent_upstream_times_out_within_the_deadline() {
    let app = spawn_app_with(&["--upstream-timeout", "300ms"], SimOptions::default()).await;
    app.sim.set_fault("stuck", Fault::hang());
    let started = Instant::now();
    let e = fail_beside_ok(&app, "stuck").await;
    assert_eq!(e["extensions"]["code"], "UPSTREAM_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let sim = dli_graphql::sim::Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .expect("sim");
    let endpoint = format!("http://127.0.0.1:{port}");
    let config = dli_graphql::config::Config::from_args(["--listen", "127.0.0.1:0", "--endpoint", &endpoint])
        .expect("config");
    let app = crate::helpers::spawn_with_config(config, sim).await;
    let resp = app.query("{ connections(projectId: \"p1\") { name } }").await;
    assert_eq!(resp["data"], json!({ "connections": null }));
    let e = error_at(&resp, "connections");
    assert_eq!(e["extensions"]["code"], "UPSTREAM_UNAVAILABLE", "{e:#}");
    assert!(
        !e["message"].as_str().unwrap_or("").contains(&port.to_string()),
        "leaks the upstream address: {e:#}"
    );
}

#[tokio::test]
async fn no_credentials_means_unauthenticated_and_no_upstream_call() {
    let app = spawn_app().await;
    let (status, resp) =
        app.post_with_token(&json!({ "query": "{ connections(projectId: \"p1\") { name } }" }), None).await;
    assert_eq!(status, 200);
    assert_eq!(resp["data"], json!({ "connections": null }));
    assert_eq!(error_at(&resp, "connections")["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(app.sim.stats().calls, 0);
    assert!(app.sim.requests().is_empty());
}

#[tokio::test]
async fn a_failure_only_fails_the_fields_of_that_project() {
    let app = spawn_app().await;
    app.sim.set_fault("broken", Fault::dli(500, "DLI.0999", "boom"));
    let resp = app
        .query(
            r#"{ a: connections(projectId: "broken") { name }
                 b: connections(projectId: "broken", state: ACTIVE) { name }
                 c: connections(projectId: "p1") { name }
                 d: connections(projectId: "p2", state: ACTIVE) { name } }"#,
        )
        .await;
    assert_eq!(resp["data"].get("a"), Some(&Value::Null));
    assert_eq!(resp["data"].get("b"), Some(&Value::Null));
    assert!(resp["data"]["c"].is_array() && resp["data"]["d"].is_array(), "{resp:#}");
    assert_eq!(error_at(&resp, "a")["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(error_at(&resp, "b")["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(errors(&resp).len(), 2);
    assert_eq!(app.sim.calls_for("broken"), 1);
}
