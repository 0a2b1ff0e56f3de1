//! Field mapping, tolerance and filters.

use dli_graphql::sim::{Fault, SimOptions, fixtures};
use serde_json::{Value, json};

use crate::helpers::{ALL_FIELDS, errors, spawn_app, spawn_app_with};

#[tokio::test]
async fn every_field_of_the_seed_sample_is_mapped() {
    let app = spawn_app().await;
    let resp = app.query(&format!("{{ connections(projectId: \"p1\") {{ {ALL_FIELDS} }} }}")).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(
        resp["data"]["connections"][0],
        json!({
            "projectId": "p1",
            "connectionId": "75419c22-7a31-42e4-a3f3-102f6e6895c9",
            "name": "test",
            "state": "DELETED",
            "rawState": "DELETED",
            "service": "CloudTable",
            "destination": "cloudtable-c172-zk3-WBFt4fr2.mycloudtable.com:2181,cloudtable-c172-zk2-LHZEWNau.mycloudtable.com:2181,cloudtable-c172-zk1-cvwY6lMh.mycloudtable.com:2181",
            "process": 0.0,
            "connectionUrl": null,
            "clusterName": null,
            "queues": [],
            "createTime": "2019-02-02T07:35:47.256Z"
        })
    );
}

#[tokio::test]
async fn the_whole_list_comes_back_in_upstream_order() {
    let app = spawn_app().await;
    let resp = app.query("{ connections(projectId: \"p2\") { connectionId rawState } }").await;
    let got: Vec<(String, String)> = resp["data"]["connections"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (c["connectionId"].as_str().unwrap_or("").into(), c["rawState"].as_str().unwrap_or("").into())
        })
        .collect();
    let want: Vec<(String, String)> = fixtures::connections("p2", 12)
        .iter()
        .map(|c| (c["connection_id"].as_str().unwrap_or("").into(), c["state"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn unknown_states_and_odd_shapes_are_tolerated() {
    let app = spawn_app().await;
    app.sim.set_fault(
        "odd",
        Fault::body(
            r#"{"is_success": true, "message": "", "count": 3, "future_field": {"a": [1]}, "connections": [
                {"connection_id": "c1", "name": "n1", "state": "RUNNING", "process": 0.25, "service": "DWS",
                 "destination": "d", "connection_url": "jdbc:x", "cluster_name": "q0",
                 "create_time": 1549092947256, "queue_list": ["q1", "q2"], "new_thing": true},
                {"connection_id": "c2", "state": "ACTIVE", "process": 1, "service": "RDS",
                 "available_queue_info": [{"peer_id": "x", "status": "ACTIVE", "name": "q3", "err_msg": "", "update_time": 1}]},
                {"connection_id": "c3", "state": null, "connection_url": null}
            ]}"#,
        ),
    );
    let resp = app.query(&format!("{{ connections(projectId: \"odd\") {{ {ALL_FIELDS} }} }}")).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let cs = &resp["data"]["connections"];
    assert_eq!(cs[0]["state"], "UNKNOWN");
    assert_eq!(cs[0]["rawState"], "RUNNING");
    assert_eq!(cs[0]["process"], 0.25);
    assert_eq!(cs[0]["connectionUrl"], "jdbc:x");
    assert_eq!(cs[0]["clusterName"], "q0");
    assert_eq!(cs[0]["queues"], json!(["q1", "q2"]));
    assert_eq!(cs[1]["process"], 1.0);
    assert_eq!(cs[1]["queues"], json!(["q3"]));
    assert_eq!(cs[1]["name"], "");
    assert_eq!(cs[2]["state"], "UNKNOWN");
    assert_eq!(cs[2]["rawState"], "");
    assert_eq!(cs[2]["connectionUrl"], Value::Null);
    assert_eq!(cs[2]["createTime"], "1970-01-01T00:00:00.000Z");
}

fn states_services(resp: &Value, field: &str) -> Vec<(String, String)> {
    resp["data"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no list at {field}: {resp:#}"))
        .iter()
        .map(|c| (c["state"].as_str().unwrap_or("").into(), c["service"].as_str().unwrap_or("").into()))
        .collect()
}

#[tokio::test]
async fn state_and_service_filters_run_server_side() {
    let app = spawn_app().await;
    let resp = app
        .query(
            r#"{
              all: connections(projectId: "p1") { state service }
              active: connections(projectId: "p1", state: ACTIVE) { state service }
              unknown: connections(projectId: "p1", state: UNKNOWN) { state rawState }
              tsdb: connections(projectId: "p1", service: "cloudtable.opentsdb") { state service }
              activeDws: connections(projectId: "p1", state: ACTIVE, service: "dws") { state service }
              none: connections(projectId: "p1", service: "NoSuchService") { state }
            }"#,
        )
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let all = states_services(&resp, "all");
    let expect = |pred: &dyn Fn(&(String, String)) -> bool| -> Vec<(String, String)> {
        all.iter().filter(|c| pred(c)).cloned().collect()
    };

    let active = states_services(&resp, "active");
    assert!(!active.is_empty());
    assert_eq!(active, expect(&|c| c.0 == "ACTIVE"));

    let tsdb = states_services(&resp, "tsdb");
    // Both spellings the upstream uses match one filter.
    assert!(tsdb.iter().any(|c| c.1 == "CloudTable.OpenTSDB"), "{tsdb:?}");
    assert!(tsdb.iter().any(|c| c.1 == "CloudTable.OPENTSDB"), "{tsdb:?}");
    assert_eq!(tsdb, expect(&|c| c.1.eq_ignore_ascii_case("CloudTable.OpenTSDB")));

    let active_dws = states_services(&resp, "activeDws");
    assert!(!active_dws.is_empty());
    assert_eq!(active_dws, expect(&|c| c.0 == "ACTIVE" && c.1 == "DWS"));

    assert_eq!(resp["data"]["unknown"], json!([{ "state": "UNKNOWN", "rawState": "RUNNING" }]));
    assert_eq!(resp["data"]["none"], json!([]));
    // Six fields, one project: one upstream call.
    assert_eq!(app.sim.calls_for("p1"), 1);
}

#[tokio::test]
async fn a_large_list_is_parsed_and_filtered_like_a_small_one() {
    // About 1.3 MB: parsed on the blocking pool, not on an async worker.
    let n = 3000;
    let app = spawn_app_with(&[], SimOptions { connections_per_project: n, ..SimOptions::default() }).await;
    let expected: Vec<String> = fixtures::connections("big", n)
        .iter()
        .filter(|c| {
            c["state"] == "FAILED" && c["service"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("DWS"))
        })
        .map(|c| c["connection_id"].as_str().expect("id").to_owned())
        .collect();
    assert!(expected.len() > 10, "the fixture has matches");
    let resp = app
        .query(r#"{ connections(projectId: "big", state: FAILED, service: "DWS") { connectionId state } }"#)
        .await;
    let got: Vec<String> = resp["data"]["connections"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {resp:#}"))
        .iter()
        .map(|c| c["connectionId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(got, expected);
    assert!(fixtures::list_body("big", n).len() > 512 * 1024, "over the blocking-parse threshold");
}
