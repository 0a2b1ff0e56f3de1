//! GraphQL types: thin views over the upstream DTOs (no copies of the strings).

use std::sync::{Arc, LazyLock};

use async_graphql::{Context, Enum, ID, Object, ScalarType, Value};

pub use super::scalar::DateTime;
use super::{
    field, json,
    queue::{QueuePeering, peerings},
    scalar::non_empty,
};
use crate::{
    error::UpstreamError,
    project_id::{ConnectionId, ProjectId},
    upstream::{ConnectionDto, ListResponse},
};

/// Lifecycle state of a classic datasource connection.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Being created.
    Creating,
    /// Created; connectivity to the destination is normal.
    Active,
    /// Creation failed.
    Failed,
    /// Deleted (DLI keeps listing deleted connections).
    Deleted,
    /// A value the API sent that is not in the documented enum; see `rawState`.
    Unknown,
}

impl ConnectionState {
    /// Maps the upstream's string; unknown values become `UNKNOWN` instead of failing.
    pub fn from_raw(raw: &str) -> Self {
        let raw = raw.trim();
        [
            ("CREATING", Self::Creating),
            ("ACTIVE", Self::Active),
            ("FAILED", Self::Failed),
            ("DELETED", Self::Deleted),
        ]
        .into_iter()
        .find(|(name, _)| raw.eq_ignore_ascii_case(name))
        .map_or(Self::Unknown, |(_, s)| s)
    }
}

/// A classic datasource connection: a network link from DLI queues to a peer service
/// (CloudTable, DWS, RDS, CSS, ...).
#[derive(Clone)]
pub struct Connection {
    project: ProjectId,
    source: Source,
}

/// Where a connection's fields come from: an item of a list answer, or a show answer.
#[derive(Clone)]
enum Source {
    Item(Arc<ListResponse>, usize),
    Shown(Arc<ConnectionDto>),
}

impl Connection {
    /// The connection at `index` of `list` (an index from enumerating that list).
    pub(crate) fn new(project: ProjectId, list: Arc<ListResponse>, index: usize) -> Self {
        Self { project, source: Source::Item(list, index) }
    }

    /// The connection of a show answer.
    pub(super) fn shown(project: ProjectId, dto: Arc<ConnectionDto>) -> Self {
        Self { project, source: Source::Shown(dto) }
    }

    pub(crate) fn dto(&self) -> &ConnectionDto {
        let (list, index) = match &self.source {
            Source::Shown(dto) => return dto,
            Source::Item(list, index) => (list, *index),
        };
        // `index` comes from enumerating this same list; the fallback is never taken.
        static EMPTY: ConnectionDto = ConnectionDto {
            connection_id: None,
            name: None,
            destination: None,
            state: None,
            process: None,
            connection_url: None,
            cluster_name: None,
            service: None,
            create_time: None,
            queue_list: None,
            available_queue_info: None,
        };
        list.connections.as_deref().and_then(|c| c.get(index)).unwrap_or(&EMPTY)
    }

    /// The upstream `connection_id`.
    pub fn connection_id(&self) -> &str {
        self.dto().connection_id.as_deref().unwrap_or("")
    }

    /// The project this connection belongs to.
    pub fn project(&self) -> &ProjectId {
        &self.project
    }
}

