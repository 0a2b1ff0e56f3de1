//! Pages and counts over a project's classic list: `connectionsPage` (the GraphQL Cursor
//! Connections Specification) and `connectionStats`.
//!
//! DLI's classic list has no paging, so both work on the one list the request's DataLoader
//! fetched for the project (shared with `connections` and every other field of the project in
//! the request). Cursors are keyset cursors: the sort key and the connection id of an edge,
//! under the order they were made for. A page after (or before) a cursor starts strictly after
//! (or ends strictly before) that position in the order, so it stays correct when connections
//! are added or deleted in between, and the cursor stays valid under another filter. A cursor
//! made under another `orderBy` is refused rather than reinterpreted.

use std::{cmp::Ordering, collections::HashMap, sync::Arc};

use async_graphql::{Context, Enum, InputObject, SimpleObject};
use serde::{Deserialize, Serialize};

use super::{
    connection::{Connection, ConnectionState},
    field::list_of,
    scalar::DateTime,
};
use crate::{
    config::DetailOptions,
    error,
    project_id::ProjectId,
    upstream::{ConnectionDto, ListResponse},
};

/// A page holds this many edges when the client gives neither `first` nor `last`.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// Which connections a page or a count covers. Every condition given must hold.
#[derive(InputObject, Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Only connections in one of these states.
    pub states: Option<Vec<ConnectionState>>,
    /// Only connections to one of these peer services, compared case-insensitively.
    pub services: Option<Vec<String>>,
    /// Only connections whose name contains this text, compared case-insensitively.
    pub name_contains: Option<String>,
    /// Only connections created at or after this instant (inclusive).
    pub created_after: Option<DateTime>,
    /// Only connections created before this instant (exclusive).
    pub created_before: Option<DateTime>,
}

impl ConnectionFilter {
    fn matches(&self, c: &ConnectionDto) -> bool {
        let created = c.create_time.unwrap_or(0);
        let service = c.service.as_deref().unwrap_or("").trim();
        self.states
            .as_ref()
            .is_none_or(|s| s.contains(&ConnectionState::from_raw(c.state.as_deref().unwrap_or(""))))
            && self
                .services
                .as_ref()
                .is_none_or(|s| s.iter().any(|want| want.trim().eq_ignore_ascii_case(service)))
            && self.name_contains.as_ref().is_none_or(|part| {
                c.name.as_deref().unwrap_or("").to_lowercase().contains(&part.to_lowercase())
            })
            && self.created_after.is_none_or(|t| created >= t.0.timestamp_millis())
            && self.created_before.is_none_or(|t| created < t.0.timestamp_millis())
    }

    /// The indices of `list`'s connections that match, in upstream order.
    fn apply(&self, list: &ListResponse) -> Vec<usize> {
        let all = list.connections.as_deref().unwrap_or_default();
        (0..all.len()).filter(|&i| self.matches(&all[i])).collect()
    }
}

/// What a page is sorted by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectionOrderField {
    /// Creation time.
    CreateTime,
    /// Name, compared case-insensitively.
    Name,
    /// State, in the enum's order: CREATING, ACTIVE, FAILED, DELETED, UNKNOWN.
    State,
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OrderDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// The order of a page; ties are broken by `connectionId` in the same direction.
#[derive(InputObject, Debug, Clone, Copy)]
pub struct ConnectionOrder {
    /// The sort key.
    pub field: ConnectionOrderField,
    /// The direction (ascending when omitted).
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl Default for ConnectionOrder {
    fn default() -> Self {
        Self { field: ConnectionOrderField::CreateTime, direction: OrderDirection::Asc }
    }
}

impl ConnectionOrder {
    /// The order's name inside cursors.
    fn tag(self) -> &'static str {
        match (self.field, self.direction) {
            (ConnectionOrderField::CreateTime, OrderDirection::Asc) => "CREATE_TIME:ASC",
            (ConnectionOrderField::CreateTime, OrderDirection::Desc) => "CREATE_TIME:DESC",
            (ConnectionOrderField::Name, OrderDirection::Asc) => "NAME:ASC",
            (ConnectionOrderField::Name, OrderDirection::Desc) => "NAME:DESC",
            (ConnectionOrderField::State, OrderDirection::Asc) => "STATE:ASC",
            (ConnectionOrderField::State, OrderDirection::Desc) => "STATE:DESC",
        }
    }

