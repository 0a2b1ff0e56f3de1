//! Upstream resilience against the simulator: retries (the simulator's request log shows
//! every attempt), one deadline for all attempts, the concurrency cap, the circuit breaker.

use std::time::{Duration, Instant};

use dli_graphql::sim::{Fault, SimOptions};
use serde_json::Value;

use crate::helpers::{TestApp, error_at, spawn_app_with};

/// Fast backoff so retry tests take milliseconds.
const FAST: &[&str] = &["--upstream-retry-base", "10ms"];

async fn app_with(extra: &[&str]) -> TestApp {
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    spawn_app_with(&args, SimOptions::default()).await
}

async fn list(app: &TestApp, project: &str) -> Value {
    app.query(&format!("{{ connections(projectId: \"{project}\") {{ name }} }}")).await
}

fn code(resp: &Value) -> String {
    error_at(resp, "connections")["extensions"]["code"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_flaky_upstream_is_retried_until_it_answers() {
    let app = app_with(&[]).await;
    app.sim.set_fault_times("flaky", Fault::gateway(503, "APIG.0203", "Backend unavailable"), 2);
    app.sim.set_fault_times("gateway", Fault::gateway(502, "APIG.0201", "Bad gateway"), 1);
    app.sim.set_fault_times("late", Fault::gateway(504, "APIG.0202", "Backend timeout"), 1);
    for (project, attempts) in [("flaky", 3), ("gateway", 2), ("late", 2)] {
        let resp = list(&app, project).await;
        assert_eq!(resp["data"]["connections"][0]["name"], "test", "{project}: {resp:#}");
        assert_eq!(app.sim.calls_for(project), attempts, "{project}");
    }
    // The retries are counted in the metrics: 2 + 1 + 1.
    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.lines().any(|l| l == "dli_graphql_upstream_retries_total 4"), "{text}");
    // Every attempt is a full, authenticated request for the same path.
    let flaky: Vec<_> = app.sim.requests().into_iter().filter(|r| r.path.contains("/flaky/")).collect();
    assert!(flaky.iter().all(|r| r.method == "GET" && r.header("x-auth-token").is_some()));
}

#[tokio::test]
async fn retries_stop_after_the_maximum_attempts_with_the_last_error() {
    let app = app_with(&[]).await;
    app.sim.set_fault("down", Fault::gateway(502, "APIG.0201", "Bad gateway"));
    let resp = list(&app, "down").await;
    assert_eq!(code(&resp), "UPSTREAM_ERROR");
    assert_eq!(error_at(&resp, "connections")["extensions"]["upstreamStatus"], 502);
    assert_eq!(app.sim.calls_for("down"), 3);
    let once = app_with(&["--upstream-max-attempts", "1"]).await;
    once.sim.set_fault("down", Fault::gateway(502, "APIG.0201", "Bad gateway"));
    list(&once, "down").await;
    assert_eq!(once.sim.calls_for("down"), 1);
}

#[tokio::test]
async fn other_4xx_and_500_are_never_retried() {
    let app = app_with(&[]).await;
    let cases = [
        ("e400", Fault::dli(400, "DLI.0999", "server-side error reported as 400")),
        ("e401", Fault::gateway(401, "APIG.0301", "Incorrect IAM authentication information")),
        ("e403", Fault::gateway(403, "APIG.0302", "not authorized")),
        ("e404", Fault::dli(400, "DLI.0002", "no such project")),
        ("e500", Fault::dli(500, "DLI.0999", "Internal error")),
        ("garbage", Fault::body("{\"connections\": [")),
    ];
    for (project, fault) in cases {
        app.sim.set_fault(project, fault);
        let resp = list(&app, project).await;
        assert!(resp["data"]["connections"].is_null(), "{project}: {resp:#}");
        assert_eq!(app.sim.calls_for(project), 1, "{project} was retried");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let app = app_with(&["--upstream-retry-after-cap", "1s"]).await;
    app.sim.set_fault_times("throttled", Fault::throttled(1), 1);
    let started = Instant::now();
    let resp = list(&app, "throttled").await;
    assert_eq!(resp["data"]["connections"][0]["name"], "test", "{resp:#}");
    let at: Vec<u64> = app.sim.requests().iter().map(|r| r.at_ms).collect();
    assert_eq!(at.len(), 2);
    assert!(at[1] - at[0] >= 990, "retried after {} ms, before Retry-After", at[1] - at[0]);
    assert!(started.elapsed() < Duration::from_secs(3));
    // Asking for longer than the cap: not retried, the client sees the wait.
    app.sim.set_fault("busy", Fault::throttled(7));
    let resp = list(&app, "busy").await;
    assert_eq!(code(&resp), "RATE_LIMITED");
    assert_eq!(error_at(&resp, "connections")["extensions"]["retryAfter"], 7);
    assert_eq!(app.sim.calls_for("busy"), 1);
}

#[tokio::test]
async fn all_attempts_fit_inside_one_upstream_deadline() {
    let app = app_with(&["--upstream-timeout", "700ms"]).await;
    // Each attempt takes 300 ms and fails retryably: three would need 900 ms.
    app.sim.set_fault("slowfail", Fault { delay_ms: 300, ..Fault::gateway(503, "APIG.0203", "unavailable") });
    let started = Instant::now();
    let resp = list(&app, "slowfail").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(700 + 250), "took {elapsed:?}");
    assert!(["UPSTREAM_TIMEOUT", "UPSTREAM_ERROR"].contains(&code(&resp).as_str()), "{resp:#}");
    assert!((2..=3).contains(&app.sim.calls_for("slowfail")), "{}", app.sim.calls_for("slowfail"));
}

#[tokio::test]
async fn the_concurrency_cap_queues_calls_within_their_deadline() {
    let app = app_with(&["--upstream-concurrency", "1", "--upstream-timeout", "1s"]).await;
    let projects = ["q1", "q2", "q3", "q4"];
    for p in projects {
        app.sim.set_fault(p, Fault::delay(Duration::from_millis(300)));
    }
    let fields: Vec<String> =
        projects.iter().map(|p| format!("{p}: connections(projectId: \"{p}\") {{ name }}")).collect();
    let resp = app.query(&format!("{{ {} }}", fields.join(" "))).await;
    let ok = projects.iter().filter(|p| resp["data"][**p].is_array()).count();
    let timed_out: Vec<_> = resp["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["extensions"]["code"] == "UPSTREAM_TIMEOUT")
        .collect();
    assert!(ok >= 2, "{resp:#}");
    assert!(!timed_out.is_empty(), "the fourth call should not fit in its deadline: {resp:#}");
    // One at a time: arrivals are at least one answer (300 ms) apart.
    let mut at: Vec<u64> = app.sim.requests().iter().map(|r| r.at_ms).collect();
    at.sort_unstable();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 280), "overlapping upstream calls: {at:?}");
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_after_a_good_probe() {
    let app = app_with(&[
        "--breaker-threshold",
        "2",
        "--breaker-cooldown",
        "500ms",
        "--upstream-max-attempts",
        "1",
    ])
    .await;
    app.sim.set_fault("down", Fault::dli(500, "DLI.0999", "Internal error"));
    for _ in 0..2 {
        assert_eq!(code(&list(&app, "down").await), "UPSTREAM_ERROR");
    }
    // Open: even a healthy project fails fast, and nothing is sent.
    let started = Instant::now();
    let resp = list(&app, "ok").await;
    assert_eq!(code(&resp), "UPSTREAM_UNAVAILABLE", "{resp:#}");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(app.sim.calls_for("ok"), 0);
    let metrics = app.http.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.lines().any(|l| l == "dli_graphql_upstream_circuit_state 2"), "{text}");
    // After the cool-down one probe goes; it fails, so the circuit opens again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(code(&list(&app, "down").await), "UPSTREAM_ERROR");
    assert_eq!(app.sim.calls_for("down"), 3);
    assert_eq!(code(&list(&app, "ok").await), "UPSTREAM_UNAVAILABLE");
    assert_eq!(app.sim.calls_for("ok"), 0);
    // Next cool-down: a good probe closes it and traffic flows again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..3 {
        let resp = list(&app, "ok").await;
        assert_eq!(resp["data"]["connections"][0]["name"], "test", "{resp:#}");
    }
    assert_eq!(app.sim.calls_for("ok"), 3);
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let app = app_with(&["--breaker-threshold", "2", "--upstream-max-attempts", "1"]).await;
    app.sim.set_fault("denied", Fault::gateway(403, "APIG.0302", "not authorized"));
    app.sim.set_fault("throttled", Fault::throttled(30));
    for _ in 0..3 {
        assert_eq!(code(&list(&app, "denied").await), "FORBIDDEN");
        assert_eq!(code(&list(&app, "throttled").await), "RATE_LIMITED");
    }
    let resp = list(&app, "ok").await;
    assert!(resp["data"]["connections"].is_array(), "{resp:#}");
}

