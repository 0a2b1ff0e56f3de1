//! The planned executor: the hot shapes of query answered without async-graphql's value tree.
//!
//! Most traffic is a handful of operations that read only connection lists: root
//! `connections` fields (aliased, filtered, through fragments, with `@skip`/`@include`) whose
//! selections are leaves of `Connection`, plus `__typename`. For such an operation a plan is
//! built once, and a request is answered by loading each named project through the request's
//! [`ProjectLoader`] and writing the response JSON straight from the upstream DTOs into one
//! buffer: no parse, no validation, no `Value` tree, no extension hooks.
//!
//! Only what is proven safe is planned, and anything in doubt goes to async-graphql:
//! - A plan is learnt only from an operation (document text and operation name) that
//!   async-graphql has just executed without any error, so the document parsed, validated and
//!   passed every limit that depends on its text alone.
//! - Binding a request's variables uses async-graphql's own input coercion
//!   ([`InputType::parse`]) on the values its executor would see (a variable's default
//!   included), and evaluates `@skip`/`@include` exactly as its executor does. Any value that
//!   does not coerce, an unknown variable, a project id that does not parse, more distinct
//!   projects than `--max-projects`, or a response key selected twice at the root: no plan,
//!   and the request runs through async-graphql.
//! - A plan writes only successful answers: when a project's load fails, the request runs
//!   through async-graphql with the same loader, which already holds every load's outcome, so
//!   the errors are async-graphql's and no call is repeated.
//!
//! `--verify-plans` runs async-graphql too for every request a plan could answer and compares
//! the bytes; every API test runs with it (`tests/api/helpers.rs`), and
//! `tests/api/planned.rs` generates selections for the comparison.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_graphql::{
    ID, InputType, Name, Value as ConstValue,
    parser::types::{Directive, ExecutableDocument, Field, OperationType, Selection, SelectionSet},
};
use lru::LruCache;
use parking_lot::Mutex;

use super::{
    connection::{ConnectionState, Leaf},
    connection_list::ConnectionList,
    extensions::{document_cache::MAX_CACHED_QUERY_BYTES, limits::fan_out},
    json,
    loader::ProjectLoader,
    selection::{Conditions, each_field, operation},
};
use crate::project_id::ProjectId;

/// The plans of a process's operations, by document text and operation name; least recently
/// used dropped first.
pub struct Planner {
    plans: Option<Mutex<LruCache<Box<str>, Operations>>>,
    max_projects: usize,
}

/// What the planner knows of an operation.
pub enum Known {
    /// It has a plan.
    Plan(Arc<Plan>),
    /// It cannot be planned (another shape, or planning is off).
    No,
    /// Never seen: it may be learnt after async-graphql runs it.
    Unseen,
}

/// The operations of one document the planner has seen, by name, with their plans (`None`:
/// not plannable).
type Operations = Vec<(Option<Box<str>>, Option<Arc<Plan>>)>;

impl Planner {
    /// Up to `capacity` documents' plans (0: no planned execution at all); plans bind at most
    /// `max_projects` distinct projects (`--max-projects`).
    pub fn new(capacity: usize, max_projects: usize) -> Self {
        Self { plans: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))), max_projects }
    }

    /// The plan of `(query, operation_name)`, if one was learnt.
    pub fn known(&self, query: &str, operation_name: Option<&str>) -> Known {
        let Some(plans) = &self.plans else { return Known::No };
        if query.len() > MAX_CACHED_QUERY_BYTES {
            return Known::No;
        }
        let mut plans = plans.lock();
        let Some(ops) = plans.get(query) else { return Known::Unseen };
        match ops.iter().find(|(name, _)| name.as_deref() == operation_name) {
            Some((_, Some(plan))) => Known::Plan(plan.clone()),
            Some((_, None)) => Known::No,
            None => Known::Unseen,
        }
    }

    /// Learns the plan of an operation async-graphql has just executed without errors (and
    /// remembers when it has none).
    pub fn learn(&self, query: &str, operation_name: Option<&str>) -> Option<Arc<Plan>> {
        let plans = self.plans.as_ref()?;
        if query.len() > MAX_CACHED_QUERY_BYTES {
            return None;
        }
        let plan = async_graphql::parser::parse_query(query)
            .ok()
            .and_then(|doc| Plan::build(doc, operation_name, self.max_projects))
            .map(Arc::new);
        let mut plans = plans.lock();
        let ops = plans.get_or_insert_mut(query.into(), Vec::new);
        if !ops.iter().any(|(name, _)| name.as_deref() == operation_name) {
            // Bounded: a document has few operations worth naming, and a client cycling
            // through names only replaces its own entry's list.
            if ops.len() >= 16 {
                ops.remove(0);
            }
            ops.push((operation_name.map(Into::into), plan.clone()));
        }
        plan
    }
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.plans.as_ref().map_or(0, |p| p.lock().len());
        f.debug_struct("Planner").field("documents", &len).finish()
    }
}

