//! The one-pass `[Connection!]` resolver (the `connections` fields) against async-graphql's
//! generic executor (which `_entities` still uses for `Connection`), over the same data:
//! same values, same keys, same key order, for many shapes of selection set, including
//! selections with `queueStatuses`, for which the list itself falls back to the generic
//! executor.

use async_graphql::Value as GqlValue;
use serde_json::{Value, json};

use crate::helpers::{ALL_FIELDS, TOKEN, TestApp, errors, spawn_app};

const PROJECT: &str = "fastpath";

/// Selection sets (the body inside `{ }`), with the fragments they use.
const SELECTIONS: &[(&str, &str)] = &[
    (ALL_FIELDS, ""),
    ("__typename createTime queues process", ""),
    ("id: connectionId n: name n2: name state s: rawState connectionId", ""),
    ("...F", "fragment F on Connection { name ... on Connection { queues state } }"),
    (
        "name ...F name ...G",
        "fragment F on Connection { state name ...G } fragment G on Connection { process }",
    ),
    ("... { state } ... on Connection { n: name } connectionUrl clusterName", ""),
    (
        "name @skip(if: $yes) state @include(if: $yes) createTime @include(if: $no) ...F @include(if: $yes)",
        "fragment F on Connection { destination service }",
    ),
    ("first: __typename second: __typename", ""),
    // Not leaves only: the list falls back to the generic executor.
    ("name queueStatuses { name status peerId updatedAt } state", ""),
    (
        "...F createTime",
        "fragment F on Connection { connectionId ... on Connection { q: queueStatuses { errorMessage } } }",
    ),
];

/// Posts `query` and returns the response as async-graphql values, keeping key order.
async fn post_ordered(app: &TestApp, query: &str, variables: Value) -> GqlValue {
    let resp = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("server answers");
    let text = resp.text().await.expect("body");
    let value: GqlValue = serde_json::from_str(&text).expect("JSON body");
    let plain: Value = serde_json::from_str(&text).expect("JSON body");
    assert!(errors(&plain).is_empty(), "{query}: {plain:#}");
    value
}

fn field<'a>(value: &'a GqlValue, path: &[&str]) -> &'a GqlValue {
    path.iter().fold(value, |v, key| match v {
        GqlValue::Object(map) => map.get(*key).unwrap_or_else(|| panic!("no {key} in {v}")),
        _ => panic!("not an object at {key}: {v}"),
    })
}

fn items(value: &GqlValue) -> Vec<String> {
    match value {
        // Serialized one by one: the text keeps key order, which `==` on maps ignores.
        GqlValue::List(list) => list.iter().map(|v| serde_json::to_string(v).expect("serializes")).collect(),
        other => panic!("not a list: {other}"),
    }
}

#[tokio::test]
async fn connections_match_the_generic_executor_for_every_selection_shape() {
    let app = spawn_app().await;
    let ids = post_ordered(
        &app,
        &format!(r#"{{ connections(projectId: "{PROJECT}") {{ connectionId }} }}"#),
        json!({}),
    )
    .await;
    let representations: Vec<Value> = items(field(&ids, &["data", "connections"]))
        .iter()
        .map(|item| {
            let item: Value = serde_json::from_str(item).expect("item");
            json!({ "__typename": "Connection", "projectId": PROJECT, "connectionId": item["connectionId"] })
        })
        .collect();
    assert!(representations.len() >= 5, "the simulator serves several connections");

    for (selection, fragments) in SELECTIONS {
        // Unused variables are an error, so they are declared only where used.
        let uses_flags = selection.contains('$');
        let flags = if uses_flags { json!({ "yes": true, "no": false }) } else { json!({}) };
        let declared = if uses_flags { "$yes: Boolean!, $no: Boolean!" } else { "" };
        let fast_declared = if uses_flags { format!("({declared})") } else { String::new() };
        let fast = post_ordered(
            &app,
            &format!(
                r#"query {fast_declared} {{ connections(projectId: "{PROJECT}") {{ {selection} }} }} {fragments}"#
            ),
            flags.clone(),
        )
        .await;
        let mut generic_vars = flags;
        generic_vars["reps"] = json!(representations);
        let generic = post_ordered(
            &app,
            &format!(
                r#"query ($reps: [_Any!]! {declared}) {{ _entities(representations: $reps) {{ ... on Connection {{ {selection} }} }} }} {fragments}"#
            ),
            generic_vars,
        )
        .await;
        let fast = items(field(&fast, &["data", "connections"]));
        let generic = items(field(&generic, &["data", "_entities"]));
        assert_eq!(fast.len(), representations.len(), "{selection}");
        assert_eq!(fast, generic, "{selection}");
    }
}

#[tokio::test]
async fn keys_follow_the_selection_order_with_aliases_fragments_and_directives() {
    let app = spawn_app().await;
    let resp = post_ordered(
        &app,
        r#"query ($yes: Boolean!) {
            connections(projectId: "p1") {
                id: connectionId ...F name @skip(if: $yes) kind: __typename ... on _Entity { t: __typename }
            }
        }
        fragment F on Connection { state id: connectionId createTime }"#,
        json!({ "yes": true }),
    )
    .await;
    let GqlValue::List(list) = field(&resp, &["data", "connections"]) else { panic!("list: {resp}") };
    let GqlValue::Object(first) = &list[0] else { panic!("object: {resp}") };
    let keys: Vec<&str> = first.keys().map(|k| k.as_str()).collect();
    // `... on _Entity` applies: `Connection` belongs to the `_Entity` union (the spec's
    // DoesFragmentTypeApply).
    assert_eq!(keys, ["id", "state", "createTime", "kind", "t"]);
    let text = |key: &str| first.get(key).cloned().unwrap_or(GqlValue::Null);
    assert_eq!(text("kind"), GqlValue::from("Connection"));
    assert_eq!(text("t"), GqlValue::from("Connection"));
    // The seed sample comes first.
    assert_eq!(text("id"), GqlValue::from("75419c22-7a31-42e4-a3f3-102f6e6895c9"));
    assert_eq!(text("createTime"), GqlValue::from("2019-02-02T07:35:47.256Z"));
    assert_eq!(text("state"), GqlValue::from("DELETED"));
}
