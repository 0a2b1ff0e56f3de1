//! Several replicas, one DLI quota: three servers in this process, one simulator and a
//! `redis-server` of the test's own, all on loopback. Shows one DLI call per key for the
//! whole fleet, the fleet-wide call budget, the fallback when Redis dies and the recovery,
//! that identities never share entries, and that a dead lease holder only delays the others.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use dli_graphql::project_id::ProjectId;
use dli_graphql::{
    app::App,
    config::Config,
    sim::{Fault, SimOptions, Simulator},
    upstream::{
        Credential,
        shared_state::{FetchKey, fetch_keys},
    },
};
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::helpers::{RedisServer, TOKEN, errors};

const OTHER_TOKEN: &str = "other-token-93c2aa01";

/// One fleet test at a time: each runs three servers and many clients, and the machine's
/// cores are shared with the rest of the suite.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Redis commands may take this long here (the default is 50 ms): the suite runs in parallel
/// on a debug build, and a hiccup would switch a replica to its fallback mid-measurement.
const REDIS_TIMEOUT: &str = "500ms";

/// One server of the fleet; stops when dropped.
struct Replica {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Replicas in front of one simulator.
struct Fleet {
    sim: Simulator,
    replicas: Vec<Replica>,
    http: reqwest::Client,
}

/// `n` replicas built with `Config::from_args` from `args`, pointed at one new simulator
/// and, when given, at `redis`.
async fn fleet(n: usize, redis: Option<&RedisServer>, args: &[&str], sim_opts: SimOptions) -> Fleet {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), sim_opts).await.expect("simulator starts");
    let endpoint = sim.url();
    let url = redis.map(RedisServer::url);
    let mut replicas = Vec::new();
    for _ in 0..n {
        let mut all = vec!["--listen", "127.0.0.1:0", "--endpoint", &endpoint, "--verify-plans"];
        if let Some(url) = &url {
            all.extend(["--redis-url", url, "--redis-timeout", REDIS_TIMEOUT]);
        }
        all.extend_from_slice(args);
        let config = Config::from_args(all).expect("config parses");
        let app = App::build(&config).await.expect("app builds");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.serve(async {
            let _ = stopped.await;
        }));
        replicas.push(Replica { addr, _stop: stop });
    }
    Fleet { sim, replicas, http: reqwest::Client::new() }
}

impl Fleet {
    /// Runs `query` on replica `i` with `token`: status and body (status 0 when the request
    /// itself failed).
    async fn post(&self, i: usize, query: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("http://{}/graphql", self.replicas[i].addr))
            .header("X-Auth-Token", token)
            .json(&json!({ "query": query }))
            .send()
            .await;
        match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Replica `i`'s `/metrics` text.
    async fn metrics(&self, i: usize) -> String {
        let resp = self.http.get(format!("http://{}/metrics", self.replicas[i].addr)).send().await;
        resp.expect("metrics answer").text().await.expect("text")
    }

    /// Replica `i`'s `/readyz` body.
    async fn readyz(&self, i: usize) -> Value {
        let resp = self.http.get(format!("http://{}/readyz", self.replicas[i].addr)).send().await;
        let resp = resp.expect("readyz answers");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("JSON")
    }

    /// `clients` clients per replica, each sending `query(replica, client, round)` in a loop
    /// until `run` has passed; every (status, body) in the order they finished.
    async fn load<F>(self: &Arc<Self>, clients: usize, run: Duration, query: F) -> Vec<(u16, Value)>
    where
        F: Fn(usize, usize, usize) -> String + Send + Sync + 'static,
    {
        self.load_paced(clients, run, Duration::ZERO, query).await
    }