    fn key(self, c: &ConnectionDto) -> Key {
        match self.field {
            ConnectionOrderField::CreateTime => Key::Int(c.create_time.unwrap_or(0)),
            ConnectionOrderField::Name => Key::Text(c.name.as_deref().unwrap_or("").to_lowercase()),
            ConnectionOrderField::State => {
                Key::Int(state_rank(ConnectionState::from_raw(c.state.as_deref().unwrap_or(""))))
            }
        }
    }

    fn compare(self, a: &Position, b: &Position) -> Ordering {
        let asc = a.key.cmp(&b.key).then_with(|| a.id.cmp(&b.id));
        match self.direction {
            OrderDirection::Asc => asc,
            OrderDirection::Desc => asc.reverse(),
        }
    }
}

fn state_rank(state: ConnectionState) -> i64 {
    match state {
        ConnectionState::Creating => 0,
        ConnectionState::Active => 1,
        ConnectionState::Failed => 2,
        ConnectionState::Deleted => 3,
        ConnectionState::Unknown => 4,
    }
}

/// A sort key value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
enum Key {
    Int(i64),
    Text(String),
}

/// A place in an order: sort key and connection id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    key: Key,
    id: String,
}

/// What a cursor carries (as hex-encoded JSON, so clients treat it as opaque).
#[derive(Serialize, Deserialize)]
struct CursorData {
    /// The order it was made under, e.g. `NAME:DESC`.
    o: String,
    k: Key,
    i: String,
}

fn encode_cursor(order: ConnectionOrder, at: &Position) -> String {
    let data = CursorData { o: order.tag().to_owned(), k: at.key.clone(), i: at.id.clone() };
    // Serializing a string and a number cannot fail.
    hex::encode(serde_json::to_vec(&data).unwrap_or_default())
}

fn decode_cursor(argument: &str, raw: &str, order: ConnectionOrder) -> async_graphql::Result<Position> {
    let malformed =
        || error::bad_argument(argument, format!("{argument} is not a cursor of connectionsPage"));
    let bytes = hex::decode(raw.trim()).map_err(|_| malformed())?;
    let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let key_fits = matches!(
        (order.field, &data.k),
        (ConnectionOrderField::Name, Key::Text(_))
            | (ConnectionOrderField::CreateTime | ConnectionOrderField::State, Key::Int(_))
    );
    if data.o != order.tag() {
        return Err(error::bad_argument(
            argument,
            format!("{argument} was made for another orderBy ({}); page again from the start", data.o),
        ));
    }
    if !key_fits {
        return Err(malformed());
    }
    Ok(Position { key: data.k, id: data.i })
}

/// The paging arguments of `connectionsPage`, validated before anything is fetched.
pub struct PageArgs {
    order: ConnectionOrder,
    first: Option<usize>,
    last: Option<usize>,
    after: Option<Position>,
    before: Option<Position>,
}

