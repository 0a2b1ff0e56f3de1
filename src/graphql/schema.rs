//! The schema: the `Query` root, how it is built, and its SDL.

use async_graphql::{Context, EmptyMutation, EmptySubscription, ID, Object, Schema};

use super::{
    connection::{Connection, ConnectionState},
    loader::ProjectDataLoader,
};
use crate::{error, project_id::ProjectId};

/// The executable schema type.
pub type DliSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Read-only queries over DLI datasource connections.
#[derive(Default)]
pub struct Query;

/// Read-only queries over DLI datasource connections.
#[Object]
impl Query {
    /// Datasource connections of one project, filtered server-side. Null, with an error,
    /// when the upstream call fails.
    async fn connections(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`), as in the console's \"My Credentials\" page."
        )]
        project_id: ID,
        #[graphql(desc = "Only connections in this state.")] state: Option<ConnectionState>,
        #[graphql(
            desc = "Only connections to this peer service, compared case-insensitively (e.g. `DWS`, `CloudTable.OpenTSDB`)."
        )]
        service: Option<String>,
    ) -> Option<Vec<Connection>> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => connections_of(ctx, &project, state, service.as_deref()).await,
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result)
    }
}

/// Resolves a failed nullable field to `null` and records its error with the field's path.
///
/// Returning `Err` from a resolver makes async-graphql 7 drop the key from `data`
/// altogether; the GraphQL spec (and clients that read `data.field`) want an explicit null.
pub fn null_on_error<T>(ctx: &Context<'_>, result: async_graphql::Result<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            ctx.add_error(ctx.set_error_path(e.into_server_error(ctx.item.pos)));
            None
        }
    }
}

/// Loads `project` through the request's DataLoader and applies the filters.
pub async fn connections_of(
    ctx: &Context<'_>,
    project: &ProjectId,
    state: Option<ConnectionState>,
    service: Option<&str>,
) -> async_graphql::Result<Vec<Connection>> {
    let loader = ctx
        .data::<std::sync::Arc<ProjectDataLoader>>()
        .map_err(|_| error::internal("no data loader for this request"))?;
    // `Infallible` error type: per-project failures travel inside the value.
    let Ok(loaded) = loader.load_one(project.clone()).await;
    match loaded {
        Some(Ok(list)) => Ok(Connection::filtered(project, &list, state, service)),
        Some(Err(e)) => Err(e.to_graphql(project)),
        None => Err(error::internal("project was not loaded")),
    }
}

/// Options the schema is built with.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// Serve `__schema`/`__type` and field suggestions.
    pub introspection: bool,
    /// Automatic persisted queries kept (LRU); 0 turns APQ off.
    pub apq_cache_size: usize,
    /// Where operation counts go; spans are recorded either way.
    pub metrics: Option<crate::metrics::Metrics>,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self { introspection: true, apq_cache_size: 1000, metrics: None }
    }
}

/// Builds the executable schema.
pub fn build(opts: &SchemaOptions) -> DliSchema {
    // Observe first: its span and counts then cover persisted-query lookups too.
    let mut builder = Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(super::observe::Observe::new(opts.metrics.clone()));
    builder = super::apq::register(builder, opts.apq_cache_size);
    if !opts.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL the server serves; `schema.graphql` must equal it.
pub fn sdl() -> String {
    build(&SchemaOptions::default()).sdl()
}
