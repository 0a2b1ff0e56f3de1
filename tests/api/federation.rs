//! Apollo Federation v2: `_service`, `_entities` for `Connection` and `Project`, `project(id:)`.
//!
//! Entity queries are sent the way a router sends them: `_entities(representations:
//! $representations)` with the representations as a variable.

use std::time::{Duration, Instant};

use dli_graphql::sim::{Fault, SimOptions, fixtures};
use serde_json::{Value, json};

use crate::helpers::{TestApp, errors, spawn_app, spawn_app_with};

const ENTITIES: &str = r#"query ($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Connection { projectId connectionId name state }
    ... on Project { id connections { connectionId } active: connections(state: ACTIVE) { connectionId } }
  }
}"#;

fn connection_rep(project: &str, connection_id: &str) -> Value {
    json!({ "__typename": "Connection", "projectId": project, "connectionId": connection_id })
}

fn project_rep(id: &str) -> Value {
    json!({ "__typename": "Project", "id": id })
}

/// The connection ids the simulator serves for `project`, in order.
fn connection_ids(project: &str) -> Vec<String> {
    fixtures::connections(project, SimOptions::default().connections_per_project)
        .iter()
        .map(|c| c["connection_id"].as_str().expect("fixture id").to_owned())
        .collect()
}

async fn entities(app: &TestApp, representations: Vec<Value>) -> Value {
    app.query_vars(ENTITIES, json!({ "representations": representations })).await
}

/// The error whose path is exactly `path`.
fn error_with_path<'a>(resp: &'a Value, path: &Value) -> &'a Value {
    resp["errors"]
        .as_array()
        .and_then(|es| es.iter().find(|e| &e["path"] == path))
        .unwrap_or_else(|| panic!("no error at {path} in {resp:#}"))
}

#[tokio::test]
async fn the_service_field_serves_the_federation_sdl_with_both_keys() {
    let app = spawn_app().await;
    let resp = app.query("{ _service { sdl } }").await;
    let sdl = resp["data"]["_service"]["sdl"].as_str().expect("sdl");
    assert!(
        sdl.contains("extend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2.5\""),
        "{sdl}"
    );
    assert!(sdl.contains("type Connection @key(fields: \"projectId connectionId\") {"), "{sdl}");
    assert!(sdl.contains("type Project @key(fields: \"id\") {"), "{sdl}");
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn the_service_field_is_served_with_introspection_disabled() {
    let app = spawn_app_with(&["--disable-introspection"], SimOptions::default()).await;
    let resp = app.query("{ _service { sdl } }").await;
    assert_eq!(resp["data"]["_service"]["sdl"].as_str(), Some(dli_graphql::graphql::sdl().as_str()));
    let introspection = app.query("{ __schema { queryType { name } } }").await;
    assert!(introspection["data"]["__schema"].is_null(), "{introspection:#}");
}

#[tokio::test]
async fn thirty_connection_representations_over_three_projects_make_three_concurrent_calls() {
    let app = spawn_app().await;
    let projects = ["p1", "p2", "p3"];
    for p in projects {
        app.sim.set_fault(p, Fault::delay(Duration::from_millis(300)));
    }
    // Interleaved, so no project's representations arrive together.
    let wanted: Vec<(&str, String)> =
        (0..10).flat_map(|i| projects.map(|p| (p, connection_ids(p)[i].clone()))).collect();
    let reps = wanted.iter().map(|(p, id)| connection_rep(p, id)).collect();

    let started = Instant::now();
    let resp = entities(&app, reps).await;
    let elapsed = started.elapsed();

    assert!(errors(&resp).is_empty(), "{resp:#}");
    let got = resp["data"]["_entities"].as_array().expect("list");
    assert_eq!(got.len(), 30);
    for (entity, (project, id)) in got.iter().zip(&wanted) {
        assert_eq!(entity["__typename"], "Connection");
        assert_eq!(
            (entity["projectId"].as_str(), entity["connectionId"].as_str()),
            (Some(*project), Some(id.as_str()))
        );
        assert!(entity["name"].as_str().is_some_and(|n| !n.is_empty()), "{entity}");
    }
    for p in projects {
        assert_eq!(app.sim.calls_for(p), 1, "{p}");
    }
    assert_eq!(app.sim.stats().calls, 3);
    // Sequential calls would take 3 × 300 ms; concurrent ones well under 2 × 300 ms.
    // Sequential calls would take at least 1 500 ms; concurrent ones take ~330 ms on an idle
    // machine. The bound leaves room for a loaded CI machine; the arrival spread below is
    // the sharper proof of overlap (every call holds the simulator for 300 ms).
    assert!(elapsed < Duration::from_millis(900), "took {elapsed:?}");
    let arrivals: Vec<u64> = app.sim.requests().iter().map(|r| r.at_ms).collect();
    let spread = arrivals.iter().max().unwrap_or(&0) - arrivals.iter().min().unwrap_or(&0);
    assert!(spread < 200, "calls did not start together: {arrivals:?}");
}

#[tokio::test]
async fn the_same_connection_id_in_two_projects_resolves_per_project() {
    let app = spawn_app().await;
    // Every simulated project starts with the seed sample, so its id occurs in each.
    let seed = connection_ids("p1")[0].clone();
    assert_eq!(connection_ids("p2")[0], seed);
    let resp = entities(&app, vec![connection_rep("p1", &seed), connection_rep("p2", &seed)]).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"]["_entities"][0]["projectId"], "p1");
    assert_eq!(resp["data"]["_entities"][1]["projectId"], "p2");
    assert_eq!(resp["data"]["_entities"][1]["connectionId"], seed.as_str());
}

#[tokio::test]
async fn project_representations_cost_one_call_per_project() {
    let app = spawn_app().await;
    let reps = ["p1", "p2", "p3", "p1", "p2", "p3", "p1"].map(project_rep).to_vec();
    let resp = entities(&app, reps).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let got = resp["data"]["_entities"].as_array().expect("list");
    assert_eq!(got.len(), 7);
    assert_eq!(got[0]["__typename"], "Project");
    assert_eq!(got[0]["id"], "p1");
    assert_eq!(got[0], got[3], "same project, same answer");
    assert_eq!(got[0]["connections"].as_array().map(Vec::len), Some(12));
    assert!(got[0]["active"].as_array().is_some_and(|a| !a.is_empty() && a.len() < 12), "{got:#?}");
    for p in ["p1", "p2", "p3"] {
        assert_eq!(app.sim.calls_for(p), 1, "{p}");
    }
    assert_eq!(app.sim.stats().calls, 3);
}

#[tokio::test]
async fn entities_share_one_call_per_project_with_root_fields() {
    let app = spawn_app().await;
    let id = connection_ids("p1")[3].clone();
    let query = r#"query ($representations: [_Any!]!) {
      connections(projectId: "p1") { connectionId }
      project(id: "p1") { connections(state: ACTIVE) { connectionId } }
      _entities(representations: $representations) {
        ... on Connection { connectionId name }
        ... on Project { connections(service: "dws") { connectionId } }
      }
    }"#;
    let reps = json!([connection_rep("p1", &id), project_rep("p1")]);
    let resp = app.query_vars(query, json!({ "representations": reps })).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"]["_entities"][0]["connectionId"], id.as_str());
    assert!(resp["data"]["_entities"][1]["connections"].is_array());
    assert!(resp["data"]["project"]["connections"].is_array());
    assert_eq!(app.sim.calls_for("p1"), 1);
    assert_eq!(app.sim.stats().calls, 1);
}

