//! One classic connection (`connection`, `Project.connection`) and each connection's queue
//! peering (`queueStatuses`): values, upstream call counts, the per-operation call budget,
//! and errors that keep the rest of the response.

use dli_graphql::sim::{Endpoint, SimOptions, fixtures};
use serde_json::{Value, json};

use crate::helpers::{ALL_FIELDS, error_at, errors, spawn_app, spawn_app_with};

const SEED_ID: &str = "75419c22-7a31-42e4-a3f3-102f6e6895c9";
const PEERING: &str = "queueStatuses { name status errorMessage updatedAt peerId }";

/// The simulator's connections of `project` (default size).
fn fixture(project: &str) -> Vec<Value> {
    fixtures::connections(project, SimOptions::default().connections_per_project)
}

#[tokio::test]
async fn connection_returns_the_show_answer_with_each_queues_peering() {
    let app = spawn_app().await;
    let items = fixture("p1");
    // An item with a cluster and a queue list: its peering has two queues, one with `peer_id`
    // and one with `uuid`.
    let item = items.iter().find(|c| c.get("queue_list").is_some()).expect("an item with queue_list");
    let id = item["connection_id"].as_str().expect("id");
    let resp = app
        .query(&format!(
            r#"{{ connection(projectId: "p1", connectionId: "{id}") {{ {ALL_FIELDS} {PEERING} }} }}"#
        ))
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let c = &resp["data"]["connection"];
    assert_eq!(c["connectionId"], id);
    assert_eq!(c["name"], item["name"]);
    let peering = c["queueStatuses"].as_array().expect("list");
    assert!(peering.len() >= 2, "{peering:?}");
    let expected = fixtures::queue_info_of(item);
    for (got, want) in peering.iter().zip(expected.as_array().expect("array")) {
        assert_eq!(got["name"], want["name"]);
        assert_eq!(got["status"], want["status"]);
        let peer = want.get("peer_id").or_else(|| want.get("uuid")).expect("an id under either key");
        assert_eq!(got["peerId"], *peer);
        assert!(got["updatedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{got}");
    }
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 1);
    assert_eq!(app.sim.calls_for("p1"), 0, "no list call for a detail");
}