/// A learnt operation: its document, and its root fields when no `@skip`/`@include` in it
/// depends on a variable (otherwise they are collected per request).
pub struct Plan {
    doc: ExecutableDocument,
    /// The operation's name, for metrics and spans (`None`: anonymous).
    name: Option<String>,
    fixed: Option<Vec<RootField>>,
    max_projects: usize,
    /// The size of the last answer, so the next buffer is allocated once.
    size_hint: AtomicUsize,
}

/// A root field of the response, in response order.
struct RootField {
    key: Name,
    kind: RootKind,
}

enum RootKind {
    Typename,
    Connections {
        /// The field's arguments as written (literals or variables).
        args: Vec<(Name, async_graphql_value::Value)>,
        /// The response keys of a `Connection`, in order, with their leaves.
        columns: Arc<[Column]>,
    },
}

/// A plan with one request's variables bound: what to load and how to write it.
pub struct Bound {
    plan: Arc<Plan>,
    fields: Vec<BoundField>,
    projects: Vec<ProjectId>,
}

enum BoundField {
    /// `"key":"Query"`.
    Typename(Name),
    Connections {
        key: Name,
        project: ProjectId,
        state: Option<ConnectionState>,
        service: Option<String>,
        columns: Arc<[Column]>,
    },
}

/// A leaf of a connection with its response key, written once as JSON (`"key":`).
struct Column {
    prefix: Box<[u8]>,
    leaf: Leaf,
}

impl Plan {
    fn build(doc: ExecutableDocument, operation_name: Option<&str>, max_projects: usize) -> Option<Self> {
        // One operation only: the fan-out limit also counts the operations not executed.
        if doc.operations.iter().count() != 1 {
            return None;
        }
        let (name, op) = operation(&doc, operation_name)?;
        if op.ty != OperationType::Query {
            return None;
        }
        let name = name.map(str::to_owned);
        // The shape check: everything the operation can select, under any variables, must be
        // plannable (collected here with every condition taken as true).
        shape(&doc, &op.selection_set.node, Level::Root)?;
        let fixed = collect_root(&doc, &op.selection_set.node, &Conditions::Literal);
        Some(Self { name, fixed, max_projects, doc, size_hint: AtomicUsize::new(256) })
    }

