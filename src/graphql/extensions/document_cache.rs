//! A bounded cache of parsed GraphQL documents, keyed by their exact text.
//!
//! Clients send the same few operations over and over, and async-graphql's parser (pest)
//! was a tenth of the service's CPU per request in a profile of a 50-connection query. The
//! cache holds only what parsing the text alone yields, so it is shared across callers safely,
//! and it replaces nothing but the parse: the text scan runs before it and the fan-out,
//! depth, complexity and validation checks after it, for every request. Only documents that
//! parsed are kept, and only short ones, so hostile traffic cannot grow it past
//! `capacity × MAX_CACHED_QUERY_BYTES` of text (plus its parse).

use std::{num::NonZeroUsize, sync::Arc};

use parking_lot::Mutex;

use async_graphql::{ServerError, parser::types::ExecutableDocument};
use lru::LruCache;

/// Longer documents are parsed every time (typical client operations are far shorter).
pub const MAX_CACHED_QUERY_BYTES: usize = 8 * 1024;

/// Parsed documents by text, least recently used dropped first.
pub struct DocumentCache {
    entries: Option<Mutex<LruCache<Box<str>, Arc<ExecutableDocument>>>>,
}

impl DocumentCache {
    /// A cache of up to `capacity` documents; 0 parses every request.
    pub fn new(capacity: usize) -> Self {
        Self { entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))) }
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
}
