//! Integration tests: the real server and the real DLI simulator over loopback HTTP.

mod apq;
mod batching;
mod coalescing;
mod compression;
mod connections;
mod credentials;
mod detail;
mod enhanced;
mod errors;
mod fast_path;
mod federation;
mod fleet;
mod front_door;
mod helpers;
mod hostile;
mod http;
mod limits;
mod observability;
mod pages;
mod properties;
mod resilience;
mod schema;
mod security;
mod server;
mod subscriptions;
mod trusted_documents;
