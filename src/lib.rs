//! dli-graphql: a GraphQL facade over Huawei Cloud DLI's "list datasource connections" API.
//!
//! # Layout
//! - [`config`]: the one `Config` (clap; every flag has an env fallback).
//! - [`app`]: `Config` → bound server; wires client, schema and router; shutdown.
//! - [`http`]: axum routes, GraphQL over HTTP, per-request data. No resolvers.
//! - [`graphql`]: schema, types (views over the DTOs), the per-request DataLoader. No HTTP.
//! - [`upstream`]: everything that goes out to DLI: client, DTOs, credentials.
//! - [`error`]: `UpstreamError` and its single mapping to `extensions.code`.
//! - [`project_id`]: the validated project id, the only client input in upstream URLs.
//! - [`sim`]: the DLI simulator used by the tests and `--demo`.
//!
//! # The path of one query
//! axum route (trace layer) → [`http`] picks the credential (caller's `X-Auth-Token`, else
//! the service's) and attaches a fresh DataLoader → async-graphql parses and validates →
//! the `connections` resolver parses the [`project_id::ProjectId`] → `load_one(project)`:
//! every field asking for that project in this request joins one batch →
//! [`upstream::SharedClient`]: an answer cached for this credential and project (with
//! `--cache-ttl`), or the call already in flight for them, or one instrumented upstream GET →
//! the body is parsed once and shared behind an `Arc` → filters → GraphQL
//! objects borrow from the DTOs → upstream failures become errors with a stable code on the
//! fields that needed that project; every other field keeps its data.

pub mod app;
pub mod config;
pub mod error;
pub mod graphql;
pub mod http;
pub mod project_id;
pub mod sim;
pub mod telemetry;
pub mod upstream;
