//! Integration tests: the real server and the real DLI simulator over loopback HTTP.

mod batching;
mod coalescing;
mod compression;
mod connections;
mod errors;
mod helpers;
mod http;
mod schema;
mod security;
