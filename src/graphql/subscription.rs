//! The `Subscription` root: `connectionEvents`, a live view of one project's connections.
//!
//! A subscriber joins the project's shared poller ([`super::watch`]) and turns each new
//! outcome into events by comparing it with the last list it saw itself:
//! - first one `SNAPSHOT` event per matching connection, then the end-of-snapshot marker: a
//!   payload without `data` whose `extensions` are `{"snapshotComplete": true,
//!   "snapshotSize": n}` (sent also when nothing matches, so "empty" is never ambiguous);
//! - then `ADDED` (a connection that appeared or started matching the filters), `CHANGED`
//!   (with the GraphQL fields that differ), `REMOVED` (deleted, or no longer matching; it
//!   carries the connection as last seen);
//! - a transient upstream failure is a payload with `errors` (usual `extensions.code`), and
//!   the subscription goes on; `UNAUTHENTICATED`, `FORBIDDEN` and `NOT_FOUND` end it after
//!   that payload.
//!
//! The marker travels through the resolver's stream as an error value carrying
//! [`MARKER_KEY`], and [`SnapshotMarker`] (a schema extension) rewrites it into the
//! extensions-only payload before any transport sees it.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, Object, Response, Subscription, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextSubscribe},
    futures_util::stream::BoxStream,
};
use futures::{Stream, StreamExt};
use tokio::sync::watch;

use super::{
    connection::{Connection, ConnectionState, DateTime},
    watch::{Observed, WatchRefused, Watcher},
};
use crate::{
    error::{self, UpstreamError},
    project_id::ProjectId,
    upstream::{ConnectionDto, Credential, ListResponse},
};

/// The extension key of the internal end-of-snapshot marker error.
pub const MARKER_KEY: &str = "__dliSnapshotComplete";

/// What a subscription acts with: set per operation by the transport.
#[derive(Clone)]
pub struct SubscriptionScope {
    /// The credential polls use (the caller's own token, or the service's).
    pub credential: Option<Credential>,
    /// Projects that may be watched, when restricted.
    pub allowed: Option<Arc<HashSet<ProjectId>>>,
    /// The shared pollers.
    pub watcher: Watcher,
}

/// Live changes of DLI datasource connections.
#[derive(Default)]
pub struct SubscriptionRoot;

/// What happened to a connection.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// Part of the initial state sent to a new subscriber.
    Snapshot,
    /// The connection appeared, or started matching the filters.
    Added,
    /// Some of its fields changed (see `changedFields`).
    Changed,
    /// The connection disappeared, or stopped matching the filters.
    Removed,
}

impl ConnectionEventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "SNAPSHOT",
            Self::Added => "ADDED",
            Self::Changed => "CHANGED",
            Self::Removed => "REMOVED",
        }
    }
}

/// One change of one connection, as a subscriber sees it.
pub struct ConnectionEvent {
    kind: ConnectionEventKind,
    connection: Connection,
    changed_fields: Vec<&'static str>,
    observed_at: DateTime,
}

/// One change of one connection, as a subscriber sees it.
#[Object]
impl ConnectionEvent {
    /// What happened.
    async fn kind(&self) -> ConnectionEventKind {
        self.kind
    }

    /// The connection as now observed (for `REMOVED`: as last seen).
    async fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The `Connection` fields that differ from the previous observation (`CHANGED` only;
    /// empty otherwise), e.g. `state`, `rawState`, `process`, `queues`.
    async fn changed_fields(&self) -> &[&'static str] {
        &self.changed_fields
    }

    /// When the poll that saw it finished. Events lag DLI by up to one `--watch-interval`
    /// plus DLI's own delay.
    async fn observed_at(&self) -> DateTime {
        self.observed_at
    }
}

/// Live changes of DLI datasource connections.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Changes of one project's connections: first a `SNAPSHOT` event per matching
    /// connection and an end-of-snapshot payload (`extensions.snapshotComplete`), then one
    /// event per change, polled every `--watch-interval`. Same filters and project-id rules
    /// as `connections`; `connectionIds` narrows to these connections.
    async fn connection_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] project_id: ID,
        #[graphql(desc = "Only connections in this state.")] state: Option<ConnectionState>,
        #[graphql(desc = "Only connections to this peer service, compared case-insensitively.")]
        service: Option<String>,
        #[graphql(desc = "Only these connections (by `connectionId`).")] connection_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ConnectionEvent>> + use<>> {
        let project = ProjectId::parse(&project_id).map_err(error::invalid_project_id)?;
        let scope = ctx
            .data::<SubscriptionScope>()
            .map_err(|_| error::internal("no subscription scope for this operation"))?;
        if scope.allowed.as_ref().is_some_and(|allowed| !allowed.contains(&project)) {
            return Err(UpstreamError::ProjectNotAllowed.to_graphql(&project));
        }
        let Some(credential) = &scope.credential else {
            return Err(UpstreamError::NoCredentials.to_graphql(&project));
        };
        let rx = scope.watcher.watch(&project, credential).map_err(|refused| match refused {
            WatchRefused::TooManyProjects(max) => error::limit_field_error(
                "max-watched-projects",
                max,
                "this server watches as many projects as it may",
            ),
        })?;
        let filter = Filter {
            state,
            service: service.map(|s| s.trim().to_owned()),
            ids: connection_ids.map(|ids| ids.into_iter().map(|id| id.0).collect()),
        };
        let metrics = scope.watcher.metrics().clone();
        let follower = Follower {
            project,
            rx,
            filter,
            known: None,
            queue: VecDeque::new(),
            ended: false,
            _active: metrics.subscription_active(),
        };
        Ok(futures::stream::unfold(follower, Follower::next).map(move |item| {
            metrics.subscription_event(match &item {
                Ok(e) => e.kind.as_str(),
                Err(e) if e.extensions.as_ref().is_some_and(|x| x.get(MARKER_KEY).is_some()) => "marker",
                Err(_) => "error",
            });
            item
        }))
    }
}

