//! dli-graphql: a GraphQL facade over Huawei Cloud DLI's "list datasource connections" API.
//!
//! # Layout
//! - [`config`]: the one `Config` (clap; every flag has an env fallback).
//! - [`app`]: `Config` → bound server; wires client, schema and router; shutdown.
//! - [`http`]: axum routes, GraphQL over HTTP, per-request data. No resolvers.
//! - [`graphql`]: schema, types (views over the DTOs), the per-request DataLoader, the
//!   Apollo Federation v2 subgraph (entities, `_entities`, `_service`, SDL). No HTTP.
//! - [`upstream`]: everything that goes out to DLI: client, DTOs, credentials, AK/SK
//!   signing, the IAM token cache.
//! - [`credentials`]: the service's own credential mode, from `Config`.
//! - [`access`]: who may use the service's credentials (API keys); allowed projects.
//! - [`secret_file`]: token and key files, re-read when they change.
//! - [`error`]: `UpstreamError` and its single mapping to `extensions.code`.
//! - [`limits`]: request limits and the pre-parse token scan (enforced in `http` and `graphql::limits`).
//! - [`project_id`]: the validated project id, the only client input in upstream URLs.
//! - [`sim`]: the DLI simulator used by the tests and `--demo`.
//! - [`graphiql`]: the GraphiQL page and its assets, embedded in the binary.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`telemetry`]: log format and OTLP span export; [`trace_context`]: the request id
//!   and trace context that follow a request to DLI.
//! - [`healthcheck`]: the `healthcheck` subcommand's probe.
//!
//! # The path of one query
//! axum route (request id, `request` span, metrics) → [`http`] picks the credential (caller's `X-Auth-Token`, else
//! the service's, for callers [`access`] admits) and attaches a fresh DataLoader →
//! async-graphql parses and validates → the `connections` resolver parses the
//! [`project_id::ProjectId`] → `load_one(project)`: every field asking for that project in
//! this request joins one batch → [`upstream::SharedClient`]: an answer cached for this
//! credential and project (with `--cache-ttl`), or the call already in flight for them, or
//! one instrumented upstream GET, authorised right before
//! it is sent (token header, IAM token, or signature) → the body is parsed once and shared
//! behind an `Arc` → filters → GraphQL objects borrow from the DTOs → upstream failures
//! become errors with a stable code on the fields that needed that project; every other
//! field keeps its data.
//! Federation's `_entities` ([`graphql::federation`]) resolves each representation through
//! the same `load_one(project)`, so entity lookups join those batches too.

pub mod access;
pub mod app;
pub mod config;
pub mod credentials;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod healthcheck;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod project_id;
pub mod secret_file;
pub mod sim;
pub mod telemetry;
pub mod trace_context;
pub mod upstream;