#[tokio::test]
async fn a_failed_connection_reports_its_peering_error() {
    let app = spawn_app().await;
    let failed = fixture("p1").into_iter().find(|c| c["state"] == "FAILED").expect("a FAILED item");
    let id = failed["connection_id"].as_str().expect("id");
    let resp = app
        .query(&format!(r#"{{ connection(projectId: "p1", connectionId: "{id}") {{ state {PEERING} }} }}"#))
        .await;
    let peering = &resp["data"]["connection"]["queueStatuses"];
    assert_eq!(peering[0]["status"], "FAILED", "{resp:#}");
    assert!(peering[0]["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{resp:#}");
}

#[tokio::test]
async fn an_unknown_connection_is_null_without_an_error() {
    let app = spawn_app().await;
    let resp = app
        .query(r#"{ connection(projectId: "p1", connectionId: "00000000-0000-4000-a000-000000000000") { name } project(id: "p1") { connection(connectionId: "nope") { name } } }"#)
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"]["connection"], Value::Null);
    assert_eq!(resp["data"]["project"]["connection"], Value::Null);
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 2);
}

#[tokio::test]
async fn invalid_connection_ids_are_bad_user_input_without_an_upstream_call() {
    let app = spawn_app().await;
    for bad in ["", "../x", "a/b", "a%2Fb", "a b", &"x".repeat(65)] {
        let resp = app
            .query_vars(
                "query($id: ID!) { connection(projectId: \"p1\", connectionId: $id) { name } ok: connections(projectId: \"p2\") { name } }",
                json!({ "id": bad }),
            )
            .await;
        assert_eq!(resp["data"]["connection"], Value::Null, "{bad:?}: {resp:#}");
        assert_eq!(error_at(&resp, "connection")["extensions"]["code"], "BAD_USER_INPUT", "{bad:?}");
        assert!(resp["data"]["ok"].is_array(), "the other field keeps its data");
    }
    assert!(app.sim.requests().iter().all(|r| !r.path.contains("/datasource-connection/")));
}

#[tokio::test]
async fn queue_statuses_call_show_only_for_items_without_peering_info() {
    let app = spawn_app().await;
    let items = fixture("p1");
    let without = items.iter().filter(|c| c.get("available_queue_info").is_none()).count();
    let with_empty = items.iter().filter(|c| c["available_queue_info"] == json!([])).count();
    assert!(without > 0 && without < items.len() && with_empty > 0, "the fixture mixes both shapes");

    // Not asked for: no show call at all.
    let resp = app.query(&format!(r#"{{ connections(projectId: "p1") {{ {ALL_FIELDS} }} }}"#)).await;
    assert!(errors(&resp).is_empty());
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 0);

    let resp =
        app.query(&format!(r#"{{ connections(projectId: "p1") {{ connectionId {PEERING} }} }}"#)).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1") as usize, without);
    let got = resp["data"]["connections"].as_array().expect("list");
    for (item, c) in items.iter().zip(got) {
        match item.get("available_queue_info") {
            // From the list item, even when empty.
            Some(info) => {
                assert_eq!(c["queueStatuses"].as_array().map(Vec::len), info.as_array().map(Vec::len))
            }
            None => assert_eq!(
                c["queueStatuses"].as_array().map(Vec::len),
                fixtures::queue_info_of(item).as_array().map(Vec::len)
            ),
        }
    }
}

#[tokio::test]
async fn a_detail_and_a_list_items_peering_share_one_show_call() {
    let app = spawn_app().await;
    let resp = app
        .query(&format!(
            r#"{{ one: connection(projectId: "p1", connectionId: "{SEED_ID}") {{ {PEERING} }}
                 again: connection(projectId: "p1", connectionId: "{SEED_ID}") {{ name }}
                 connections(projectId: "p1", state: DELETED) {{ connectionId {PEERING} }}
                 project(id: "p1") {{ connection(connectionId: "{SEED_ID}") {{ name }} }} }}"#
        ))
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let seed_shows = app
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/datasource-connection/{SEED_ID}")))
        .count();
    assert_eq!(seed_shows, 1);
    assert_eq!(app.sim.calls_for("p1"), 1);
}

#[tokio::test]
async fn past_the_detail_call_budget_fields_fail_and_the_rest_keeps_its_data() {
    let app = spawn_app_with(&["--max-detail-calls", "2"], SimOptions::default()).await;
    let ids: Vec<String> =
        fixture("p1").iter().take(3).map(|c| c["connection_id"].as_str().expect("id").to_owned()).collect();
    let resp = app
        .query(&format!(
            r#"{{ a: connection(projectId: "p1", connectionId: "{}") {{ name }}
                 b: connection(projectId: "p1", connectionId: "{}") {{ name }}
                 c: connection(projectId: "p1", connectionId: "{}") {{ name }}
                 again: connection(projectId: "p1", connectionId: "{}") {{ state }}
                 list: connections(projectId: "p1") {{ name }} }}"#,
            ids[0], ids[1], ids[2], ids[0]
        ))
        .await;
    assert!(resp["data"]["a"]["name"].is_string() && resp["data"]["b"]["name"].is_string(), "{resp:#}");
    assert!(resp["data"]["again"]["state"].is_string(), "a repeated call costs nothing: {resp:#}");
    assert_eq!(resp["data"]["c"], Value::Null);
    let e = error_at(&resp, "c");
    assert_eq!(e["extensions"]["code"], "LIMIT_EXCEEDED");
    assert_eq!(e["extensions"]["limit"], "max-detail-calls");
    assert!(resp["data"]["list"].is_array());
    assert_eq!(errors(&resp).len(), 1);
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 2);

    // The budget is per operation: the next request starts afresh.
    let resp = app
        .query(&format!(r#"{{ connection(projectId: "p1", connectionId: "{}") {{ name }} }}"#, ids[2]))
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
}

#[tokio::test]
async fn an_upstream_failure_on_show_is_an_error_at_the_field_only() {
    let app = spawn_app().await;
    let resp = app
        .query(&format!(
            r#"{{ bad: connection(projectId: "fault-429", connectionId: "{SEED_ID}") {{ name }}
                 gone: connection(projectId: "fault-500", connectionId: "{SEED_ID}") {{ name }}
                 good: connection(projectId: "p1", connectionId: "{SEED_ID}") {{ name }} }}"#
        ))
        .await;
    assert_eq!(resp["data"]["bad"], Value::Null);
    assert_eq!(error_at(&resp, "bad")["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(error_at(&resp, "gone")["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(resp["data"]["good"]["name"], "test");
}

#[tokio::test]
async fn past_the_budget_each_connections_peering_fails_on_its_own() {
    // The failed entries carry `LIMIT_EXCEEDED` at their own path; every other field of every
    // connection, and the other list, keep their data.
    let app = spawn_app_with(&["--max-detail-calls", "1"], SimOptions::default()).await;
    let resp = app
        .query(&format!(
            r#"{{ peered: connections(projectId: "p1") {{ name {PEERING} }} other: connections(projectId: "p2") {{ name }} }}"#
        ))
        .await;
    let items = fixture("p1");
    let got = resp["data"]["peered"].as_array().expect("the list keeps its data");
    assert_eq!(got.len(), items.len());
    assert!(got.iter().all(|c| c["name"].is_string()));
    let without: Vec<usize> =
        (0..items.len()).filter(|&i| items[i].get("available_queue_info").is_none()).collect();
    // The first show call fits in the budget, the others do not.
    assert!(got[without[0]]["queueStatuses"].is_array(), "{resp:#}");
    let mut failed = errors(&resp);
    failed.sort_by_key(|e| e["path"][1].as_u64());
    assert_eq!(failed.len(), without.len() - 1, "{resp:#}");
    for (e, i) in failed.iter().zip(&without[1..]) {
        assert_eq!(e["extensions"]["code"], "LIMIT_EXCEEDED");
        assert_eq!(e["path"], json!(["peered", i, "queueStatuses"]));
    }
    for (i, item) in items.iter().enumerate() {
        if item.get("available_queue_info").is_some() {
            assert!(got[i]["queueStatuses"].is_array(), "from the list item, no call needed");
        }
    }
    assert!(resp["data"]["other"].is_array());
    assert_eq!(app.sim.calls_to(Endpoint::Show, "p1"), 1);
}

#[tokio::test]
async fn the_new_fields_count_toward_the_fan_out_and_project_limits() {
    let app =
        spawn_app_with(&["--max-upstream-fields", "3", "--max-projects", "2"], SimOptions::default()).await;
    let limit = |resp: &Value| resp["errors"][0]["extensions"]["limit"].clone();
    let resp = app
        .query(r#"{ a: connectionsPage(projectId: "p1") { totalCount } b: connectionStats(projectId: "p1") { total }
                   c: enhancedConnections(projectId: "p1") { totalCount } d: connection(projectId: "p1", connectionId: "x") { name } }"#)
        .await;
    assert_eq!(limit(&resp), "max-upstream-fields", "{resp:#}");
    // An enhanced connection's `id` is not a project: two projects fit.
    let resp = app
        .query(r#"{ a: enhancedConnection(projectId: "p1", id: "x") { name } b: connectionStats(projectId: "p2") { total } }"#)
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let resp = app
        .query(r#"{ a: enhancedConnection(projectId: "p1", id: "x") { name } b: connectionStats(projectId: "p2") { total } c: connectionsPage(projectId: "p3") { totalCount } }"#)
        .await;
    assert_eq!(limit(&resp), "max-projects", "{resp:#}");
    assert!(app.sim.requests().iter().all(|r| !r.path.contains("/p3/")), "a refused operation calls nothing");
}