    /// Like [`Fleet::load`], each client pausing `pause` between its requests.
    async fn load_paced<F>(
        self: &Arc<Self>,
        clients: usize,
        run: Duration,
        pause: Duration,
        query: F,
    ) -> Vec<(u16, Value)>
    where
        F: Fn(usize, usize, usize) -> String + Send + Sync + 'static,
    {
        let query = Arc::new(query);
        let until = Instant::now() + run;
        let tasks = (0..self.replicas.len()).flat_map(|r| {
            (0..clients).map({
                let query = Arc::clone(&query);
                let fleet = Arc::clone(self);
                move |c| {
                    let query = Arc::clone(&query);
                    let fleet = Arc::clone(&fleet);
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        let mut round = 0;
                        while Instant::now() < until {
                            out.push(fleet.post(r, &query(r, c, round), TOKEN).await);
                            round += 1;
                            if !pause.is_zero() {
                                tokio::time::sleep(pause).await;
                            }
                        }
                        out
                    })
                }
            })
        });
        let tasks: Vec<_> = tasks.collect();
        join_all(tasks).await.into_iter().flat_map(|t| t.expect("client task")).collect()
    }
}

/// The value of `series` (name with labels, as printed) in a metrics text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Arrival times (ms since the simulator started) of the list calls for `project`.
fn call_times(sim: &Simulator, project: &str) -> Vec<u64> {
    let segment = format!("/{project}/");
    let mut at: Vec<u64> =
        sim.requests().iter().filter(|r| r.path.contains(&segment)).map(|r| r.at_ms).collect();
    at.sort_unstable();
    at
}

fn ok(resp: &(u16, Value)) -> bool {
    resp.0 == 200 && errors(&resp.1).is_empty() && resp.1["data"]["connections"].is_array()
}

const HOT: &str = "{ connections(projectId: \"hot\") { connectionId name } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_make_one_dli_call_per_ttl_window_for_a_hot_project() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let ttl = Duration::from_millis(500);
    let fleet = Arc::new(fleet(3, Some(&redis), &["--cache-ttl", "500ms"], SimOptions::default()).await);
    fleet.sim.set_fault("hot", Fault::delay(Duration::from_millis(5)));
    let started = Instant::now();
    let responses = fleet.load(32, Duration::from_millis(1600), |_, _, _| HOT.to_owned()).await;
    let elapsed = started.elapsed();
    assert!(responses.iter().all(ok), "{:?}", responses.iter().find(|r| !ok(r)));
    let calls = call_times(&fleet.sim, "hot");
    let windows = (elapsed.as_millis() / ttl.as_millis()) as usize + 1;
    eprintln!(
        "fleet (a): 3 replicas x 32 clients, {} requests in {} ms, {} DLI calls (at most {windows}) at {:?} ms",
        responses.len(),
        elapsed.as_millis(),
        calls.len(),
        calls
    );
    assert!(!calls.is_empty() && calls.len() <= windows, "{calls:?} for {windows} windows");
    // Each call came only after the previous answer expired (1 ms for the log's rounding).
    assert!(calls.windows(2).all(|w| w[1] - w[0] + 1 >= ttl.as_millis() as u64), "{calls:?}");
    // The replicas that did not call DLI read the answer from Redis.
    let mut shared = 0.0;
    for i in 0..3 {
        shared += metric(&fleet.metrics(i).await, "dli_graphql_shared_answers_total");
    }
    assert!(shared >= 1.0, "no replica read an answer from Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ttl_the_fleet_never_has_two_calls_for_one_key_in_flight() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let fleet = Arc::new(fleet(3, Some(&redis), &[], SimOptions::default()).await);
    let delay = Duration::from_millis(5);
    fleet.sim.set_fault("hot", Fault::delay(delay));
    let responses = fleet.load(32, Duration::from_millis(600), |_, _, _| HOT.to_owned()).await;
    assert!(responses.iter().all(ok), "{:?}", responses.iter().find(|r| !ok(r)));
    let calls = call_times(&fleet.sim, "hot");
    eprintln!("fleet (a, no TTL): {} requests, {} DLI calls at {calls:?} ms", responses.len(), calls.len());
    // A new call starts only once the previous one has answered.
    assert!(calls.windows(2).all(|w| w[1] - w[0] + 1 >= delay.as_millis() as u64), "{calls:?}");
    assert!(calls.len() < responses.len() / 10, "{} calls for {} requests", calls.len(), responses.len());
}

