//! The schema extension that enforces the document limits of [`crate::config::Limits`].
//!
//! - before parsing: document length, token count and bracket nesting (a linear scan, so a
//!   hostile document never reaches the recursive parser);
//! - after parsing, before async-graphql walks the document: depth and field count
//!   (fragments expanded once each, so a fragment bomb costs linear time), and upstream
//!   fan-out, i.e. how many field selections can cause an upstream
//!   call (`connections` on any type, `_entities`, the subscription `connectionEvents`) and how many distinct project ids the
//!   operation names (arguments and input objects with a `projectId` or `id` key, variables
//!   resolved), with fragments expanded;
//! - after validation: depth and complexity again, from async-graphql's own calculation
//!   (which honours per-field complexity settings).
//!
//! A rejected operation never executes, so it costs no upstream call.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    sync::Arc,
};

use async_graphql::{
    Name, Request, Response, ServerError, ServerResult, ValidationResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
        NextValidation,
    },
    parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet},
};

use parking_lot::Mutex;

use super::document_cache::{DocumentCache, OperationKey};
use crate::{
    config::Limits,
    error::{self, ErrorCode, limit_error},
};

/// Field names whose resolution can call upstream (a list per project, or a call per
/// connection).
pub const UPSTREAM_FIELDS: &[&str] = &[
    "connections",
    "connectionsPage",
    "connectionStats",
    "connection",
    "queueStatuses",
    "enhancedConnections",
    "enhancedConnection",
    "privileges",
    "_entities",
    "connectionEvents",
];
/// Argument and input-object keys that name a project. `id` names one only as the argument
/// of `project` and in `Project` representations; elsewhere (`enhancedConnection(id:)`, an
/// `EnhancedConnection` representation) it is a connection id.
pub const PROJECT_KEYS: &[&str] = &["projectId", "id"];

/// Installs the post-parse document limits on a schema (`SchemaBuilder::extension`); register
/// [`DocumentScan`] before it (and before any extension that parses documents).
#[derive(Debug, Clone)]
pub struct DocumentLimits {
    /// The limits.
    pub limits: Arc<Limits>,
    /// Whether introspection is served; when not, `__schema`/`__type` get a clear error
    /// instead of async-graphql's silent `null`.
    pub introspection: bool,
    /// Where documents are parsed (and parses reused).
    pub documents: Arc<DocumentCache>,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension { config: self.clone(), operation: Mutex::default() })
    }
}

/// One request's limits check.
struct DocumentLimitsExtension {
    config: DocumentLimits,
    /// Under which key this request's validation may be reused (see `DocumentCache`).
    operation: Mutex<Option<OperationKey>>,
}

/// The pre-parse checks (length, tokens, nesting) alone, for registration before anything
/// that parses documents itself (automatic persisted queries parse the documents they
/// register).
#[derive(Debug, Clone)]
pub struct DocumentScan(pub Arc<Limits>);

