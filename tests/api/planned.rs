//! The planned executor against async-graphql's, byte for byte.
//!
//! Every other API test runs with `--verify-plans` (`helpers::spawn_with_config`), so each
//! query they send that a plan can answer is also answered by async-graphql and compared.
//! Here proptest generates operations of the shapes plans cover (aliases, fragments, inline
//! fragments, `@skip`/`@include` on literals and variables, `__typename`, variables with and
//! without defaults, filters, failing and invalid projects, strings that need escaping, nulls)
//! and checks them two ways: against a verifying server, and as deployed (a plan learnt on the
//! first request answers the second) against a server without the planned executor.

use std::sync::Arc;

use dli_graphql::{
    config::Config,
    sim::{SimOptions, Simulator},
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TOKEN, TestApp, errors, spawn_app, spawn_exactly};

/// One root `connections` field.
#[derive(Debug, Clone)]
struct Root {
    alias: Option<usize>,
    project: usize,
    state: Option<usize>,
    service: Option<usize>,
    /// Pass the arguments as variables (with or without a default) instead of literals.
    via: Via,
    condition: Option<Condition>,
    columns: Vec<Column>,
    /// Wrap the selection in a named fragment, an inline fragment, or neither.
    wrap: u8,
}

#[derive(Debug, Clone, Copy)]
enum Via {
    Literal,
    Variable,
    Default,
}

#[derive(Debug, Clone)]
struct Column {
    alias: Option<usize>,
    field: usize,
    condition: Option<Condition>,
}

#[derive(Debug, Clone, Copy)]
struct Condition {
    include: bool,
    /// `Some(value)`: a variable sent with this value (or not sent at all when `None` inside).
    variable: Option<Option<bool>>,
    literal: bool,
}

const PROJECTS: &[&str] = &["p1", "p2", "odd", "fault-500-x", "fault-404-y", "bad id", "empty-p"];
const STATES: &[&str] = &["ACTIVE", "CREATING", "FAILED", "DELETED", "UNKNOWN"];
const SERVICES: &[&str] = &["DWS", "cloudtable", " RDS ", "nope", ""];
const FIELDS: &[&str] = &[
    "projectId",
    "connectionId",
    "name",
    "state",
    "rawState",
    "service",
    "destination",
    "process",
    "connectionUrl",
    "clusterName",
    "queues",
    "createTime",
    "__typename",
];
const ALIASES: &[&str] = &["a", "b", "name", "state", "x_1"];

fn condition() -> impl Strategy<Value = Option<Condition>> {
    prop::option::weighted(
        0.3,
        (any::<bool>(), prop::option::of(prop::option::of(any::<bool>())), any::<bool>())
            .prop_map(|(include, variable, literal)| Condition { include, variable, literal }),
    )
}

fn column() -> impl Strategy<Value = Column> {
    (prop::option::weighted(0.3, 0..ALIASES.len()), 0..FIELDS.len(), condition())
        .prop_map(|(alias, field, condition)| Column { alias, field, condition })
}

fn root() -> impl Strategy<Value = Root> {
    (
        prop::option::weighted(0.7, 0..8usize),
        prop_oneof![4 => 0..3usize, 1 => 3..PROJECTS.len()],
        prop::option::weighted(0.4, 0..STATES.len()),
        prop::option::weighted(0.3, 0..SERVICES.len()),
        prop_oneof![Just(Via::Literal), Just(Via::Variable), Just(Via::Default)],
        condition(),
        prop::collection::vec(column(), 1..7),
        0..3u8,
    )
        .prop_map(|(alias, project, state, service, via, condition, columns, wrap)| Root {
            alias,
            project,
            state,
            service,
            via,
            condition,
            columns,
            wrap,
        })
}

