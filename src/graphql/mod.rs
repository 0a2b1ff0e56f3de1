//! Everything that comes in as GraphQL: the schema, its types (thin views over the upstream
//! DTOs), the per-request project loader, Federation, and the schema extensions (limits, APQ,
//! observation, parsed documents). Knows nothing about HTTP.

pub mod connection;
pub(crate) mod connection_list;
pub mod extensions;
pub(crate) mod federation;
pub(crate) mod field;
pub(crate) mod loader;
pub mod schema;

pub(crate) use extensions::{apq, trusted_documents};
pub use loader::ProjectLoader;
pub use schema::{DliSchema, SchemaOptions, build, sdl};