#[tokio::test]
async fn a_connection_that_does_not_exist_resolves_to_null_without_an_error() {
    let app = spawn_app().await;
    let id = connection_ids("p1")[1].clone();
    let reps = vec![connection_rep("p1", "00000000-0000-0000-0000-000000000000"), connection_rep("p1", &id)];
    let resp = entities(&app, reps).await;
    assert!(resp.get("errors").is_none(), "{resp:#}");
    assert_eq!(resp["data"]["_entities"][0], Value::Null);
    assert_eq!(resp["data"]["_entities"][1]["connectionId"], id.as_str());
    assert_eq!(app.sim.stats().calls, 1);
}

#[tokio::test]
async fn an_invalid_project_id_fails_only_its_own_entry() {
    let app = spawn_app().await;
    let id = connection_ids("p1")[2].clone();
    let reps = vec![
        connection_rep("p1", &id),
        connection_rep("../admin", &id),
        project_rep("a b"),
        project_rep("p2"),
        connection_rep(&"x".repeat(65), &id),
    ];
    let resp = entities(&app, reps).await;
    let list = &resp["data"]["_entities"];
    assert_eq!(list[0]["connectionId"], id.as_str(), "{resp:#}");
    assert_eq!(list[3]["id"], "p2");
    assert!(list[3]["connections"].is_array());
    for i in [1, 2, 4] {
        assert_eq!(list[i], Value::Null, "entry {i}");
        let e = error_with_path(&resp, &json!(["_entities", i]));
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{e}");
        assert_eq!(e["extensions"]["argument"], "representations");
    }
    assert_eq!(errors(&resp).len(), 3, "{resp:#}");
    // Nothing invalid reached the upstream.
    let mut called: Vec<String> = app.sim.stats().by_project.into_keys().collect();
    called.sort();
    assert_eq!(called, ["p1", "p2"]);
}

#[tokio::test]
async fn malformed_representations_fail_only_their_own_entry() {
    let app = spawn_app().await;
    let reps = vec![
        project_rep("p1"),
        json!({ "id": "p1" }),
        json!({ "__typename": "Queue", "id": "p1" }),
        json!({ "__typename": "Connection", "projectId": "p1" }),
        json!({ "__typename": "Connection", "projectId": "p1", "connectionId": "" }),
        json!({ "__typename": "Project", "id": ["p1"] }),
        json!("Project"),
        project_rep("p1"),
    ];
    let resp = entities(&app, reps).await;
    let list = resp["data"]["_entities"].as_array().expect("list");
    assert_eq!(list.len(), 8);
    assert_eq!(list[0]["id"], "p1");
    assert_eq!(list[7]["id"], "p1");
    for (i, entry) in list.iter().enumerate().take(7).skip(1) {
        assert_eq!(entry, &Value::Null, "entry {i}");
        let e = error_with_path(&resp, &json!(["_entities", i]));
        assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{e}");
        assert!(e["message"].as_str().is_some_and(|m| m.starts_with("invalid entity representation")), "{e}");
    }
    assert_eq!(errors(&resp).len(), 6, "{resp:#}");
    assert_eq!(app.sim.stats().calls, 1);
}

