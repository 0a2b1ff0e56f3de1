//! `[Connection!]` resolved in one pass, without async-graphql's per-field machinery.
//!
//! Most of `Connection`'s fields are leaves that cannot fail, yet the generic executor resolves
//! each of them as its own boxed future, through every extension's `resolve` hook, and
//! inserts it into a fresh map: for a 50-connection list that is ~500 futures per request,
//! the largest cost in a profile of the service after compression. [`ConnectionList`] is the
//! list type the `connections` fields return instead: it walks the selection set once (fields,
//! aliases, `__typename`, fragment spreads and inline fragments; `@skip`/`@include` are already
//! applied by async-graphql before execution) into a plan, then fills one object per
//! connection from the plan, synchronously. A selection with any other field (one with a
//! selection set or an upstream call, like `queueStatuses`) resolves the whole list through
//! the generic executor instead.
//!
//! The type system does not change: the list registers as `[Connection!]` through
//! [`Connection`]'s derived object type, which `_entities` still resolves generically. A test
//! (`tests/api/fast_path.rs`) compares both paths over the same data for many selection sets.
//!
//! Invariant this relies on: no schema extension observes per-field `resolve` hooks (they
//! would not see `Connection`'s leaf fields), and no leaf it renders takes arguments.

use std::{borrow::Cow, sync::Arc};

use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult, Value,
    indexmap::IndexMap,
    parser::types::{Field, Selection, SelectionSet},
    registry::Registry,
};

use super::{
    connection::{Connection, ConnectionState, Leaf},
    field::list_of,
};
use crate::{project_id::ProjectId, upstream::ListResponse};

/// Loads `project` through the request's DataLoader and applies the filters.
pub async fn connections_of(
    ctx: &async_graphql::Context<'_>,
    project: &ProjectId,
    state: Option<ConnectionState>,
    service: Option<&str>,
) -> async_graphql::Result<ConnectionList> {
    let list = list_of(ctx, project).await?;
    Ok(ConnectionList::filtered(project, &list, state, service))
}

/// The connections of one project's list that passed the filters, in upstream order.
pub struct ConnectionList {
    project: ProjectId,
    list: Arc<ListResponse>,
    indices: Vec<usize>,
}

impl ConnectionList {
    /// The connections of `list` that pass the filters, in upstream order.
    pub fn filtered(
        project: &ProjectId,
        list: &Arc<ListResponse>,
        state: Option<ConnectionState>,
        service: Option<&str>,
    ) -> Self {
        let service = service.map(str::trim);
        let indices = list
            .connections
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                state.is_none_or(|s| ConnectionState::from_raw(c.state.as_deref().unwrap_or("")) == s)
            })
            .filter(|(_, c)| {
                service
                    .is_none_or(|want| c.service.as_deref().unwrap_or("").trim().eq_ignore_ascii_case(want))
            })
            .map(|(index, _)| index)
            .collect();
        Self { project: project.clone(), list: list.clone(), indices }
    }

    /// How many connections passed the filters.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// The connections one by one (for entity lookups).
    pub fn iter(&self) -> impl Iterator<Item = Connection> + '_ {
        self.indices.iter().map(|&i| Connection::new(self.project.clone(), self.list.clone(), i))
    }
}

impl OutputType for ConnectionList {
    fn type_name() -> Cow<'static, str> {
        <Vec<Connection> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<Connection> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<Connection> as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let mut plan = Plan::default();
        if !plan.add(ctx, &ctx.item.node)? {
            return async_graphql::resolver_utils::resolve_list(ctx, field, self.iter(), Some(self.len()))
                .await;
        }
        let template = plan.template();
        Ok(Value::List(self.iter().map(|c| plan.render(&template, &c)).collect()))
    }
}

/// The response keys of a `Connection` selection set, in response order, with their leaves.
#[derive(Default)]
struct Plan {
    columns: Vec<(Name, Leaf)>,
}

impl Plan {
    /// Adds the fields of `set`, following fragments that apply to `Connection`. A response
    /// key seen before keeps its first position (validation guarantees it is the same field).
    /// `false` when the set selects a field that is not a [`Leaf`]: the plan cannot render it.
    fn add(&mut self, ctx: &ContextSelectionSet<'_>, set: &SelectionSet) -> ServerResult<bool> {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let key = field.node.response_key().node.clone();
                    if self.columns.iter().any(|(k, _)| *k == key) {
                        continue;
                    }
                    let Some(leaf) = Leaf::from_name(field.node.name.node.as_str()) else {
                        return Ok(false);
                    };
                    self.columns.push((key, leaf));
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let fragment = ctx.query_env.fragments.get(name).ok_or_else(|| {
                        ServerError::new(format!(r#"Unknown fragment "{name}"."#), Some(spread.pos))
                    })?;
                    if applies(ctx, Some(fragment.node.type_condition.node.on.node.as_str()))
                        && !self.add(ctx, &fragment.node.selection_set.node)?
                    {
                        return Ok(false);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let condition = fragment.node.type_condition.as_ref().map(|c| c.node.on.node.as_str());
                    if applies(ctx, condition) && !self.add(ctx, &fragment.node.selection_set.node)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// An object with this plan's keys, in order, and null values.
    fn template(&self) -> IndexMap<Name, Value> {
        self.columns.iter().map(|(key, _)| (key.clone(), Value::Null)).collect()
    }

    /// The object of one connection. It starts as a clone of `template`: cloning copies the
    /// map's hash index, where inserting would hash every key again with SipHash (a visible
    /// share of a list's cost; docs/performance.md).
    fn render(&self, template: &IndexMap<Name, Value>, c: &Connection) -> Value {
        let mut object = template.clone();
        for ((_, value), (_, leaf)) in object.iter_mut().zip(&self.columns) {
            *value = leaf.value(c);
        }
        Value::Object(object)
    }
}

/// Whether a fragment with this type condition applies to a `Connection` object (the spec's
/// DoesFragmentTypeApply: the type itself, or an interface or union it belongs to).
fn applies(ctx: &ContextSelectionSet<'_>, condition: Option<&str>) -> bool {
    condition.is_none_or(|on| {
        ctx.schema_env.registry.types.get(on).is_some_and(|ty| ty.is_possible_type("Connection"))
    })
}