/// Runs the binary at `RUST_LOG=trace` through retries and every breaker state with a secret
/// token: the state changes are in the log, the token is not.
#[tokio::test]
async fn retries_and_breaker_states_are_logged_without_credentials() {
    let secret = "SECRET-token-3c1d-never-log";
    let sim = dli_graphql::sim::Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .expect("sim");
    sim.set_fault("down", Fault::gateway(503, "APIG.0203", "unavailable"));
    let (mut child, addr, logs) = crate::server::run_binary(
        &[
            "--endpoint",
            &sim.url(),
            "--upstream-retry-base",
            "10ms",
            "--breaker-threshold",
            "3",
            "--breaker-cooldown",
            "300ms",
        ],
        "trace",
    );
    let http = reqwest::Client::new();
    let ask = |project: &'static str| {
        http.post(format!("http://{addr}/graphql"))
            .header("X-Auth-Token", secret)
            .json(&serde_json::json!({ "query": format!("{{ connections(projectId: \"{project}\") {{ name }} }}") }))
            .send()
    };
    ask("down").await.expect("answer");
    ask("ok").await.expect("answer");
    tokio::time::sleep(Duration::from_millis(400)).await;
    ask("ok").await.expect("answer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let mut lines = Vec::new();
    while let Ok(line) = logs.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    let all = lines.join("\n");
    for expected in [
        "retrying upstream call",
        "circuit breaker opened",
        "circuit breaker half-open",
        "circuit breaker closed",
    ] {
        assert!(all.contains(expected), "no {expected:?} in the log:\n{all}");
    }
    assert!(all.contains("TRACE") || all.contains("DEBUG"), "trace level not active");
    assert!(!all.contains(secret) && !all.contains("never-log"), "a token leaked into the logs");
}

#[tokio::test]
async fn an_upstream_body_over_the_size_cap_is_refused_and_not_retried() {
    let sim_opts = SimOptions { connections_per_project: 200, ..SimOptions::default() };
    let app = spawn_app_with(&["--upstream-max-body", "4096"], sim_opts).await;
    let resp = list(&app, "big").await;
    assert_eq!(code(&resp), "BAD_UPSTREAM_RESPONSE", "{resp:#}");
    assert_eq!(app.sim.calls_for("big"), 1);
    // A small body from the same upstream is fine.
    app.sim.set_fault("small", Fault::body(r#"{"connections":[{"name":"only"}]}"#));
    let resp = list(&app, "small").await;
    assert_eq!(resp["data"]["connections"][0]["name"], "only", "{resp:#}");
}