impl ExtensionFactory for DocumentScan {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentScan {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        check_document(&request.query, &self.0)?;
        next.run(ctx, request).await
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        // Parse, validation and operation-selection errors come from async-graphql without a
        // code; clients branch on codes, so every request error gets one.
        if response.data == Value::Null {
            response.errors = std::mem::take(&mut response.errors)
                .into_iter()
                .map(|e| error::with_code(e, ErrorCode::BadRequest))
                .collect();
        }
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let limits = &*self.config.limits;
        // The text was scanned by `DocumentScan` (registered first); a persisted query
        // arrives parsed here, and was scanned when it was registered.
        // Parsed here (and kept in the request, so not parsed twice) to measure the document
        // before async-graphql walks it: its recursion check and validation expand fragment
        // spreads without memoisation, which a fragment bomb turns into exponential work.
        // An empty text is a persisted query, which arrives parsed.
        if !request.query.is_empty() {
            request.set_parsed_query(self.config.documents.parse(&request.query)?);
        }
        *self.operation.lock() = DocumentCache::operation_key(
            &request.query,
            request.operation_name.as_deref(),
            !request.variables.is_empty(),
        );
        let variables = std::mem::take(&mut request.variables);
        let checked = request.parsed_query().and_then(|doc| {
            if !self.config.introspection && asks_for_introspection(doc) {
                return Err(error::request_error(
                    "introspection is disabled on this server",
                    ErrorCode::BadRequest,
                ));
            }
            check_fan_out(doc, &variables, limits)
        });
        request.variables = variables;
        checked?;
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| {
            // async-graphql's own recursion check (fragments included) runs in this step.
            if e.message.starts_with("The recursion depth of the query") {
                limit_error("max-depth", self.config.limits.max_depth, "the query is nested too deeply")
            } else {
                e
            }
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let key = self.operation.lock().take();
        let documents = &self.config.documents;
        let result = match key.as_ref().and_then(|k| documents.validated(k)) {
            Some(kept) => kept,
            None => {
                let result = next.run(ctx).await?;
                if let Some(key) = key {
                    documents.remember_validated(key, result);
                }
                result
            }
        };
        let limits = &*self.config.limits;
        if result.depth > limits.max_depth {
            return Err(vec![limit_error(
                "max-depth",
                limits.max_depth,
                format_args!("the query is {} levels deep", result.depth),
            )]);
        }
        if result.complexity > limits.max_complexity {
            return Err(vec![limit_error(
                "max-complexity",
                limits.max_complexity,
                format_args!("the query's complexity is {}", result.complexity),
            )]);
        }
        Ok(result)
    }
}

/// Upstream fan-out of one document: upstream-causing selections and distinct projects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanOut {
    /// Selections of [`UPSTREAM_FIELDS`], fragments expanded (saturating).
    pub upstream_fields: usize,
    /// All field selections, fragments expanded (saturating): a lower bound of complexity.
    pub fields: usize,
    /// Deepest field nesting, fragments expanded (as async-graphql counts depth).
    pub depth: usize,
    /// Distinct project ids named (counting stops just past the limit).
    pub projects: HashSet<String>,
}

fn check_fan_out(doc: &ExecutableDocument, variables: &Variables, limits: &Limits) -> ServerResult<()> {
    // Operations other than the executed one are refused by async-graphql anyway; checking
    // each one keeps this independent of the operation name.
    for op in operations(doc) {
        let fan_out = fan_out(doc, op, variables, limits.max_projects);
        if fan_out.depth > limits.max_depth {
            return Err(limit_error(
                "max-depth",
                limits.max_depth,
                format_args!("the operation is {} levels deep", fan_out.depth),
            ));
        }
        if fan_out.fields > limits.max_complexity {
            return Err(limit_error(
                "max-complexity",
                limits.max_complexity,
                format_args!("the operation selects {} fields once fragments are expanded", fan_out.fields),
            ));
        }
        if fan_out.upstream_fields > limits.max_upstream_fields {
            return Err(limit_error(
                "max-upstream-fields",
                limits.max_upstream_fields,
                format_args!(
                    "the operation selects upstream fields ({}) {} times",
                    UPSTREAM_FIELDS.join(", "),
                    fan_out.upstream_fields
                ),
            ));
        }
        if fan_out.projects.len() > limits.max_projects {
            return Err(limit_error(
                "max-projects",
                limits.max_projects,
                "the operation names too many distinct projects",
            ));
        }
    }
    Ok(())
}

/// Whether any operation selects `__schema` or `__type` at its root (through fragments too).
fn asks_for_introspection(doc: &ExecutableDocument) -> bool {
    fn root(doc: &ExecutableDocument, set: &SelectionSet, seen: &mut HashSet<Name>) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => matches!(f.node.name.node.as_str(), "__schema" | "__type"),
            Selection::InlineFragment(i) => root(doc, &i.node.selection_set.node, seen),
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                seen.insert(name.clone())
                    && doc.fragments.get(name).is_some_and(|f| root(doc, &f.node.selection_set.node, seen))
            }
        })
    }
    operations(doc).into_iter().any(|op| root(doc, &op.selection_set.node, &mut HashSet::new()))
}