    /// The operation's name (`None`: anonymous).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Binds a request's variables (a JSON object, or none). `None` when the request must go
    /// to async-graphql (see the module docs).
    pub fn bind(
        self: &Arc<Self>,
        variables: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<Bound> {
        let (_, op) = operation(&self.doc, self.name.as_deref())?;
        let definitions = &op.variable_definitions;
        // async-graphql's variables, exactly as it builds them from the request's JSON.
        let variables = match variables {
            Some(map) if !map.is_empty() => {
                if map.keys().any(|k| !definitions.iter().any(|d| d.node.name.node.as_str() == k)) {
                    return None;
                }
                async_graphql::Variables::from_json(serde_json::Value::Object(map.clone()))
            }
            _ => async_graphql::Variables::default(),
        };
        let collected;
        let root = match &self.fixed {
            Some(root) => root,
            None => {
                collected =
                    collect_root(&self.doc, &op.selection_set.node, &Conditions::Request(&variables))?;
                &collected
            }
        };
        // The value async-graphql's executor resolves a variable to (`Context::var_value`).
        let var = |name: &Name| -> Option<ConstValue> {
            definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| variables.get(name).or_else(|| d.node.default_value()))
                .cloned()
        };
        let mut fields = Vec::with_capacity(root.len());
        let mut projects: Vec<ProjectId> = Vec::new();
        for field in root {
            match &field.kind {
                RootKind::Typename => fields.push(BoundField::Typename(field.key.clone())),
                RootKind::Connections { args, columns } => {
                    let arg = |wanted: &str| -> Option<Option<ConstValue>> {
                        match args.iter().find(|(n, _)| n.as_str() == wanted) {
                            None => Some(None),
                            Some((_, v)) => v.clone().into_const_with(|n| var(&n).ok_or(())).ok().map(Some),
                        }
                    };
                    let id = <ID as InputType>::parse(arg("projectId")?).ok()?;
                    let project = ProjectId::parse(&id).ok()?;
                    let state = <Option<ConnectionState> as InputType>::parse(arg("state")?).ok()?;
                    let service = <Option<String> as InputType>::parse(arg("service")?).ok()?;
                    if !projects.contains(&project) {
                        projects.push(project.clone());
                    }
                    fields.push(BoundField::Connections {
                        key: field.key.clone(),
                        project,
                        state,
                        service,
                        columns: columns.clone(),
                    });
                }
            }
        }
        // `--max-projects` as the limits extension counts it: every project the operation names,
        // skipped fields included. Without variables that count is the document's own, which
        // passed when the plan was learnt.
        if !definitions.is_empty()
            && fan_out(&self.doc, op, &variables, self.max_projects).projects.len() > self.max_projects
        {
            return None;
        }
        Some(Bound { plan: self.clone(), fields, projects })
    }
}

