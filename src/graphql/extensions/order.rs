//! Root fields in the order they were asked for.
//!
//! async-graphql 7.2 resolves a query's root fields concurrently and inserts each into the
//! response as it completes, so `{ a: connections(projectId: "p1") … b: connections(projectId:
//! "p2") … }` can answer `b` before `a` depending on which upstream call returns first. The
//! spec asks for the requested order (§7.2.2, "Serialized Map Ordering"), clients that diff
//! responses or hash them for caching need a stable one, and the planned executor's answers
//! are compared with these byte for byte. This extension puts the root keys of each response
//! back in the spec's order, sorts field errors by the root field they belong to, and request
//! errors (validation) by where they point in the document. (Below the root, fields resolved
//! from data already loaded complete in selection order.)

use std::sync::Arc;

use async_graphql::{
    PathSegment, Request, Response, ServerResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    },
    parser::types::ExecutableDocument,
};
use parking_lot::Mutex;

use crate::graphql::selection::{operation, root_keys};

/// Registers the ordering on a schema.
pub struct ResponseOrder;

impl ExtensionFactory for ResponseOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OrderExtension::default())
    }
}

#[derive(Default)]
struct OrderExtension {
    operation_name: Mutex<Option<String>>,
    keys: Mutex<Option<Vec<async_graphql::Name>>>,
}

#[async_trait::async_trait]
impl Extension for OrderExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.operation_name.lock().clone_from(&request.operation_name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let name = self.operation_name.lock().clone();
        if let Some((_, op)) = operation(&doc, name.as_deref()) {
            *self.keys.lock() = Some(root_keys(&doc, &op.selection_set.node, variables));
        }
        Ok(doc)
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let keys = self.keys.lock().take().unwrap_or_default();
        let positions: std::collections::HashMap<&str, usize> =
            keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        if let Value::Object(data) = &mut response.data
            && data.len() > 1
        {
            data.sort_by_cached_key(|k, _| positions.get(k.as_str()).copied().unwrap_or(usize::MAX));
        }
        // Field errors too arrive in completion order, and validation errors in an order of
        // async-graphql's own: field errors by their root field, the others by where they
        // point in the document (stable sorts, so ties keep their order).
        if response.errors.len() > 1 {
            response.errors.sort_by_cached_key(|e| {
                let root = match e.path.first() {
                    Some(PathSegment::Field(key)) => {
                        positions.get(key.as_str()).copied().unwrap_or(usize::MAX)
                    }
                    _ => usize::MAX,
                };
                let at = e.locations.first().map_or((usize::MAX, usize::MAX), |p| (p.line, p.column));
                (root, if e.path.is_empty() { at } else { (0, 0) })
            });
        }
        response
    }
}
