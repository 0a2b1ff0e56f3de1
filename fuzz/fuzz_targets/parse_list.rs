//! The upstream response parser: any bytes DLI (or anything pretending to be it) sends must
//! give `Ok` or a clean `Err`, never a panic; an `Ok` always has a connections list whose
//! views can be read.
#![no_main]

use dli_graphql::{error::UpstreamError, upstream::client::parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_list(data) {
        Ok(list) => {
            let connections = list.connections.as_deref().expect("an accepted list has connections");
            for c in connections {
                let _ = c.queues();
            }
        }
        Err(UpstreamError::BadResponse(_) | UpstreamError::NotSuccess { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
