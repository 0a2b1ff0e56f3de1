//! The checked-in `schema.graphql` is exactly what the server serves.

use serde_json::json;

use crate::helpers::spawn_app;

const CHECKED_IN: &str = include_str!("../../schema.graphql");

#[test]
fn schema_graphql_matches_the_served_sdl() {
    let served = dli_graphql::graphql::sdl();
    if served != CHECKED_IN {
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schema.graphql");
        let _ = std::fs::write(&out, &served);
        panic!(
            "schema.graphql is out of date; the served SDL is in {}. Run `cargo run -- schema > schema.graphql`.",
            out.display()
        );
    }
}

#[test]
fn the_schema_subcommand_prints_the_sdl() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_dli-graphql")).arg("schema").output().expect("runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), CHECKED_IN);
}

#[tokio::test]
async fn the_service_field_serves_schema_graphql() {
    let app = spawn_app().await;
    let resp = app.query("{ _service { sdl } }").await;
    assert_eq!(resp["data"]["_service"]["sdl"].as_str(), Some(CHECKED_IN), "{resp:#}");
}

#[tokio::test]
async fn every_type_field_and_argument_is_described() {
    let app = spawn_app().await;
    let resp = app
        .query(
            r#"{ __schema { types { name kind description
                  fields { name description args { name description } }
                  enumValues { name description } } } }"#,
        )
        .await;
    let types = resp["data"]["__schema"]["types"].as_array().expect("types");
    let ours = ["Query", "Connection", "ConnectionState", "DateTime", "Project"];
    for t in types.iter().filter(|t| ours.contains(&t["name"].as_str().unwrap_or(""))) {
        let name = &t["name"];
        assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()), "type {name} undocumented");
        for f in t["fields"].as_array().into_iter().flatten() {
            assert!(
                f["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}.{} undocumented",
                f["name"]
            );
            for a in f["args"].as_array().into_iter().flatten() {
                assert!(
                    a["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{name}.{}({}) undocumented",
                    f["name"],
                    a["name"]
                );
            }
        }
        for v in t["enumValues"].as_array().into_iter().flatten() {
            assert!(
                v["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}.{} undocumented",
                v["name"]
            );
        }
    }
    assert_eq!(
        types.iter().filter(|t| ours.contains(&t["name"].as_str().unwrap_or(""))).count(),
        5,
        "{}",
        json!(types.len())
    );
}