fn operations(doc: &ExecutableDocument) -> Vec<&OperationDefinition> {
    match &doc.operations {
        DocumentOperations::Single(op) => vec![&op.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node).collect(),
    }
}

/// Measures the fan-out of `op`; stops collecting projects once there are more than
/// `project_cap`.
pub fn fan_out(
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    variables: &Variables,
    project_cap: usize,
) -> FanOut {
    let mut walker = Walker {
        doc,
        variables,
        defaults: op
            .variable_definitions
            .iter()
            .filter_map(|v| v.node.default_value.as_ref().map(|d| (v.node.name.node.clone(), &d.node)))
            .collect(),
        project_cap,
        projects: HashSet::new(),
        fragment_counts: HashMap::new(),
        expanding: HashSet::new(),
    };
    let Count { upstream, fields, depth } = walker.selection_set(&op.selection_set.node);
    FanOut { upstream_fields: upstream, fields, depth, projects: walker.projects }
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    defaults: HashMap<Name, &'a Value>,
    project_cap: usize,
    projects: HashSet<String>,
    /// Upstream fields per fragment, computed once: spreads can repeat a fragment
    /// exponentially often, the walk stays linear in the document.
    fragment_counts: HashMap<Name, Count>,
    /// Fragments being expanded; a cycle counts zero here and fails validation later.
    expanding: HashSet<Name>,
}

/// Selections below a point of the document, fragments expanded.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    upstream: usize,
    fields: usize,
    depth: usize,
}

impl Count {
    /// Siblings: counts add up, depth is the deeper one.
    fn add(self, other: Count) -> Count {
        Count {
            upstream: self.upstream.saturating_add(other.upstream),
            fields: self.fields.saturating_add(other.fields),
            depth: self.depth.max(other.depth),
        }
    }
}

impl Walker<'_> {
    fn selection_set(&mut self, set: &SelectionSet) -> Count {
        let mut count = Count::default();
        for item in &set.items {
            let n = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    for (name, value) in &field.arguments {
                        let value = value.node.clone().into_const_with(|var| {
                            Ok::<_, Infallible>(self.variable(&var).cloned().unwrap_or_default())
                        });
                        let Ok(value) = value;
                        let name = name.node.as_str();
                        if name == "id" && field.name.node != "project" {
                            continue;
                        }
                        self.collect_projects(&value, Some(name));
                    }
                    let below = self.selection_set(&field.selection_set.node);
                    let own = usize::from(UPSTREAM_FIELDS.contains(&field.name.node.as_str()));
                    Count {
                        upstream: below.upstream.saturating_add(own),
                        fields: below.fields.saturating_add(1),
                        depth: below.depth.saturating_add(1),
                    }
                }
                Selection::InlineFragment(inline) => self.selection_set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            count = count.add(n);
        }
        count
    }

    fn fragment(&mut self, name: &Name) -> Count {
        if let Some(n) = self.fragment_counts.get(name) {
            return *n;
        }
        let Some(fragment) = self.doc.fragments.get(name) else { return Count::default() };
        if !self.expanding.insert(name.clone()) {
            return Count::default();
        }
        let n = self.selection_set(&fragment.node.selection_set.node);
        self.expanding.remove(name);
        self.fragment_counts.insert(name.clone(), n);
        n
    }

    fn variable(&self, name: &Name) -> Option<&Value> {
        self.variables.get(name).or_else(|| self.defaults.get(name).copied())
    }

    /// Records project ids in `value`: the value itself when it sits under a project key,
    /// and recursively every `projectId`/`id` key of input objects (entity representations).
    fn collect_projects(&mut self, value: &Value, key: Option<&str>) {
        if self.projects.len() > self.project_cap {
            return;
        }
        match value {
            Value::String(s) if key.is_some_and(|k| PROJECT_KEYS.contains(&k)) => {
                self.projects.insert(s.clone());
            }
            Value::Number(n) if key.is_some_and(|k| PROJECT_KEYS.contains(&k)) => {
                self.projects.insert(n.to_string());
            }
            Value::List(items) => {
                for item in items {
                    self.collect_projects(item, key);
                }
            }
            Value::Object(fields) => {
                // In a representation of another type than `Project`, `id` is not a project.
                let typename = fields.get("__typename");
                let id_is_project = typename.is_none_or(|t| matches!(t, Value::String(t) if t == "Project"));
                for (k, v) in fields {
                    if k == "id" && !id_is_project {
                        continue;
                    }
                    self.collect_projects(v, Some(k.as_str()));
                }
            }
            _ => {}
        }
    }
}

