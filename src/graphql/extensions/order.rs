//! Root fields in the order they were asked for.
//!
//! async-graphql 7.2 resolves a query's root fields concurrently and inserts each into the
//! response as it completes, so `{ a: connections(projectId: "p1") … b: connections(projectId:
//! "p2") … }` can answer `b` before `a` depending on which upstream call returns first. The
//! spec asks for the requested order (§7.2.2, "Serialized Map Ordering"), clients that diff
//! responses or hash them for caching need a stable one, and the planned executor's answers
//! are compared with these byte for byte. This extension puts the root keys of each response
//! back in the spec's order, and sorts field errors by the root field they belong to. (Below
//! the root, fields resolved from data already loaded complete in selection order.)

use std::sync::Arc;

use async_graphql::{
    PathSegment, Request, Response, ServerResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
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

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let Some(keys) = self.keys.lock().take() else { return response };
        let positions: std::collections::HashMap<&str, usize> =
            keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        if let Value::Object(data) = &mut response.data
            && data.len() > 1
        {
            data.sort_by_cached_key(|k, _| positions.get(k.as_str()).copied().unwrap_or(usize::MAX));
        }
        // Field errors too arrive in completion order: order them by their root field (a
        // stable sort, so errors of one field keep their order).
        if response.errors.len() > 1 {
            response.errors.sort_by_cached_key(|e| match e.path.first() {
                Some(PathSegment::Field(key)) => positions.get(key.as_str()).copied().unwrap_or(usize::MAX),
                _ => usize::MAX,
            });
        }
        response
    }
}
