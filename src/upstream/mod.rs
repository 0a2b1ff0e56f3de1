//! Everything that goes out to DLI: the HTTP client, the response DTOs, authentication.

pub mod auth;
pub mod cache;
pub mod client;
pub mod model;
pub mod shared;

pub use auth::{Credential, CredentialIdentity};
pub use client::{Client, ClientOptions};
pub use model::{ConnectionDto, ListResponse};
pub use shared::{ListOutcome, ShareOptions, SharedClient};
