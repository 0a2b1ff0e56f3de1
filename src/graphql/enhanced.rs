//! Enhanced (VPC-peering) datasource connections: `enhancedConnections` (DLI's own server-side
//! paging behind a cursor), `enhancedConnection` (the show endpoint) and
//! `EnhancedConnection.privileges`.
//!
//! The page maps onto DLI's `limit`/`offset`/`status`/`name`/`tags` query parameters: the
//! cursor carries the offset of its edge, `first` becomes `limit` (never `limit=0`, which DLI
//! reads as "everything"). `totalCount` is DLI's `count`; `hasNextPage` also ends at a short
//! page, since the docs describe `count` as "number returned".

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use serde::{Deserialize, Serialize};

use super::{
    field,
    page::{DEFAULT_PAGE_SIZE, PageInfo},
    queue::{HostEntry, QueuePeering, peerings},
    scalar::{DateTime, non_empty},
};
use crate::{
    config::DetailOptions,
    error::{self, UpstreamError},
    project_id::{ConnectionId, ProjectId},
    upstream::{EnhancedConnectionDto, EnhancedQuery, PrivilegeDto},
};

/// Connection-level status of an enhanced connection.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum EnhancedConnectionStatus {
    /// In use.
    Active,
    /// Deleted.
    Deleted,
    /// A value DLI sent that is not documented; see `rawStatus`. Not usable as a filter.
    Unknown,
}

impl EnhancedConnectionStatus {
    fn from_raw(raw: &str) -> Self {
        match raw.trim() {
            s if s.eq_ignore_ascii_case("ACTIVE") => Self::Active,
            s if s.eq_ignore_ascii_case("DELETED") => Self::Deleted,
            _ => Self::Unknown,
        }
    }
}

/// A tag a connection must carry (`key=value`).
#[derive(InputObject, Debug, Clone)]
pub struct TagFilter {
    /// Tag key (no `,` or `=`).
    pub key: String,
    /// Tag value (no `,` or `=`).
    pub value: String,
}

/// An enhanced (VPC-peering) datasource connection.
#[derive(Clone)]
pub struct EnhancedConnection {
    project: ProjectId,
    dto: Arc<EnhancedConnectionDto>,
}

impl EnhancedConnection {
    /// The view of `dto`, a connection of `project`.
    pub fn new(project: ProjectId, dto: Arc<EnhancedConnectionDto>) -> Self {
        Self { project, dto }
    }

    /// The upstream `id`.
    pub fn id(&self) -> &str {
        self.dto.id.as_deref().unwrap_or("")
    }
}

/// An enhanced (VPC-peering) datasource connection: DLI queues peered with a VPC.
#[Object]
impl EnhancedConnection {
    /// The DLI project the connection belongs to.
    async fn project_id(&self) -> ID {
        ID(self.project.as_str().to_owned())
    }

    /// The connection's UUID (DLI's `id`).
    #[graphql(name = "id")]
    async fn gql_id(&self) -> ID {
        ID(self.id().to_owned())
    }

    /// The name given at creation.
    async fn name(&self) -> &str {
        self.dto.name.as_deref().unwrap_or("")
    }

    /// The status, mapped to the documented values (`UNKNOWN` for anything else).
    async fn status(&self) -> EnhancedConnectionStatus {
        EnhancedConnectionStatus::from_raw(self.dto.status.as_deref().unwrap_or(""))
    }

    /// The status exactly as DLI sent it.
    async fn raw_status(&self) -> &str {
        self.dto.status.as_deref().unwrap_or("")
    }

    /// The VPC of the peer service (`dest_vpc_id`); null when DLI omits it.
    async fn dest_vpc_id(&self) -> Option<&str> {
        non_empty(&self.dto.dest_vpc_id)
    }

    /// The subnet of the peer service (`dest_network_id`); null when DLI omits it.
    async fn dest_network_id(&self) -> Option<&str> {
        non_empty(&self.dto.dest_network_id)
    }

    /// When the connection was created (1970-01-01T00:00:00.000Z when DLI omits it).
    async fn create_time(&self) -> DateTime {
        DateTime::from_millis(self.dto.create_time.unwrap_or(0))
    }

    /// Custom host entries.
    async fn hosts(&self) -> Vec<HostEntry> {
        self.dto.hosts.iter().flatten().cloned().map(HostEntry).collect()
    }

