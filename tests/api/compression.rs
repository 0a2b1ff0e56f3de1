//! Response compression: only when the client asks for it, and only for bodies worth it.

use dli_graphql::sim::SimOptions;
use serde_json::json;

use crate::helpers::{ALL_FIELDS, TOKEN, TestApp, spawn_app, spawn_app_with};

async fn content_encoding(app: &TestApp, query: &str, accept_encoding: Option<&str>) -> Option<String> {
    let mut req =
        app.http.post(app.graphql_url()).header("X-Auth-Token", TOKEN).json(&json!({ "query": query }));
    if let Some(enc) = accept_encoding {
        req = req.header("Accept-Encoding", enc);
    }
    let resp = req.send().await.expect("server answers");
    assert_eq!(resp.status(), 200);
    let enc = resp.headers().get("content-encoding").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = resp.bytes().await.expect("body");
    assert!(!body.is_empty());
    if enc.is_none() {
        serde_json::from_slice::<serde_json::Value>(&body).expect("an uncompressed body is JSON");
    }
    enc
}

#[tokio::test]
async fn large_responses_are_compressed_with_the_encoding_the_client_accepts() {
    let app = spawn_app().await;
    let query = format!("{{ connections(projectId: \"p1\") {{ {ALL_FIELDS} }} }}");
    assert_eq!(content_encoding(&app, &query, Some("gzip")).await.as_deref(), Some("gzip"));
    assert_eq!(content_encoding(&app, &query, Some("br")).await.as_deref(), Some("br"));
    assert_eq!(content_encoding(&app, &query, Some("zstd")).await.as_deref(), Some("zstd"));
    assert_eq!(content_encoding(&app, &query, None).await, None);
}

#[tokio::test]
async fn small_responses_are_sent_uncompressed() {
    let app = spawn_app().await;
    assert_eq!(content_encoding(&app, "{ __typename }", Some("gzip, br, zstd")).await, None);
}

#[tokio::test]
async fn no_compression_turns_it_off() {
    let app = spawn_app_with(&["--no-compression"], SimOptions::default()).await;
    let query = format!("{{ connections(projectId: \"p1\") {{ {ALL_FIELDS} }} }}");
    assert_eq!(content_encoding(&app, &query, Some("gzip, br, zstd")).await, None);
}

#[tokio::test]
async fn equally_acceptable_codings_go_to_the_cheapest_and_a_higher_q_value_wins() {
    let app = spawn_app().await;
    let query = format!("{{ connections(projectId: \"p1\") {{ {ALL_FIELDS} }} }}");
    // What load generators and older clients send: gzip and br alike.
    assert_eq!(
        content_encoding(&app, &query, Some("gzip, compress, deflate, br")).await.as_deref(),
        Some("gzip")
    );
    // Current browsers: zstd among the rest.
    assert_eq!(
        content_encoding(&app, &query, Some("gzip, deflate, br, zstd")).await.as_deref(),
        Some("zstd")
    );
    assert_eq!(content_encoding(&app, &query, Some("br;q=1, gzip;q=0.5")).await.as_deref(), Some("br"));
    assert_eq!(content_encoding(&app, &query, Some("gzip;q=0, br;q=0")).await, None);
}

#[tokio::test]
async fn compressed_bodies_decode_to_the_uncompressed_answer() {
    let app = spawn_app().await;
    let query = format!("{{ connections(projectId: \"p1\") {{ {ALL_FIELDS} }} }}");
    let fetch = |enc: &'static str| {
        let req =
            app.http.post(app.graphql_url()).header("X-Auth-Token", TOKEN).json(&json!({ "query": query }));
        async move {
            req.header("Accept-Encoding", enc).send().await.expect("answers").bytes().await.expect("body")
        }
    };
    let plain = fetch("identity").await;
    let gzip = fetch("gzip").await;
    assert!(gzip.len() * 2 < plain.len(), "gzip {} vs {} bytes", gzip.len(), plain.len());
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut decoded)
        .expect("gzip decodes");
    assert_eq!(decoded, plain.to_vec());
}
