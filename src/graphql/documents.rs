//! Parsed query documents, kept by query text: clients send the same few queries over and
//! over, and parsing (pest) was a visible share of a request's CPU time.
//!
//! Only parsing is skipped: async-graphql still applies its depth and directive limits to a
//! cached document and validates it against the schema on every request. Documents hold no
//! data, so sharing them between callers leaks nothing.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::{Request, parser::types::ExecutableDocument};

/// Queries longer than this are parsed per request and not kept.
pub const MAX_QUERY_LEN: usize = 16 * 1024;
/// Documents kept; when full, the table starts over (bounded memory, no bookkeeping).
pub const CAPACITY: usize = 256;

/// A bounded table of parsed documents by query text. Cheap to clone.
#[derive(Clone, Default)]
pub struct DocumentCache {
    docs: Arc<Mutex<HashMap<String, ExecutableDocument>>>,
}

impl DocumentCache {
    /// Gives `request` its parsed document: from the table, or parsed now and kept. A query
    /// that does not parse is left alone, so async-graphql reports the error as usual.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > MAX_QUERY_LEN {
            return;
        }
        let cached = self.lock().get(&request.query).cloned();
        if let Some(doc) = cached {
            request.set_parsed_query(doc);
            return;
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
            return;
        };
        {
            let mut docs = self.lock();
            if docs.len() >= CAPACITY {
                docs.clear();
            }
            docs.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
    }

    /// Documents kept right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// `true` when none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecutableDocument>> {
        // The map is never left half-updated; keep serving after a panic elsewhere.
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_parses_and_bounds_the_table() {
        let cache = DocumentCache::default();
        let mut ok = Request::new("{ __typename }");
        cache.prepare(&mut ok);
        assert_eq!(cache.len(), 1);
        cache.prepare(&mut Request::new("{ __typename }"));
        assert_eq!(cache.len(), 1);
        cache.prepare(&mut Request::new("{ broken"));
        cache.prepare(&mut Request::new(format!("{{ a: __typename {} }}", " ".repeat(MAX_QUERY_LEN))));
        assert_eq!(cache.len(), 1);
        for i in 0..CAPACITY {
            cache.prepare(&mut Request::new(format!("{{ a{i}: __typename }}")));
        }
        assert!(cache.len() <= CAPACITY);
    }
}
