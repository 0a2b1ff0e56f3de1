//! `connectionsPage` (GraphQL Cursor Connections over the one fetched list) and
//! `connectionStats`: every filter, sort order and cursor edge case, and the one list call a
//! request makes for them.

use dli_graphql::sim::{SimOptions, fixtures};
use serde_json::{Value, json};

use crate::helpers::{ALL_FIELDS, TestApp, error_at, errors, spawn_app_with};

const N: usize = 60;
const PAGE: &str = "edges { cursor node { connectionId } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount";
const QUERY: &str = "query($p: ID!, $f: ConnectionFilter, $o: ConnectionOrder, $first: Int, $after: String, $last: Int, $before: String) {
    connectionsPage(projectId: $p, filter: $f, orderBy: $o, first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { connectionId } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount } }";

async fn app() -> TestApp {
    spawn_app_with(&[], SimOptions { connections_per_project: N, ..SimOptions::default() }).await
}

fn fixture() -> Vec<Value> {
    fixtures::connections("pg", N)
}

fn rank(state: &str) -> u8 {
    match state {
        "CREATING" => 0,
        "ACTIVE" => 1,
        "FAILED" => 2,
        "DELETED" => 3,
        _ => 4,
    }
}

/// The ids of `items` in the order the service must use.
fn expected(items: &[&Value], field: &str, desc: bool) -> Vec<String> {
    let mut keyed: Vec<(String, i64, String)> = items
        .iter()
        .map(|c| {
            let id = c["connection_id"].as_str().expect("id").to_owned();
            match field {
                "NAME" => (c["name"].as_str().expect("name").to_lowercase(), 0, id),
                "STATE" => (String::new(), i64::from(rank(c["state"].as_str().expect("state"))), id),
                _ => (String::new(), c["create_time"].as_i64().expect("time"), id),
            }
        })
        .collect();
    keyed.sort();
    if desc {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, _, id)| id).collect()
}

async fn page(app: &TestApp, vars: Value) -> Value {
    let mut vars = vars;
    vars["p"] = json!("pg");
    let resp = app.query_vars(QUERY, vars).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    resp["data"]["connectionsPage"].clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["connectionId"].as_str().expect("id").to_owned())
        .collect()
}

/// Every id, paging forward `size` at a time (or backward with `last`).
async fn walk(app: &TestApp, order: Value, filter: Value, size: usize, backward: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let vars = if backward {
            json!({ "o": order, "f": filter, "last": size, "before": cursor })
        } else {
            json!({ "o": order, "f": filter, "first": size, "after": cursor })
        };
        let p = page(app, vars).await;
        let mut chunk = ids(&p);
        assert!(chunk.len() <= size);
        let info = &p["pageInfo"];
        if backward {
            chunk.extend(out);
            out = chunk;
            if info["hasPreviousPage"] != true {
                break;
            }
            cursor = info["startCursor"].as_str().map(str::to_owned);
        } else {
            out.extend(chunk);
            if info["hasNextPage"] != true {
                break;
            }
            cursor = info["endCursor"].as_str().map(str::to_owned);
        }
    }
    out
}

