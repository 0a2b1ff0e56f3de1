//! Automatic persisted queries (APQ), as Apollo clients speak them: a request may carry
//! `extensions.persistedQuery.sha256Hash` instead of the document; an unknown hash answers
//! `PERSISTED_QUERY_NOT_FOUND`, and the client resends hash and document to register it.
//!
//! async-graphql's extension does the work with a bounded LRU; this module adds what
//! clients branch on: stable `extensions.code`s (async-graphql answers with bare
//! messages), and `PERSISTED_QUERY_NOT_SUPPORTED` when APQ is turned off, so clients stop
//! sending hashes instead of failing on an empty document.

use std::sync::Arc;

use async_graphql::{
    Request, Response, ServerError, ServerResult,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
        apollo_persisted_queries::{ApolloPersistedQueries, LruCacheStorage},
    },
};

use crate::error::{self, ErrorCode};

/// The message and code of an unknown hash; Apollo clients match on either.
pub const NOT_FOUND: (&str, ErrorCode) = ("PersistedQueryNotFound", ErrorCode::PersistedQueryNotFound);
/// The message and code when APQ is off.
pub const NOT_SUPPORTED: (&str, ErrorCode) =
    ("PersistedQueryNotSupported", ErrorCode::PersistedQueryNotSupported);

/// Adds APQ with room for `capacity` documents (least recently used dropped first), or,
/// with 0, the refusal clients expect from a server without APQ.
pub fn register<Q, M, S>(
    builder: async_graphql::SchemaBuilder<Q, M, S>,
    capacity: usize,
) -> async_graphql::SchemaBuilder<Q, M, S> {
    let builder = builder.extension(PersistedQueryCodes { enabled: capacity > 0 });
    match std::num::NonZeroUsize::new(capacity) {
        Some(c) => builder.extension(ApolloPersistedQueries::new(LruCacheStorage::new(c.get()))),
        None => builder,
    }
}

/// Runs before async-graphql's APQ extension and labels its errors.
struct PersistedQueryCodes {
    enabled: bool,
}

impl ExtensionFactory for PersistedQueryCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PersistedQueryCodes { enabled: self.enabled })
    }
}

#[async_trait::async_trait]
impl Extension for PersistedQueryCodes {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if !self.enabled && request.extensions.contains_key("persistedQuery") {
            return Err(error::with_code(ServerError::new(NOT_SUPPORTED.0, None), NOT_SUPPORTED.1));
        }
        next.run(ctx, request).await.map_err(|e| {
            let code = if e.message == NOT_FOUND.0 {
                NOT_FOUND.1
            } else if e.message == "provided sha does not match query"
                || e.message.contains("\"PersistedQuery\"")
            {
                ErrorCode::BadRequest
            } else {
                return e;
            };
            error::with_code(e, code)
        })
    }
}

/// Whether `response` only reports an unknown persisted query hash. Apollo clients (and
/// Apollo Server) treat that as a normal HTTP 200 exchange, then resend the document.
pub fn is_not_found(response: &Response) -> bool {
    !response.errors.is_empty() && response.errors.iter().all(|e| error::has_code(e, NOT_FOUND.1))
}
