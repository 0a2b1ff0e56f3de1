//! dli-graphql: a GraphQL facade over Huawei Cloud DLI's datasource-connection APIs (classic
//! and enhanced connections: lists, pages, counts, details).
//!
//! # Layout
//! Data flows one way: [`http`] (what comes in over the wire) uses [`graphql`] (what an
//! operation means), which uses [`upstream`] (everything that goes out to DLI). Below all
//! three sit the shared vocabulary ([`config`], [`error`], [`project_id`]) and
//! [`observability`]; none of those imports a layer above it. `.ci/check-module-cycles`
//! fails the build when two modules import each other.
//! - [`config`]: the CLI, as option groups (clap `Args`) flattened into one `Config`; each
//!   default stated once.
//! - [`app`]: `Config` → bound server; wires client, schema and router; graceful shutdown.
//! - [`error`]: `ErrorCode`, `UpstreamError`, and every write of `extensions.code` and of
//!   HTTP error bodies.
//! - [`project_id`]: the validated project and connection ids, the only client input in
//!   upstream URLs.
//! - [`http`]: the accept loop (connection cap, header and idle timeouts), router and layers,
//!   GraphQL over HTTP, body limits, API keys and allowed projects, rate limits and load
//!   shedding, content negotiation and compression, subscriptions over WebSocket, SSE and
//!   multipart, GraphiQL, health. No resolvers.
//! - [`graphql`]: schema, types (views over the DTOs), pages and counts, the per-request
//!   loader, the Apollo Federation v2 subgraph, the `connectionEvents` subscription with its
//!   shared pollers, the planned executor, and the schema extensions (limits, the
//!   per-operation call budget, APQ, observation, response order, parsed documents, trusted
//!   documents). No HTTP.
//! - [`upstream`]: the DLI client, DTOs, retries and breaker, coalescing and cache, and
//!   authentication (tokens, AK/SK signing, IAM, secret files). No GraphQL.
//! - [`observability`]: logs and OTLP spans, Prometheus metrics, request ids and trace context.
//! - [`sim`]: the DLI simulator used by the tests and `--demo`.
//!
//! # The path of one query
//! axum route (request id, `request` span, metrics) → [`http`] picks the credential (caller's `X-Auth-Token`, else
//! the service's, for callers [`http::access`] admits) and attaches a fresh project loader →
//! async-graphql parses and validates → the `connections` resolver parses the
//! [`project_id::ProjectId`] → `ProjectLoader::load(project)`: every field asking for that
//! project in this request shares one call → [`upstream::SharedClient`]: an answer cached for this
//! credential and project (with `--cache-ttl`), or the call already in flight for them, or
//! (with `--redis-url`) the fleet's answer or lease in Redis ([`upstream::shared_state`]),
//! or one instrumented upstream GET, within the call budget ([`upstream::rate_limit`]),
//! authorised right before it is sent (token header, IAM token, or signature) → the body is parsed once and shared
//! behind an `Arc` → filters → GraphQL objects borrow from the DTOs → upstream failures
//! become errors with a stable code on the fields that needed that project; every other
//! field keeps its data.
//! Federation's `_entities` ([`graphql::federation`]) resolves each representation through
//! the same `load_one(project)`, so entity lookups share those calls too. Per-connection
//! calls (`connection`, `queueStatuses`, `enhancedConnection`, `privileges`) go through the
//! same loader with their own key types, each spending the operation's budget once.
//!
//! An operation of the common shape (root `connections` lists of leaves) that async-graphql
//! has answered once without errors is answered from then on by the planned executor
//! (`graphql::plan`): the same loader and calls, its variables bound by async-graphql's own
//! coercion, the JSON written straight from the DTOs; `--verify-plans` compares the two.

pub mod app;
pub mod config;
pub mod error;
pub mod graphql;
pub mod http;
pub mod observability;
pub mod project_id;
pub mod sim;
pub mod upstream;
