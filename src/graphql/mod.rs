//! Everything that comes in as GraphQL: the schema, its types, the per-request DataLoader.
//! Knows nothing about HTTP.

pub mod connection;
pub mod documents;
pub mod loader;
pub mod schema;

pub use documents::DocumentCache;
pub use loader::{ProjectDataLoader, ProjectLoader};
pub use schema::{DliSchema, SchemaOptions, build, sdl};