/// Requests per second the simulator saw beyond the burst, over the span of its calls.
fn steady_rate(sim: &Simulator, burst: usize) -> (usize, f64) {
    let at: Vec<u64> = {
        let mut at: Vec<u64> = sim.requests().iter().map(|r| r.at_ms).collect();
        at.sort_unstable();
        at
    };
    let span = (at.last().copied().unwrap_or(0) - at.first().copied().unwrap_or(0)).max(1) as f64 / 1000.0;
    (at.len(), at.len().saturating_sub(burst) as f64 / span)
}

async fn budget_run(
    replicas: usize,
    clients: usize,
    redis: Option<&RedisServer>,
) -> (Vec<(u16, Value)>, usize, f64, Arc<Fleet>) {
    let args = [
        "--upstream-rate",
        "20/s",
        "--upstream-burst",
        "5",
        "--upstream-timeout",
        "1s",
        "--upstream-max-attempts",
        "1",
    ];
    let fleet = Arc::new(fleet(replicas, redis, &args, SimOptions::default()).await);
    // Every request names a project of its own, so nothing is shared: only the budget holds.
    // Refused calls come back at once; the pause keeps those clients from spinning the CPU
    // the servers need to answer within their deadline.
    let responses = fleet
        .load_paced(clients, Duration::from_millis(2500), Duration::from_millis(25), |r, c, i| {
            format!("{{ connections(projectId: \"r{r}-c{c}-{i}\") {{ name }} }}")
        })
        .await;
    let (calls, rate) = steady_rate(&fleet.sim, 5);
    (responses, calls, rate, fleet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_rate_holds_for_the_whole_fleet_and_callers_over_it_get_rate_limited() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let (responses, calls, rate, fleet) = budget_run(3, 8, Some(&redis)).await;
    let limited = responses
        .iter()
        .flat_map(|(_, body)| errors(body))
        .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .count();
    eprintln!(
        "fleet (b): 3 replicas x 8 clients, {} requests, {calls} DLI calls, {rate:.1}/s beyond the burst, {} RATE_LIMITED",
        responses.len(),
        limited
    );
    assert!(responses.iter().all(|(status, _)| *status == 200), "a request failed at the HTTP level");
    for (_, body) in &responses {
        for e in errors(body) {
            assert_eq!(e["extensions"]["code"], "RATE_LIMITED", "{e:#}");
            assert!(e["extensions"]["retryAfter"].as_u64().is_some_and(|s| s >= 1), "{e:#}");
        }
    }
    assert!(limited > 0, "24 clients never went over 20/s");
    // The fleet-wide rate is only promised while Redis is in use.
    for i in 0..3 {
        let text = fleet.metrics(i).await;
        assert_eq!(metric(&text, "dli_graphql_redis_state_changes_total{to=\"fallback\"}"), 0.0, "{text}");
    }
    assert!(rate <= 22.0, "{rate:.1} calls/s at DLI for a budget of 20/s");
    let mut refused = 0.0;
    for i in 0..3 {
        refused += metric(&fleet.metrics(i).await, "dli_graphql_upstream_budget_total{outcome=\"refused\"}");
    }
    assert!(refused >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_budget_is_kept_per_replica() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (responses, calls, rate, fleet) = budget_run(1, 16, None).await;
    eprintln!(
        "budget, 1 replica without Redis: {} requests, {calls} DLI calls, {rate:.1}/s",
        responses.len()
    );
    assert!(responses.iter().all(|(status, _)| *status == 200));
    assert!(rate <= 22.0, "{rate:.1} calls/s");
    let text = fleet.metrics(0).await;
    assert!(metric(&text, "dli_graphql_upstream_budget_total{outcome=\"refused\"}") >= 1.0, "{text}");
    assert!(metric(&text, "dli_graphql_upstream_budget_total{outcome=\"delayed\"}") >= 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_the_budget_is_rate_limited_with_a_retry_after_and_nothing_is_sent() {
    let _one = ONE_AT_A_TIME.lock().await;
    let args = ["--upstream-rate", "2/s", "--upstream-burst", "1", "--upstream-timeout", "200ms"];
    let fleet = fleet(1, None, &args, SimOptions::default()).await;
    let (_, first) = fleet.post(0, "{ connections(projectId: \"p1\") { name } }", TOKEN).await;
    assert!(errors(&first).is_empty(), "{first:#}");
    let (status, second) = fleet.post(0, "{ connections(projectId: \"p2\") { name } }", TOKEN).await;
    assert_eq!(status, 200);
    let e = &errors(&second)[0];
    assert_eq!(e["extensions"]["code"], "RATE_LIMITED", "{second:#}");
    assert_eq!(e["extensions"]["retryAfter"], 1, "{second:#}");
    assert!(e["extensions"].get("upstreamStatus").is_none(), "DLI was not asked: {second:#}");
    assert_eq!(fleet.sim.calls_for("p2"), 0);
    // Another identity has its own budget.
    let (_, other) = fleet.post(0, "{ connections(projectId: \"p2\") { name } }", OTHER_TOKEN).await;
    assert!(errors(&other).is_empty(), "{other:#}");
}

/// Polls until every replica's `dli_graphql_redis_fallback` gauge reads `value`.
async fn until_fallback_is(fleet: &Fleet, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = true;
        for i in 0..fleet.replicas.len() {
            all &= metric(&fleet.metrics(i).await, "dli_graphql_redis_fallback") == value;
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "the fallback gauge never became {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_and_restarted_fails_no_request_and_shows_fallback_and_recovery() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut redis = RedisServer::start();
    let fleet = Arc::new(fleet(3, Some(&redis), &["--cache-ttl", "100ms"], SimOptions::default()).await);
    fleet.sim.set_fault("hot", Fault::delay(Duration::from_millis(5)));
    for i in 0..3 {
        assert_eq!(fleet.readyz(i).await["redis"], "up");
    }
    let load = {
        let fleet = Arc::clone(&fleet);
        tokio::spawn(async move {
            fleet
                .load(8, Duration::from_millis(3000), |_, c, _| {
                    format!("{{ connections(projectId: \"p{}\") {{ name }} }}", c % 3)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    until_fallback_is(&fleet, 1.0).await;
    for i in 0..3 {
        let ready = fleet.readyz(i).await;
        assert_eq!((ready["status"].as_str(), ready["redis"].as_str()), (Some("ready"), Some("fallback")));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    until_fallback_is(&fleet, 0.0).await;
    let responses = load.await.expect("load task");
    let failed = responses.iter().filter(|r| !ok(r)).count();
    eprintln!("fleet (c): {} requests while Redis died and came back, {failed} failed", responses.len());
    assert_eq!(failed, 0, "{:?}", responses.iter().find(|r| !ok(r)));
    for i in 0..3 {
        let text = fleet.metrics(i).await;
        assert!(metric(&text, "dli_graphql_redis_state_changes_total{to=\"fallback\"}") >= 1.0, "{text}");
        // The first contact at startup, then the recovery.
        assert!(metric(&text, "dli_graphql_redis_state_changes_total{to=\"redis\"}") >= 2.0, "{text}");
        assert_eq!(fleet.readyz(i).await["redis"], "up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_then_flushed_redis_fails_no_request() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let fleet = Arc::new(fleet(3, Some(&redis), &["--cache-ttl", "100ms"], SimOptions::default()).await);
    let load = {
        let fleet = Arc::clone(&fleet);
        tokio::spawn(async move {
            fleet
                .load(8, Duration::from_millis(2500), |_, c, _| {
                    format!("{{ connections(projectId: \"p{}\") {{ name }} }}", c % 3)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.freeze(true);
    until_fallback_is(&fleet, 1.0).await;
    redis.freeze(false);
    until_fallback_is(&fleet, 0.0).await;
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.expect("FLUSHALL");
    let responses = load.await.expect("load task");
    let failed = responses.iter().filter(|r| !ok(r)).count();
    eprintln!(
        "fleet (c'): {} requests while Redis froze, thawed and was flushed, {failed} failed",
        responses.len()
    );
    assert_eq!(failed, 0, "{:?}", responses.iter().find(|r| !ok(r)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_calls_dli_for_the_same_hot_project() {
    // The problem Redis solves: three replicas, three caches, three calls (or more).
    let _one = ONE_AT_A_TIME.lock().await;
    let fleet = Arc::new(fleet(3, None, &["--cache-ttl", "500ms"], SimOptions::default()).await);
    fleet.sim.set_fault("hot", Fault::delay(Duration::from_millis(5)));
    let responses = fleet.load(32, Duration::from_millis(1600), |_, _, _| HOT.to_owned()).await;
    assert!(responses.iter().all(ok));
    let calls = call_times(&fleet.sim, "hot");
    eprintln!(
        "3 replicas without Redis: {} requests, {} DLI calls at {calls:?} ms",
        responses.len(),
        calls.len()
    );
    assert!(calls.len() >= 3, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_credential_identities_never_read_each_others_entries() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let fleet = fleet(3, Some(&redis), &["--cache-ttl", "30s"], SimOptions::default()).await;
    let q = "{ connections(projectId: \"p1\") { name } }";
    assert!(ok(&fleet.post(0, q, TOKEN).await));
    assert!(ok(&fleet.post(1, q, OTHER_TOKEN).await));
    assert!(ok(&fleet.post(2, q, TOKEN).await));
    assert!(ok(&fleet.post(2, q, OTHER_TOKEN).await));
    // One call per identity: the second asker of each read its own identity's entry.
    let mut sent: Vec<String> =
        fleet.sim.requests().iter().filter_map(|r| r.header("x-auth-token").map(str::to_owned)).collect();
    sent.sort();
    assert_eq!(sent, vec![OTHER_TOKEN.to_owned(), TOKEN.to_owned()]);
    assert_eq!(metric(&fleet.metrics(2).await, "dli_graphql_shared_answers_total"), 2.0);
    // Two entries, named by a hash: no token in any key or value.
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.expect("KEYS");
    let answers: Vec<&String> = keys.iter().filter(|k| k.starts_with("dli-graphql:answer:")).collect();
    assert_eq!(answers.len(), 2, "{keys:?}");
    for k in &keys {
        assert!(!k.contains(TOKEN) && !k.contains(OTHER_TOKEN), "{k}");
        if k.contains("answer:") {
            let v: Vec<u8> = redis::cmd("GET").arg(k).query_async(&mut conn).await.expect("GET");
            let v = String::from_utf8_lossy(&v);
            assert!(!v.contains(TOKEN) && !v.contains(OTHER_TOKEN));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_holder_died_expires_and_another_replica_takes_over() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let fleet = Arc::new(fleet(3, Some(&redis), &["--upstream-timeout", "1s"], SimOptions::default()).await);
    // A replica took the lease for (TOKEN, p1) and died before answering: nobody releases it.
    let keys = fetch_keys(
        "dli-graphql:",
        &FetchKey {
            identity: Credential::token(TOKEN).expect("valid").identity(),
            project: ProjectId::parse("p1").expect("valid"),
            endpoint: "list",
            params: String::new(),
        },
    );
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("SET")
        .arg(&keys.lease)
        .arg("dead-replica")
        .arg("PX")
        .arg(1000)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let started = Instant::now();
    let q = "{ connections(projectId: \"p1\") { name } }";
    let calls = (0..3).flat_map(|r| (0..4).map(move |_| r)).map(|r| {
        let fleet = Arc::clone(&fleet);
        async move { fleet.post(r, q, TOKEN).await }
    });
    let responses = join_all(calls).await;
    let waited = started.elapsed();
    eprintln!("fleet (e): 12 requests behind a dead lease answered after {} ms", waited.as_millis());
    assert!(responses.iter().all(ok), "{:?}", responses.iter().find(|r| !ok(r)));
    // They waited for the lease, then one replica called DLI for all of them.
    assert!(waited >= Duration::from_millis(900), "answered after {waited:?}, before the lease expired");
    assert_eq!(fleet.sim.calls_for("p1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_whether_redis_is_used_and_the_breaker_state() {
    let _one = ONE_AT_A_TIME.lock().await;
    let alone = fleet(1, None, &[], SimOptions::default()).await;
    let ready = alone.readyz(0).await;
    assert_eq!(ready, json!({ "status": "ready", "redis": "off", "circuit": "closed" }));
    let tripped = fleet(1, None, &["--breaker-threshold", "1"], SimOptions::default()).await;
    let (_, failed) = tripped.post(0, "{ connections(projectId: \"fault-500\") { name } }", TOKEN).await;
    assert_eq!(errors(&failed).len(), 1, "{failed:#}");
    assert_eq!(tripped.readyz(0).await["circuit"], "open");
    // A Redis that is not there: ready all the same, on the fallback.
    let mut gone = RedisServer::start();
    let url = gone.url();
    gone.kill();
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    let endpoint = sim.url();
    let config = Config::from_args(["--listen", "127.0.0.1:0", "--endpoint", &endpoint, "--redis-url", &url])
        .expect("parses");
    let app = App::build(&config).await.expect("builds without Redis");
    let addr = app.local_addr();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let ready: Value =
        reqwest::get(format!("http://{addr}/readyz")).await.expect("answers").json().await.expect("JSON");
    assert_eq!(ready["redis"], "fallback");
    let resp: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": "{ connections(projectId: \"p1\") { name } }" }))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert!(errors(&resp).is_empty(), "{resp:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_never_reaches_the_logs() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut gone = RedisServer::start();
    let url = gone.url().replace("redis://", "redis://:s3cr3t-redis-pw@");
    gone.kill();
    let logs = crate::helpers::trace_logs(&["--demo", "--redis-url", &url], &[], |addr| async move {
        let _ = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": "{ connections(projectId: \"p1\") { name } }" }))
            .send()
            .await;
    })
    .await;
    assert!(logs.contains("Redis does not answer"), "{logs}");
    assert!(!logs.contains("s3cr3t-redis-pw"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_on_three_replicas_share_one_poll_per_ttl_window_through_redis() {
    let _one = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let fleet =
        fleet(3, Some(&redis), &["--watch-interval", "1s", "--cache-ttl", "1s"], SimOptions::default()).await;
    let subscribe = json!({ "query": "subscription { connectionEvents(projectId: \"watched\") { kind } }" });
    // One SSE subscriber per replica, all on the same project with the same token.
    let mut streams = Vec::new();
    for replica in &fleet.replicas {
        let resp = fleet
            .http
            .post(format!("http://{}/graphql", replica.addr))
            .header("X-Auth-Token", TOKEN)
            .header("accept", "text/event-stream")
            .json(&subscribe)
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    let started = Instant::now();
    // Every subscriber gets its snapshot.
    for stream in &mut streams {
        let mut seen = String::new();
        while !seen.contains("SNAPSHOT") {
            let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await;
            let chunk = chunk.expect("an event in time").expect("readable").expect("not ended");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    tokio::time::sleep(Duration::from_millis(4000).saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed();
    let calls = call_times(&fleet.sim, "watched");
    // Three pollers (one per replica) polling every second would make about 12 calls; through
    // Redis the fleet makes one per TTL window, plus one for a window the first poll straddles.
    let windows = (elapsed.as_millis() / 1000) as usize + 2;
    eprintln!(
        "fleet watch: 3 replicas, one subscriber each, {} ms, {} DLI calls at {calls:?} ms",
        elapsed.as_millis(),
        calls.len()
    );
    assert!(!calls.is_empty() && calls.len() <= windows, "{calls:?} for {windows} windows");
    drop(streams);
}
