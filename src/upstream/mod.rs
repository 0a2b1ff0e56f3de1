//! Everything that goes out to DLI: the client with one instrumented method per endpoint
//! ([`client`]), the response DTOs ([`model`]), authentication ([`auth`]: tokens, AK/SK
//! signing, IAM token exchange), the resilience around each call ([`retry`], [`breaker`]),
//! and sharing answers between requests ([`coalesce`], [`cache`]). Knows nothing about
//! GraphQL or the HTTP server.

pub mod auth;
pub mod breaker;
pub mod cache;
pub mod client;
pub mod coalesce;
pub mod model;
pub mod response;
pub mod retry;

pub use auth::{Credential, CredentialIdentity};
pub use client::{Client, EnhancedQuery};
pub use coalesce::{ListOutcome, SharedClient};
pub use model::{
    ConnectionDto, EnhancedConnectionDto, EnhancedListResponse, HostDto, ListResponse, PrivilegeDto,
    PrivilegesResponse, QueueInfo,
};
