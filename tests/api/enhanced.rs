//! Enhanced connections: `enhancedConnections` (DLI's server-side paging), `enhancedConnection`
//! (show), `privileges`, and the `EnhancedConnection` entity.

use dli_graphql::sim::{Endpoint, SimOptions, fixtures};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_at, errors, spawn_app, spawn_app_with};

const FIELDS: &str = "projectId id name status rawStatus destVpcId destNetworkId createTime hosts { name ip } \
    queues { name status errorMessage updatedAt peerId } elasticResourcePools { name status peerId } ipv6Enabled projectAuthorizationGranted";
const QUERY: &str = "query($p: ID!, $status: EnhancedConnectionStatus, $name: String, $tags: [TagFilter!], $first: Int, $after: String) {
    enhancedConnections(projectId: $p, status: $status, name: $name, tags: $tags, first: $first, after: $after) {
        edges { cursor node { id name status } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount } }";

fn fixture(project: &str, n: usize) -> Vec<fixtures::Enhanced> {
    fixtures::enhanced_connections(project, n)
}

async fn page(app: &TestApp, vars: Value) -> Value {
    let resp = app.query_vars(QUERY, vars).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    resp["data"]["enhancedConnections"].clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The query strings of the enhanced list calls the simulator received.
fn list_queries(app: &TestApp) -> Vec<String> {
    app.sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/datasource/enhanced-connections"))
        .map(|r| r.query.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn pages_follow_dlis_offsets_to_the_end() {
    let app = spawn_app_with(&[], SimOptions { enhanced_per_project: 23, ..SimOptions::default() }).await;
    let all: Vec<String> =
        fixture("e1", 23).iter().map(|e| e.item["id"].as_str().expect("id").to_owned()).collect();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let p = page(&app, json!({ "p": "e1", "first": 10, "after": after })).await;
        assert_eq!(p["totalCount"], 23);
        assert_eq!(p["pageInfo"]["hasPreviousPage"], !seen.is_empty());
        seen.extend(ids(&p));
        if p["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = p["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, all);
    assert_eq!(list_queries(&app), ["limit=10&offset=0", "limit=10&offset=10", "limit=10&offset=20"]);
    // Without `first`, a page of 50.
    let p = page(&app, json!({ "p": "e1" })).await;
    assert_eq!(ids(&p).len(), 23);
    assert_eq!(p["pageInfo"]["hasNextPage"], false);
    assert!(list_queries(&app).last().is_some_and(|q| q == "limit=50&offset=0"));
}

#[tokio::test]
async fn an_exactly_full_last_page_ends_by_count_and_a_short_page_ends_whatever_count_says() {
    let app = spawn_app_with(&[], SimOptions { enhanced_per_project: 20, ..SimOptions::default() }).await;
    let p = page(&app, json!({ "p": "e2", "first": 10 })).await;
    assert_eq!(p["pageInfo"]["hasNextPage"], true);
    let p = page(&app, json!({ "p": "e2", "first": 10, "after": p["pageInfo"]["endCursor"] })).await;
    assert_eq!(p["pageInfo"]["hasNextPage"], false, "count says the list ends here");

    // A DLI whose `count` is the number returned (as its docs say) still ends at a short page.
    let body = json!({ "is_success": true, "message": "", "count": 99,
                       "connections": [{ "id": "a1", "name": "a", "status": "ACTIVE" }] });
    app.sim.set_fault("e3", dli_graphql::sim::Fault::body(&body.to_string()));
    let p = page(&app, json!({ "p": "e3", "first": 5 })).await;
    assert_eq!(ids(&p), ["a1"]);
    assert_eq!(p["pageInfo"]["hasNextPage"], false);
    assert_eq!(p["totalCount"], 99);
}

#[tokio::test]
async fn first_zero_is_an_empty_page_and_never_dlis_limit_zero() {
    let app = spawn_app().await;
    let p = page(&app, json!({ "p": "e4", "first": 0 })).await;
    assert_eq!(p["edges"], json!([]));
    assert_eq!(p["pageInfo"]["hasNextPage"], true);
    assert_eq!(p["pageInfo"]["startCursor"], Value::Null);
    assert_eq!(p["totalCount"], 12);
    assert_eq!(list_queries(&app), ["limit=1&offset=0"]);
}

#[tokio::test]
async fn filters_go_to_dli_and_it_applies_them() {
    let app = spawn_app().await;
    let all = fixture("e5", 12);
    let p = page(&app, json!({ "p": "e5", "status": "DELETED", "first": 100 })).await;
    let want: Vec<&str> = all
        .iter()
        .filter(|e| e.item["status"] == "DELETED")
        .map(|e| e.item["id"].as_str().expect("id"))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(ids(&p), want);
    assert_eq!(p["totalCount"], want.len());
    let p = page(&app, json!({ "p": "e5", "tags": [{ "key": "env", "value": "prod" }, { "key": "team", "value": "a" }], "first": 100 })).await;
    let want: Vec<&str> = all
        .iter()
        .filter(|e| {
            e.tags.contains(&("env".into(), "prod".into())) && e.tags.contains(&("team".into(), "a".into()))
        })
        .map(|e| e.item["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids(&p), want);
    let p = page(&app, json!({ "p": "e5", "name": "conn_1", "first": 100 })).await;
    assert!(ids(&p).len() >= 2, "conn_1, conn_10, conn_11");
    let queries = list_queries(&app);
    assert_eq!(queries[0], "limit=100&offset=0&status=DELETED");
    assert_eq!(queries[1], "limit=100&offset=0&tags=env%3Dprod%2Cteam%3Da");
    assert_eq!(queries[2], "limit=100&offset=0&name=conn_1");
}

#[tokio::test]
async fn bad_arguments_are_refused_without_an_upstream_call() {
    let app = spawn_app().await;
    for (vars, code) in [
        (json!({ "p": "e6", "after": "nope" }), "BAD_USER_INPUT"),
        (json!({ "p": "e6", "first": -2 }), "BAD_USER_INPUT"),
        (json!({ "p": "e6", "first": 501 }), "LIMIT_EXCEEDED"),
        (json!({ "p": "e6", "status": "UNKNOWN" }), "BAD_USER_INPUT"),
        (json!({ "p": "e6", "tags": [{ "key": "a,b", "value": "c" }] }), "BAD_USER_INPUT"),
        (json!({ "p": "e6", "tags": [{ "key": "a", "value": "" }] }), "BAD_USER_INPUT"),
        (json!({ "p": "../e6" }), "BAD_USER_INPUT"),
    ] {
        let resp = app.query_vars(QUERY, vars.clone()).await;
        assert_eq!(resp["data"]["enhancedConnections"], Value::Null, "{vars}");
        assert_eq!(error_at(&resp, "enhancedConnections")["extensions"]["code"], code, "{vars}: {resp:#}");
    }
    assert!(app.sim.requests().is_empty());
}

#[tokio::test]
async fn every_field_of_a_listed_and_a_shown_connection() {
    let app = spawn_app().await;
    let all = fixture("e7", 12);
    let e = &all[2].item;
    let id = e["id"].as_str().expect("id");
    let resp = app
        .query(&format!(
            r#"{{ enhancedConnections(projectId: "e7", first: 3) {{ edges {{ node {{ {FIELDS} }} }} }}
                 enhancedConnection(projectId: "e7", id: "{id}") {{ {FIELDS} }} }}"#
        ))
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let listed = &resp["data"]["enhancedConnections"]["edges"][2]["node"];
    let shown = &resp["data"]["enhancedConnection"];
    for c in [listed, shown] {
        assert_eq!(c["id"], id);
        assert_eq!(c["projectId"], "e7");
        assert_eq!(c["name"], e["name"]);
        assert_eq!(c["rawStatus"], e["status"]);
        assert_eq!(c["destVpcId"], e["dest_vpc_id"]);
        assert_eq!(c["destNetworkId"], e["dest_network_id"]);
        assert_eq!(c["hosts"].as_array().map(Vec::len), e["hosts"].as_array().map(Vec::len));
        assert_eq!(c["hosts"][0]["ip"], e["hosts"][0]["ip"]);
        assert_eq!(c["queues"].as_array().map(Vec::len), e["available_queue_info"].as_array().map(Vec::len));
        assert_eq!(c["queues"][1]["status"], e["available_queue_info"][1]["status"]);
        assert_eq!(c["elasticResourcePools"][0]["name"], e["elastic_resource_pools"][0]["name"]);
        assert_eq!(c["ipv6Enabled"], e["ipv6_enable"]);
    }
    // `isPrivis: false` means authorization was granted; only the list says so.
    assert_eq!(listed["projectAuthorizationGranted"], json!(!e["isPrivis"].as_bool().expect("flag")));
    assert_eq!(shown["projectAuthorizationGranted"], Value::Null);
    let granted = page(&app, json!({ "p": "e7", "first": 12 })).await;
    assert_eq!(granted["edges"].as_array().map(Vec::len), Some(12));
    assert_eq!(app.sim.calls_to(Endpoint::EnhancedShow, "e7"), 1);
}

#[tokio::test]
async fn an_unknown_enhanced_connection_is_null_without_an_error_and_bad_ids_are_refused() {
    let app = spawn_app().await;
    let resp = app
        .query(r#"{ gone: enhancedConnection(projectId: "e8", id: "no-such-id") { name } bad: enhancedConnection(projectId: "e8", id: "a/b") { name } }"#)
        .await;
    assert_eq!(resp["data"]["gone"], Value::Null);
    assert_eq!(resp["data"]["bad"], Value::Null);
    assert_eq!(errors(&resp).len(), 1, "{resp:#}");
    assert_eq!(error_at(&resp, "bad")["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.sim.calls_to(Endpoint::EnhancedShow, "e8"), 1);
}

#[tokio::test]
async fn privileges_are_fetched_only_when_asked_once_per_connection_and_within_the_budget() {
    let app = spawn_app_with(&["--max-detail-calls", "4"], SimOptions::default()).await;
    let resp =
        app.query(r#"{ enhancedConnections(projectId: "e9", first: 6) { edges { node { id } } } }"#).await;
    assert!(errors(&resp).is_empty());
    assert_eq!(app.sim.calls_to(Endpoint::Privileges, "e9"), 0);

    let all = fixture("e9", 12);
    let resp = app
        .query(r#"{ enhancedConnections(projectId: "e9", first: 6) { edges { node { id privileges { object applicantProjectId privileges } } } } }"#)
        .await;
    let edges = resp["data"]["enhancedConnections"]["edges"].as_array().expect("edges").clone();
    assert_eq!(edges.len(), 6, "the page keeps its data: {resp:#}");
    let with: Vec<&Value> = edges.iter().filter(|e| e["node"]["privileges"].is_array()).collect();
    assert_eq!(with.len(), 4);
    for (i, e) in edges.iter().enumerate().filter(|(_, e)| e["node"]["privileges"].is_array()) {
        let got = e["node"]["privileges"].as_array().expect("list");
        assert_eq!(got.len(), i % 3, "the simulator shares connection {i} with {} projects", i % 3);
        if let Some(p) = got.first() {
            assert_eq!(p["object"], format!("edsconnections.{}", all[i].item["id"].as_str().expect("id")));
            assert_eq!(p["privileges"], json!(["BIND_QUEUE"]));
        }
    }
    let over = errors(&resp);
    assert_eq!(over.len(), 2);
    assert!(over.iter().all(|e| e["extensions"]["code"] == "LIMIT_EXCEEDED"));
    assert_eq!(app.sim.calls_to(Endpoint::Privileges, "e9"), 4);
}

#[tokio::test]
async fn fault_projects_fail_each_enhanced_field_on_its_own() {
    let app = spawn_app().await;
    let resp = app
        .query(r#"{ a: enhancedConnections(projectId: "fault-429") { totalCount } b: enhancedConnection(projectId: "fault-403", id: "x") { name }
                   c: enhancedConnections(projectId: "fault-garbage") { totalCount } ok: enhancedConnections(projectId: "e10", first: 1) { totalCount } }"#)
        .await;
    assert_eq!(error_at(&resp, "a")["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(error_at(&resp, "b")["extensions"]["code"], "FORBIDDEN");
    assert_eq!(error_at(&resp, "c")["extensions"]["code"], "BAD_UPSTREAM_RESPONSE");
    assert_eq!(resp["data"]["ok"]["totalCount"], 12);
}

#[tokio::test]
async fn entities_resolve_a_batch_with_one_list_call_per_project() {
    let app = spawn_app().await;
    let a = fixture("ea", 12);
    let b = fixture("eb", 12);
    let reps = json!([
        { "__typename": "EnhancedConnection", "projectId": "ea", "id": a[0].item["id"] },
        { "__typename": "EnhancedConnection", "projectId": "eb", "id": b[5].item["id"] },
        { "__typename": "EnhancedConnection", "projectId": "ea", "id": "unknown" },
        { "__typename": "EnhancedConnection", "projectId": "ea", "id": a[11].item["id"] },
        { "__typename": "EnhancedConnection", "projectId": "../x", "id": "y" },
    ]);
    let resp = app
        .query_vars(
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on EnhancedConnection { projectId id name projectAuthorizationGranted } } }",
            json!({ "r": reps }),
        )
        .await;
    let got = resp["data"]["_entities"].as_array().expect("list");
    assert_eq!(got[0]["name"], a[0].item["name"]);
    assert_eq!(got[1]["name"], b[5].item["name"]);
    assert_eq!(got[2], Value::Null);
    assert_eq!(got[3]["name"], a[11].item["name"]);
    assert_eq!(got[4], Value::Null);
    assert_eq!(errors(&resp).len(), 1);
    assert_eq!(resp["errors"][0]["path"], json!(["_entities", 4]));
    assert_eq!(list_queries(&app), ["limit=0&offset=0", "limit=0&offset=0"]);
}
