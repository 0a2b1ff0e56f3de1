//! Everything that comes in as GraphQL: the schema, its types (thin views over the upstream
//! DTOs), the per-request DataLoader, Federation, and the schema extensions (limits, APQ,
//! observation, parsed documents). Knows nothing about HTTP.

pub mod connection;
pub mod connection_list;
pub mod enhanced;
pub mod extensions;
pub mod federation;
pub mod field;
pub mod loader;
pub mod page;
pub mod queue;
pub mod scalar;
pub mod schema;

pub use extensions::apq;
pub use loader::{ProjectDataLoader, ProjectLoader};
pub use schema::{DliSchema, SchemaOptions, build, sdl};
