//! How async-graphql 7.2 decides which selections run, and the order a selection set's
//! response keys take by the GraphQL spec (CollectFields), shared by the planned executor
//! ([`super::plan`]) and the response-order extension ([`super::extensions::order`]).

use async_graphql::{
    InputType, Name, Positioned, Variables,
    parser::types::{
        Directive, DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
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
pub fn skipped(directives: &[Positioned<Directive>], conditions: &Conditions<'_>) -> Option<bool> {
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

/// The response keys of a root selection set in the spec's order: each key where it first
/// appears among the selections that run, fragments expanded in place. (Fragments at the root
/// can only be on the root type, so no type condition needs deciding.)
pub fn root_keys(doc: &ExecutableDocument, set: &SelectionSet, variables: &Variables) -> Vec<Name> {
    fn walk(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        variables: &Variables,
        out: &mut Vec<Name>,
        depth: usize,
    ) {
        // Fragment cycles are refused by validation; the bound only keeps this total.
        if depth > 64 {
            return;
        }
        for selection in &set.items {
            if skipped(selection.node.directives(), &Conditions::Request(variables)).unwrap_or(true) {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let key = &field.node.response_key().node;
                    if !out.contains(key) {
                        out.push(key.clone());
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                        walk(doc, &fragment.node.selection_set.node, variables, out, depth + 1);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    walk(doc, &fragment.node.selection_set.node, variables, out, depth + 1);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, set, variables, &mut out, 0);
    out
}
