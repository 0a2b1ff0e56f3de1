//! What operators see: metrics, request ids, log lines, exported spans, cache headers,
//! the embedded GraphiQL and the health check.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use dli_graphql::{
    config::LogFormat,
    observability::telemetry::{self, TelemetryOptions},
    sim::SimOptions,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::any_value,
    trace::v1::{Span, span::SpanKind},
};
use prost::Message as _;
use serde_json::{Value, json};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

use crate::helpers::{TOKEN, TestApp, spawn_app, spawn_app_with};

async fn get_text(app: &TestApp, path: &str) -> (u16, HeaderMap, String) {
    let resp = app.http.get(format!("http://{}{path}", app.addr)).send().await.expect("answer");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

/// The value of the sample whose line starts with `series` (name and labels, exactly).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_operations_and_upstream_calls_by_their_labels() {
    let app = spawn_app().await;
    let resp = app
        .query("query Two { ok: connections(projectId: \"p1\") { name } throttled: connections(projectId: \"fault-429\") { name } }")
        .await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    app.query("{ connections(projectId: ").await;
    let (status, _, _) = get_text(&app, "/no-such-page").await;
    assert_eq!(status, 404);

    let (status, headers, text) = get_text(&app, "/metrics").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap_or("").starts_with("text/plain; version=0.0.4"));
    let has = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    has(r#"dli_graphql_http_requests_total{method="POST",route="/graphql",status="200"}"#, 2.0);
    has(r#"dli_graphql_http_requests_total{method="GET",route="unmatched",status="404"}"#, 1.0);
    has(
        r#"dli_graphql_http_request_duration_seconds_count{method="POST",route="/graphql",status="200"}"#,
        2.0,
    );
    has(r#"dli_graphql_operations_total{operation="Two",type="query",outcome="field_error"}"#, 1.0);
    has(r#"dli_graphql_operations_total{operation="anonymous",type="unknown",outcome="request_error"}"#, 1.0);
    has(r#"dli_graphql_upstream_requests_total{outcome="ok",status="2xx",error_code="none"}"#, 1.0);
    has(
        r#"dli_graphql_upstream_requests_total{outcome="http_error",status="429",error_code="APIG.0308"}"#,
        1.0,
    );
    has(r#"dli_graphql_upstream_request_duration_seconds_count{outcome="ok"}"#, 1.0);
    assert!(
        text.contains(r#"dli_graphql_upstream_request_duration_seconds_bucket{outcome="ok",le="0.5"}"#),
        "upstream latency is a histogram:\n{text}"
    );
    // The scrape itself is in flight while it renders.
    has("dli_graphql_http_requests_in_flight", 1.0);
    for (name, value) in [
        ("dli_graphql_upstream_retries_total", 0.0),
        ("dli_graphql_upstream_coalesced_total", 0.0),
        ("dli_graphql_cache_hits_total", 0.0),
        ("dli_graphql_cache_misses_total", 0.0),
        ("dli_graphql_upstream_circuit_state", 0.0),
    ] {
        has(name, value);
        assert!(text.contains(&format!("# HELP {name} ")), "{name} is described:\n{text}");
    }
}

#[tokio::test]
async fn two_servers_in_one_process_keep_their_own_metrics() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    a.query("{ connections(projectId: \"p1\") { name } }").await;
    let (_, _, text_a) = get_text(&a, "/metrics").await;
    let (_, _, text_b) = get_text(&b, "/metrics").await;
    let ok = r#"dli_graphql_upstream_requests_total{outcome="ok",status="2xx",error_code="none"}"#;
    assert_eq!(sample(&text_a, ok), Some(1.0), "{text_a}");
    assert_eq!(sample(&text_b, ok), None, "{text_b}");
}

async fn post_with_request_id(app: &TestApp, request_id: Option<&str>, query: &str) -> reqwest::Response {
    let mut req =
        app.http.post(app.graphql_url()).header("X-Auth-Token", TOKEN).json(&json!({ "query": query }));
    if let Some(id) = request_id {
        req = req.header("X-Request-Id", id);
    }
    req.send().await.expect("answer")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_returned_and_sent_upstream() {
    let app = spawn_app().await;
    let query = "{ connections(projectId: \"p1\") { name } }";

    let resp = post_with_request_id(&app, Some("client-req-42"), query).await;
    assert_eq!(resp.headers()["x-request-id"], "client-req-42");
    let upstream = app.sim.requests().pop().expect("one upstream call");
    assert_eq!(upstream.header("x-request-id"), Some("client-req-42"));
    // Without span export there is no trace context to forward.
    assert_eq!(upstream.header("traceparent"), None);

    for sent in [None, Some("has spaces in it"), Some(&*"x".repeat(200))] {
        app.sim.reset();
        let resp = post_with_request_id(&app, sent, query).await;
        let id = resp.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        assert!(is_uuid(&id), "{sent:?} was replaced by a fresh id, got {id}");
        let upstream = app.sim.requests().pop().expect("one upstream call");
        assert_eq!(upstream.header("x-request-id"), Some(id.as_str()));
    }
}

/// Makes `subscriber` this thread's default until the guard drops.
///
/// An idle second dispatcher stays registered beside it: with a single registered
/// dispatcher, tracing takes a callsite's interest from whichever thread reaches it first,
/// so a parallel test without a subscriber would switch this test's spans off.
fn install(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> (tracing::subscriber::DefaultGuard, tracing::Dispatch) {
    let idle = tracing::Dispatch::new(tracing_subscriber::registry());
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (guard, idle)
}

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn lines(&self) -> Vec<String> {
        let buf = self.0.lock().expect("lock");
        String::from_utf8_lossy(&buf).lines().map(str::to_owned).collect()
    }
    fn clear(&self) {
        self.0.lock().expect("lock").clear();
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: the server's tasks run on this thread, under the subscriber
// installed here, and no other test's lines mix in.
#[tokio::test(flavor = "current_thread")]
async fn every_log_line_of_a_request_carries_its_request_id_in_json_and_text() {
    for format in [LogFormat::Json, LogFormat::Text] {
        let capture = Capture::default();
        let opts = TelemetryOptions { log_format: format, otlp_endpoint: None };
        let filter = EnvFilter::new("dli_graphql=debug,tower_http=debug");
        let (subscriber, _telemetry) =
            telemetry::subscriber(&opts, filter, capture.clone(), false).expect("subscriber");
        let _installed = install(subscriber);
        let app = spawn_app().await;
        capture.clear();

        let id = format!("log-line-test-{format:?}");
        let resp = post_with_request_id(
            &app,
            Some(&id),
            "{ a: connections(projectId: \"p1\") { name } b: connections(projectId: \"fault-500\") { name } }",
        )
        .await;
        assert_eq!(resp.status(), 200);
        let _ = resp.text().await;

        let lines = capture.lines();
        let all = lines.join("\n");
        for expected in
            ["started processing request", "upstream call ok", "upstream call failed", "request finished"]
        {
            assert!(all.contains(expected), "{format:?}: no `{expected}` line in\n{all}");
        }
        for line in &lines {
            let carries_id = match format {
                LogFormat::Json => {
                    let v: Value =
                        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    v["spans"]
                        .as_array()
                        .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id.as_str()))
                }
                LogFormat::Text => line.contains(&format!("request_id=\"{id}\"")),
            };
            assert!(carries_id, "{format:?} line without the request id: {line}");
        }
    }
}

/// A minimal OTLP/HTTP collector on loopback, on a thread and runtime of its own (the
/// exporter blocks the test's thread while it flushes).
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Collector {
    fn start() -> Self {
        let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = received.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let app = Router::new().route(
                    "/v1/traces",
                    post(move |headers: HeaderMap, body: Bytes| async move {
                        assert_eq!(headers["content-type"], "application/x-protobuf");
                        let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        sink.lock().expect("lock").push(req);
                        // An empty ExportTraceServiceResponse: everything accepted.
                        ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                    }),
                );
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).expect("collector started");
        Self { addr, received, _stop: stop }
    }

    fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().expect("lock");
        received
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    fn service_names(&self) -> Vec<String> {
        let received = self.received.lock().expect("lock");
        received
            .iter()
            .flat_map(|r| &r.resource_spans)
            .filter_map(|r| r.resource.as_ref())
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    let v = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        any_value::Value::StringValue(s) => json!(s),
        any_value::Value::IntValue(i) => json!(i),
        any_value::Value::BoolValue(b) => json!(b),
        any_value::Value::DoubleValue(d) => json!(d),
        _ => Value::Null,
    })
}

#[tokio::test(flavor = "current_thread")]
async fn spans_reach_an_otlp_collector_and_the_trace_context_reaches_dli() {
    let collector = Collector::start();
    let opts = TelemetryOptions {
        log_format: LogFormat::Json,
        otlp_endpoint: Some(format!("http://{}", collector.addr).parse().expect("url")),
    };
    let (subscriber, telemetry) =
        telemetry::subscriber(&opts, EnvFilter::new("info"), std::io::sink, false).expect("subscriber");
    let _installed = install(subscriber);
    let app = spawn_app().await;

    // The caller is part of a trace already; the service joins it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let resp = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .header("X-Request-Id", "otlp-test-1")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({ "query": "query Traced { connections(projectId: \"p1\") { name } }" }))
        .send()
        .await
        .expect("answer");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["data"]["connections"][0]["name"], "test");

    let upstream = app.sim.requests().pop().expect("one upstream call");
    let traceparent = upstream.header("traceparent").expect("W3C trace context sent to DLI").to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace_id, "DLI's call is in the caller's trace");

    // Spans are exported in batches; flush until the request span (closed last) is in.
    let mut spans = Vec::new();
    for _ in 0..50 {
        telemetry.flush();
        spans = collector.spans();
        if spans.iter().any(|s| s.name == "POST /graphql") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} span in {names:?}"))
    };
    let request = find("POST /graphql");
    let operation = find("graphql.operation");
    let call = find("upstream.list_connections");

    for s in [request, operation, call] {
        assert_eq!(hex::encode(&s.trace_id), trace_id, "{} is in the caller's trace", s.name);
    }
    assert_eq!(hex::encode(&request.parent_span_id), caller_span);
    assert_eq!(operation.parent_span_id, request.span_id, "operation is a child of the request");
    assert_eq!(call.parent_span_id, operation.span_id, "the upstream call is a child of the operation");
    assert_eq!(hex::encode(&call.span_id), parts[2], "DLI saw the upstream call's span as parent");

    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(attr(request, "request_id"), Some(json!("otlp-test-1")));
    assert_eq!(attr(request, "http.route"), Some(json!("/graphql")));
    assert_eq!(attr(request, "http.response.status_code"), Some(json!(200)));
    assert_eq!(attr(operation, "graphql.operation.name"), Some(json!("Traced")));
    assert_eq!(attr(operation, "outcome"), Some(json!("ok")));
    assert_eq!(attr(call, "project"), Some(json!("p1")));
    assert_eq!(attr(call, "http.status"), Some(json!(200)));
    assert!(collector.service_names().iter().all(|n| n == "dli-graphql"), "{:?}", collector.service_names());
    telemetry.shutdown();
}

#[tokio::test]
async fn graphql_responses_are_private_and_never_stored() {
    let app = spawn_app().await;
    let ok = post_with_request_id(&app, None, "{ connections(projectId: \"p1\") { name } }").await;
    let bad = post_with_request_id(&app, None, "{ nope }").await;
    let get = app
        .http
        .get(app.graphql_url())
        .query(&[("query", "{ connections(projectId: \"p1\") { name } }")])
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .expect("answer");
    let wrong_type = app
        .http
        .post(app.graphql_url())
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("answer");
    for (what, resp) in [("ok", ok), ("request error", bad), ("GET", get), ("415", wrong_type)] {
        assert_eq!(resp.headers()["cache-control"], "private, no-store", "{what}");
    }
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(format!("http://{}/graphql", app.addr))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    for directive in
        ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "font-src 'self' data:"]
    {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = resp.text().await.expect("html");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "{html}");
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("graphiql/") && (s.ends_with(".js") || s.ends_with(".css")))
        .collect();
    assert_eq!(assets.len(), 6, "{html}");
    for path in &assets {
        let (status, headers, body) = get_text(&app, &format!("/{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable", "{path}");
        let ct = headers["content-type"].to_str().expect("ascii");
        assert!(
            ct.starts_with(if path.ends_with(".js") { "text/javascript" } else { "text/css" }),
            "{path}: {ct}"
        );
        for cdn in
            ["fonts.googleapis.com", "fonts.gstatic.com", "//unpkg.com", "//cdn.jsdelivr.net", "//esm.sh"]
        {
            assert!(!body.contains(cdn), "{path} refers to {cdn}");
        }
        if path.ends_with("graphiql.min.js") {
            assert!(body.len() > 500_000 && body.contains("GraphiQL"), "{path} is the GraphiQL bundle");
        }
        if path.ends_with("dli-graphql.js") {
            for s in
                ["query ConnectionsDashboard", "my-project", "X-Auth-Token", "shouldPersistHeaders: false"]
            {
                assert!(body.contains(s), "the page's setup has {s}");
            }
        }
    }
    let fingerprint = assets[0].split('/').nth(1).expect("fingerprint");
    let (status, _, _) = get_text(&app, &format!("/graphiql/{fingerprint}/secrets.txt")).await;
    assert_eq!(status, 404);
    // A page from before an upgrade still gets the file, but without the long cache.
    let (status, headers, _) = get_text(&app, "/graphiql/000000000000/dli-graphql.css").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-cache");
}