#[tokio::test]
async fn the_default_page_is_fifty_by_creation_time() {
    let app = app().await;
    let p = page(&app, json!({})).await;
    let all = fixture();
    let want = expected(&all.iter().collect::<Vec<_>>(), "CREATE_TIME", false);
    assert_eq!(ids(&p), want[..50]);
    assert_eq!(p["totalCount"], N);
    assert_eq!(p["pageInfo"]["hasNextPage"], true);
    assert_eq!(p["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(p["pageInfo"]["startCursor"], p["edges"][0]["cursor"]);
    assert_eq!(p["pageInfo"]["endCursor"], p["edges"][49]["cursor"]);
}

#[tokio::test]
async fn every_sort_order_pages_forward_and_backward_through_the_whole_list() {
    let app = app().await;
    let all = fixture();
    let refs: Vec<&Value> = all.iter().collect();
    for field in ["CREATE_TIME", "NAME", "STATE"] {
        for direction in ["ASC", "DESC"] {
            let want = expected(&refs, field, direction == "DESC");
            let order = json!({ "field": field, "direction": direction });
            assert_eq!(walk(&app, order.clone(), Value::Null, 7, false).await, want, "{field} {direction}");
            assert_eq!(walk(&app, order, Value::Null, 9, true).await, want, "{field} {direction} backward");
        }
    }
    // Direction defaults to ascending.
    let p = page(&app, json!({ "o": { "field": "NAME" }, "first": 3 })).await;
    assert_eq!(ids(&p), expected(&refs, "NAME", false)[..3]);
}

#[tokio::test]
async fn the_last_page_and_last_before_report_their_neighbours() {
    let app = app().await;
    let all = fixture();
    let want = expected(&all.iter().collect::<Vec<_>>(), "CREATE_TIME", false);
    let first = page(&app, json!({ "first": 10 })).await;
    let after = first["pageInfo"]["endCursor"].clone();
    let rest = page(&app, json!({ "first": 500, "after": after })).await;
    assert_eq!(ids(&rest), want[10..]);
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    assert_eq!(rest["pageInfo"]["hasPreviousPage"], true);

    let tail = page(&app, json!({ "last": 5 })).await;
    assert_eq!(ids(&tail), want[N - 5..]);
    assert_eq!(tail["pageInfo"]["hasNextPage"], false);
    assert_eq!(tail["pageInfo"]["hasPreviousPage"], true);

    let before = page(&app, json!({ "last": 3, "before": tail["pageInfo"]["startCursor"] })).await;
    assert_eq!(ids(&before), want[N - 8..N - 5]);
    assert_eq!(before["pageInfo"]["hasNextPage"], true, "connections follow `before`");
    // Between two cursors.
    let between = page(
        &app,
        json!({ "first": 100, "after": first["edges"][2]["cursor"], "before": first["edges"][6]["cursor"] }),
    )
    .await;
    assert_eq!(ids(&between), want[3..6]);
    assert_eq!(between["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn empty_pages_have_no_cursors() {
    let app = app().await;
    let zero = page(&app, json!({ "first": 0 })).await;
    assert_eq!(zero["edges"], json!([]));
    assert_eq!(
        zero["pageInfo"],
        json!({ "hasNextPage": true, "hasPreviousPage": false, "startCursor": null, "endCursor": null })
    );
    assert_eq!(zero["totalCount"], N);
    let none = page(&app, json!({ "f": { "nameContains": "no such name" } })).await;
    assert_eq!(none["edges"], json!([]));
    assert_eq!(none["totalCount"], 0);
    assert_eq!(none["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn filters_combine_and_compare_as_documented() {
    let app = app().await;
    let all = fixture();
    let check = |filter: Value, keep: &dyn Fn(&Value) -> bool| {
        let want = expected(&all.iter().filter(|c| keep(c)).collect::<Vec<_>>(), "CREATE_TIME", false);
        (filter, want)
    };
    let pivot = all[20]["create_time"].as_i64().expect("time");
    let pivot_text = chrono::DateTime::from_timestamp_millis(pivot)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let later = all[30]["create_time"].as_i64().expect("time");
    let later_text = chrono::DateTime::from_timestamp_millis(later)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cases = [
        check(json!({ "states": ["ACTIVE", "FAILED"] }), &|c| {
            matches!(c["state"].as_str(), Some("ACTIVE" | "FAILED"))
        }),
        check(json!({ "services": ["cloudtable.opentsdb", " dws "] }), &|c| {
            let s = c["service"].as_str().unwrap_or("").to_lowercase();
            s == "cloudtable.opentsdb" || s == "dws"
        }),
        check(json!({ "nameContains": "RDS_" }), &|c| {
            c["name"].as_str().unwrap_or("").to_lowercase().contains("rds_")
        }),
        // createdAfter is inclusive, createdBefore exclusive.
        check(json!({ "createdAfter": pivot_text, "createdBefore": later_text }), &|c| {
            let t = c["create_time"].as_i64().unwrap_or(0);
            t >= pivot && t < later
        }),
        check(json!({ "states": ["ACTIVE"], "services": ["RDS"], "nameContains": "conn" }), &|c| {
            c["state"] == "ACTIVE" && c["service"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("rds"))
        }),
    ];
    for (filter, want) in cases {
        assert!(!want.is_empty(), "{filter}: the fixture has matches");
        let p = page(&app, json!({ "f": filter, "first": 500 })).await;
        assert_eq!(ids(&p), want, "{filter}");
        assert_eq!(p["totalCount"], want.len());
    }
    let p = page(&app, json!({ "f": { "createdAfter": pivot_text }, "first": 1 })).await;
    assert_eq!(ids(&p), [all[20]["connection_id"].as_str().expect("id")], "inclusive");
}

#[tokio::test]
async fn a_cursor_stays_valid_under_another_filter() {
    let app = app().await;
    let all = fixture();
    let active = page(&app, json!({ "f": { "states": ["ACTIVE"] }, "first": 3 })).await;
    let cursor = active["pageInfo"]["endCursor"].clone();
    // The third ACTIVE connection's position, applied to the unfiltered list.
    let third = active["edges"][2]["node"]["connectionId"].as_str().expect("id").to_owned();
    let want = expected(&all.iter().collect::<Vec<_>>(), "CREATE_TIME", false);
    let at = want.iter().position(|id| *id == third).expect("listed");
    let p = page(&app, json!({ "after": cursor, "first": 4 })).await;
    assert_eq!(ids(&p), want[at + 1..at + 5]);
}

#[tokio::test]
async fn malformed_and_foreign_cursors_and_bad_sizes_are_refused_without_an_upstream_call() {
    let app = app().await;
    let name_cursor = {
        let p = page(&app, json!({ "o": { "field": "NAME" }, "first": 1 })).await;
        p["pageInfo"]["endCursor"].clone()
    };
    app.sim.reset();
    let cases = [
        (json!({ "after": "not a cursor" }), "BAD_USER_INPUT"),
        (json!({ "before": "7b7d" }), "BAD_USER_INPUT"),
        (json!({ "after": name_cursor }), "BAD_USER_INPUT"),
        (json!({ "after": name_cursor, "o": { "field": "NAME", "direction": "DESC" } }), "BAD_USER_INPUT"),
        (json!({ "first": 2, "last": 2 }), "BAD_USER_INPUT"),
        (json!({ "first": -1 }), "BAD_USER_INPUT"),
        (json!({ "last": 501 }), "LIMIT_EXCEEDED"),
    ];
    for (vars, code) in cases {
        let mut v = vars.clone();
        v["p"] = json!("pg");
        let resp = app.query_vars(QUERY, v).await;
        assert_eq!(resp["data"]["connectionsPage"], Value::Null, "{vars}: {resp:#}");
        assert_eq!(error_at(&resp, "connectionsPage")["extensions"]["code"], code, "{vars}: {resp:#}");
    }
    assert_eq!(app.sim.stats().calls, 0);
    // The cap is a flag.
    let wide = spawn_app_with(&["--max-page-size", "1000"], SimOptions::default()).await;
    let resp = wide.query(r#"{ connectionsPage(projectId: "p1", first: 1000) { totalCount } }"#).await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
}

#[tokio::test]
async fn stats_count_by_state_and_by_service_in_the_most_common_spelling() {
    let app = app().await;
    let all = fixture();
    let resp = app
        .query(r#"{ all: connectionStats(projectId: "pg") { total byState { state count } byService { service count } }
                   active: connectionStats(projectId: "pg", filter: { states: [ACTIVE] }) { total byState { state count } } }"#)
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    let stats = &resp["data"]["all"];
    assert_eq!(stats["total"], N);
    let count = |state: &str| all.iter().filter(|c| c["state"] == state).count();
    for s in stats["byState"].as_array().expect("list") {
        let state = s["state"].as_str().expect("state");
        let n = if state == "UNKNOWN" { count("RUNNING") } else { count(state) };
        assert_eq!(s["count"], n, "{state}");
    }
    let services = stats["byService"].as_array().expect("list");
    assert_eq!(services.iter().map(|s| s["count"].as_u64().unwrap_or(0)).sum::<u64>(), N as u64);
    // `CloudTable.OpenTSDB` and `CloudTable.OPENTSDB` are one group, named by the more common spelling.
    let opentsdb: Vec<&Value> = services
        .iter()
        .filter(|s| s["service"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("cloudtable.opentsdb")))
        .collect();
    assert_eq!(opentsdb.len(), 1);
    let spelled = |s: &str| all.iter().filter(|c| c["service"] == s).count();
    let want = if spelled("CloudTable.OPENTSDB") > spelled("CloudTable.OpenTSDB") {
        "CloudTable.OPENTSDB"
    } else {
        "CloudTable.OpenTSDB"
    };
    assert_eq!(opentsdb[0]["service"], want);
    assert_eq!(resp["data"]["active"]["byState"], json!([{ "state": "ACTIVE", "count": count("ACTIVE") }]));
    assert_eq!(app.sim.calls_for("pg"), 1);
}

#[tokio::test]
async fn connections_pages_and_stats_of_one_project_share_one_list_call() {
    let app = app().await;
    let resp = app
        .query(&format!(
            r#"{{ connections(projectId: "pg") {{ name }}
                 connectionsPage(projectId: "pg", first: 5) {{ {PAGE} }}
                 byName: connectionsPage(projectId: "pg", orderBy: {{ field: NAME }}) {{ totalCount }}
                 connectionStats(projectId: "pg") {{ total }}
                 project(id: "pg") {{ connectionsPage(last: 2) {{ totalCount }} connectionStats {{ total }} }} }}"#
        ))
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"]["project"]["connectionStats"]["total"], N);
    assert_eq!(app.sim.calls_for("pg"), 1);
}

#[tokio::test]
async fn a_failing_project_nulls_its_page_and_stats_only() {
    let app = app().await;
    let resp = app
        .query(r#"{ bad: connectionsPage(projectId: "fault-500") { totalCount } badStats: connectionStats(projectId: "fault-429") { total }
                   good: connectionsPage(projectId: "pg", first: 1) { totalCount } }"#)
        .await;
    assert_eq!(resp["data"]["bad"], Value::Null);
    assert_eq!(error_at(&resp, "bad")["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(error_at(&resp, "badStats")["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(resp["data"]["good"]["totalCount"], N);
}

#[tokio::test]
async fn the_default_limits_admit_a_page_of_one_hundred_connections_with_every_field() {
    let app = spawn_app_with(&[], SimOptions { connections_per_project: 150, ..SimOptions::default() }).await;
    let resp = app
        .query(&format!(
            r#"query Dashboard {{
                 connectionStats(projectId: "big") {{ total byState {{ state count }} byService {{ service count }} }}
                 connectionsPage(projectId: "big", first: 100, orderBy: {{ field: CREATE_TIME, direction: DESC }}) {{
                   totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
                   edges {{ cursor node {{ __typename {ALL_FIELDS} queueStatuses {{ name status errorMessage updatedAt peerId }} }} }} }} }}"#
        ))
        .await;
    assert!(errors(&resp).is_empty(), "{resp:#}");
    assert_eq!(resp["data"]["connectionsPage"]["edges"].as_array().map(Vec::len), Some(100));
    assert_eq!(app.sim.calls_for("big"), 1);
}