    /// Each bound queue's peering (`available_queue_info`).
    async fn queues(&self) -> Vec<QueuePeering> {
        peerings(self.dto.available_queue_info.as_ref())
    }

    /// Each bound elastic resource pool's peering (`elastic_resource_pools`).
    async fn elastic_resource_pools(&self) -> Vec<QueuePeering> {
        peerings(self.dto.elastic_resource_pools.as_ref())
    }

    /// Whether IPv6 is enabled (`ipv6_enable`); null when DLI omits it (older versions).
    async fn ipv6_enabled(&self) -> Option<bool> {
        self.dto.ipv6_enable
    }

    /// Whether project authorization was granted: DLI's camelCase `isPrivis` inverted
    /// (`isPrivis: false` means granted). Null when DLI does not say: only its list sends
    /// the flag, the show endpoint does not.
    async fn project_authorization_granted(&self) -> Option<bool> {
        self.dto.is_privis.map(|p| !p)
    }

    /// The projects this connection is shared with and what each may do: one upstream call
    /// per connection (`.../privileges`), made only when asked for, batched per request and
    /// counted toward `--max-detail-calls`.
    async fn privileges(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ConnectionPrivilege>> {
        let id = ConnectionId::parse(self.id()).map_err(|_| {
            UpstreamError::BadResponse("an enhanced connection without a usable id".to_owned())
                .to_graphql(&self.project)
        })?;
        let found = field::privileges_of(ctx, &self.project, &id).await?;
        Ok(found
            .and_then(|p| p.privileges.clone())
            .unwrap_or_default()
            .into_iter()
            .map(ConnectionPrivilege)
            .collect())
    }
}

/// What one other project may do with an enhanced connection.
pub struct ConnectionPrivilege(PrivilegeDto);

/// What one other project may do with an enhanced connection.
#[Object]
impl ConnectionPrivilege {
    /// The object the grant is on, e.g. `edsconnections.{id}`.
    async fn object(&self) -> &str {
        self.0.object.as_deref().unwrap_or("")
    }

    /// The project granted the privileges; null when DLI omits it.
    async fn applicant_project_id(&self) -> Option<ID> {
        non_empty(&self.0.applicant_project_id).map(|s| ID(s.to_owned()))
    }

    /// The operations granted, e.g. `BIND_QUEUE`.
    async fn privileges(&self) -> Vec<&str> {
        self.0.privileges.iter().flatten().flatten().map(String::as_str).collect()
    }
}

/// One page of enhanced connections, in DLI's order (creation time).
#[derive(SimpleObject)]
pub struct EnhancedConnectionPage {
    /// The connections of this page, each with its cursor.
    pub edges: Vec<EnhancedConnectionEdge>,
    /// Where this page sits.
    pub page_info: PageInfo,
    /// How many connections match the filters (DLI's `count`); null when DLI omits it.
    pub total_count: Option<i64>,
}

/// An enhanced connection and its cursor.
#[derive(SimpleObject)]
pub struct EnhancedConnectionEdge {
    /// Pass as `after` to page on from this connection.
    pub cursor: String,
    /// The connection.
    pub node: EnhancedConnection,
}

/// What an enhanced cursor carries (hex-encoded JSON, opaque to clients).
#[derive(Serialize, Deserialize)]
struct CursorData {
    /// The offset of the edge in DLI's list.
    e: u32,
}

fn encode_cursor(offset: u32) -> String {
    hex::encode(serde_json::to_vec(&CursorData { e: offset }).unwrap_or_default())
}

fn decode_cursor(raw: &str) -> async_graphql::Result<u32> {
    let malformed =
        || error::bad_argument("after", "after is not a cursor of enhancedConnections".to_owned());
    let bytes = hex::decode(raw.trim()).map_err(|_| malformed())?;
    let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    data.e.checked_add(1).ok_or_else(malformed)
}

/// The arguments of `enhancedConnections`, validated before anything is fetched.
pub struct EnhancedPageArgs {
    query: EnhancedQuery,
    first: u32,
}

impl EnhancedPageArgs {
    /// Validates the filters, `first` (0 to `--max-page-size`, 50 when omitted) and `after`.
    pub fn parse(
        ctx: &Context<'_>,
        status: Option<EnhancedConnectionStatus>,
        name: Option<String>,
        tags: Option<Vec<TagFilter>>,
        first: Option<i32>,
        after: Option<&str>,
    ) -> async_graphql::Result<Self> {
        let max = ctx.data::<DetailOptions>().map(|d| d.max_page_size).unwrap_or(DEFAULT_PAGE_SIZE);
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 0 => {
                return Err(error::bad_argument("first", "first must not be negative".to_owned()));
            }
            Some(n) if n as usize > max => {
                return Err(error::field_limit_error(
                    "max-page-size",
                    max,
                    format_args!("first asks for {n} connections"),
                ));
            }
            Some(n) => n as usize,
        };
        let status = match status {
            None => None,
            Some(EnhancedConnectionStatus::Active) => Some("ACTIVE".to_owned()),
            Some(EnhancedConnectionStatus::Deleted) => Some("DELETED".to_owned()),
            Some(EnhancedConnectionStatus::Unknown) => {
                return Err(error::bad_argument("status", "status must be ACTIVE or DELETED".to_owned()));
            }
        };
        let mut pairs = Vec::new();
        for t in tags.unwrap_or_default() {
            let (k, v) = (t.key.trim(), t.value.trim());
            let bad = |s: &str| s.is_empty() || s.contains([',', '=']) || s.chars().any(char::is_control);
            if bad(k) || bad(v) {
                return Err(error::bad_argument(
                    "tags",
                    "tag keys and values must be non-empty and hold no ',' or '='".to_owned(),
                ));
            }
            pairs.push((k.to_owned(), v.to_owned()));
        }
        let offset = after.map(decode_cursor).transpose()?.unwrap_or(0);
        let query = EnhancedQuery {
            // `limit=0` means "all" to DLI: an empty page asks for one row, to learn whether
            // anything follows.
            limit: u32::try_from(first.max(1)).unwrap_or(u32::MAX),
            offset,
            status,
            name: name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
            tags: pairs,
        };
        Ok(Self { query, first: u32::try_from(first).unwrap_or(u32::MAX) })
    }
}

