//! The schema: the `Query` root, how it is built, and its SDL.

use async_graphql::{Any, Context, EmptyMutation, ID, Object, Schema};

use async_graphql::registry::SDLExportOptions;

use super::{
    connection::{self, Connection, ConnectionState},
    connection_list::{ConnectionList, connections_of},
    enhanced::{
        self, EnhancedConnection, EnhancedConnectionPage, EnhancedConnectionStatus, EnhancedPageArgs,
        TagFilter,
    },
    extensions::{
        apq,
        budget::CallBudgets,
        document_cache::DocumentCache,
        limits::{DocumentLimits, DocumentScan, nesting_bound},
        observe::Observe,
        order::ResponseOrder,
        trusted_documents::{TrustedDocuments, TrustedDocumentsExtension},
    },
    federation::{self, Entity, Project, Service},
    field::null_on_error,
    page::{self, ConnectionFilter, ConnectionOrder, ConnectionPage, ConnectionStats, PageArgs},
    subscription::{SnapshotMarker, SubscriptionRoot},
};
use crate::{
    config::{DetailOptions, GraphqlOptions, Limits},
    error,
    observability::metrics::Metrics,
    project_id::ProjectId,
};

/// The executable schema type.
pub type DliSchema = Schema<Query, EmptyMutation, SubscriptionRoot>;

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

    /// A page of one project's classic connections, filtered and sorted (GraphQL Cursor
    /// Connections Specification). Costs the project's one list call of this request (shared
    /// with `connections` and `connectionStats`). Null, with an error, when that call fails.
    // The arguments are the Cursor Connections Specification's, plus filter and order.
    #[allow(clippy::too_many_arguments)]
    async fn connections_page(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] project_id: ID,
        #[graphql(desc = "Which connections the page covers (all when omitted).")] filter: Option<
            ConnectionFilter,
        >,
        #[graphql(desc = "The order (CREATE_TIME ascending when omitted); ties by connectionId.")]
        order_by: Option<ConnectionOrder>,
        #[graphql(
            desc = "The first this many connections after `after` (50 when neither first nor last is given)."
        )]
        first: Option<i32>,
        #[graphql(desc = "A cursor of this orderBy: the page starts after it.")] after: Option<String>,
        #[graphql(desc = "The last this many connections before `before`.")] last: Option<i32>,
        #[graphql(desc = "A cursor of this orderBy: the page ends before it.")] before: Option<String>,
    ) -> Option<ConnectionPage> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => {
                match PageArgs::parse(ctx, order_by, first, after.as_deref(), last, before.as_deref()) {
                    Ok(args) => page::page_of(ctx, &project, &filter.unwrap_or_default(), args).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result)
    }

    /// Counts of one project's classic connections (total, by state, by service) for those
    /// matching `filter`. Costs the project's one list call of this request. Null, with an
    /// error, when that call fails.
    async fn connection_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] project_id: ID,
        #[graphql(desc = "Which connections to count (all when omitted).")] filter: Option<ConnectionFilter>,
    ) -> Option<ConnectionStats> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => page::stats_of(ctx, &project, &filter.unwrap_or_default()).await,
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result)
    }

    /// One classic datasource connection, with its per-queue peering (one upstream show call,
    /// shared with `queueStatuses` of the same connection in this request). Null without an
    /// error when DLI says it does not exist; null with `BAD_USER_INPUT` (and no upstream call)
    /// when an id is invalid.
    async fn connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] project_id: ID,
        #[graphql(desc = "The connection's UUID (`^[A-Za-z0-9_-]{1,64}$`).")] connection_id: ID,
    ) -> Option<Connection> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => connection::detail(ctx, &project, &connection_id).await,
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result).flatten()
    }

    /// A page of one project's enhanced (VPC-peering) connections, filtered and paged by
    /// DLI itself (one upstream list call with `limit`/`offset`), in DLI's order (creation
    /// time). Null, with an error, when that call fails.
    // DLI's filters plus the Cursor Connections Specification's forward paging arguments.
    #[allow(clippy::too_many_arguments)]
    async fn enhanced_connections(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] project_id: ID,
        #[graphql(desc = "Only connections with this status (ACTIVE or DELETED).")] status: Option<
            EnhancedConnectionStatus,
        >,
        #[graphql(desc = "Only connections whose name matches this, as DLI's `name` filter does.")]
        name: Option<String>,
        #[graphql(desc = "Only connections carrying every one of these tags.")] tags: Option<Vec<TagFilter>>,
        #[graphql(
            desc = "The first this many connections after `after` (50 when omitted; 0 is an empty page)."
        )]
        first: Option<i32>,
        #[graphql(desc = "A cursor of enhancedConnections: the page starts after it.")] after: Option<String>,
    ) -> Option<EnhancedConnectionPage> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => match EnhancedPageArgs::parse(ctx, status, name, tags, first, after.as_deref()) {
                Ok(args) => enhanced::page_of(ctx, &project, args).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result)
    }

    /// One enhanced connection (one upstream show call, counted toward
    /// `--max-detail-calls`). Null without an error when DLI says it does not exist; null with
    /// `BAD_USER_INPUT` (and no upstream call) when an id is invalid.
    async fn enhanced_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The DLI project id (`^[A-Za-z0-9_-]{1,64}$`).")] project_id: ID,
        #[graphql(desc = "The connection's UUID (`^[A-Za-z0-9_-]{1,64}$`).")] id: ID,
    ) -> Option<EnhancedConnection> {
        let result = match ProjectId::parse(&project_id) {
            Ok(project) => enhanced::detail(ctx, &project, &id).await,
            Err(e) => Err(error::invalid_project_id(e)),
        };
        null_on_error(ctx, result).flatten()
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
    /// Page sizes and the per-operation budget of per-connection calls.
    pub detail: DetailOptions,
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
    let mut builder = Schema::build(Query, EmptyMutation, SubscriptionRoot)
        .extension(Observe::new(opts.metrics.clone()))
        .extension(SnapshotMarker)
        .extension(ResponseOrder)
        // The subgraph SDL keeps `type Subscription`, so the router can pass subscriptions
        // through to this subgraph.
        .enable_subscription_in_federation()
        // Before APQ, which parses the documents it registers.
        .extension(DocumentScan(limits.clone()))
        .extension(CallBudgets { max: opts.detail.max_detail_calls })
        .data(opts.detail);
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