/// What the cheap pre-parse scan found, or where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Within both bounds.
    Ok {
        /// Lexical tokens seen.
        tokens: usize,
        /// Deepest `{`/`[`/`(` nesting seen.
        nesting: usize,
    },
    /// More than `max_tokens` tokens (the scan stopped there).
    TooManyTokens,
    /// Brackets nested deeper than `max_nesting` (the scan stopped there).
    TooDeep,
}

/// Counts GraphQL tokens and bracket nesting in one linear pass, without allocating, and
/// stops as soon as a bound is passed. It follows the spec's lexical grammar closely enough
/// to count (names, numbers, strings, block strings, punctuators; whitespace, commas and
/// comments are ignored); anything it does not know counts as one token and is left for
/// the parser to reject. Runs before the parser so that hostile documents cannot make the
/// recursive parser use unbounded time or stack.
pub fn scan(query: &str, max_tokens: usize, max_nesting: usize) -> ScanOutcome {
    let b = query.as_bytes();
    let (mut i, mut tokens, mut nesting, mut deepest) = (0usize, 0usize, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        tokens += 1;
        if tokens > max_tokens {
            return ScanOutcome::TooManyTokens;
        }
        match c {
            b'{' | b'[' | b'(' => {
                nesting += 1;
                deepest = deepest.max(nesting);
                if nesting > max_nesting {
                    return ScanOutcome::TooDeep;
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                nesting = nesting.saturating_sub(1);
                i += 1;
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += if b[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' && b[i] != b'\r' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'.' if b[i..].starts_with(b"...") => i += 3,
            c if c == b'_' || c.is_ascii_alphanumeric() || c == b'-' => {
                // A name or a number: a run of name/number characters.
                i += 1;
                while i < b.len()
                    && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'+' | b'-'))
                    && !b[i..].starts_with(b"...")
                {
                    i += 1;
                }
            }
            // Punctuators and anything else: one token per character (UTF-8 continuation
            // bytes included, which only overcounts garbage the parser rejects anyway).
            _ => i += 1,
        }
    }
    ScanOutcome::Ok { tokens, nesting: deepest }
}

/// Checks a query document's length, tokens and bracket nesting before it is parsed.
pub fn check_document(query: &str, limits: &Limits) -> Result<(), ServerError> {
    if query.len() > limits.max_query_length {
        return Err(limit_error(
            "max-query-length",
            limits.max_query_length,
            format_args!("the query document is {} bytes long", query.len()),
        ));
    }
    match scan(query, limits.max_tokens, nesting_bound(limits.max_depth)) {
        ScanOutcome::Ok { .. } => Ok(()),
        ScanOutcome::TooManyTokens => {
            Err(limit_error("max-tokens", limits.max_tokens, "the query document has too many tokens"))
        }
        ScanOutcome::TooDeep => {
            Err(limit_error("max-depth", limits.max_depth, "the query document is nested too deeply"))
        }
    }
}

/// Bracket nesting allowed before parsing: field depth plus room for argument values
/// (`(`, `[`, `{` inside arguments), so that no document within `max_depth` is refused.
pub fn nesting_bound(max_depth: usize) -> usize {
    max_depth.saturating_mul(2).saturating_add(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(query: &str, variables: serde_json::Value) -> FanOut {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let vars = Variables::from_json(variables);
        let op = operations(&doc)[0];
        fan_out(&doc, op, &vars, usize::MAX)
    }

    #[test]
    fn the_introspection_query_is_well_within_the_defaults() {
        let q = include_str!("../../../tests/api/introspection.graphql");
        let m = measure(q, serde_json::Value::Null);
        assert_eq!((m.depth, m.upstream_fields, m.projects.len()), (15, 0, 0));
        let d = Limits::default();
        assert!(m.depth + 5 <= d.max_depth && m.fields * 4 <= d.max_complexity, "{m:?}");
    }

    #[test]
    fn counts_fan_out_through_fragments_aliases_and_representations() {
        let m = measure(
            "query($r: [_Any!]!, $p: ID = \"d\") { a: connections(projectId: \"a\") { name } ...F ...F \
             e: _entities(representations: $r) { __typename } project(id: $p) { connections { name } } } \
             fragment F on Query { b: connections(projectId: \"b\") { name } }",
            serde_json::json!({ "r": [{ "__typename": "Project", "id": "c" },
                                      { "__typename": "Connection", "projectId": "a", "connectionId": "x" }] }),
        );
        assert_eq!(m.upstream_fields, 5);
        let mut projects: Vec<_> = m.projects.into_iter().collect();
        projects.sort();
        assert_eq!(projects, ["a", "b", "c", "d"]);
    }

    #[test]
    fn connection_ids_named_id_are_not_counted_as_projects() {
        let m = measure(
            "query($r: [_Any!]!) { enhancedConnection(projectId: \"a\", id: \"x\") { privileges { object } } \
             project(id: \"b\") { connection(connectionId: \"y\") { queueStatuses { name } } } \
             _entities(representations: $r) { __typename } }",
            serde_json::json!({ "r": [{ "__typename": "EnhancedConnection", "projectId": "c", "id": "z" }] }),
        );
        assert_eq!(m.upstream_fields, 5);
        let mut projects: Vec<_> = m.projects.into_iter().collect();
        projects.sort();
        assert_eq!(projects, ["a", "b", "c"]);
    }

    fn tokens(q: &str) -> usize {
        match scan(q, usize::MAX, usize::MAX) {
            ScanOutcome::Ok { tokens, .. } => tokens,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_tokens_like_the_spec() {
        assert_eq!(tokens("{ a }"), 3);
        assert_eq!(tokens("query Q($p: ID! = \"x y\") { a: b(c: -1.5e3, d: [1, 2]) ...F }"), 29);
        assert_eq!(tokens("# only a comment\n,,,"), 0);
        assert_eq!(tokens("{ a(s: \"\"\"block \\\"\"\" \"quoted\" \"\"\") }"), 8);
        assert_eq!(tokens("{ a(s: \"esc \\\" still\") }"), 8);
        assert_eq!(tokens("...on"), 2);
    }

    #[test]
    fn stops_at_the_bounds() {
        assert_eq!(scan(&"{a".repeat(100), 10_000, 50), ScanOutcome::TooDeep);
        assert_eq!(scan(&"a ".repeat(101), 100, 50), ScanOutcome::TooManyTokens);
        assert_eq!(scan("[[[]]]", 100, 3), ScanOutcome::Ok { tokens: 6, nesting: 3 });
    }

    #[test]
    fn unterminated_strings_and_odd_bytes_do_not_panic() {
        for q in ["\"", "\"\"\"", "\"\\", "{ a(s: \"\"\"x\\", "é😀\u{0}", "...", "..", "-", "\"\"\"\\\"\"\""]
        {
            let _ = scan(q, 100, 100);
        }
    }

    #[test]
    fn errors_name_the_limit() {
        let limits = Limits { max_tokens: 2, ..Limits::default() };
        let e = check_document("{ a b }", &limits).expect_err("too many tokens");
        let ext = e.extensions.expect("extensions");
        assert_eq!(ext.get("code"), Some(&async_graphql::Value::from("LIMIT_EXCEEDED")));
        assert_eq!(ext.get("limit"), Some(&async_graphql::Value::from("max-tokens")));
        assert!(e.message.contains("max-tokens = 2"), "{}", e.message);
    }
}
