//! The schema: the `Query` root, how it is built, and its SDL.

use async_graphql::{Any, Context, EmptyMutation, EmptySubscription, ID, Object, Schema};

use async_graphql::registry::SDLExportOptions;

use super::{
    connection::ConnectionState,
    connection_list::ConnectionList,
    extensions::{
        apq,
        document_cache::DocumentCache,
        limits::{DocumentLimits, DocumentScan, nesting_bound},
        observe::Observe,
        trusted_documents::{TrustedDocuments, TrustedDocumentsExtension},
    },
    federation::{self, Entity, Project, Service},
    field::{connections_of, null_on_error},
};
use crate::{
    config::{GraphqlOptions, Limits},
    error,
    observability::metrics::Metrics,
    project_id::ProjectId,
};

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
        Service { sdl: sdl() }
    }
}

/// Options the schema is built with.
#[derive(Debug, Clone, Default)]
pub struct SchemaOptions {
    /// Introspection, persisted queries and the document cache.
    pub graphql: GraphqlOptions,
    /// Document limits enforced before execution.
    pub limits: Limits,
    /// Where operation counts go; spans are recorded either way.
    pub metrics: Option<Metrics>,
    /// The trusted-documents list, when only listed documents may run.
    pub trusted_documents: Option<std::sync::Arc<TrustedDocuments>>,
}

/// Builds the executable schema.
pub fn build(opts: &SchemaOptions) -> DliSchema {
    // No `enable_federation()`: `_entities` and `_service` are fields of `Query` (see
    // `federation`), so each entity resolves and fails on its own.
    // Observe first: its span and counts then cover persisted-query lookups too.
    let limits = std::sync::Arc::new(opts.limits.clone());
    let introspection = !opts.graphql.disable_introspection;
    let mut builder = Schema::build(Query, EmptyMutation, EmptySubscription)
        .extension(Observe::new(opts.metrics.clone()))
        // Before APQ, which parses the documents it registers.
        .extension(DocumentScan(limits.clone()));
    // Before APQ: a listed hash is resolved here, and an unlisted one may not be registered.
    if let Some(trusted) = &opts.trusted_documents {
        builder = builder.extension(TrustedDocumentsExtension(trusted.clone()));
    }
    builder = apq::register(builder, opts.graphql.apq_cache_size);
    if !introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    // Depth and complexity are checked by `DocumentLimits` (with errors naming the limit);
    // async-graphql's recursion guard counts fragment levels too, so it gets more room.
    builder = builder.limit_recursive_depth(nesting_bound(opts.limits.max_depth)).extension(DocumentLimits {
        limits,
        introspection,
        documents: std::sync::Arc::new(DocumentCache::new(opts.graphql.document_cache_size)),
    });
    builder.finish()
}

/// The SDL the server serves (the Federation v2 subgraph SDL, with the entities' `@key`s);
/// `schema.graphql` must equal it. Built once.
pub fn sdl() -> String {
    static SDL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let export = build(&SchemaOptions::default()).sdl_with_options(SDLExportOptions::new().federation());
        federation::with_keys(&export)
    });
    SDL.clone()
}