#[tokio::test]
async fn an_upstream_failure_nulls_only_the_entities_of_that_project() {
    let app = spawn_app().await;
    app.sim.set_fault("p2", Fault::throttled(3));
    let (ok, failing) = (connection_ids("p1")[4].clone(), connection_ids("p2")[4].clone());
    let reps = vec![
        connection_rep("p1", &ok),
        connection_rep("p2", &failing),
        project_rep("p2"),
        project_rep("p1"),
        connection_rep("p2", &failing),
    ];
    let resp = entities(&app, reps).await;
    let list = &resp["data"]["_entities"];
    assert_eq!(list[0]["connectionId"], ok.as_str(), "{resp:#}");
    assert!(list[3]["connections"].is_array());
    for i in [1, 4] {
        assert_eq!(list[i], Value::Null);
        let e = error_with_path(&resp, &json!(["_entities", i]));
        assert_eq!(e["extensions"]["code"], "RATE_LIMITED");
        assert_eq!(e["extensions"]["projectId"], "p2");
        assert_eq!(e["extensions"]["retryAfter"], 3);
    }
    // The project entity resolves; only its fields that needed DLI are null.
    assert_eq!(list[2]["id"], "p2");
    assert_eq!(list[2]["connections"], Value::Null);
    assert_eq!(list[2]["active"], Value::Null);
    for field in ["connections", "active"] {
        let e = error_with_path(&resp, &json!(["_entities", 2, field]));
        assert_eq!(e["extensions"]["code"], "RATE_LIMITED");
    }
    assert_eq!(errors(&resp).len(), 4, "{resp:#}");
    assert_eq!(app.sim.calls_for("p2"), 1);
}

#[tokio::test]
async fn entity_lookups_without_credentials_fail_per_entry_and_call_nothing() {
    let app = spawn_app().await;
    let body = json!({ "query": ENTITIES, "variables": { "representations": [connection_rep("p1", "c"), project_rep("p1")] } });
    let (_, resp) = app.post_with_token(&body, None).await;
    assert_eq!(resp["data"]["_entities"][0], Value::Null);
    assert_eq!(resp["data"]["_entities"][1]["id"], "p1");
    for path in [json!(["_entities", 0]), json!(["_entities", 1, "connections"])] {
        assert_eq!(error_with_path(&resp, &path)["extensions"]["code"], "UNAUTHENTICATED");
    }
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn an_empty_representation_list_gives_an_empty_list() {
    let app = spawn_app().await;
    let resp = entities(&app, vec![]).await;
    assert_eq!(resp, json!({ "data": { "_entities": [] } }));
}

#[tokio::test]
async fn project_connections_match_the_root_field() {
    let app = spawn_app().await;
    let resp = app
        .query(
            r#"{ project(id: "p1") { id connections(state: ACTIVE, service: "cloudtable.opentsdb") { connectionId name } }
                 connections(projectId: "p1", state: ACTIVE, service: "cloudtable.opentsdb") { connectionId name } }"#,
        )
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"]["project"]["id"], "p1");
    let nested = &resp["data"]["project"]["connections"];
    assert_eq!(nested.as_array().map(Vec::len), Some(2), "{resp:#}");
    assert_eq!(nested, &resp["data"]["connections"]);
    assert_eq!(app.sim.calls_for("p1"), 1);
}

#[tokio::test]
async fn project_with_an_invalid_id_is_null_with_bad_user_input() {
    let app = spawn_app().await;
    let resp = app
        .query(r#"{ project(id: "p1/../p2") { id connections { name } } ok: project(id: "p2") { id } }"#)
        .await;
    assert_eq!(resp["data"]["project"], Value::Null, "{resp:#}");
    assert_eq!(resp["data"]["ok"]["id"], "p2");
    let e = error_with_path(&resp, &json!(["project"]));
    assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(e["extensions"]["argument"], "id");
    assert_eq!(errors(&resp).len(), 1);
    assert_eq!(app.sim.stats().calls, 0, "a project without connections selected calls nothing");
}

#[tokio::test]
async fn project_connections_report_upstream_errors_like_the_root_field() {
    let app = spawn_app().await;
    let resp = app.query(r#"{ project(id: "fault-404") { id connections { name } } }"#).await;
    assert_eq!(resp["data"]["project"]["id"], "fault-404", "{resp:#}");
    assert_eq!(resp["data"]["project"]["connections"], Value::Null);
    let e = error_with_path(&resp, &json!(["project", "connections"]));
    assert_eq!(e["extensions"]["code"], "NOT_FOUND");
    assert_eq!(e["extensions"]["upstreamCode"], "DLI.0002");
}
