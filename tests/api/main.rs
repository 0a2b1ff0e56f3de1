//! Integration tests: the real server and the real DLI simulator over loopback HTTP.

mod apq;
mod batching;
mod connections;
mod credentials;
mod errors;
mod federation;
mod helpers;
mod http;
mod observability;
mod schema;
mod security;
