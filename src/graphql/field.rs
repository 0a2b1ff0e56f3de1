//! What every field that needs DLI data shares: loading a project's list through the
//! request's project loader, and failing as an explicit `null` with the error at the field's path.

use async_graphql::Context;

use super::{connection::ConnectionState, connection_list::ConnectionList, loader::ProjectLoader};
use crate::{error, project_id::ProjectId};

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

/// Loads `project` through the request's loader and applies the filters.
pub async fn connections_of(
    ctx: &Context<'_>,
    project: &ProjectId,
    state: Option<ConnectionState>,
    service: Option<&str>,
) -> async_graphql::Result<ConnectionList> {
    let loader = ctx
        .data::<std::sync::Arc<ProjectLoader>>()
        .map_err(|_| error::internal("no project loader for this request"))?;
    match loader.load(project).await {
        Ok(list) => Ok(ConnectionList::filtered(project, &list, state, service)),
        Err(e) => Err(e.to_graphql(project)),
    }
}