struct Filter {
    state: Option<ConnectionState>,
    service: Option<String>,
    ids: Option<HashSet<String>>,
}

impl Filter {
    fn matches(&self, c: &ConnectionDto) -> bool {
        self.state.is_none_or(|s| ConnectionState::from_raw(c.state.as_deref().unwrap_or("")) == s)
            && self
                .service
                .as_deref()
                .is_none_or(|want| c.service.as_deref().unwrap_or("").trim().eq_ignore_ascii_case(want))
            && self.ids.as_ref().is_none_or(|ids| ids.contains(c.connection_id.as_deref().unwrap_or("")))
    }
}

/// A connection's identity across polls: its id, else its name.
fn identity(c: &ConnectionDto) -> String {
    match c.connection_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("name:{}", c.name.as_deref().unwrap_or("")),
    }
}

/// One subscriber's state: its last view of the list and the events not yet taken.
struct Follower {
    project: ProjectId,
    rx: watch::Receiver<Observed>,
    filter: Filter,
    /// The matching connections as last seen, in list order; `None` before the snapshot.
    known: Option<Vec<(String, Connection)>>,
    queue: VecDeque<async_graphql::Result<ConnectionEvent>>,
    ended: bool,
    _active: crate::observability::metrics::Gauged,
}

impl Follower {
    async fn next(mut self) -> Option<(async_graphql::Result<ConnectionEvent>, Self)> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some((item, self));
            }
            if self.ended {
                return None;
            }
            // The first look takes what the poller has; later ones wait for news. A closed
            // channel still delivers its last, unseen value first.
            let wait = self.known.is_some() || matches!(*self.rx.borrow(), Observed::Pending);
            if wait && self.rx.changed().await.is_err() {
                self.ended = true;
                continue;
            }
            let observed = self.rx.borrow_and_update().clone();
            self.take(observed);
        }
    }

    fn take(&mut self, observed: Observed) {
        match observed {
            Observed::Pending => {}
            Observed::Listed { list, at } => self.compare(&list, DateTime(at)),
            Observed::Failed { error, fatal, .. } => {
                self.queue.push_back(Err(error.to_graphql(&self.project)));
                self.ended |= fatal;
            }
        }
    }

    fn compare(&mut self, list: &Arc<ListResponse>, at: DateTime) {
        let now: Vec<(String, Connection)> = list
            .connections
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, c)| self.filter.matches(c))
            .map(|(i, c)| (identity(c), Connection::new(self.project.clone(), list.clone(), i)))
            .collect();
        let event = |kind, connection: &Connection, changed_fields| {
            Ok(ConnectionEvent { kind, connection: connection.clone(), changed_fields, observed_at: at })
        };
        match self.known.take() {
            None => {
                for (_, c) in &now {
                    self.queue.push_back(event(ConnectionEventKind::Snapshot, c, Vec::new()));
                }
                self.queue.push_back(Err(async_graphql::Error::new("end of snapshot")
                    .extend_with(|_, ext| ext.set(MARKER_KEY, now.len() as u64))));
            }
            Some(before) => {
                let old: HashMap<&str, &Connection> = before.iter().map(|(k, c)| (k.as_str(), c)).collect();
                let new: HashSet<&str> = now.iter().map(|(k, _)| k.as_str()).collect();
                for (key, c) in &before {
                    if !new.contains(key.as_str()) {
                        self.queue.push_back(event(ConnectionEventKind::Removed, c, Vec::new()));
                    }
                }
                for (key, c) in &now {
                    match old.get(key.as_str()) {
                        None => self.queue.push_back(event(ConnectionEventKind::Added, c, Vec::new())),
                        Some(was) => {
                            let changed = changed_fields(was.dto(), c.dto());
                            if !changed.is_empty() {
                                self.queue.push_back(event(ConnectionEventKind::Changed, c, changed));
                            }
                        }
                    }
                }
            }
        }
        self.known = Some(now);
    }
}

