//! Everything that goes out to DLI: the HTTP client, the response DTOs, authentication
//! (tokens, AK/SK signing, IAM token exchange), and the resilience around each call
//! (retries, concurrency cap, circuit breaker).

pub mod auth;
pub mod breaker;
pub mod cache;
pub mod client;
pub mod iam;
pub mod model;
pub mod resilience;
pub mod shared;
pub mod signer;

pub use auth::{Credential, CredentialIdentity};
pub use client::{Client, ClientOptions};
pub use model::{ConnectionDto, ListResponse};
pub use resilience::ResilienceOptions;
pub use shared::{ListOutcome, ShareOptions, SharedClient};