impl Bound {
    /// The response body (`{"data":…}`), or `None` when a project's load failed and the
    /// request must be answered by async-graphql (from the same loader's outcomes).
    pub async fn run(&self, loader: &ProjectLoader) -> Option<Vec<u8>> {
        let loads = futures::future::join_all(self.projects.iter().map(|p| loader.load_one(p.clone()))).await;
        let mut lists = Vec::with_capacity(loads.len());
        for loaded in loads {
            let Ok(Some(Ok(list))) = loaded else { return None };
            lists.push(list);
        }
        // async-graphql answers an operation whose every root field is skipped with null data.
        if self.fields.is_empty() {
            return Some(br#"{"data":null}"#.to_vec());
        }
        let mut out = Vec::with_capacity(self.plan.size_hint.load(Ordering::Relaxed));
        out.extend_from_slice(br#"{"data":{"#);
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match field {
                BoundField::Typename(key) => {
                    json::string(key, &mut out);
                    out.extend_from_slice(br#":"Query""#);
                }
                BoundField::Connections { key, project, state, service, columns } => {
                    let at = self.projects.iter().position(|p| p == project)?;
                    let connections =
                        ConnectionList::filtered(project, &lists[at], *state, service.as_deref());
                    json::string(key, &mut out);
                    out.extend_from_slice(b":[");
                    for (n, c) in connections.iter().enumerate() {
                        if n > 0 {
                            out.push(b',');
                        }
                        out.push(b'{');
                        for (k, column) in columns.iter().enumerate() {
                            if k > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(&column.prefix);
                            column.leaf.write_json(&c, &mut out);
                        }
                        out.push(b'}');
                    }
                    out.push(b']');
                }
            }
        }
        out.extend_from_slice(b"}}");
        self.plan.size_hint.store(out.len(), Ordering::Relaxed);
        Some(out)
    }

    /// The operation's name (`None`: anonymous).
    pub fn operation_name(&self) -> Option<&str> {
        self.plan.name()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Connection,
}

/// `Some(())` when every selection reachable from `set` (conditions ignored) is one a plan
/// can write: at the root `connections` and `__typename`, inside a connection the leaves of
/// `Connection`; fragments only on the type they are in; no directive but `@skip`/`@include`.
fn shape(doc: &ExecutableDocument, set: &SelectionSet, level: Level) -> Option<()> {
    let on = match level {
        Level::Root => "Query",
        Level::Connection => "Connection",
    };
    for selection in &set.items {
        if !selection.node.directives().iter().all(|d| is_condition(&d.node)) {
            return None;
        }
        match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                let name = field.name.node.as_str();
                match (level, name) {
                    (_, "__typename") => {}
                    (Level::Root, "connections") => {
                        if !field
                            .arguments
                            .iter()
                            .all(|(n, _)| matches!(n.node.as_str(), "projectId" | "state" | "service"))
                        {
                            return None;
                        }
                        shape(doc, &field.selection_set.node, Level::Connection)?;
                    }
                    (Level::Connection, _) if Leaf::from_name(name).is_some() => {
                        if !field.arguments.is_empty() || !field.selection_set.node.items.is_empty() {
                            return None;
                        }
                    }
                    _ => return None,
                }
            }
            Selection::FragmentSpread(spread) => {
                let fragment = doc.fragments.get(&spread.node.fragment_name.node)?;
                if fragment.node.type_condition.node.on.node.as_str() != on {
                    return None;
                }
                shape(doc, &fragment.node.selection_set.node, level)?;
            }
            Selection::InlineFragment(fragment) => {
                if fragment.node.type_condition.as_ref().is_some_and(|c| c.node.on.node.as_str() != on) {
                    return None;
                }
                shape(doc, &fragment.node.selection_set.node, level)?;
            }
        }
    }
    Some(())
}

fn is_condition(d: &Directive) -> bool {
    matches!(d.name.node.as_str(), "skip" | "include")
}

/// The root fields of `set` in response order, conditions applied. `None` (no plan) when a
/// response key repeats at the root, or a condition needs variables it is not given.
fn collect_root(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    conditions: &Conditions<'_>,
) -> Option<Vec<RootField>> {
    let mut out: Vec<RootField> = Vec::new();
    each_field(doc, set, conditions, &mut |field| {
        let key = field.response_key().node.clone();
        if out.iter().any(|f| f.key == key) {
            return None;
        }
        out.push(RootField { kind: root_kind(doc, field, conditions)?, key });
        Some(())
    })?;
    Some(out)
}

fn root_kind(doc: &ExecutableDocument, field: &Field, conditions: &Conditions<'_>) -> Option<RootKind> {
    if field.name.node == "__typename" {
        return Some(RootKind::Typename);
    }
    // A `Connection` key seen before keeps its first position (validation guarantees it is
    // the same field), as async-graphql merges them.
    let mut columns: Vec<(&Name, Leaf)> = Vec::new();
    each_field(doc, &field.selection_set.node, conditions, &mut |f| {
        let key = &f.response_key().node;
        if !columns.iter().any(|(k, _)| *k == key) {
            columns.push((key, Leaf::from_name(f.name.node.as_str())?));
        }
        Some(())
    })?;
    let columns = columns
        .into_iter()
        .map(|(key, leaf)| {
            let mut prefix = Vec::with_capacity(key.len() + 3);
            json::string(key, &mut prefix);
            prefix.push(b':');
            Column { prefix: prefix.into(), leaf }
        })
        .collect();
    let args = field.arguments.iter().map(|(n, v)| (n.node.clone(), v.node.clone())).collect();
    Some(RootKind::Connections { args, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(query: &str, name: Option<&str>) -> Option<Plan> {
        Plan::build(async_graphql::parser::parse_query(query).ok()?, name, 10)
    }

    #[test]
    fn plans_only_connection_lists_of_leaves() {
        assert!(plan("{ connections(projectId: \"p\") { name state } }", None).is_some());
        assert!(plan("query Q { a: connections(projectId: \"p\") { ...F } __typename } fragment F on Connection { name }", None).is_some());
        assert!(plan("{ connections(projectId: \"p\") { queueStatuses { name } } }", None).is_none());
        assert!(plan("{ connectionStats(projectId: \"p\") { total } }", None).is_none());
        assert!(
            plan("{ connections(projectId: \"p\") { name } __schema { queryType { name } } }", None)
                .is_none()
        );
        assert!(
            plan(
                "{ ... on Query { connections(projectId: \"p\") { ... on _Entity { __typename } } } }",
                None
            )
            .is_none()
        );
        assert!(plan("subscription { connectionEvents(projectId: \"p\") { kind } }", None).is_none());
        assert!(plan("query A { __typename } query B { __typename }", Some("B")).is_none(), "two operations");
        assert!(plan("query A { __typename }", Some("A")).is_some());
        assert!(plan("query A { __typename }", None).is_some());
        assert!(plan("query A { __typename }", Some("B")).is_none());
    }

    #[test]
    fn conditions_on_variables_are_collected_per_request() {
        let fixed =
            plan("{ connections(projectId: \"p\") { name @skip(if: true) state } }", None).expect("plans");
        assert!(fixed.fixed.as_ref().is_some_and(|root| match &root[0].kind {
            RootKind::Connections { columns, .. } => columns.len() == 1 && columns[0].leaf == Leaf::State,
            RootKind::Typename => false,
        }));
        let varying =
            plan("query($x: Boolean!) { connections(projectId: \"p\") { name @skip(if: $x) } }", None)
                .expect("plans");
        assert!(varying.fixed.is_none());
    }

    #[test]
    fn binding_refuses_what_async_graphql_would_answer_otherwise() {
        let p = Arc::new(
            plan(
                "query($p: ID!, $s: ConnectionState) { connections(projectId: $p, state: $s) { name } }",
                None,
            )
            .expect("plans"),
        );
        let vars = |v: serde_json::Value| v.as_object().cloned();
        assert!(p.bind(vars(serde_json::json!({"p": "p1"})).as_ref()).is_some());
        assert!(p.bind(vars(serde_json::json!({"p": "p1", "s": "ACTIVE"})).as_ref()).is_some());
        assert!(p.bind(vars(serde_json::json!({"p": "p1", "s": "BOGUS"})).as_ref()).is_none());
        assert!(p.bind(vars(serde_json::json!({"p": "../etc"})).as_ref()).is_none(), "invalid project id");
        assert!(p.bind(vars(serde_json::json!({"p": null})).as_ref()).is_none());
        assert!(p.bind(None).is_none(), "a required variable is missing");
        assert!(p.bind(vars(serde_json::json!({"p": "p1", "extra": 1})).as_ref()).is_none());
        let many =
            (0..11).map(|i| format!("a{i}: connections(projectId: $p{i}) {{ name }}")).collect::<Vec<_>>();
        let defs = (0..11).map(|i| format!("$p{i}: ID!")).collect::<Vec<_>>();
        let wide = Arc::new(
            plan(&format!("query({}) {{ {} }}", defs.join(", "), many.join(" ")), None).expect("plans"),
        );
        let distinct: serde_json::Map<_, _> =
            (0..11).map(|i| (format!("p{i}"), serde_json::json!(format!("p{i}")))).collect();
        let same: serde_json::Map<_, _> =
            (0..11).map(|i| (format!("p{i}"), serde_json::json!("p"))).collect();
        assert!(wide.bind(Some(&distinct)).is_none(), "more projects than --max-projects");
        assert!(wide.bind(Some(&same)).is_some());
        let twice = Arc::new(
            plan("{ connections(projectId: \"p\") { name } connections(projectId: \"p\") { state } }", None)
                .expect("shape plans"),
        );
        assert!(twice.fixed.is_none() && twice.bind(None).is_none(), "a root key selected twice");
    }

    #[test]
    fn the_planner_remembers_operations_it_cannot_plan() {
        let planner = Planner::new(4, 10);
        let q = "{ connectionStats(projectId: \"p\") { total } }";
        assert!(matches!(planner.known(q, None), Known::Unseen));
        assert!(planner.learn(q, None).is_none());
        assert!(matches!(planner.known(q, None), Known::No));
        let q = "{ connections(projectId: \"p\") { name } }";
        assert!(planner.learn(q, None).is_some());
        assert!(matches!(planner.known(q, None), Known::Plan(_)));
        assert!(matches!(planner.known(q, Some("Other")), Known::Unseen));
        assert!(matches!(Planner::new(0, 10).known(q, None), Known::No));
    }
}
