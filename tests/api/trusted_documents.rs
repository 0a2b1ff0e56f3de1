//! Trusted documents (operation safelisting) over POST and GET, in both modes, and the
//! manifest's reload.

use std::path::PathBuf;

use dli_graphql::sim::SimOptions;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    front_door::metric,
    helpers::{TOKEN, TestApp, spawn_app_with},
};

const LISTED: &str = "query Listed { connections(projectId: \"p1\") { name } }";
const OTHER: &str = "query Other { connections(projectId: \"p1\") { name state } }";
const INTROSPECTION: &str = "{ __schema { queryType { name } } }";

fn id(body: &str) -> String {
    hex::encode(Sha256::digest(body))
}

fn manifest(bodies: &[&str]) -> String {
    let operations: Vec<Value> =
        bodies.iter().map(|b| json!({ "id": id(b), "name": "Op", "type": "query", "body": b })).collect();
    json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": operations }).to_string()
}

/// A fresh directory holding `manifest.json` with `bodies`.
fn manifest_file(test: &str, bodies: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dli-graphql-trusted-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("manifest.json");
    std::fs::write(&path, manifest(bodies)).expect("write");
    path
}

async fn spawn(path: &std::path::Path, extra: &[&str]) -> TestApp {
    let path = path.to_str().expect("utf-8 path");
    let mut args = vec!["--trusted-documents", path];
    args.extend_from_slice(extra);
    spawn_app_with(&args, SimOptions::default()).await
}

/// POSTs `body` with `accept`; status and JSON body.
async fn post(app: &TestApp, body: Value, accept: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.graphql_url())
        .header("X-Auth-Token", TOKEN)
        .header("Accept", accept)
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

const JSON: &str = "application/json";
const GQL: &str = "application/graphql-response+json";

fn apq(body: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": id(body) } })
}

fn assert_served(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body:#}");
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(body["data"]["connections"][0]["name"], "test", "{body:#}");
}

fn assert_refused(status: u16, expected_status: u16, body: &Value) {
    assert_eq!(status, expected_status, "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST", "{body:#}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body:#}");
}

#[tokio::test]
async fn enforce_mode_runs_listed_documents_by_hash_document_id_or_text_over_post_and_get() {
    let path = manifest_file("enforce-listed", &[LISTED]);
    let app = spawn(&path, &[]).await;
    let (s, b) = post(&app, json!({ "extensions": apq(LISTED) }), GQL).await;
    assert_served(s, &b);
    let (s, b) = post(&app, json!({ "documentId": id(LISTED) }), GQL).await;
    assert_served(s, &b);
    let (s, b) = post(&app, json!({ "documentId": format!("sha256:{}", id(LISTED)) }), JSON).await;
    assert_served(s, &b);
    let (s, b) = post(&app, json!({ "query": LISTED }), JSON).await;
    assert_served(s, &b);
    // A batch: each operation on its own.
    let (s, b) = post(&app, json!([{ "documentId": id(LISTED) }, { "query": LISTED }]), JSON).await;
    assert_eq!(s, 200);
    assert_eq!(b[0]["data"]["connections"][0]["name"], "test", "{b:#}");
    assert_eq!(b[1]["data"]["connections"][0]["name"], "test", "{b:#}");
    let (s, b) = get(&app, &[("documentId", id(LISTED))]).await;
    assert_served(s, &b);
    let (s, b) = get(&app, &[("extensions", apq(LISTED).to_string())]).await;
    assert_served(s, &b);
    let (s, b) = get(&app, &[("query", LISTED.to_owned())]).await;
    assert_served(s, &b);
    assert_eq!(metric(&app, "dli_graphql_unknown_operations_total{mode=\"enforce\"}").await, 0);
}

