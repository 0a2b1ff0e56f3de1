//! What every field that needs DLI data shares: loading through the request's loader
//! (lists, show calls, privileges), spending the operation's per-connection call budget, and
//! failing as an explicit `null` with the error at the field's path.

use std::sync::Arc;

use async_graphql::Context;

use super::{
    extensions::budget::{CallBudget, DetailCall},
    loader::{EnhancedListKey, EnhancedShowKey, Fetch, Outcome, PrivilegesKey, ProjectLoader, ShowKey},
};
use crate::{
    error,
    project_id::{ConnectionId, ProjectId},
    upstream::{
        ConnectionDto, EnhancedConnectionDto, EnhancedListResponse, ListResponse, PrivilegesResponse,
    },
};

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

fn loader<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<ProjectLoader>> {
    ctx.data::<Arc<ProjectLoader>>().map_err(|_| error::internal("no loader for this request"))
}

/// The classic list of `project`, through the request's loader (one call per project
/// per request, whichever fields ask).
pub async fn list_of(ctx: &Context<'_>, project: &ProjectId) -> async_graphql::Result<Arc<ListResponse>> {
    // `Infallible` error type: per-project failures travel inside the value.
    let Ok(loaded) = loader(ctx)?.load_one(project.clone()).await;
    match loaded {
        Some(Ok(list)) => Ok(list),
        Some(Err(e)) => Err(e.to_graphql(project)),
        None => Err(error::internal("project was not loaded")),
    }
}

/// Loads `key` through the request's loader; per-key failures become the field's error.
async fn load<K, T>(ctx: &Context<'_>, project: &ProjectId, key: K) -> async_graphql::Result<T>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    ProjectLoader: Fetch<K, Value = Outcome<T>>,
    T: Clone + Send + Sync + 'static,
{
    let Ok(loaded) = loader(ctx)?.load_one(key).await;
    match loaded {
        Some(Outcome(Ok(v))) => Ok(v),
        Some(Outcome(Err(e))) => Err(e.to_graphql(project)),
        None => Err(error::internal("key was not loaded")),
    }
}

/// Spends one unit of this operation's per-connection call budget on `call` (free when the
/// same call was admitted before).
fn admit(ctx: &Context<'_>, call: DetailCall) -> async_graphql::Result<()> {
    ctx.data::<Arc<CallBudget>>()
        .map_err(|_| error::internal("no call budget for this operation"))?
        .admit(call)
}

/// One classic connection from the show endpoint; `None` when DLI says it does not exist.
pub async fn show_connection(
    ctx: &Context<'_>,
    project: &ProjectId,
    id: &ConnectionId,
) -> async_graphql::Result<Option<Arc<ConnectionDto>>> {
    admit(ctx, DetailCall::Show(project.clone(), id.clone()))?;
    load(ctx, project, ShowKey(project.clone(), id.clone())).await
}

/// One enhanced connection from its show endpoint; `None` when DLI says it does not exist.
pub async fn show_enhanced(
    ctx: &Context<'_>,
    project: &ProjectId,
    id: &ConnectionId,
) -> async_graphql::Result<Option<Arc<EnhancedConnectionDto>>> {
    admit(ctx, DetailCall::EnhancedShow(project.clone(), id.clone()))?;
    load(ctx, project, EnhancedShowKey(project.clone(), id.clone())).await
}

/// The privileges of one enhanced connection; `None` when DLI says it does not exist.
pub async fn privileges_of(
    ctx: &Context<'_>,
    project: &ProjectId,
    id: &ConnectionId,
) -> async_graphql::Result<Option<Arc<PrivilegesResponse>>> {
    admit(ctx, DetailCall::Privileges(project.clone(), id.clone()))?;
    load(ctx, project, PrivilegesKey(project.clone(), id.clone())).await
}

/// One page of `project`'s enhanced connections as DLI filters and pages them.
pub async fn enhanced_list(
    ctx: &Context<'_>,
    project: &ProjectId,
    query: crate::upstream::EnhancedQuery,
) -> async_graphql::Result<Arc<EnhancedListResponse>> {
    load(ctx, project, EnhancedListKey(project.clone(), query)).await
}
