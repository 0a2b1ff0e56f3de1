//! Server-level settings: CORS, introspection off, graceful shutdown with a drain deadline.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use dli_graphql::{
    app::App,
    config::Config,
    sim::{Fault, SimOptions, Simulator},
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{TOKEN, spawn_app, spawn_app_with};

const ORIGIN: &str = "https://console.example.com";

/// The real binary, listening on a random port; returns the child, its address and its log
/// lines (stderr) as they come.
pub fn run_binary(args: &[&str], rust_log: &str) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dli-graphql"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let (addr_tx, addr_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("GraphQL at") {
                let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).map(str::to_owned);
                let _ = addr_tx.send(addr.unwrap_or_default());
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(20)).expect("server logs its address");
    (child, addr, rx)
}

async fn preflight(app: &crate::helpers::TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.graphql_url())
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, x-auth-token")
        .send()
        .await
        .expect("answer")
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    let resp = preflight(&app, ORIGIN).await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = app
        .http
        .post(app.graphql_url())
        .header("Origin", ORIGIN)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("answer");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_allows_the_named_origins_only() {
    let app = spawn_app_with(
        &["--cors-origin", ORIGIN, "--cors-origin", "http://localhost:3000"],
        SimOptions::default(),
    )
    .await;
    let resp = preflight(&app, ORIGIN).await;
    assert!(resp.status().is_success());
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
    let allowed = resp.headers()["access-control-allow-headers"].to_str().unwrap_or("").to_ascii_lowercase();
    assert!(allowed.contains("x-auth-token") && allowed.contains("content-type"), "{allowed}");
    let resp = preflight(&app, "http://localhost:3000").await;
    assert_eq!(resp.headers()["access-control-allow-origin"], "http://localhost:3000");
    let resp = preflight(&app, "https://evil.example.net").await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = app
        .http
        .post(app.graphql_url())
        .header("Origin", ORIGIN)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.headers()["access-control-allow-origin"], ORIGIN);
}

#[test]
fn a_malformed_cors_origin_is_a_startup_error() {
    for bad in ["*", "https://x.example.com/path", "x.example.com", "https://x.example.com/"] {
        let c = Config::from_args(["--demo", "--cors-origin", bad]).expect("parses");
        assert!(c.cors_origins().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn disable_introspection_turns_off_schema_queries_and_suggestions() {
    let open = spawn_app().await;
    let closed = spawn_app_with(&["--disable-introspection"], SimOptions::default()).await;
    let resp = open.query("{ __schema { queryType { name } } }").await;
    assert_eq!(resp["data"]["__schema"]["queryType"]["name"], "Query");
    for q in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Connection\") { name } }",
        "query { ...F } fragment F on Query { __schema { queryType { name } } }",
    ] {
        let resp = closed.query(q).await;
        assert!(resp.get("data").is_none_or(Value::is_null), "{resp:#}");
        assert_eq!(resp["errors"][0]["message"], "introspection is disabled on this server", "{resp:#}");
        assert_eq!(resp["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    }
    // `__typename` is not introspection of the schema.
    assert_eq!(closed.query("{ __typename }").await["data"]["__typename"], "Query");

    let typo = "{ connectionz(projectId: \"p1\") { name } }";
    let hint = |resp: &Value| resp["errors"][0]["message"].as_str().unwrap_or("").contains("Did you mean");
    assert!(hint(&open.query(typo).await), "suggestions are on by default");
    let resp = closed.query(typo).await;
    assert!(!resp["errors"].as_array().is_none_or(Vec::is_empty), "{resp:#}");
    assert!(!hint(&resp), "{resp:#}");
    // Ordinary queries are unaffected.
    let resp = closed.query("{ connections(projectId: \"p1\") { name } }").await;
    assert_eq!(resp["data"]["connections"][0]["name"], "test");
}

/// Starts the app from `args` beside `sim`; returns its URL, the shutdown trigger and the
/// task that resolves when `serve` returns.
async fn start(
    sim: &Simulator,
    args: &[&str],
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let endpoint = sim.url();
    let mut all = vec!["--listen", "127.0.0.1:0", "--endpoint", &endpoint, "--verify-plans"];
    all.extend_from_slice(args);
    let app = App::build(&Config::from_args(all).expect("config")).await.expect("builds");
    let url = format!("http://{}/graphql", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    (url, stop, served)
}

fn slow_request(url: &str) -> tokio::task::JoinHandle<Result<Value, reqwest::Error>> {
    let req = reqwest::Client::new()
        .post(url)
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": "{ connections(projectId: \"slow\") { name } }" }));
    tokio::spawn(async move { req.send().await?.json::<Value>().await })
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    sim.set_fault("slow", Fault::delay(Duration::from_millis(500)));
    let (url, stop, served) = start(&sim, &["--shutdown-timeout", "5s"]).await;
    let in_flight = slow_request(&url);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = stop.send(());
    let resp = in_flight.await.expect("task").expect("the in-flight request is answered");
    assert_eq!(resp["data"]["connections"][0]["name"], "test", "{resp:#}");
    let result = tokio::time::timeout(Duration::from_secs(3), served).await.expect("server stops");
    assert!(result.expect("task").is_ok());
    // New connections are refused once it has stopped.
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
}

#[tokio::test]
async fn shutdown_stops_waiting_at_the_drain_deadline() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    sim.set_fault("slow", Fault::hang());
    let (url, stop, served) =
        start(&sim, &["--shutdown-timeout", "300ms", "--upstream-timeout", "30s"]).await;
    let in_flight = slow_request(&url);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(3), served).await.expect("server stops");
    assert!(result.expect("task").is_ok());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(280) && waited < Duration::from_millis(1500), "{waited:?}");
    in_flight.abort();
}

#[tokio::test]
async fn the_binary_drains_and_exits_0_on_sigterm() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    sim.set_fault("slow", Fault::delay(Duration::from_millis(700)));
    let (mut child, addr, _logs) =
        run_binary(&["--endpoint", &sim.url(), "--shutdown-timeout", "5s"], "info");
    let in_flight = slow_request(&format!("http://{addr}/graphql"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let resp = in_flight.await.expect("task").expect("the in-flight request is answered");
    assert_eq!(resp["data"]["connections"][0]["name"], "test", "{resp:#}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the process did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}