#[tokio::test]
async fn enforce_mode_refuses_other_documents_and_apq_registration_before_anything_runs() {
    let path = manifest_file("enforce-refuses", &[LISTED]);
    let app = spawn(&path, &[]).await;
    // The status the GraphQL-over-HTTP rules give a request error for each media type.
    let (s, b) = post(&app, json!({ "query": OTHER }), GQL).await;
    assert_refused(s, 400, &b);
    let (s, b) = post(&app, json!({ "query": OTHER }), JSON).await;
    assert_refused(s, 200, &b);
    let (s, b) = get(&app, &[("query", OTHER.to_owned())]).await;
    assert_refused(s, 400, &b);
    let (s, b) = post(&app, json!({ "documentId": id(OTHER) }), GQL).await;
    assert_refused(s, 400, &b);
    // Registering a new APQ hash would bypass the list: refused, and still unknown afterwards.
    let (s, b) = post(&app, json!({ "query": OTHER, "extensions": apq(OTHER) }), GQL).await;
    assert_refused(s, 400, &b);
    let (s, b) = post(&app, json!({ "extensions": apq(OTHER) }), GQL).await;
    assert_refused(s, 400, &b);
    // A listed hash with some other text is not the listed document.
    let (s, b) = post(&app, json!({ "query": OTHER, "extensions": apq(LISTED) }), GQL).await;
    assert_refused(s, 400, &b);
    // Introspection is refused unless listed.
    let (s, b) = post(&app, json!({ "query": INTROSPECTION }), GQL).await;
    assert_refused(s, 400, &b);
    assert_eq!(app.sim.calls_for("p1"), 0, "a refused document reached DLI");
    assert_eq!(metric(&app, "dli_graphql_unknown_operations_total{mode=\"enforce\"}").await, 8);

    let open = spawn(&path, &["--trusted-documents-allow-introspection"]).await;
    let (s, b) = post(&open, json!({ "query": INTROSPECTION }), GQL).await;
    assert_eq!((s, &b["data"]["__schema"]["queryType"]["name"]), (200, &json!("Query")), "{b:#}");
    let (s, b) = post(&open, json!({ "query": OTHER }), GQL).await;
    assert_refused(s, 400, &b);
}

#[tokio::test]
async fn log_mode_serves_and_counts_documents_not_in_the_list() {
    let path = manifest_file("log", &[LISTED]);
    let app = spawn(&path, &["--trusted-documents-mode", "log"]).await;
    let (s, b) = post(&app, json!({ "query": LISTED }), GQL).await;
    assert_served(s, &b);
    let (s, b) = post(&app, json!({ "query": OTHER }), GQL).await;
    assert_served(s, &b);
    let (s, b) = get(&app, &[("query", OTHER.to_owned())]).await;
    assert_served(s, &b);
    let (s, b) = post(&app, json!({ "query": INTROSPECTION }), GQL).await;
    assert_eq!((s, &b["data"]["__schema"]["queryType"]["name"]), (200, &json!("Query")), "{b:#}");
    // APQ works as usual for unlisted documents in log mode.
    let (s, b) = post(&app, json!({ "query": OTHER, "extensions": apq(OTHER) }), GQL).await;
    assert_served(s, &b);
    let (s, b) = post(&app, json!({ "extensions": apq(OTHER) }), GQL).await;
    assert_served(s, &b);
    assert_eq!(metric(&app, "dli_graphql_unknown_operations_total{mode=\"log\"}").await, 5);
}

#[tokio::test]
async fn the_manifest_is_reloaded_when_rewritten_in_place_or_replaced_by_rename() {
    let path = manifest_file("reload", &[LISTED]);
    let app = spawn(&path, &[]).await;
    assert_refused_other(&app).await;
    // Rewritten in place.
    std::fs::write(&path, manifest(&[LISTED, OTHER])).expect("write");
    let (s, b) = post(&app, json!({ "documentId": id(OTHER) }), GQL).await;
    assert_eq!((s, &b["data"]["connections"][0]["name"]), (200, &json!("test")), "{b:#}");
    // Replaced by a rename (as orchestrators swap mounted files).
    let next = path.with_file_name("manifest.json.next");
    std::fs::write(&next, manifest(&[LISTED])).expect("write");
    std::fs::rename(&next, &path).expect("rename");
    assert_refused_other(&app).await;
    let (s, b) = post(&app, json!({ "documentId": id(LISTED) }), GQL).await;
    assert_served(s, &b);
    // A broken new version keeps the last good list.
    std::fs::write(&path, "{ not a manifest").expect("write");
    let (s, b) = post(&app, json!({ "documentId": id(LISTED) }), GQL).await;
    assert_served(s, &b);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

async fn assert_refused_other(app: &TestApp) {
    let (s, b) = post(app, json!({ "documentId": id(OTHER) }), GQL).await;
    assert_refused(s, 400, &b);
}

#[tokio::test]
async fn an_unusable_manifest_is_a_startup_error() {
    let dir = std::env::temp_dir().join(format!("dli-graphql-trusted-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("bad.json");
    std::fs::write(&path, "{\"format\":\"something-else\",\"version\":1,\"operations\":[]}").expect("write");
    let config = dli_graphql::config::Config::from_args([
        "--endpoint",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
        "--trusted-documents",
        path.to_str().expect("utf-8"),
    ])
    .expect("parses");
    let err = dli_graphql::app::App::build(&config).await.err().expect("refused");
    assert!(format!("{err:#}").contains("apollo-persisted-query-manifest"), "{err:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