#[tokio::test]
async fn the_graphiql_default_query_runs_against_the_schema() {
    let app = spawn_app().await;
    let (_, _, html) = get_text(&app, "/").await;
    let setup_path = html.split('"').find(|s| s.ends_with("/dli-graphql.js")).expect("setup script");
    let (_, _, js) = get_text(&app, &format!("/{setup_path}")).await;
    // The default query is the lines between `var defaultQuery = [` and `].join`.
    let block =
        js.split("var defaultQuery = [").nth(1).and_then(|s| s.split("].join").next()).expect("query block");
    let query: String = block
        .lines()
        .filter_map(|l| serde_json::from_str::<String>(l.trim().trim_end_matches(',')).ok())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(query.contains("query ConnectionsDashboard"), "{query}");
    let resp = app.query_vars(&query, json!({ "project": "my-project" })).await;
    assert!(resp.get("errors").is_none(), "{resp:#}");
    let rows = resp["data"]["connectionsPage"]["edges"].as_array().expect("list");
    assert!(!rows.is_empty(), "the demo's default project has connections");
    assert!(resp["data"]["connectionStats"]["byState"].as_array().is_some_and(|s| !s.is_empty()));
    // A dashboard's counts and page share the project's one list call.
    assert_eq!(app.sim.calls_for("my-project"), 1);
}

fn run_healthcheck(listen: SocketAddr) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dli-graphql"))
        .args(["--listen", &listen.to_string(), "healthcheck"])
        .env_remove("DLI_GRAPHQL_LISTEN")
        .output()
        .expect("runs")
}

#[tokio::test]
async fn the_healthcheck_subcommand_exits_0_when_healthy_and_1_otherwise() {
    let app = spawn_app_with(&[], SimOptions::default()).await;
    assert_eq!(dli_graphql::http::health::check(app.addr).await, Ok(()));
    let addr = app.addr;
    // The server answers on this runtime; the child process is waited for elsewhere.
    let healthy = tokio::task::spawn_blocking(move || run_healthcheck(addr)).await.expect("joined");
    assert_eq!(healthy.status.code(), Some(0), "{}", String::from_utf8_lossy(&healthy.stderr));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let down = tokio::task::spawn_blocking(move || run_healthcheck(closed)).await.expect("joined");
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("healthcheck"), "says why");
}
