//! The schema: the `Query` root, how it is built, and its SDL.

use async_graphql::{Any, Context, EmptyMutation, EmptySubscription, ID, Object, Schema};

use super::{
    connection::ConnectionState,
    connection_list::ConnectionList,
    document_cache::DocumentCache,
    federation::{self, Entity, Project, Service},
    limits::{DocumentLimits, DocumentScan},
    loader::ProjectDataLoader,
};
use crate::{error, limits::Limits, project_id::ProjectId};

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
    ) -> Option<ConnectionList> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => connections_of(ctx, &project, state, service.as_deref()).await,
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result)
    }

    /// One DLI project, to reach its connections (and the entity other subgraphs extend).
    /// Calls DLI only for the fields that need it, so an unknown project shows up as
    /// `NOT_FOUND` on `connections`. Null, with `BAD_USER_INPUT`, when `id` is not a valid
    /// project id.
    async fn project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] id: ID,
    ) -> Option<Project> {
        let result = ProjectId::parse(&id).map(Project::new).map_err(|e| error::bad_user_input("id", e));
        null_on_error(ctx, result)
    }

    /// Apollo Federation: the entities of these representations, in order. Each entry is
    /// null when its connection does not exist, or null with an error at its index when its
    /// representation is invalid or its project cannot be loaded.
    #[graphql(name = "_entities")]
    async fn entities(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Entity representations: `__typename` and the fields of the type's `@key`.")]
        representations: Vec<Any>,
    ) -> Vec<Option<Entity>> {
        federation::entities(ctx, &representations).await
    }

    /// Apollo Federation: this subgraph's SDL, for routers and gateways.
    #[graphql(name = "_service")]
    async fn service(&self) -> Service {
        Service::new()
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
) -> async_graphql::Result<ConnectionList> {
    let loader = ctx
        .data::<std::sync::Arc<ProjectDataLoader>>()
        .map_err(|_| error::internal("no data loader for this request"))?;
    // `Infallible` error type: per-project failures travel inside the value.
    let Ok(loaded) = loader.load_one(project.clone()).await;
    match loaded {
        Some(Ok(list)) => Ok(ConnectionList::filtered(project, &list, state, service)),
        Some(Err(e)) => Err(e.to_graphql(project)),
        None => Err(error::internal("project was not loaded")),
    }
}

/// Parsed documents kept by default.
pub const DEFAULT_DOCUMENT_CACHE_SIZE: usize = 512;

/// Options the schema is built with.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// Serve `__schema`/`__type` and field suggestions.
    pub introspection: bool,
    /// Automatic persisted queries kept (LRU); 0 turns APQ off.
    pub apq_cache_size: usize,
    /// Where operation counts go; spans are recorded either way.
    pub metrics: Option<crate::metrics::Metrics>,
    /// Document limits enforced before execution.
    pub limits: Limits,
    /// Parsed documents kept for reuse (by exact text); 0 parses every request.
    pub document_cache_size: usize,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            introspection: true,
            apq_cache_size: 1000,
            metrics: None,
            limits: Limits::default(),
            document_cache_size: DEFAULT_DOCUMENT_CACHE_SIZE,
        }
    }
}

/// Builds the executable schema.
pub fn build(opts: &SchemaOptions) -> DliSchema {
    // No `enable_federation()`: `_entities` and `_service` are fields of `Query` (see
    // `federation`), so each entity resolves and fails on its own.
    // Observe first: its span and counts then cover persisted-query lookups too.
    let limits = std::sync::Arc::new(opts.limits.clone());
    let mut builder = Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(super::observe::Observe::new(opts.metrics.clone()))
        // Before APQ, which parses the documents it registers.
        .extension(DocumentScan(limits.clone()));
    builder = super::apq::register(builder, opts.apq_cache_size);
    if !opts.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    // Depth and complexity are checked by `DocumentLimits` (with errors naming the limit);
    // async-graphql's recursion guard counts fragment levels too, so it gets more room.
    builder = builder.limit_recursive_depth(crate::limits::nesting_bound(opts.limits.max_depth)).extension(
        DocumentLimits {
            limits,
            introspection: opts.introspection,
            documents: std::sync::Arc::new(DocumentCache::new(opts.document_cache_size)),
        },
    );
    builder.finish()
}

/// The SDL the server serves (the Federation v2 subgraph SDL); `schema.graphql` must equal it.
pub fn sdl() -> String {
    federation::sdl()
}