/// The operation's text and variables.
fn render(roots: &[Root], typename: bool) -> (String, Value) {
    let mut defs = Vec::new();
    let mut vars = serde_json::Map::new();
    let mut fragments = Vec::new();
    let mut fields = Vec::new();
    let mut n = 0;
    let mut cond =
        |c: &Option<Condition>, defs: &mut Vec<String>, vars: &mut serde_json::Map<String, Value>| {
            let Some(c) = c else { return String::new() };
            let directive = if c.include { "include" } else { "skip" };
            n += 1;
            match c.variable {
                None => format!(" @{directive}(if: {})", c.literal),
                Some(value) => {
                    let name = format!("c{n}");
                    defs.push(format!("${name}: Boolean! = {}", c.literal));
                    if let Some(v) = value {
                        vars.insert(name.clone(), json!(v));
                    }
                    format!(" @{directive}(if: ${name})")
                }
            }
        };
    for (i, r) in roots.iter().enumerate() {
        let mut args = Vec::new();
        let mut arg =
            |name: &str, ty: &str, literal: String, value: Value, defs: &mut Vec<String>| match r.via {
                Via::Literal => args.push(format!("{name}: {literal}")),
                Via::Variable => {
                    defs.push(format!("${name}{i}: {ty}"));
                    vars.insert(format!("{name}{i}"), value);
                    args.push(format!("{name}: ${name}{i}"));
                }
                Via::Default => {
                    defs.push(format!("${name}{i}: {ty} = {literal}"));
                    args.push(format!("{name}: ${name}{i}"));
                }
            };
        let project = PROJECTS[r.project];
        arg("projectId", "ID!", format!("{project:?}"), json!(project), &mut defs);
        if let Some(s) = r.state {
            arg("state", "ConnectionState", STATES[s].to_owned(), json!(STATES[s]), &mut defs);
        }
        if let Some(s) = r.service {
            arg("service", "String", format!("{:?}", SERVICES[s]), json!(SERVICES[s]), &mut defs);
        }
        let columns: Vec<String> = r
            .columns
            .iter()
            .map(|c| {
                let alias = c.alias.map(|a| format!("{}: ", ALIASES[a])).unwrap_or_default();
                let field = FIELDS[c.field];
                // An alias may not name two different fields: keep the generator valid.
                let alias = if c.alias.is_some_and(|a| ALIASES[a] == "name" || ALIASES[a] == "state") {
                    String::new()
                } else {
                    alias
                };
                format!("{alias}{field}{}", cond(&c.condition, &mut defs, &mut vars))
            })
            .collect();
        let selection = match r.wrap {
            0 => columns.join(" "),
            1 => {
                fragments.push(format!("fragment F{i} on Connection {{ {} }}", columns.join(" ")));
                format!("...F{i}")
            }
            _ => format!("... on Connection {{ {} }}", columns.join(" ")),
        };
        let alias = format!("r{i}_{}: ", r.alias.unwrap_or(0));
        let directive = cond(&r.condition, &mut defs, &mut vars);
        fields.push(format!("{alias}connections({}){directive} {{ {selection} }}", args.join(", ")));
    }
    if typename {
        fields.insert(fields.len() / 2, "__typename".to_owned());
    }
    let head = if defs.is_empty() { "query Q".to_owned() } else { format!("query Q({})", defs.join(", ")) };
    (format!("{head} {{ {} }} {}", fields.join(" "), fragments.join(" ")), Value::Object(vars))
}

