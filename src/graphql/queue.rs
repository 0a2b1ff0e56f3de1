//! The small value types several connection types share: a queue's (or elastic resource
//! pool's) peering with the destination, and a custom host entry.

use async_graphql::{ID, Object};

use super::scalar::{DateTime, non_empty};
use crate::upstream::{HostDto, QueueInfo};

/// The peering of one DLI queue (or elastic resource pool) with a connection's destination.
#[derive(Clone)]
pub struct QueuePeering(pub QueueInfo);

/// The peering of one DLI queue (or elastic resource pool) with a connection's destination.
#[Object]
impl QueuePeering {
    /// The queue (or pool) name.
    async fn name(&self) -> &str {
        self.0.name.as_deref().unwrap_or("")
    }

    /// The peering status as DLI sent it: `CREATING`, `ACTIVE` or `FAILED`.
    async fn status(&self) -> &str {
        self.0.status.as_deref().unwrap_or("")
    }

    /// Why the peering failed (`err_msg`); null when DLI sent none or an empty one.
    async fn error_message(&self) -> Option<&str> {
        non_empty(&self.0.err_msg)
    }

    /// When the peering last changed (`update_time`); null when DLI omits it.
    async fn updated_at(&self) -> Option<DateTime> {
        self.0.update_time.map(DateTime::from_millis)
    }

    /// The peering id: DLI's documented `peer_id`, or the SDK's `uuid` for the same thing.
    async fn peer_id(&self) -> Option<ID> {
        self.0.peering_id().map(|s| ID(s.to_owned()))
    }
}

/// Peerings from an optional upstream array (absent means none).
pub fn peerings(infos: Option<&Vec<QueueInfo>>) -> Vec<QueuePeering> {
    infos.map(|v| v.iter().cloned().map(QueuePeering).collect()).unwrap_or_default()
}

/// A custom host entry (`name` → `ip`) of an enhanced connection.
#[derive(Clone)]
pub struct HostEntry(pub HostDto);

/// A custom host entry (`name` → `ip`) of an enhanced connection.
#[Object]
impl HostEntry {
    /// Host name.
    async fn name(&self) -> &str {
        self.0.name.as_deref().unwrap_or("")
    }

    /// Its IPv4 address.
    async fn ip(&self) -> &str {
        self.0.ip.as_deref().unwrap_or("")
    }
}
