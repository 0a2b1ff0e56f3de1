//! Everything that comes in as GraphQL: the schema, its types, the per-request DataLoader.
//! Knows nothing about HTTP.

pub mod apq;
pub mod connection;
pub mod connection_list;
pub mod document_cache;
pub mod federation;
pub mod limits;
pub mod loader;
pub mod observe;
pub mod schema;

pub use loader::{ProjectDataLoader, ProjectLoader};
pub use schema::{DliSchema, SchemaOptions, build, sdl};
