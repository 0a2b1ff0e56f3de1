//! Everything that comes in as GraphQL: the schema, its types (thin views over the upstream
//! DTOs), the per-request DataLoader, Federation, subscriptions and their shared pollers, and
//! the schema extensions (limits, APQ, observation, parsed documents). Knows nothing about HTTP.

pub mod connection;
pub mod connection_list;
pub mod extensions;
pub mod federation;
pub mod field;
pub mod loader;
pub mod schema;
pub mod subscription;
pub mod watch;

pub use extensions::apq;
pub use loader::{ProjectDataLoader, ProjectLoader};
pub use schema::{DliSchema, SchemaOptions, build, sdl};
pub use subscription::SubscriptionScope;
pub use watch::Watcher;
