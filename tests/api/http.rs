//! GraphQL over HTTP: methods, media types, status codes, GraphiQL, health.

use serde_json::{Value, json};

use crate::helpers::{TOKEN, spawn_app};

#[tokio::test]
async fn get_runs_queries_from_the_query_string() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.graphql_url())
        .query(&[
            ("query", "query($p: ID!) { connections(projectId: $p) { name } }"),
            ("variables", r#"{"p":"p1"}"#),
        ])
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["data"]["connections"][0]["name"], "test");
}

#[tokio::test]
async fn graphql_response_json_gives_400_without_data_for_request_errors() {
    let app = spawn_app().await;
    for query in [
        "{ connections(projectId: ",
        "{ noSuchField }",
        "query($p: ID!) { connections(projectId: $p) { name } }",
    ] {
        let resp = app
            .http
            .post(app.graphql_url())
            .header("Accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": { "p": 42.5 } }))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 400, "{query}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("application/graphql-response+json")
        );
        let body: Value = resp.json().await.expect("json");
        assert!(body.get("data").is_none(), "{body:#}");
        assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(app.sim.stats().calls, 0);
}

#[tokio::test]
async fn application_json_gives_200_with_errors_for_request_errors() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(app.graphql_url())
        .header("Accept", "application/json")
        .json(&json!({ "query": "{ noSuchField }" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap_or("").starts_with("application/json"));
    let body: Value = resp.json().await.expect("json");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("noSuchField")));
}

#[tokio::test]
async fn malformed_bodies_methods_and_media_types_are_refused_as_graphql_errors() {
    let app = spawn_app().await;
    let url = app.graphql_url();
    let not_json = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    let text =
        app.http.post(&url).header("content-type", "text/plain").body("{}").send().await.expect("answer");
    assert_eq!(text.status(), 415);
    let no_type = app.http.post(&url).body(r#"{"query":"{__typename}"}"#).send().await.expect("answer");
    assert_eq!(no_type.status(), 415);

    let put = app.http.put(&url).json(&json!({ "query": "{ __typename }" })).send().await.expect("answer");
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "GET, POST");
    let body: Value = put.json().await.expect("json");
    assert!(body["errors"][0]["message"].is_string());
}

#[tokio::test]
async fn browsers_get_graphiql_and_probes_get_health() {
    let app = spawn_app().await;
    for path in ["/graphql", "/"] {
        let resp = app
            .http
            .get(format!("http://{}{path}", app.addr))
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.expect("html");
        assert!(html.contains("graphiql") || html.contains("GraphiQL"), "{path}");
    }
    let health = app.http.get(format!("http://{}/healthz", app.addr)).send().await.expect("answer");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_field_error_is_a_200_with_partial_data_in_either_media_type() {
    let app = spawn_app().await;
    app.sim.set_fault("down", dli_graphql::sim::Fault::dli(500, "DLI.0999", "boom"));
    for accept in ["application/graphql-response+json", "application/json"] {
        let resp = app
            .http
            .post(app.graphql_url())
            .header("Accept", accept)
            .header("X-Auth-Token", TOKEN)
            .json(&json!({ "query": "{ connections(projectId: \"down\") { name } }" }))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200, "{accept}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["data"], json!({ "connections": null }), "{accept}: {body:#}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UPSTREAM_ERROR");
    }
}