impl PageArgs {
    /// Validates the arguments: `first` and `last` not together, neither negative nor above
    /// `--max-page-size`, cursors well-formed and made under `order_by`.
    pub fn parse(
        ctx: &Context<'_>,
        order_by: Option<ConnectionOrder>,
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> async_graphql::Result<Self> {
        if first.is_some() && last.is_some() {
            return Err(error::bad_argument("first", "give first or last, not both".to_owned()));
        }
        let max = ctx.data::<DetailOptions>().map(|d| d.max_page_size).unwrap_or(DEFAULT_PAGE_SIZE);
        let size = |name: &str, n: Option<i32>| -> async_graphql::Result<Option<usize>> {
            match n {
                None => Ok(None),
                Some(n) if n < 0 => Err(error::bad_argument(name, format!("{name} must not be negative"))),
                Some(n) if n as usize > max => Err(error::field_limit_error(
                    "max-page-size",
                    max,
                    format_args!("{name} asks for {n} connections"),
                )),
                Some(n) => Ok(Some(n as usize)),
            }
        };
        let order = order_by.unwrap_or_default();
        Ok(Self {
            order,
            first: size("first", first)?,
            last: size("last", last)?,
            after: after.map(|c| decode_cursor("after", c, order)).transpose()?,
            before: before.map(|c| decode_cursor("before", c, order)).transpose()?,
        })
    }
}

/// One page of connections.
#[derive(SimpleObject)]
pub struct ConnectionPage {
    /// The connections of this page, each with its cursor.
    pub edges: Vec<ConnectionEdge>,
    /// Where this page sits in the whole (filtered, sorted) list.
    pub page_info: PageInfo,
    /// How many connections match the filter (all pages).
    pub total_count: usize,
}

/// A connection and its cursor.
#[derive(SimpleObject)]
pub struct ConnectionEdge {
    /// Pass as `after` (or `before`) to page on from this connection, under the same `orderBy`.
    pub cursor: String,
    /// The connection.
    pub node: Connection,
}

/// Where a page sits (GraphQL Cursor Connections Specification).
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    /// More connections follow this page (with `last`: connections follow `before`).
    pub has_next_page: bool,
    /// Connections precede this page (with `first`: connections precede `after`).
    pub has_previous_page: bool,
    /// The cursor of the first edge; null when the page is empty.
    pub start_cursor: Option<String>,
    /// The cursor of the last edge; null when the page is empty.
    pub end_cursor: Option<String>,
}

/// A page of `project`'s connections, from the request's one list call for the project.
pub async fn page_of(
    ctx: &Context<'_>,
    project: &ProjectId,
    filter: &ConnectionFilter,
    args: PageArgs,
) -> async_graphql::Result<ConnectionPage> {
    let list = list_of(ctx, project).await?;
    Ok(paginate(project, &list, filter, args))
}

fn paginate(
    project: &ProjectId,
    list: &Arc<ListResponse>,
    filter: &ConnectionFilter,
    args: PageArgs,
) -> ConnectionPage {
    let order = args.order;
    let all = list.connections.as_deref().unwrap_or_default();
    let mut items: Vec<(Position, usize)> = filter
        .apply(list)
        .into_iter()
        .map(|i| {
            (Position { key: order.key(&all[i]), id: all[i].connection_id.clone().unwrap_or_default() }, i)
        })
        .collect();
    items.sort_by(|a, b| order.compare(&a.0, &b.0));
    let total = items.len();
    let lo = args
        .after
        .as_ref()
        .map_or(0, |a| items.partition_point(|x| order.compare(&x.0, a) != Ordering::Greater));
    let hi = args
        .before
        .as_ref()
        .map_or(total, |b| items.partition_point(|x| order.compare(&x.0, b) == Ordering::Less))
        .max(lo);
    let (start, end, has_next_page, has_previous_page) = match args.last {
        Some(last) => {
            let start = hi.saturating_sub(last).max(lo);
            (start, hi, hi < total, start > lo)
        }
        None => {
            let end = lo.saturating_add(args.first.unwrap_or(DEFAULT_PAGE_SIZE)).min(hi);
            (lo, end, end < hi, lo > 0)
        }
    };
    let edges: Vec<ConnectionEdge> = items[start..end]
        .iter()
        .map(|(at, i)| ConnectionEdge {
            cursor: encode_cursor(order, at),
            node: Connection::new(project.clone(), list.clone(), *i),
        })
        .collect();
    let page_info = PageInfo {
        has_next_page,
        has_previous_page,
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges.last().map(|e| e.cursor.clone()),
    };
    ConnectionPage { edges, page_info, total_count: total }
}

/// Counts of the connections that match a filter.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStats {
    /// How many connections match.
    pub total: usize,
    /// How many match per state, in the enum's order; states without a match are left out.
    pub by_state: Vec<StateCount>,
    /// How many match per peer service, most first (ties by name); services are grouped
    /// case-insensitively and named in their most common spelling in the project's whole
    /// list (ties to the lexicographically smallest); services without a match are left out.
    pub by_service: Vec<ServiceCount>,
}

/// How many connections are in one state.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The state.
    pub state: ConnectionState,
    /// How many connections are in it.
    pub count: usize,
}

/// How many connections go to one peer service.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct ServiceCount {
    /// The service, in its most common spelling in the project.
    pub service: String,
    /// How many connections go to it.
    pub count: usize,
}

