//! The per-request DataLoader: one upstream call per distinct project per request (and,
//! through [`SharedClient`], at most one in flight per project and credential across requests).

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    sync::Arc,
};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use crate::{
    error::UpstreamError,
    observability::trace_context,
    project_id::ProjectId,
    upstream::{Credential, ListOutcome, SharedClient},
};

/// The outcome of one project's list call, shared by every field that asked for it.
pub type ProjectResult = ListOutcome;

/// Loads connection lists by project with one request's credential.
///
/// Each key carries its own result, so one failing project never fails the fields of
/// another project that happened to share its batch.
pub struct ProjectLoader {
    client: SharedClient,
    credential: Option<Credential>,
    allowed: Option<Arc<HashSet<ProjectId>>>,
}

/// The DataLoader type stored in each request's data. Its cache lives as long as the
/// request, so later fields (nested or entity lookups) reuse the first answer.
pub type ProjectDataLoader = DataLoader<ProjectLoader, HashMapCache>;

impl ProjectLoader {
    /// A DataLoader for one GraphQL request made with `credential`.
    pub fn data_loader(client: SharedClient, credential: Option<Credential>) -> ProjectDataLoader {
        Self::restricted_data_loader(client, credential, None)
    }

    /// Like [`Self::data_loader`]; projects outside `allowed` (when given) fail as
    /// `FORBIDDEN` without an upstream call.
    pub fn restricted_data_loader(
        client: SharedClient,
        credential: Option<Credential>,
        allowed: Option<Arc<HashSet<ProjectId>>>,
    ) -> ProjectDataLoader {
        // The batch task keeps the request id and span of the request that started it.
        DataLoader::with_cache(
            Self { client, credential, allowed },
            trace_context::spawn_in_context,
            HashMapCache::default(),
        )
    }
}

impl Loader<ProjectId> for ProjectLoader {
    type Value = ProjectResult;
    type Error = Infallible;

    async fn load(&self, keys: &[ProjectId]) -> Result<HashMap<ProjectId, ProjectResult>, Infallible> {
        let mut results = HashMap::with_capacity(keys.len());
        let (keys, refused): (Vec<&ProjectId>, Vec<&ProjectId>) =
            keys.iter().partition(|k| self.allowed.as_ref().is_none_or(|allowed| allowed.contains(*k)));
        if !refused.is_empty() {
            let err = Arc::new(UpstreamError::ProjectNotAllowed);
            results.extend(refused.into_iter().map(|k| (k.clone(), Err(err.clone()))));
        }
        let Some(credential) = &self.credential else {
            // Nothing to authenticate with: no upstream call at all.
            let err = Arc::new(UpstreamError::NoCredentials);
            results.extend(keys.into_iter().map(|k| (k.clone(), Err(err.clone()))));
            return Ok(results);
        };
        let calls = keys.into_iter().map(|project| async move {
            (project.clone(), self.client.list_connections(project, credential).await)
        });
        results.extend(futures::future::join_all(calls).await);
        Ok(results)
    }
}