/// A page of `project`'s enhanced connections from one DLI list call.
pub async fn page_of(
    ctx: &Context<'_>,
    project: &ProjectId,
    args: EnhancedPageArgs,
) -> async_graphql::Result<EnhancedConnectionPage> {
    let EnhancedPageArgs { query, first } = args;
    let offset = query.offset;
    let list = field::enhanced_list(ctx, project, query).await?;
    let got = list.connections.as_deref().unwrap_or_default();
    let count = list.count;
    let edges: Vec<EnhancedConnectionEdge> = got
        .iter()
        .take(first as usize)
        .enumerate()
        .map(|(i, dto)| EnhancedConnectionEdge {
            cursor: encode_cursor(offset.saturating_add(i as u32)),
            node: EnhancedConnection::new(project.clone(), Arc::new(dto.clone())),
        })
        .collect();
    let has_next_page = if first == 0 {
        !got.is_empty()
    } else {
        // A short page ends the list whatever `count` says; a full one continues unless
        // `count` says it ended here.
        got.len() >= first as usize && count.is_none_or(|c| i64::from(offset) + (edges.len() as i64) < c)
    };
    let page_info = PageInfo {
        has_next_page,
        has_previous_page: offset > 0,
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges.last().map(|e| e.cursor.clone()),
    };
    Ok(EnhancedConnectionPage { edges, page_info, total_count: count })
}

/// One enhanced connection from the show endpoint; `None` when DLI says it does not exist.
pub async fn detail(
    ctx: &Context<'_>,
    project: &ProjectId,
    raw_id: &str,
) -> async_graphql::Result<Option<EnhancedConnection>> {
    let id = ConnectionId::parse(raw_id).map_err(|e| error::bad_user_input("id", e))?;
    let shown = field::show_enhanced(ctx, project, &id).await?;
    Ok(shown.map(|dto| EnhancedConnection::new(project.clone(), dto)))
}

/// Every enhanced connection of `project` (one `limit=0` list call per project and request,
/// shared by every entity lookup of the project).
pub async fn all_of(
    ctx: &Context<'_>,
    project: &ProjectId,
) -> async_graphql::Result<Vec<EnhancedConnection>> {
    let list = field::enhanced_list(ctx, project, EnhancedQuery::default()).await?;
    Ok(list
        .connections
        .iter()
        .flatten()
        .map(|dto| EnhancedConnection::new(project.clone(), Arc::new(dto.clone())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_carry_the_offset_and_refuse_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(49)).ok(), Some(50));
        for bad in ["", "xyz", "7b7d", &encode_cursor(u32::MAX)] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