/// Counts of `project`'s connections, from the request's one list call for the project.
pub async fn stats_of(
    ctx: &Context<'_>,
    project: &ProjectId,
    filter: &ConnectionFilter,
) -> async_graphql::Result<ConnectionStats> {
    let list = list_of(ctx, project).await?;
    Ok(count(&list, filter))
}

fn count(list: &ListResponse, filter: &ConnectionFilter) -> ConnectionStats {
    let all = list.connections.as_deref().unwrap_or_default();
    let service = |c: &ConnectionDto| c.service.as_deref().unwrap_or("").trim().to_owned();
    // Spellings per case-insensitive group, over the whole list.
    let mut spellings: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for c in all {
        let s = service(c);
        *spellings.entry(s.to_lowercase()).or_default().entry(s).or_default() += 1;
    }
    let name_of = |group: &str| -> String {
        spellings
            .get(group)
            .and_then(|m| m.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0))))
            .map(|(s, _)| s.clone())
            .unwrap_or_default()
    };
    let matching = filter.apply(list);
    let mut states = [0usize; 5];
    let mut services: HashMap<String, usize> = HashMap::new();
    for &i in &matching {
        let c = &all[i];
        states[state_rank(ConnectionState::from_raw(c.state.as_deref().unwrap_or(""))) as usize] += 1;
        *services.entry(service(c).to_lowercase()).or_default() += 1;
    }
    let by_state = [
        ConnectionState::Creating,
        ConnectionState::Active,
        ConnectionState::Failed,
        ConnectionState::Deleted,
        ConnectionState::Unknown,
    ]
    .into_iter()
    .zip(states)
    .filter(|(_, n)| *n > 0)
    .map(|(state, count)| StateCount { state, count })
    .collect();
    let mut by_service: Vec<ServiceCount> =
        services.into_iter().map(|(group, count)| ServiceCount { service: name_of(&group), count }).collect();
    by_service.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.service.cmp(&b.service)));
    ConnectionStats { total: matching.len(), by_state, by_service }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[(&str, &str, &str, i64)]) -> ListResponse {
        let connections = items
            .iter()
            .map(|(id, name, service, t)| ConnectionDto {
                connection_id: Some((*id).into()),
                name: Some((*name).into()),
                service: Some((*service).into()),
                state: Some("ACTIVE".into()),
                create_time: Some(*t),
                ..ConnectionDto::default()
            })
            .collect();
        ListResponse { connections: Some(connections), ..ListResponse::default() }
    }

    #[test]
    fn services_take_the_most_common_spelling_with_ties_to_the_smallest() {
        let l = list(&[
            ("a", "x", "CloudTable.OpenTSDB", 1),
            ("b", "x", "CloudTable.OPENTSDB", 2),
            ("c", "x", "cloudtable.opentsdb", 3),
            ("d", "x", "CloudTable.OPENTSDB", 4),
            ("e", "x", "dws", 5),
            ("f", "x", "DWS", 6),
        ]);
        let only_a =
            ConnectionFilter { created_before: Some(DateTime::from_millis(2)), ..Default::default() };
        let s = count(&l, &only_a);
        assert_eq!(s.by_service, [ServiceCount { service: "CloudTable.OPENTSDB".into(), count: 1 }]);
        let s = count(&l, &ConnectionFilter::default());
        assert_eq!(s.by_service[1], ServiceCount { service: "DWS".into(), count: 2 });
        assert_eq!(s.total, 6);
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_orders_and_garbage() {
        let order = ConnectionOrder { field: ConnectionOrderField::Name, direction: OrderDirection::Desc };
        let at = Position { key: Key::Text("abc".into()), id: "id-1".into() };
        let cursor = encode_cursor(order, &at);
        assert_eq!(decode_cursor("after", &cursor, order).ok(), Some(at));
        assert!(decode_cursor("after", &cursor, ConnectionOrder::default()).is_err());
        for bad in ["", "zz", "00", &hex::encode("{\"o\":\"NAME:DESC\",\"k\":5,\"i\":\"x\"}")] {
            assert!(decode_cursor("after", bad, order).is_err(), "{bad}");
        }
    }
}
