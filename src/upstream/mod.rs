//! Everything that goes out to DLI: the client with one instrumented method per endpoint
//! ([`client`]), the response DTOs ([`model`]), authentication ([`auth`]: tokens, AK/SK
//! signing, IAM token exchange), the resilience around each call ([`retry`], [`breaker`],
//! the call budget [`rate_limit`]), and sharing answers between requests ([`coalesce`],
//! [`cache`]) and between replicas over Redis ([`shared_state`]). Knows nothing about
//! GraphQL or the HTTP server.

pub mod auth;
pub(crate) mod breaker;
pub(crate) mod cache;
pub mod client;
pub(crate) mod coalesce;
pub mod model;
pub(crate) mod rate_limit;
pub(crate) mod response;
pub mod retry;
pub mod shared_state;

pub use auth::{Credential, CredentialIdentity};
pub use client::Client;
pub use coalesce::{ListOutcome, SharedClient};
pub use model::{ConnectionDto, ListResponse};
pub use shared_state::FleetStore;