/// The fields of `Connection`, stated once: the derived object type (which `_entities` and
/// the schema use) and the one-pass list renderer in `connection_list.rs` ([`Leaf`]) are both
/// generated from this table, so the two can never map a field differently. Fields that need
/// more than the list item (arguments, upstream calls) go in the `@other` block: they are
/// resolved by async-graphql alone, and a list that selects one is resolved generically.
macro_rules! connection_fields {
    ($(
        $(#[$doc:meta])*
        $variant:ident $gql:literal fn $method:ident() -> $ty:ty = |$c:ident| $body:expr;
    )*
    @other { $($other:tt)* }) => {
        /// A selectable field of `Connection` (all are leaves that cannot fail).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Leaf {
            /// `__typename`.
            Typename,
            $($variant,)*
        }

        impl Leaf {
            /// The field of this GraphQL name.
            pub(super) fn from_name(name: &str) -> Option<Self> {
                match name {
                    "__typename" => Some(Self::Typename),
                    $($gql => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The value the derived object type gives (same function, same scalar conversion).
            pub(super) fn value(self, c: &Connection) -> Value {
                match self {
                    Self::Typename => Value::String("Connection".to_owned()),
                    $(Self::$variant => {
                        let $c = c;
                        LeafValue::leaf_value($body)
                    })*
                }
            }

            /// The JSON of [`Leaf::value`], written straight into `out` (same function; the
            /// planned executor's output, compared with the generic one's by `--verify-plans`).
            pub(super) fn write_json(self, c: &Connection, out: &mut Vec<u8>) {
                match self {
                    Self::Typename => out.extend_from_slice(br#""Connection""#),
                    $(Self::$variant => {
                        let $c = c;
                        LeafValue::write_json($body, out)
                    })*
                }
            }
        }

        /// A classic datasource connection: a network link from DLI queues to a peer service
        /// (CloudTable, DWS, RDS, CSS, ...).
        #[Object]
        impl Connection {
            $(
                $(#[$doc])*
                #[graphql(name = $gql)]
                async fn $method(&self) -> $ty {
                    let $c = self;
                    $body
                }
            )*
            $($other)*
        }
    };
}

connection_fields! {
    /// The DLI project the connection belongs to.
    ProjectId "projectId" fn gql_project_id() -> ID = |c| ID(c.project.as_str().to_owned());
    /// The connection's UUID (`connection_id`).
    ConnectionId "connectionId" fn gql_connection_id() -> ID = |c| ID(c.connection_id().to_owned());
    /// The name given at creation.
    Name "name" fn name() -> &str = |c| c.dto().name.as_deref().unwrap_or("");
    /// The state, mapped to the documented enum (`UNKNOWN` for anything else).
    State "state" fn state() -> ConnectionState =
        |c| ConnectionState::from_raw(c.dto().state.as_deref().unwrap_or(""));
    /// The state exactly as the upstream sent it (e.g. `RUNNING`, which the enum lacks).
    RawState "rawState" fn raw_state() -> &str = |c| c.dto().state.as_deref().unwrap_or("");
    /// The peer service as the upstream sent it: `CloudTable`, `CloudTable.OpenTSDB`,
    /// `MRS.OpenTSDB`, `DWS`, `RDS`, `CSS` (casing varies).
    Service "service" fn service() -> &str = |c| c.dto().service.as_deref().unwrap_or("");
    /// The address given at creation, e.g. a comma-separated ZooKeeper `host:port` list.
    Destination "destination" fn destination() -> &str = |c| c.dto().destination.as_deref().unwrap_or("");
    /// Creation progress as the upstream sends it: a fraction from 0.0 to 1.0.
    Process "process" fn process() -> f64 = |c| c.dto().process.unwrap_or(0.0);
    /// The URL to use when creating cross-source tables; null when the upstream sends
    /// an empty string or omits it.
    ConnectionUrl "connectionUrl" fn connection_url() -> Option<&str> = |c| non_empty(&c.dto().connection_url);
    /// The queue (cluster) the connection was created for; null when empty or omitted
    /// (connections created in SQL-queue mode have none).
    ClusterName "clusterName" fn cluster_name() -> Option<&str> = |c| non_empty(&c.dto().cluster_name);
    /// Names of the queues bound to the connection (from `queue_list` and
    /// `available_queue_info`); empty when the upstream sends neither.
    Queues "queues" fn queues() -> Vec<&str> = |c| c.dto().queues();
    /// When the connection was created (the upstream's epoch milliseconds, as RFC 3339
    /// UTC); 1970-01-01T00:00:00.000Z when the upstream omits it.
    CreateTime "createTime" fn create_time() -> DateTime =
        |c| DateTime::from_millis(c.dto().create_time.unwrap_or(0));
    @other {
    /// Each bound queue's peering with the destination (`available_queue_info`). From the list
    /// answer when it carries them (even an empty array); otherwise from the show endpoint,
    /// one call per connection (shared with `connection(...)` for the same connection in this
    /// request, and counted toward `--max-detail-calls`).
    async fn queue_statuses(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<QueuePeering>> {
        let dto = self.dto();
        if dto.available_queue_info.is_some() {
            return Ok(peerings(dto.available_queue_info.as_ref()));
        }
        if let Source::Shown(_) = self.source {
            // The show answer itself had none.
            return Ok(Vec::new());
        }
        let id = ConnectionId::parse(self.connection_id()).map_err(|_| {
            UpstreamError::BadResponse("a connection without a usable connection_id".to_owned())
                .to_graphql(&self.project)
        })?;
        let shown = field::show_connection(ctx, &self.project, &id).await?;
        Ok(shown.map(|d| peerings(d.available_queue_info.as_ref())).unwrap_or_default())
    }
    }
}

/// A field's typed value as a response value, exactly as async-graphql's output types
/// convert it (checked by `tests/api/fast_path.rs`), and as the JSON that value serializes
/// to (checked by `--verify-plans`, which every API test runs with).
trait LeafValue: Sized {
    fn leaf_value(self) -> Value;

    /// By default the JSON of [`LeafValue::leaf_value`]; the common types write it directly.
    fn write_json(self, out: &mut Vec<u8>) {
        json::value(&self.leaf_value(), out);
    }
}

impl LeafValue for ID {
    fn leaf_value(self) -> Value {
        Value::String(self.0)
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::string(&self.0, out);
    }
}

impl LeafValue for &str {
    fn leaf_value(self) -> Value {
        Value::String(self.to_owned())
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::string(self, out);
    }
}

impl LeafValue for Option<&str> {
    fn leaf_value(self) -> Value {
        self.map_or(Value::Null, LeafValue::leaf_value)
    }

    fn write_json(self, out: &mut Vec<u8>) {
        match self {
            Some(s) => json::string(s, out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl LeafValue for f64 {
    fn leaf_value(self) -> Value {
        ScalarType::to_value(&self)
    }
}

impl LeafValue for Vec<&str> {
    fn leaf_value(self) -> Value {
        Value::List(self.into_iter().map(LeafValue::leaf_value).collect())
    }

    fn write_json(self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, s) in self.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::string(s, out);
        }
        out.push(b']');
    }
}

impl LeafValue for DateTime {
    fn leaf_value(self) -> Value {
        self.to_value()
    }

    fn write_json(self, out: &mut Vec<u8>) {
        DateTime::write_json(&self, out);
    }
}

impl LeafValue for ConnectionState {
    /// The enum value, with its name allocated once per process.
    fn leaf_value(self) -> Value {
        static VALUES: LazyLock<[Value; 5]> = LazyLock::new(|| {
            [
                ConnectionState::Creating,
                ConnectionState::Active,
                ConnectionState::Failed,
                ConnectionState::Deleted,
                ConnectionState::Unknown,
            ]
            .map(async_graphql::resolver_utils::enum_value)
        });
        let i = match self {
            ConnectionState::Creating => 0,
            ConnectionState::Active => 1,
            ConnectionState::Failed => 2,
            ConnectionState::Deleted => 3,
            ConnectionState::Unknown => 4,
        };
        VALUES[i].clone()
    }

    fn write_json(self, out: &mut Vec<u8>) {
        match self.leaf_value() {
            Value::Enum(name) => json::string(&name, out),
            other => json::value(&other, out),
        }
    }
}

/// One classic connection from the show endpoint (through the request's DataLoader and the
/// operation's call budget); `None` when DLI says it does not exist.
pub async fn detail(
    ctx: &Context<'_>,
    project: &ProjectId,
    raw_id: &str,
) -> async_graphql::Result<Option<Connection>> {
    let id = ConnectionId::parse(raw_id).map_err(|e| crate::error::bad_user_input("connectionId", e))?;
    let shown = field::show_connection(ctx, project, &id).await?;
    Ok(shown.map(|dto| Connection::shown(project.clone(), dto)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_states_and_keeps_unknown() {
        assert_eq!(ConnectionState::from_raw("ACTIVE"), ConnectionState::Active);
        assert_eq!(ConnectionState::from_raw("deleted"), ConnectionState::Deleted);
        assert_eq!(ConnectionState::from_raw("RUNNING"), ConnectionState::Unknown);
        assert_eq!(ConnectionState::from_raw(""), ConnectionState::Unknown);
    }
}
