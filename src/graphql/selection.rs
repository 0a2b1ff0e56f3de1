//! How async-graphql 7.2 decides which selections run, and the order a selection set's
//! response keys take by the GraphQL spec (CollectFields), shared by the planned executor
//! ([`super::plan`]) and the response-order extension ([`super::extensions::order`]).

use async_graphql::{
    InputType, Name, Positioned, Variables,
    parser::types::{
        Directive, DocumentOperations, ExecutableDocument, Field, OperationDefinition, Selection,
        SelectionSet,
    },
};

/// How `@skip`/`@include` conditions are decided.
pub enum Conditions<'a> {
    /// Only literal conditions can be decided: a condition on a variable is undecided.
    Literal,
    /// A request's variables, looked up as async-graphql's executor does.
    Request(&'a Variables),
}

/// Whether a selection with these directives is skipped, as async-graphql decides it
/// (`remove_skipped_selection`: the request's variables only, defaults not applied, and a
/// value that is not a Boolean counting as false). `None` under [`Conditions::Literal`] when
/// a condition uses a variable.
fn skipped(directives: &[Positioned<Directive>], conditions: &Conditions<'_>) -> Option<bool> {
    for directive in directives {
        let include = match directive.node.name.node.as_str() {
            "skip" => false,
            "include" => true,
            _ => continue,
        };
        let Some(condition) = directive.node.get_argument("if") else { continue };
        let value = match conditions {
            Conditions::Literal => condition.node.clone().into_const_with(|_| Err(())).ok()?,
            Conditions::Request(variables) => condition
                .node
                .clone()
                .into_const_with(|name| variables.get(&name).cloned().ok_or(()))
                .unwrap_or_default(),
        };
        let value: bool = InputType::parse(Some(value)).unwrap_or_default();
        if include != value {
            return Some(true);
        }
    }
    Some(false)
}

/// The operation async-graphql runs for `operation_name`, with its name.
pub fn operation<'d>(
    doc: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'d str>, &'d OperationDefinition)> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some((None, &op.node)),
        (DocumentOperations::Multiple(ops), Some(wanted)) => {
            ops.get_key_value(wanted).map(|(n, op)| (Some(n.as_str()), &op.node))
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.iter().next().map(|(n, op)| (Some(n.as_str()), &op.node))
        }
        _ => None,
    }
}

/// Calls `visit` for every field selection of `set` that runs under `conditions`, in order,
/// with fragment spreads and inline fragments expanded in place (their type conditions are
/// the caller's to check). `None` when a condition is undecided, a fragment is unknown, the
/// fragments nest deeper than validation allows anyway, or `visit` says `None`.
pub fn each_field<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    conditions: &Conditions<'_>,
    visit: &mut impl FnMut(&'d Field) -> Option<()>,
) -> Option<()> {
    fn walk<'d>(
        doc: &'d ExecutableDocument,
        set: &'d SelectionSet,
        conditions: &Conditions<'_>,
        visit: &mut impl FnMut(&'d Field) -> Option<()>,
        depth: usize,
    ) -> Option<()> {
        // Fragment cycles fail async-graphql's recursion check before anything here runs; the
        // bound only keeps this total.
        if depth > 64 {
            return None;
        }
        for selection in &set.items {
            if skipped(selection.node.directives(), conditions)? {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => visit(&field.node)?,
                Selection::FragmentSpread(spread) => {
                    let fragment = doc.fragments.get(&spread.node.fragment_name.node)?;
                    walk(doc, &fragment.node.selection_set.node, conditions, visit, depth + 1)?;
                }
                Selection::InlineFragment(fragment) => {
                    walk(doc, &fragment.node.selection_set.node, conditions, visit, depth + 1)?;
                }
            }
        }
        Some(())
    }
    walk(doc, set, conditions, visit, 0)
}

/// The response keys of a root selection set in the spec's order: each key where it first
/// appears among the selections that run, fragments expanded in place. (Fragments at the root
/// can only be on the root type, so no type condition needs deciding.)
pub fn root_keys(doc: &ExecutableDocument, set: &SelectionSet, variables: &Variables) -> Vec<Name> {
    let mut out: Vec<Name> = Vec::new();
    // A request's conditions are always decided; an unknown fragment fails validation.
    let _ = each_field(doc, set, &Conditions::Request(variables), &mut |field| {
        let key = &field.response_key().node;
        if !out.contains(key) {
            out.push(key.clone());
        }
        Some(())
    });
    out
}
