//! Everything that goes out to DLI: the HTTP client, the response DTOs, authentication
//! (tokens, AK/SK signing, IAM token exchange).

pub mod auth;
pub mod client;
pub mod iam;
pub mod model;
pub mod signer;

pub use auth::{Credential, CredentialIdentity};
pub use client::{Client, ClientOptions};
pub use model::{ConnectionDto, ListResponse};
