//! The operation layer of tracing and metrics: an async-graphql extension that wraps each
//! GraphQL operation in a `graphql.operation` span and counts it by name and outcome.

use std::{sync::Arc, time::Instant};

use parking_lot::Mutex;

use async_graphql::{
    Request, Response, ServerResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    },
    parser::types::{ExecutableDocument, OperationType},
};
use tracing::{Instrument, field::Empty};

use crate::{
    graphql::selection::operation,
    observability::metrics::{Metrics, OperationOutcome},
};

/// Registers the operation span and metrics on a schema.
pub struct Observe {
    metrics: Option<Metrics>,
}

impl Observe {
    /// Spans always; counts into `metrics` when given.
    pub fn new(metrics: Option<Metrics>) -> Self {
        Self { metrics }
    }
}

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ObserveExtension { metrics: self.metrics.clone(), operation: Mutex::default() })
    }
}

#[derive(Default, Clone)]
struct Operation {
    requested_name: Option<String>,
    name: Option<String>,
    kind: Option<&'static str>,
}

struct ObserveExtension {
    metrics: Option<Metrics>,
    // One extension instance per GraphQL request.
    operation: Mutex<Operation>,
}

impl ObserveExtension {
    fn operation(&self) -> parking_lot::MutexGuard<'_, Operation> {
        self.operation.lock()
    }
}

#[async_trait::async_trait]
impl Extension for ObserveExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = tracing::info_span!(
            "graphql.operation",
            graphql.operation.name = Empty,
            graphql.operation.type = Empty,
            outcome = Empty,
        );
        let started = Instant::now();
        let response = next.run(ctx).instrument(span.clone()).await;
        let outcome = if response.errors.is_empty() {
            OperationOutcome::Ok
        } else if response.data == Value::Null {
            OperationOutcome::RequestError
        } else {
            OperationOutcome::FieldError
        };
        let op = self.operation().clone();
        let name = op.name.as_deref().unwrap_or("anonymous");
        let kind = op.kind.unwrap_or("unknown");
        span.record("graphql.operation.name", name);
        span.record("graphql.operation.type", kind);
        span.record("outcome", outcome.as_str());
        if let Some(m) = &self.metrics {
            m.graphql_operation(name, kind, outcome, started.elapsed());
        }
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.operation().requested_name = request.operation_name.clone();
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
        let mut op = self.operation();
        if let Some((name, chosen)) = operation(&doc, op.requested_name.as_deref()) {
            op.name = name.map(str::to_owned);
            op.kind = Some(match chosen.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            });
        }
        Ok(doc)
    }
}
