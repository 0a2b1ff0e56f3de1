//! Automatic persisted queries over HTTP, as Apollo clients use them.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TOKEN, TestApp, spawn_app, spawn_app_with};

const QUERY: &str = "query Apq($p: ID!) { connections(projectId: $p) { name } }";

fn persisted(query: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hex::encode(Sha256::digest(query)) } })
}

/// POSTs `body` asking for the GraphQL-over-HTTP media type; returns status and body.
async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .header("Accept", "application/graphql-response+json")
        .json(&body)
        .send()
        .await
        .expect("answer");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

async fn get(app: &TestApp, params: &[(&str, String)]) -> (u16, Value) {
    let resp = app
        .http
        .get(app.graphql_url())
        .query(params)
        .header("X-Auth-Token", TOKEN)
        .header("Accept", "application/graphql-response+json")
        .send()
        .await
        .expect("answer");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

fn assert_not_found(status: u16, body: &Value) {
    // What Apollo clients (and Apollo Server) expect: a 200 they then answer with the document.
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound", "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND", "{body:#}");
    assert!(body["data"].is_null(), "{body:#}");
}

fn assert_answered(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body:#}");
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(body["data"]["connections"][0]["name"], "test", "{body:#}");
}

#[tokio::test]
async fn over_post_an_unknown_hash_is_not_found_then_registered_then_served_by_hash_alone() {
    let app = spawn_app().await;
    let vars = json!({ "p": "p1" });
    let (status, body) = post(&app, json!({ "extensions": persisted(QUERY), "variables": vars })).await;
    assert_not_found(status, &body);
    assert_eq!(app.sim.stats().calls, 0);

    let (status, body) =
        post(&app, json!({ "query": QUERY, "extensions": persisted(QUERY), "variables": vars })).await;
    assert_answered(status, &body);

    let (status, body) = post(&app, json!({ "extensions": persisted(QUERY), "variables": vars })).await;
    assert_answered(status, &body);
    assert_eq!(app.sim.calls_for("p1"), 2);
}

#[tokio::test]
async fn over_get_the_same_hash_flow_works_with_the_extensions_parameter() {
    let app = spawn_app().await;
    let ext = persisted(QUERY).to_string();
    let vars = json!({ "p": "p1" }).to_string();
    let (status, body) = get(&app, &[("extensions", ext.clone()), ("variables", vars.clone())]).await;
    assert_not_found(status, &body);

    let (status, body) =
        get(&app, &[("query", QUERY.to_owned()), ("extensions", ext.clone()), ("variables", vars.clone())])
            .await;
    assert_answered(status, &body);

    let (status, body) = get(&app, &[("extensions", ext), ("variables", vars)]).await;
    assert_answered(status, &body);
}

#[tokio::test]
async fn a_hash_that_does_not_match_its_document_is_refused_and_not_stored() {
    let app = spawn_app().await;
    let other = persisted("{ __typename }");
    let (status, body) =
        post(&app, json!({ "query": QUERY, "extensions": other, "variables": { "p": "p1" } })).await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body:#}");
    let (status, body) = post(&app, json!({ "extensions": other })).await;
    assert_not_found(status, &body);
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn the_cache_keeps_only_the_most_recently_used_documents() {
    let app = spawn_app_with(&["--apq-cache-size", "2"], Default::default()).await;
    let queries: Vec<String> =
        (1..=3).map(|i| format!("query Q{i}($p: ID!) {{ connections(projectId: $p) {{ name }} }}")).collect();
    for q in &queries {
        let (status, body) =
            post(&app, json!({ "query": q, "extensions": persisted(q), "variables": { "p": "p1" } })).await;
        assert_answered(status, &body);
    }
    let (status, body) =
        post(&app, json!({ "extensions": persisted(&queries[0]), "variables": { "p": "p1" } })).await;
    assert_not_found(status, &body);
    for q in &queries[1..] {
        let (status, body) =
            post(&app, json!({ "extensions": persisted(q), "variables": { "p": "p1" } })).await;
        assert_answered(status, &body);
    }
}

#[tokio::test]
async fn with_apq_off_hashes_are_refused_as_not_supported() {
    let app = spawn_app_with(&["--apq-cache-size", "0"], Default::default()).await;
    let (status, body) =
        post(&app, json!({ "query": QUERY, "extensions": persisted(QUERY), "variables": { "p": "p1" } }))
            .await;
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotSupported");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_SUPPORTED");
    // Plain documents still work.
    let (status, body) = post(&app, json!({ "query": QUERY, "variables": { "p": "p1" } })).await;
    assert_answered(status, &body);
}