/// The `Connection` fields whose values differ between two observations.
pub fn changed_fields(a: &ConnectionDto, b: &ConnectionDto) -> Vec<&'static str> {
    let text = |s: &Option<String>| s.as_deref().unwrap_or("").to_owned();
    let optional = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let state = |c: &ConnectionDto| ConnectionState::from_raw(c.state.as_deref().unwrap_or(""));
    let mut out = Vec::new();
    let mut check = |name: &'static str, differ: bool| {
        if differ {
            out.push(name);
        }
    };
    check("connectionId", text(&a.connection_id) != text(&b.connection_id));
    check("name", text(&a.name) != text(&b.name));
    check("state", state(a) != state(b));
    check("rawState", text(&a.state) != text(&b.state));
    check("service", text(&a.service) != text(&b.service));
    check("destination", text(&a.destination) != text(&b.destination));
    check("process", a.process.unwrap_or(0.0).to_bits() != b.process.unwrap_or(0.0).to_bits());
    check("connectionUrl", optional(&a.connection_url) != optional(&b.connection_url));
    check("clusterName", optional(&a.cluster_name) != optional(&b.cluster_name));
    check("queues", a.queues() != b.queues());
    check("createTime", a.create_time.unwrap_or(0) != b.create_time.unwrap_or(0));
    out
}

/// Rewrites the resolver's end-of-snapshot marker into a payload without `data`, whose
/// `extensions` say `snapshotComplete: true` and `snapshotSize: n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotMarker;

impl ExtensionFactory for SnapshotMarker {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SnapshotMarker)
    }
}

impl Extension for SnapshotMarker {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(rewrite_marker).boxed()
    }
}

fn rewrite_marker(response: Response) -> Response {
    let size = match response.errors.as_slice() {
        [only] => only.extensions.as_ref().and_then(|x| x.get(MARKER_KEY)).cloned(),
        _ => None,
    };
    match size {
        Some(size) => {
            let mut marker = Response::new(Value::Null);
            marker.extensions.insert("snapshotComplete".to_owned(), Value::Boolean(true));
            marker.extensions.insert("snapshotSize".to_owned(), size);
            marker
        }
        None => response,
    }
}

/// Whether `response` is the end-of-snapshot marker.
pub fn is_marker(response: &Response) -> bool {
    response.extensions.contains_key("snapshotComplete")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dto(state: &str, process: f64, queues: &[&str]) -> ConnectionDto {
        ConnectionDto {
            connection_id: Some("c1".into()),
            name: Some("n".into()),
            state: Some(state.into()),
            process: Some(process),
            queue_list: Some(queues.iter().map(|q| Some((*q).to_owned())).collect()),
            ..ConnectionDto::default()
        }
    }

    #[test]
    fn changed_fields_name_the_graphql_fields_that_differ() {
        let a = dto("CREATING", 0.5, &[]);
        assert!(changed_fields(&a, &dto("CREATING", 0.5, &[])).is_empty());
        assert_eq!(changed_fields(&a, &dto("CREATING", 0.75, &[])), ["process"]);
        assert_eq!(changed_fields(&a, &dto("ACTIVE", 1.0, &[])), ["state", "rawState", "process"]);
        assert_eq!(changed_fields(&a, &dto("creating", 0.5, &[])), ["rawState"]);
        assert_eq!(changed_fields(&a, &dto("CREATING", 0.5, &["q1"])), ["queues"]);
    }

    #[test]
    fn the_marker_becomes_a_payload_without_data() {
        let marker =
            async_graphql::Error::new("end of snapshot").extend_with(|_, ext| ext.set(MARKER_KEY, 3u64));
        let response = Response::from_errors(vec![marker.into_server_error(Default::default())]);
        let rewritten = rewrite_marker(response);
        assert!(is_marker(&rewritten));
        assert!(rewritten.errors.is_empty());
        assert_eq!(rewritten.extensions.get("snapshotSize"), Some(&Value::from(3u64)));
        let other = Response::from_errors(vec![async_graphql::ServerError::new("real", None)]);
        assert!(!is_marker(&rewrite_marker(other)));
    }
}
