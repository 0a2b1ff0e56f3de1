//! A bounded cache of parsed GraphQL documents, keyed by their exact text.
//!
//! Clients send the same few operations over and over, and async-graphql's parser (pest)
//! was a tenth of the service's CPU per request in a profile of a 50-connection query. The
//! cache holds only what parsing the text alone yields, so it is shared across callers safely,
//! and it replaces nothing but the parse: the text scan runs before it and the fan-out,
//! depth, complexity and validation checks after it, for every request. Only documents that
//! parsed are kept, and only short ones, so hostile traffic cannot grow it past
//! `capacity × MAX_CACHED_QUERY_BYTES` of text (plus its parse).
//!
//! It also keeps the outcome of a successful validation by (text, operation name), for
//! requests without variables: validation then depends on the document and the schema alone
//! (one cache per schema), so a repeated operation is not validated again. Requests with
//! variables are validated every time, since async-graphql checks variable values against
//! argument types during validation. Depth and complexity come from the kept result and are
//! checked against the limits on every request, as are the text scan and the fan-out.

use std::{num::NonZeroUsize, sync::Arc};

use parking_lot::Mutex;

use async_graphql::{ServerError, ValidationResult, parser::types::ExecutableDocument};
use lru::LruCache;

/// Longer documents are parsed every time (typical client operations are far shorter).
pub const MAX_CACHED_QUERY_BYTES: usize = 8 * 1024;

/// A validated operation: the document's text and the operation name.
pub type OperationKey = (Box<str>, Option<Box<str>>);

/// Parsed documents by text, and validation outcomes by operation, least recently used
/// dropped first.
pub struct DocumentCache {
    entries: Option<Mutex<LruCache<Box<str>, Arc<ExecutableDocument>>>>,
    validated: Option<Mutex<LruCache<OperationKey, ValidationResult>>>,
}

impl DocumentCache {
    /// A cache of up to `capacity` documents (and as many validated operations); 0 parses
    /// and validates every request.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            validated: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The key under which a request's validation may be kept: only for a short text without
    /// variables (a persisted query, whose text is empty here, is validated every time).
    pub fn operation_key(
        query: &str,
        operation_name: Option<&str>,
        has_variables: bool,
    ) -> Option<OperationKey> {
        (!query.is_empty() && query.len() <= MAX_CACHED_QUERY_BYTES && !has_variables)
            .then(|| (query.into(), operation_name.map(Into::into)))
    }

    /// The kept outcome of validating `key`, if it validated before.
    pub fn validated(&self, key: &OperationKey) -> Option<ValidationResult> {
        self.validated.as_ref()?.lock().get(key).copied()
    }

    /// Keeps a successful validation of `key`.
    pub fn remember_validated(&self, key: OperationKey, result: ValidationResult) {
        if let Some(v) = &self.validated {
            v.lock().put(key, result);
        }
    }

    /// The document `query` parses to: a copy of the cached parse, or a fresh one (kept when
    /// it succeeds and the text is short enough).
    pub fn parse(&self, query: &str) -> Result<ExecutableDocument, ServerError> {
        let Some(entries) = &self.entries else {
            return Ok(async_graphql::parser::parse_query(query)?);
        };
        let cacheable = query.len() <= MAX_CACHED_QUERY_BYTES;
        if cacheable && let Some(doc) = entries.lock().get(query).cloned() {
            // Execution rewrites its document (`@skip`/`@include`), so each request gets its own.
            return Ok(ExecutableDocument::clone(&doc));
        }
        let doc = async_graphql::parser::parse_query(query)?;
        if cacheable {
            entries.lock().put(query.into(), Arc::new(doc.clone()));
        }
        Ok(doc)
    }

    /// Documents held now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.lock().len())
    }

    /// True when no document is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for DocumentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentCache").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_same_document_as_a_fresh_parse() {
        let cache = DocumentCache::new(4);
        let q =
            "query Q($p: ID!) { a: connections(projectId: $p) { ...F } } fragment F on Connection { name }";
        let fresh = async_graphql::parser::parse_query(q).expect("parses");
        let first = cache.parse(q).expect("parses");
        let second = cache.parse(q).expect("parses");
        assert_eq!(cache.len(), 1);
        // `ExecutableDocument` has no `PartialEq`; its debug form covers every node and position.
        assert_eq!(format!("{fresh:?}"), format!("{first:?}"));
        assert_eq!(format!("{fresh:?}"), format!("{second:?}"));
    }

    #[test]
    fn keeps_neither_errors_nor_long_documents_and_stays_bounded() {
        let cache = DocumentCache::new(2);
        assert!(cache.parse("{ connections(").is_err());
        assert!(cache.is_empty());
        let long = format!("{{ __typename {} }}", " ".repeat(MAX_CACHED_QUERY_BYTES));
        assert!(cache.parse(&long).is_ok());
        assert!(cache.is_empty());
        for q in ["{ a: __typename }", "{ b: __typename }", "{ c: __typename }"] {
            assert!(cache.parse(q).is_ok());
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(DocumentCache::new(0).len(), 0);
        assert!(DocumentCache::new(0).parse("{ __typename }").is_ok());
    }

    #[test]
    fn validation_is_kept_only_for_short_texts_without_variables() {
        assert!(DocumentCache::operation_key("{ a }", Some("A"), false).is_some());
        assert!(DocumentCache::operation_key("{ a }", None, true).is_none());
        assert!(DocumentCache::operation_key("", None, false).is_none());
        let long = "x".repeat(MAX_CACHED_QUERY_BYTES + 1);
        assert!(DocumentCache::operation_key(&long, None, false).is_none());
        let result = ValidationResult { cache_control: Default::default(), complexity: 7, depth: 2 };
        let cache = DocumentCache::new(2);
        let a = DocumentCache::operation_key("{ a }", Some("A"), false).expect("key");
        let b = DocumentCache::operation_key("{ a }", Some("B"), false).expect("key");
        assert!(cache.validated(&a).is_none());
        cache.remember_validated(a.clone(), result);
        assert_eq!(cache.validated(&a).map(|r| (r.complexity, r.depth)), Some((7, 2)));
        assert!(cache.validated(&b).is_none(), "operations of one text are kept apart");
        let off = DocumentCache::new(0);
        off.remember_validated(a.clone(), result);
        assert!(off.validated(&a).is_none());
    }
}
