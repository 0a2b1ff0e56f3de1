//! Everything that comes in as GraphQL: the schema, its types (thin views over the upstream
//! DTOs), pages and counts, the per-request loader, Federation, subscriptions and their
//! shared pollers, and the schema extensions (limits, the call budget, APQ, observation,
//! parsed documents). Knows nothing about HTTP.

pub mod connection;
pub(crate) mod connection_list;
pub mod enhanced;
pub mod extensions;
pub(crate) mod federation;
pub(crate) mod field;
pub(crate) mod json;
pub(crate) mod loader;
pub mod page;
pub(crate) mod plan;
pub mod queue;
pub mod scalar;
pub mod schema;
pub(crate) mod selection;
pub mod subscription;
pub mod watch;

pub(crate) use extensions::{apq, trusted_documents};
pub use loader::ProjectLoader;
pub use schema::{DliSchema, SchemaOptions, build, sdl};
pub use subscription::SubscriptionScope;
pub use watch::Watcher;