async fn post(app: &TestApp, query: &str, variables: &Value) -> (u16, String) {
    let resp = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("server answers");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(format!("http://{}/metrics", app.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Odd strings in project `odd`: quotes, backslashes, control characters, non-ASCII, empty
/// and missing optional fields.
fn seed_odd(sim: &Simulator) {
    let odd = [
        ("quote \" and \\ back", "DWS", json!({ "destination": "a\"b\\c\u{7f}", "process": 0.123456789 })),
        (
            "tab\tnew\nline \u{1} é €",
            "cloudtable",
            json!({ "connection_url": "x\u{2028}y", "process": 1e-7 }),
        ),
        ("", "", json!({ "process": 12345678901.5 })),
        (
            "nulls",
            "RDS",
            json!({ "cluster_name": null, "create_time": null, "state": "RUNNING", "process": null }),
        ),
    ];
    // Fixed ids and times, so that two simulators answer the same bytes.
    for (i, (name, service, changes)) in odd.into_iter().enumerate() {
        let id = sim.create_connection("odd", name, service);
        let mut changes = changes;
        changes["connection_id"] = json!(format!("odd-{i}"));
        if changes.get("create_time").is_none() {
            changes["create_time"] = json!(1_700_000_000_123_i64 + i as i64);
        }
        assert!(sim.update_connection("odd", &id, changes));
    }
}

struct Servers {
    runtime: tokio::runtime::Runtime,
    verifying: TestApp,
    planned: TestApp,
    generic: TestApp,
}

fn servers() -> Arc<Servers> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (verifying, planned, generic) = runtime.block_on(async {
        let verifying = spawn_app().await;
        seed_odd(&verifying.sim);
        let start = |args: &'static [&'static str]| async move {
            let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
            seed_odd(&sim);
            let endpoint = sim.url();
            // The two servers see different numbers of failing calls (the planned one gets each
            // operation twice), so a breaker would open on one first: none here.
            let mut all =
                vec!["--listen", "127.0.0.1:0", "--endpoint", &endpoint, "--breaker-threshold", "1000000"];
            all.extend_from_slice(args);
            spawn_exactly(Config::from_args(all).expect("config"), sim).await
        };
        (verifying, start(&[]).await, start(&["--no-planned-executor"]).await)
    });
    Arc::new(Servers { runtime, verifying, planned, generic })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn planned_answers_equal_async_graphql_answers(roots in prop::collection::vec(root(), 1..5), typename in any::<bool>()) {
        static SERVERS: std::sync::OnceLock<Arc<Servers>> = std::sync::OnceLock::new();
        let s = SERVERS.get_or_init(servers).clone();
        let (query, variables) = render(&roots, typename);
        s.runtime.block_on(async {
            // Verifying: the first request learns the plan and compares, the second runs it.
            for _ in 0..2 {
                let (status, body) = post(&s.verifying, &query, &variables).await;
                prop_assert!(!body.contains("INTERNAL_SERVER_ERROR"), "{query} {variables}: {status} {body}");
            }
            // As deployed: the planned server's second answer (from its plan when it has one)
            // against the server that never plans.
            let (_, _) = post(&s.planned, &query, &variables).await;
            let before = metric(&s.planned, "dli_graphql_planned_operations_total").await;
            let planned = post(&s.planned, &query, &variables).await;
            let after = metric(&s.planned, "dli_graphql_planned_operations_total").await;
            let generic = post(&s.generic, &query, &variables).await;
            prop_assert_eq!(&planned, &generic, "{} {}", query, variables);
            // Every shape generated here is plannable: an answer without errors came from
            // its plan (the property is not passing by never planning).
            if !generic.1.contains("\"errors\"") {
                prop_assert_eq!(after - before, 1.0, "not planned: {} {}", query, variables);
            }
            Ok(())
        })?;
    }
}

/// The properties above would pass vacuously if nothing were ever planned: the shapes they
/// generate must be answered by plans, and none may differ.
#[tokio::test]
async fn plans_answer_repeated_operations_and_count_them() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    let endpoint = sim.url();
    let config = Config::from_args(["--listen", "127.0.0.1:0", "--endpoint", &endpoint]).expect("config");
    let app = spawn_exactly(config, sim).await;
    let query = "query Q($p: ID!) { a: connections(projectId: $p, state: ACTIVE) { name state } __typename \
                 b: connections(projectId: \"p2\") { ...F } } fragment F on Connection { connectionId createTime }";
    let (_, first) = post(&app, query, &json!({ "p": "p1" })).await;
    assert_eq!(metric(&app, "dli_graphql_planned_operations_total").await, 0.0, "learnt, not yet planned");
    let (status, second) = post(&app, query, &json!({ "p": "p1" })).await;
    assert_eq!((status, &second), (200, &first));
    let (_, other) = post(&app, query, &json!({ "p": "p2" })).await;
    let other: Value = serde_json::from_str(&other).expect("JSON");
    assert!(errors(&other).is_empty(), "{other}");
    assert_eq!(metric(&app, "dli_graphql_planned_operations_total").await, 2.0);
    // Counted as operations like any other, and the calls are the loader's: one per project.
    let metrics = app
        .http
        .get(format!("http://{}/metrics", app.addr))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(
        metrics.contains(r#"dli_graphql_operations_total{operation="Q",type="query",outcome="ok"} 3"#),
        "{metrics}"
    );
    // p1 and p2, p1 and p2, then p2 for both fields: one call per project per request.
    assert_eq!(app.sim.stats().calls, 5);
    // Empty extensions are none; a persisted-query hash goes to async-graphql (APQ).
    let apq = json!({ "persistedQuery": { "version": 1, "sha256Hash": "0" } });
    for (extensions, planned) in [(json!({}), 3.0), (Value::Null, 4.0), (apq, 4.0)] {
        let body = json!({ "query": query, "variables": { "p": "p1" }, "extensions": extensions });
        let resp = app
            .http
            .post(app.graphql_url())
            .header("X-Auth-Token", TOKEN)
            .json(&body)
            .send()
            .await
            .expect("answers");
        let _ = resp.text().await;
        assert_eq!(metric(&app, "dli_graphql_planned_operations_total").await, planned, "{extensions}");
    }
    // A failing project: the plan steps aside and async-graphql answers with the error.
    let (status, failed) = post(&app, query, &json!({ "p": "fault-500-z" })).await;
    let failed: Value = serde_json::from_str(&failed).expect("JSON");
    assert_eq!(status, 200);
    assert_eq!(failed["data"]["a"], Value::Null);
    assert!(failed["data"]["b"].is_array());
    assert_eq!(errors(&failed)[0]["path"], json!(["a"]));
    assert_eq!(metric(&app, "dli_graphql_planned_operations_total").await, 4.0);
    // A hostile id: no upstream call, async-graphql's BAD_USER_INPUT.
    let calls = app.sim.stats().calls;
    let (_, hostile) = post(&app, query, &json!({ "p": "../../v3/x" })).await;
    let hostile: Value = serde_json::from_str(&hostile).expect("JSON");
    assert_eq!(errors(&hostile)[0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.sim.stats().calls, calls + 1, "only p2's call");
}

/// Root fields come back in the order they were asked for, whichever upstream call returns
/// first (async-graphql alone inserts them as they complete).
#[tokio::test]
async fn root_fields_keep_their_requested_order() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), SimOptions::default()).await.expect("sim");
    sim.set_fault("slow-first", dli_graphql::sim::Fault::delay(std::time::Duration::from_millis(300)));
    let endpoint = sim.url();
    let config =
        Config::from_args(["--listen", "127.0.0.1:0", "--endpoint", &endpoint, "--no-planned-executor"])
            .expect("config");
    let app = spawn_exactly(config, sim).await;
    let (_, body) = post(
        &app,
        "{ z: connections(projectId: \"slow-first\") { name } a: connections(projectId: \"p1\") { name } m: __typename }",
        &json!({}),
    )
    .await;
    let z = body.find("\"z\"").expect("z");
    let a = body.find("\"a\"").expect("a");
    let m = body.find("\"m\"").expect("m");
    assert!(z < a && a < m, "{body}");
}
