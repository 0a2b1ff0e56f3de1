//! The front door, over real sockets: header and idle timeouts, the connection cap, load
//! shedding and per-caller rate limits. Timeouts are set small by flag so the suite stays fast.

use std::time::{Duration, Instant};

use dli_graphql::sim::{Fault, SimOptions};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::{TOKEN, TestApp, spawn_app_with};

/// The value of a series (`name` or `name{labels}`) in the server's `/metrics`, 0 when absent.
pub async fn metric(app: &TestApp, series: &str) -> u64 {
    metric_via(&app.http, app, series).await
}

/// [`metric`], asked over `client`'s connections.
async fn metric_via(client: &reqwest::Client, app: &TestApp, series: &str) -> u64 {
    let text = client.get(format!("http://{}/metrics", app.addr)).send().await.expect("metrics");
    let text = text.text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits up to `within` for the server to close `stream`; true when it did (EOF or reset).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // A response (e.g. to a request sent earlier): keep reading.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

const PROJECT_QUERY: &str = "{ connections(projectId: \"p1\") { name } }";

async fn query_status(app: &TestApp, client: &reqwest::Client, project: &str) -> (u16, Value) {
    let q = format!("{{ connections(projectId: \"{project}\") {{ name }} }}");
    let resp = client
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": q }))
        .send()
        .await
        .expect("answer");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_read_timeout() {
    let app = spawn_app_with(&["--header-read-timeout", "300ms"], SimOptions::default()).await;
    let mut silent = TcpStream::connect(app.addr).await.expect("connects");
    let started = Instant::now();
    assert!(closed_by_server(&mut silent, Duration::from_secs(5)).await, "a silent connection stays open");
    assert!(started.elapsed() >= Duration::from_millis(250), "closed before the timeout");
    assert_eq!(metric(&app, "dli_graphql_connections_timed_out_total{reason=\"header_read\"}").await, 1);
}

#[tokio::test]
async fn request_headers_sent_a_line_at_a_time_are_cut_at_the_header_read_timeout() {
    let app = spawn_app_with(&["--header-read-timeout", "300ms"], SimOptions::default()).await;
    let stream = TcpStream::connect(app.addr).await.expect("connects");
    let (mut read, mut write) = stream.into_split();
    // Slowloris: a header line every 100 ms, never the blank line that ends them.
    let trickle = tokio::spawn(async move {
        if write.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.is_err() {
            return;
        }
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 256];
    let cut = tokio::time::timeout(Duration::from_secs(4), read.read(&mut buf)).await;
    assert!(matches!(cut, Ok(Ok(0) | Err(_))), "still open after 4 s: {cut:?}");
    trickle.abort();
    // The header timeout does not touch normal requests.
    let resp = app.http.get(format!("http://{}/healthz", app.addr)).send().await.expect("answer");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_slow_request_is_not() {
    let app =
        spawn_app_with(&["--idle-timeout", "300ms", "--header-read-timeout", "5s"], SimOptions::default())
            .await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connects");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("writes");
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf).await.expect("reads");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(closed_by_server(&mut conn, Duration::from_secs(5)).await, "the idle connection stays open");
    assert_eq!(metric(&app, "dli_graphql_connections_timed_out_total{reason=\"idle\"}").await, 1);
    // A request waiting on a slow upstream is not idle, however quiet its socket.
    app.sim.set_fault("slow", Fault::delay(Duration::from_millis(900)));
    let (status, body) = query_status(&app, &app.http, "slow").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["connections"][0]["name"], "test", "{body:#}");
}

#[tokio::test]
async fn over_max_connections_new_sockets_are_closed_while_open_clients_keep_being_served() {
    let app =
        spawn_app_with(&["--max-connections", "4", "--header-read-timeout", "30s"], SimOptions::default())
            .await;
    // A normal client with one pooled connection, opened before the flood.
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    assert_eq!(query_status(&app, &client, "p1").await.0, 200);
    // Three idle sockets fill the cap.
    let mut holders = Vec::new();
    for _ in 0..3 {
        holders.push(TcpStream::connect(app.addr).await.expect("connects"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The flood: every further socket is closed at once.
    for _ in 0..20 {
        let mut extra = TcpStream::connect(app.addr).await.expect("the kernel accepts");
        assert!(
            closed_by_server(&mut extra, Duration::from_secs(2)).await,
            "a socket over the cap stays open"
        );
    }
    for _ in 0..5 {
        let (status, body) = query_status(&app, &client, "p1").await;
        assert_eq!(status, 200, "{body:#}");
        assert_eq!(body["data"]["connections"][0]["name"], "test", "{body:#}");
    }
    // Asked over the client's own connection: a new one would be refused too.
    assert_eq!(metric_via(&client, &app, "dli_graphql_connections_refused_total").await, 20);
    assert_eq!(metric_via(&client, &app, "dli_graphql_connections_open").await, 4);
    assert_eq!(app.sim.calls_for("p1"), 6, "every upstream call went through");
    drop(holders);
}

#[tokio::test]
async fn a_burst_beyond_max_concurrent_requests_is_shed_with_503_but_health_and_metrics_are_not() {
    let app =
        spawn_app_with(&["--max-concurrent-requests", "1", "--queue-timeout", "50ms"], SimOptions::default())
            .await;
    app.sim.set_fault("slow", Fault::delay(Duration::from_millis(1500)));
    let slow = {
        let client = app.http.clone();
        let url = app.graphql_url();
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Auth-Token", TOKEN)
                .json(&json!({ "query": "{ connections(projectId: \"slow\") { name } }" }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": PROJECT_QUERY }))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "OVERLOADED", "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 1, "{body:#}");
    let health = app.http.get(format!("http://{}/healthz", app.addr)).send().await.expect("answer");
    assert_eq!(health.status(), 200);
    assert_eq!(metric(&app, "dli_graphql_requests_shed_total").await, 1);
    assert_eq!(slow.await.expect("task").expect("answer"), 200);
    // The slot is free again.
    assert_eq!(query_status(&app, &app.http, "p1").await.0, 200);
}

async fn with_key(app: &TestApp, key: &str, project: &str) -> reqwest::Response {
    let q = format!("{{ connections(projectId: \"{project}\") {{ name }} }}");
    app.http
        .post(app.graphql_url())
        .bearer_auth(key)
        .json(&json!({ "query": q }))
        .send()
        .await
        .expect("answer")
}

#[tokio::test]
async fn each_api_key_has_its_own_rate_limit_and_a_refusal_calls_nothing_upstream() {
    let app = spawn_app_with(
        &[
            "--auth-token",
            "svc-token-8c1d",
            "--api-keys",
            "key-a,key-b",
            "--client-rate",
            "1/min",
            "--client-burst",
            "2",
        ],
        SimOptions::default(),
    )
    .await;
    assert_eq!(with_key(&app, "key-a", "rl-a").await.status(), 200);
    assert_eq!(with_key(&app, "key-a", "rl-a").await.status(), 200);
    let refused = with_key(&app, "key-a", "rl-a").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{body:#}");
    assert_eq!(app.sim.calls_for("rl-a"), 2, "the refused request reached DLI");
    // The other key is unaffected.
    assert_eq!(with_key(&app, "key-b", "rl-b").await.status(), 200);
    assert_eq!(with_key(&app, "key-b", "rl-b").await.status(), 200);
    assert_eq!(metric(&app, "dli_graphql_requests_rate_limited_total").await, 1);
    // An invalid key is refused as before (401), and does not get a budget of its own.
    assert_eq!(with_key(&app, "key-x", "rl-x").await.status(), 401);
}

async fn forwarded_for(app: &TestApp, xff: &str) -> u16 {
    app.http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .header("X-Forwarded-For", xff)
        .json(&json!({ "query": PROJECT_QUERY }))
        .send()
        .await
        .expect("answer")
        .status()
        .as_u16()
}

#[tokio::test]
async fn x_forwarded_for_tells_callers_apart_only_behind_a_trusted_proxy() {
    let direct = spawn_app_with(&["--client-rate", "1/min"], SimOptions::default()).await;
    assert_eq!(forwarded_for(&direct, "198.51.100.1").await, 200);
    // Not believed: the same peer address, whatever the header says.
    assert_eq!(forwarded_for(&direct, "198.51.100.2").await, 429);

    let proxied = spawn_app_with(
        &["--client-rate", "1/min", "--trusted-proxies", "127.0.0.1/32"],
        SimOptions::default(),
    )
    .await;
    assert_eq!(forwarded_for(&proxied, "198.51.100.1").await, 200);
    assert_eq!(forwarded_for(&proxied, "198.51.100.1").await, 429);
    assert_eq!(forwarded_for(&proxied, "198.51.100.2").await, 200);
    // A spoofed entry to the left of the real client changes nothing.
    assert_eq!(forwarded_for(&proxied, "203.0.113.9, 198.51.100.2").await, 429);
}

#[tokio::test]
async fn an_http2_rapid_reset_flood_ends_that_connection_while_other_clients_are_served() {
    let app = spawn_app_with(&[], SimOptions::default()).await;
    let tcp = TcpStream::connect(app.addr).await.expect("connects");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 by prior knowledge");
    let driver = tokio::spawn(connection);
    // Open a stream and reset it at once, over and over (CVE-2023-44487). Unchecked, the
    // connection would stay open and every stream would run; h2 ends it instead.
    let mut reset = 0;
    for _ in 0..5_000 {
        let Ok(mut ready) = client.ready().await else { break };
        let req = http::Request::get(format!("http://{}/graphql?query=%7B__typename%7D", app.addr))
            .header("x-auth-token", TOKEN)
            .body(())
            .expect("request");
        let Ok((_answer, mut stream)) = ready.send_request(req, true) else { break };
        stream.send_reset(h2::Reason::CANCEL);
        reset += 1;
        client = ready;
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
    let error = match ended {
        Ok(Ok(Err(e))) => e,
        other => panic!("the flooding connection was not ended after {reset} resets: {other:?}"),
    };
    // A GOAWAY (ENHANCE_YOUR_CALM), or the socket closed under the client's next write.
    let calmed = error.is_go_away() && error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
    assert!(calmed || error.is_io(), "{error:?}");
    let (status, body) = query_status(&app, &app.http, "p1").await;
    assert_eq!(status, 200, "{body:#}");
}

#[tokio::test]
async fn the_default_connection_cap_comes_from_the_descriptor_limit_and_is_logged() {
    let logs = crate::helpers::trace_logs(&["--demo"], &[], |_| async {}).await;
    let line = logs
        .lines()
        .find(|l| l.contains("client connection cap derived from the file-descriptor limit"))
        .unwrap_or_else(|| panic!("no connection cap in the log:\n{logs}"));
    let field = |name: &str| -> u64 {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (cap, limit) = (field("max_connections"), field("fd_limit"));
    assert!(cap >= 16 && (limit == 0 || cap < limit), "{line}");
}
